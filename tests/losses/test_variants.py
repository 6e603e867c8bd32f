"""Loss variants (how coarse labels are scored) against independent NumPy formulas."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from stardist_hier import LabelSet, default_taxonomy  # noqa: E402
from stardist_hier.losses import VARIANTS, build_class_loss, focal_tversky, labelset_crossentropy  # noqa: E402
from stardist_hier.targets import class_target, encode_image  # noqa: E402

TAX = default_taxonomy()
TREE = TAX.tree
C = TREE.n_classes + 1
EPS = 1e-7
SETS = [TAX["pannuke"], TAX["monusac"], TAX["consep"], TAX["nucls2"], TAX["root"], LabelSet.leaves_of(TREE)]


def sample(rng, ls, shape=(5, 6)):
    ids = rng.integers(0, 9, size=shape).astype(np.int32)
    labels = list(ls.labels) + [None]
    classes = {i: (labels[rng.integers(len(labels))] if rng.random() < 0.9 else None) for i in range(1, 9)}
    ids[rng.random(shape) < 0.1] = -1
    weights = rng.uniform(0.5, 2.0, C)
    cut = encode_image(ids, classes, ls, leaf_weights=weights)
    return ids, classes, cut, class_target(ids, cut)


def make_batch(rng, sets):
    ss = [sample(rng, ls) for ls in sets]
    y_true = np.stack([s[3] for s in ss]).astype(np.float32)
    logits = rng.normal(0, 2, y_true.shape[:-1] + (C,))
    y_pred = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    return ss, y_true, y_pred


def leaves_of_label(ls, lab):
    """Channel indices of a label (leaf by leaf, from the tree), background -> [0]."""
    if lab == 0:
        return [0]
    return [TREE.leaf_index(leaf) for leaf in ls.leaf_set(lab)]


def covered_channels(ls):
    out = [0]
    for lab in ls.labels:
        try:
            out += leaves_of_label(ls, lab)
        except Exception:  # ignore labels cover no leaf
            pass
    return sorted(set(out))


def reference(ss, sets, y_pred, variant, per_pixel):
    """``per_pixel(P_target, covered_mass) * w`` for every counted pixel, else 0; leaf by leaf."""
    out = np.zeros(y_pred.shape[:-1])
    for b, ((ids, classes, cut, _), ls) in enumerate(zip(ss, sets)):
        p_all = y_pred[b] / (y_pred[b] + EPS).sum(-1, keepdims=True)
        cov = covered_channels(ls)
        for idx in np.ndindex(ids.shape):
            v = ids[idx]
            if v < 0:
                continue
            lab = 0 if v == 0 else classes[v]
            if lab is None or (lab != 0 and ls.index(lab) is None):
                continue
            leaves = leaves_of_label(ls, lab)
            w = cut.channel_weights[leaves[0]]
            p = p_all[idx].astype(np.float64)
            coarse = len(leaves) > 1
            if variant == "renormalised":
                p = p / p[cov].sum()
            if variant == "ignore_coarse" and coarse:
                continue
            pt, mass = p[leaves].sum(), p[cov].sum()
            if variant == "root" and coarse:
                pt, mass = p[1:].sum(), 1.0
            out[(b,) + idx] = w * per_pixel(pt, mass)
    return out


def ce_ref(pt, mass):
    return -np.log(np.clip(pt, EPS, 1 - EPS))


def ft_ref(alpha, gamma, eps=1e-6):
    return lambda pt, mass: max(1 - (pt + eps) / (alpha + (1 - alpha) * mass + eps), 1e-12) ** gamma


@pytest.mark.parametrize("variant", VARIANTS)
def test_ce_variants_match_numpy(variant, rng):
    ss, y_true, y_pred = make_batch(rng, SETS)
    got = labelset_crossentropy(variant=variant)(y_true, y_pred).numpy()
    np.testing.assert_allclose(got, reference(ss, SETS, y_pred, variant, ce_ref), rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("alpha, gamma", [(0.7, 0.75), (0.3, 2.0)])
def test_focal_tversky_pixel_variants_match_numpy(variant, alpha, gamma, rng):
    ss, y_true, y_pred = make_batch(rng, SETS)
    got = focal_tversky(alpha=alpha, gamma=gamma, variant=variant)(y_true, y_pred).numpy()
    ref = reference(ss, SETS, y_pred, variant, ft_ref(alpha, gamma))
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-5)


def test_marginal_is_the_default_formula(rng):
    ss, y_true, y_pred = make_batch(rng, SETS)
    np.testing.assert_allclose(labelset_crossentropy(variant="marginal")(y_true, y_pred).numpy(),
                               labelset_crossentropy()(y_true, y_pred).numpy(), rtol=1e-6)
    np.testing.assert_allclose(reference(ss, SETS, y_pred, "marginal", ce_ref),
                               labelset_crossentropy()(y_true, y_pred).numpy(), rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("loss", ["ce", "focal_tversky", "focal_tversky_region"])
def test_renormalised_differs_exactly_where_labels_do_not_cover_all_leaves(loss, rng):
    """Equal to Eq. 2 for label sets covering every leaf (root, leaves); different otherwise."""
    def build(variant):
        if loss == "ce":
            return labelset_crossentropy(variant=variant)
        return focal_tversky(variant=variant, form="region" if loss.endswith("region") else "pixel")

    full = [TAX["root"], LabelSet.leaves_of(TREE), TAX["nucls2"]]
    partial = [TAX["pannuke"], TAX["monusac"], TAX["consep"]]
    for ls in full:
        assert len(covered_channels(ls)) == C, ls.name
    for ls in partial:
        assert len(covered_channels(ls)) < C, ls.name
    _, y_true, y_pred = make_batch(rng, full + partial)
    a = build("marginal")(y_true, y_pred).numpy()
    b = build("renormalised")(y_true, y_pred).numpy()
    axes = tuple(range(1, a.ndim))
    n = len(full)
    # equal up to StarDist's normalisation y / sum(y + eps), which leaves 14 * 1e-7 of mass out
    np.testing.assert_allclose(a[:n], b[:n], rtol=1e-5, atol=1e-5)
    diff = np.abs(a[n:] - b[n:]).max(axis=axes) if axes else np.abs(a[n:] - b[n:])
    assert np.all(diff > 1e-4), diff


def test_renormalised_ignores_uncovered_mass(rng):
    """Moving mass between uncovered leaves and the target's leaves changes Eq. 2, not the renormalised loss
    when the ratio over covered leaves is kept."""
    ls = TAX["monusac"]
    y = np.ones((1, 1), np.int32)
    t = class_target(y, encode_image(y, {1: "Epithelial"}, ls))[None]
    p = rng.dirichlet(np.ones(C)).astype(np.float64)
    unc = [j for j in range(C) if j not in covered_channels(ls)]
    q = p.copy()
    q[unc] *= 3.0
    q /= q.sum()
    P = np.stack([p, q]).reshape(2, 1, 1, C).astype(np.float32)
    T = np.concatenate([t, t])
    r = labelset_crossentropy(variant="renormalised")(T, P).numpy()
    m = labelset_crossentropy()(T, P).numpy()
    np.testing.assert_allclose(r[0], r[1], rtol=1e-5)
    assert m[1] > m[0]


def test_ignore_coarse_keeps_only_leaf_labels(rng):
    ls = TAX["pannuke"]  # Inflammatory and Connective are coarse, Neoplastic a leaf
    y = np.array([[1, 2, 0]], np.int32)
    t = class_target(y, encode_image(y, {1: "Inflammatory", 2: "Neoplastic"}, ls))[None]
    p = rng.dirichlet(np.ones(C), size=(1, 1, 3)).astype(np.float32)
    for name in ("ce", "focal_tversky"):
        loss = build_class_loss({name: 1.0}, {name: {"variant": "ignore_coarse"}})(t, p).numpy()
        base = build_class_loss({name: 1.0})(t, p).numpy()
        assert loss[0, 0, 0] == 0 and base[0, 0, 0] > 0
        np.testing.assert_allclose(loss[0, 0, 1:], base[0, 0, 1:], rtol=1e-6)


def test_root_scores_any_nucleus(rng):
    ls = TAX["pannuke"]
    y = np.array([[1]], np.int32)
    t = class_target(y, encode_image(y, {1: "Inflammatory"}, ls))[None]
    p = rng.dirichlet(np.ones(C), size=(1, 1, 1)).astype(np.float32)
    got = labelset_crossentropy(variant="root")(t, p).numpy().item()
    w = encode_image(y, {1: "Inflammatory"}, ls).channel_weights[TREE.leaf_index("lymphocyte")]
    np.testing.assert_allclose(got, -w * np.log(p[0, 0, 0, 1:].sum() / (p + EPS).sum()), rtol=1e-4)


def test_variant_options_are_checked():
    with pytest.raises(ValueError, match="variant must be one of"):
        build_class_loss({"ce": 1.0}, {"ce": {"variant": "renormalized"}})
    with pytest.raises(ValueError, match="form='pixel' only"):
        focal_tversky(variant="root", form="region")
    loss = build_class_loss({"ce": 1.0, "focal_tversky": 1.0},
                            {"ce": {"variant": "renormalised"}, "focal_tversky": {"variant": "renormalised"}})
    assert callable(loss)


def test_region_form_variants_match_numpy(rng):
    """Per-region focal Tversky with renormalised probabilities / coarse pixels ignored."""
    ss, y_true, y_pred = make_batch(rng, SETS)
    a, g, e = 0.7, 0.75, 1e-6
    for variant in ("renormalised", "ignore_coarse"):
        got = focal_tversky(form="region", variant=variant)(y_true, y_pred).numpy()
        ref = []
        for b, ((ids, classes, cut, _), ls) in enumerate(zip(ss, SETS)):
            p = y_pred[b] / (y_pred[b] + EPS).sum(-1, keepdims=True)
            cov = covered_channels(ls)
            if variant == "renormalised":
                p = p / p[..., cov].sum(-1, keepdims=True)
            slots = [0] + [k for k in range(1, len(ls) + 1) if ls.leaf_set(ls.labels[k - 1])]
            lab_of = np.full(ids.shape, -1)
            for idx in np.ndindex(ids.shape):
                v = ids[idx]
                if v == 0:
                    lab_of[idx] = 0
                elif v > 0 and classes[v] is not None and ls.index(classes[v]) is not None:
                    k = ls.index(classes[v])
                    if variant == "ignore_coarse" and len(leaves_of_label(ls, ls.labels[k - 1])) > 1:
                        continue
                    lab_of[idx] = k
            m = lab_of >= 0
            tot, n = 0.0, 0
            for k in slots:
                ch = [0] if k == 0 else leaves_of_label(ls, ls.labels[k - 1])
                Yk = p[..., ch].sum(-1)
                tk = (lab_of == k) & m
                if tk.sum() == 0:
                    continue
                w = cut.channel_weights[ch[0]]
                tot += w * (1 - (Yk[tk].sum() + e) / (a * tk.sum() + (1 - a) * Yk[m].sum() + e)) ** g
                n += 1
            ref.append(tot / n if n else 0.0)
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-5, err_msg=variant)
