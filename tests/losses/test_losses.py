"""Hierarchy-aware losses against independent NumPy implementations of the formulas."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from stardist_hier import LabelSet, default_taxonomy  # noqa: E402
from stardist_hier.losses import (REGISTRY, build_class_loss, dice, focal_crossentropy,  # noqa: E402
                                  focal_tversky, labelset_crossentropy)
from stardist_hier.targets import class_target, encode_image  # noqa: E402

TAX = default_taxonomy()
TREE = TAX.tree
C = TREE.n_classes + 1
EPS = 1e-7


def random_sample(rng, ls, shape=(6, 7), p_ignore=0.1):
    """Random label image with one instance per pixel block, its classes and packed target."""
    ids = rng.integers(0, 9, size=shape)
    labels = list(ls.labels) + [None]
    classes = {}
    for i in range(1, 9):
        classes[i] = labels[rng.integers(len(labels))] if rng.random() < 0.9 else None
    y = ids.astype(np.int32)
    y[rng.random(shape) < p_ignore] = -1
    cut = encode_image(y, classes, ls, leaf_weights=rng.uniform(0.5, 2.0, C))
    return y, classes, cut, class_target(y, cut)


def pixel_labels(y, classes, ls):
    """Label index per pixel (0 background, -1 ignored)."""
    k = np.zeros(y.shape, int)
    for idx in np.ndindex(y.shape):
        v = y[idx]
        if v < 0:
            k[idx] = -1
        elif v > 0:
            lab = classes[v]
            k[idx] = -1 if lab is None else ls.index(lab)
    return k


def np_label_probs(p, ls):
    """Y_k = sum_{j in S_k} p_j over background + labels, computed leaf by leaf."""
    out = np.zeros(p.shape[:-1] + (len(ls) + 1,))
    out[..., 0] = p[..., 0]
    for k, lab in enumerate(ls.labels, start=1):
        for leaf in ls.leaf_set(lab):
            out[..., k] += p[..., TREE.leaf_index(leaf)]
    return out


def np_weights(ls, cut):
    w = np.zeros(len(ls) + 1)
    for k in range(len(ls) + 1):
        w[k] = cut.channel_weights[cut.assignment == k][0]
    return w


def batch(rng, sets, shape=(6, 7)):
    samples = [random_sample(rng, ls, shape) for ls in sets]
    y_true = np.stack([s[3] for s in samples]).astype(np.float32)
    logits = rng.normal(0, 2, (len(sets),) + shape + (C,))
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return samples, y_true, y_pred.astype(np.float32)


SETS = [TAX["pannuke"], TAX["monusac"], TAX["nucls2"], TAX["root"], LabelSet.leaves_of(TREE)]


def np_ce(samples, sets, y_pred):
    out = []
    for (y, classes, cut, _), ls, p in zip(samples, sets, y_pred):
        p = p / (p + EPS).sum(-1, keepdims=True)
        Y = np.clip(np_label_probs(p, ls), EPS, 1 - EPS)
        k = pixel_labels(y, classes, ls)
        w = np_weights(ls, cut)
        val = np.zeros(y.shape)
        m = k >= 0
        val[m] = -w[k[m]] * np.log(Y[m, k[m]])
        out.append(val)
    return np.stack(out)


def np_ft_pixel(samples, sets, y_pred, alpha, gamma, eps=1e-6):
    out = []
    for (y, classes, cut, _), ls, p in zip(samples, sets, y_pred):
        p = p / (p + EPS).sum(-1, keepdims=True)
        Y = np_label_probs(p, ls)
        k = pixel_labels(y, classes, ls)
        w = np_weights(ls, cut)
        val = np.zeros(y.shape)
        for idx in zip(*np.nonzero(k >= 0)):
            t = np.zeros(len(ls) + 1)
            t[k[idx]] = 1
            ti = (np.sum(t * Y[idx]) + eps) / (alpha * t.sum() + (1 - alpha) * Y[idx].sum() + eps)
            val[idx] = w[k[idx]] * (1 - ti) ** gamma
        out.append(val)
    return np.stack(out)


def np_region(samples, sets, y_pred, per_label):
    out = []
    for (y, classes, cut, _), ls, p in zip(samples, sets, y_pred):
        p = p / (p + EPS).sum(-1, keepdims=True)
        Y = np_label_probs(p, ls)
        k = pixel_labels(y, classes, ls)
        w = np_weights(ls, cut)
        m = k >= 0
        vals, n = 0.0, 0
        for lab in range(len(ls) + 1):
            t = (k == lab) & m
            if t.sum() == 0:
                continue
            vals += w[lab] * per_label(Y[..., lab][t].sum(), t.sum(), Y[..., lab][m].sum())
            n += 1
        out.append(vals / n)
    return np.array(out)


@pytest.fixture
def data(rng):
    samples, y_true, y_pred = batch(rng, SETS)
    return samples, y_true, y_pred


def test_labelset_ce_matches_numpy(data):
    samples, y_true, y_pred = data
    got = labelset_crossentropy()(y_true, y_pred).numpy()
    np.testing.assert_allclose(got, np_ce(samples, SETS, y_pred), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("alpha, gamma", [(0.7, 0.75), (0.3, 2.0)])
def test_focal_tversky_pixel_matches_numpy(data, alpha, gamma):
    samples, y_true, y_pred = data
    got = focal_tversky(alpha=alpha, gamma=gamma)(y_true, y_pred).numpy()
    np.testing.assert_allclose(got, np_ft_pixel(samples, SETS, y_pred, alpha, gamma), rtol=1e-4, atol=1e-5)


def test_focal_tversky_region_matches_numpy(data):
    samples, y_true, y_pred = data
    a, g, e = 0.7, 0.75, 1e-6
    ref = np_region(samples, SETS, y_pred, lambda tp, ts, ps: (1 - (tp + e) / (a * ts + (1 - a) * ps + e)) ** g)
    got = focal_tversky(alpha=a, gamma=g, form="region")(y_true, y_pred).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_dice_matches_numpy(data):
    samples, y_true, y_pred = data
    ref = np_region(samples, SETS, y_pred, lambda tp, ts, ps: 1 - (2 * tp + 1) / (ts + ps + 1))
    np.testing.assert_allclose(dice()(y_true, y_pred).numpy(), ref, rtol=1e-4, atol=1e-5)


def test_focal_ce_matches_numpy(data):
    samples, y_true, y_pred = data
    # focal CE with gamma=0 is the label-set CE
    np.testing.assert_allclose(focal_crossentropy(gamma=0.0)(y_true, y_pred).numpy(),
                               np_ce(samples, SETS, y_pred), rtol=1e-4, atol=1e-5)
    got = focal_crossentropy(gamma=2.0)(y_true, y_pred).numpy()
    assert np.all(got <= np_ce(samples, SETS, y_pred) + 1e-6) and got.sum() > 0


def test_identity_cut_equals_stardist_loss(rng):
    from stardist.models.base import weighted_categorical_crossentropy
    from stardist.utils import mask_to_categorical

    ls = LabelSet.leaves_of(TREE)
    weights = rng.uniform(0.5, 2, C).astype(np.float32)
    ys, onehot, packed = [], [], []
    for _ in range(3):
        y = rng.integers(0, 6, (8, 9)).astype(np.int32)
        classes = {i: int(rng.integers(1, C)) for i in range(1, 6)}
        classes[5] = None  # an ignored object
        onehot.append(mask_to_categorical(y, C - 1, classes))
        packed.append(class_target(y, encode_image(y, classes, ls, leaf_weights=weights)))
    logits = rng.normal(0, 2, (3, 8, 9, C))
    y_pred = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    ref = weighted_categorical_crossentropy(weights, ndim=2)(np.stack(onehot), tf.constant(y_pred)).numpy()
    got = labelset_crossentropy()(np.stack(packed), y_pred).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_superclass_gradient_equal_across_leaves(name, rng):
    """A pixel labelled 'inflammatory': equal gradient on its leaves, no reward outside."""
    ls = TAX["pannuke"]
    y = np.ones((1, 1), np.int32)
    cut = encode_image(y, {1: "Inflammatory"}, ls)
    y_true = class_target(y, cut)[None]
    y_pred = tf.Variable(rng.dirichlet(np.ones(C), size=(1, 1, 1)).astype(np.float32))
    loss_fn = REGISTRY[name][0]()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(loss_fn(y_true, y_pred))
    g = tape.gradient(loss, y_pred).numpy().ravel()
    inside = list(TREE.leaf_indices("inflammatory"))
    outside = [j for j in range(C) if j not in inside]
    np.testing.assert_allclose(g[inside], g[inside[0]], rtol=1e-4)
    assert g[inside[0]] < 0, "raising a leaf of the label must lower the loss"
    assert np.all(g[outside] > g[inside[0]]), "leaves outside the label get less reward than those inside"
    assert np.all(g[outside] >= -1e-6) or name in ("dice",), "leaves outside the label get no reward"


@pytest.mark.parametrize("spec, opts", [
    ({"ce": 1.0}, {}),
    ({"focal_tversky": 1.0}, {}),
    ({"focal_tversky": 1.0}, {"focal_tversky": {"form": "region"}}),
    ({"ce": 1.0, "focal_tversky": 0.5}, {}),
    ({"ce": 1.0, "focal_tversky": 0.5}, {"focal_tversky": {"form": "region"}}),
    ({"dice": 1.0, "focal_ce": 1.0}, {}),
])
def test_mixed_batch_is_weighted_combination(spec, opts, rng):
    loss = build_class_loss(spec, opts)
    sa, ya, pa = batch(rng, [TAX["pannuke"]] * 3)
    sb, yb, pb = batch(rng, [TAX["monusac"]] * 2)
    mixed = tf.reduce_mean(loss(np.concatenate([ya, yb]), np.concatenate([pa, pb]))).numpy()
    parts = (3 * tf.reduce_mean(loss(ya, pa)).numpy() + 2 * tf.reduce_mean(loss(yb, pb)).numpy()) / 5
    np.testing.assert_allclose(mixed, parts, rtol=1e-5)


def test_combination_is_weighted_sum(data):
    _, y_true, y_pred = data
    loss = build_class_loss({"ce": 2.0, "focal_tversky": 0.5})
    ref = 2.0 * labelset_crossentropy()(y_true, y_pred) + 0.5 * focal_tversky()(y_true, y_pred)
    np.testing.assert_allclose(loss(y_true, y_pred).numpy(), ref.numpy(), rtol=1e-5)


def test_ignored_pixels_give_zero(rng):
    ls = TAX["monusac"]
    y = np.full((4, 4), -1, np.int32)
    y[0, 0] = 1
    cut = encode_image(y, {1: "Ambiguous"}, ls)
    t = class_target(y, cut)[None]
    p = rng.dirichlet(np.ones(C), size=(1, 4, 4)).astype(np.float32)
    for name in ("ce", "focal_tversky", "focal_ce"):
        assert np.all(REGISTRY[name][0]()(t, p).numpy() == 0)


@pytest.mark.parametrize("weights, opts, match", [
    ({}, {}, "at least one loss"),
    ({"xent": 1.0}, {}, "unknown loss 'xent'"),
    ({"ce": -1.0}, {}, "must be positive"),
    ({"focal_tversky": 1.0}, {"focal_tversky": {"beta": 1}}, "unknown options"),
    ({"ce": 1.0}, {"dice": {}}, "not in the combination"),
    ({"focal_tversky": 1.0}, {"focal_tversky": {"form": "image"}}, "form must be one of"),
])
def test_build_class_loss_errors(weights, opts, match):
    with pytest.raises(ValueError, match=match):
        build_class_loss(weights, opts)


def test_wrong_target_channels_raise(rng):
    with pytest.raises(ValueError, match="class target has 14 channels, expected 3"):
        labelset_crossentropy()(np.zeros((1, 2, 2, C), np.float32), np.full((1, 2, 2, C), 1 / C, np.float32))
