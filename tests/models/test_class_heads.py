"""Class-head alternatives: one softmax head per dataset label set, and re-initialising the head."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from stardist_hier import LabelSetError, default_taxonomy  # noqa: E402
from stardist_hier.errors import InputError  # noqa: E402
from stardist_hier.losses import build_class_loss  # noqa: E402
from stardist_hier.losses.heads import per_head  # noqa: E402
from stardist_hier.targets import class_target, encode_image  # noqa: E402

TAX = default_taxonomy()
TREE = TAX.tree
C = TREE.n_classes + 1
HEADS = ["pannuke", "consep4"]


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_target_carries_the_head_one_hot():
    ids = np.array([[0, 1], [2, -1]], np.int32)
    cut = encode_image(ids, {1: "Neoplastic", 2: "Inflammatory"}, TAX["pannuke"], heads=HEADS)
    t = class_target(ids, cut)
    assert t.shape == (2, 2, 3 * C + 2)
    np.testing.assert_array_equal(t[..., 3 * C:], np.broadcast_to([1, 0], (2, 2, 2)))
    one = class_target(ids, encode_image(ids, {1: "Neoplastic", 2: "Inflammatory"}, TAX["pannuke"]))
    np.testing.assert_array_equal(t[..., :3 * C], one)  # the first 3C channels are unchanged
    with pytest.raises(LabelSetError, match="'monusac' has no class head"):
        encode_image(ids, {1: "Epithelial", 2: "Lymphocyte"}, TAX["monusac"], heads=HEADS, where="image 3")


@pytest.mark.parametrize("loss", [{"ce": 1.0}, {"ce": 1.0, "focal_tversky": 1.0}])
def test_per_head_loss_scores_each_sample_with_its_own_head(loss):
    """The loss of a K-head output equals the shared-head loss applied to each sample's head
    (selected here with NumPy indexing); the other head's output has no effect."""
    rng = np.random.default_rng(0)
    sets = [TAX["pannuke"], TAX["consep4"], TAX["pannuke"]]
    ys, heads_of = [], []
    for ls in sets:
        ids = rng.integers(0, 6, (6, 7)).astype(np.int32)
        classes = {i: ls.labels[rng.integers(len(ls.labels))] for i in range(1, 6)}
        ys.append(class_target(ids, encode_image(ids, classes, ls, heads=HEADS)))
        heads_of.append(HEADS.index(ls.name))
    y_true = np.stack(ys).astype(np.float32)
    y_pred = np.concatenate([_softmax(rng.normal(0, 2, (3, 6, 7, C))) for _ in HEADS], -1).astype(np.float32)
    base = build_class_loss(loss, {})
    got = per_head(base, C, len(HEADS))(tf.constant(y_true), tf.constant(y_pred)).numpy()
    chosen = np.stack([y_pred[b, ..., h * C:(h + 1) * C] for b, h in enumerate(heads_of)])
    want = base(tf.constant(y_true[..., :3 * C]), tf.constant(chosen)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    other = y_pred.copy()
    for b, h in enumerate(heads_of):  # scramble every sample's *other* head
        o = 1 - h
        other[b, ..., o * C:(o + 1) * C] = _softmax(rng.normal(0, 3, (6, 7, C)))
    np.testing.assert_allclose(per_head(base, C, 2)(tf.constant(y_true), tf.constant(other)).numpy(), got,
                               rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def trained_heads(tmp_path_factory, two_sets):
    """A model with one head per label set, trained a few steps on PanNuke-labelled images only."""
    from csbdeep.utils.tf import keras_import

    from stardist_hier import StarDist2DHier
    from tests.models.conftest import _tiny_config

    keras_import("utils", "set_random_seed")(3)
    (X, Y, Cl, _), _ = two_sets
    base = tmp_path_factory.mktemp("heads")
    m = StarDist2DHier(_tiny_config(hier_class_heads=HEADS, train_learning_rate=3e-3), name="m", basedir=str(base))
    layers = {l.name: l for l in m.keras_model.layers}
    before = {h: [w.copy() for w in layers[f"prob_class_{i}"].get_weights()] for i, h in enumerate(HEADS)}
    m.train(X[:6], Y[:6], (X[6:], Y[6:], Cl[6:], [TAX["pannuke"]] * 2), classes=Cl[:6],
            label_sets=[TAX["pannuke"]] * 6, epochs=1, steps_per_epoch=3, verbose=0)
    return m, before, base


def test_only_the_trained_datasets_head_changes(trained_heads):
    m, before, _ = trained_heads
    layers = {l.name: l for l in m.keras_model.layers}
    after = {h: layers[f"prob_class_{i}"].get_weights() for i, h in enumerate(HEADS)}
    assert any(not np.allclose(a, b) for a, b in zip(before["pannuke"], after["pannuke"]))
    for a, b in zip(before["consep4"], after["consep4"]):
        np.testing.assert_array_equal(a, b)  # no PanNuke image reached the CoNSeP head


def _set_head_bias(m, leaf_for_head):
    """Make head k predict background everywhere except a fixed leaf (no image dependence)."""
    for i, leaf in enumerate(leaf_for_head):
        layer = m.keras_model.get_layer(f"prob_class_{i}")
        k, b = layer.get_weights()
        b = np.full_like(b, -5.0)
        b[1 + TREE.leaves.index(leaf)] = 5.0
        layer.set_weights([np.zeros_like(k), b])


def test_prediction_uses_the_head_of_the_label_set(trained_heads, two_sets):
    m, _, _ = trained_heads
    (X, *_), _ = two_sets
    _set_head_bias(m, ["fibroblast", "lymphocyte"])
    x = X[0]
    kw = dict(prob_thresh=0.01, nms_thresh=0.3)
    _, ra = m.predict_instances(x, label_sets=TAX["pannuke"], **kw)
    _, rb = m.predict_instances(x, label_sets=TAX["consep4"], **kw)
    _, rc = m.predict_instances(x, head="pannuke", **kw)
    _, rd = m.predict_instances(x, **kw)  # default: the last head
    assert len(ra["class_id"]) > 0
    assert ra["class_head"] == "pannuke" and rb["class_head"] == "consep4" and rd["class_head"] == "consep4"
    assert set(ra["class_name"]) == {"fibroblast"} and set(rc["class_name"]) == {"fibroblast"}
    assert set(rb["class_name"]) == {"lymphocyte"} and set(rd["class_name"]) == {"lymphocyte"}
    assert ra["labels"]["pannuke"][0] == "Connective"
    with pytest.raises(InputError, match="not a class head"):
        m.predict_instances(x, head="monusac", **kw)


def test_heads_survive_save_and_load(trained_heads, two_sets):
    from stardist_hier import StarDist2DHier

    m, _, base = trained_heads
    (X, *_), _ = two_sets
    _set_head_bias(m, ["fibroblast", "lymphocyte"])
    m.keras_model.save_weights(str(m.logdir / "weights_best.h5"))
    loaded = StarDist2DHier(None, name="m", basedir=str(base))
    assert loaded.class_heads == tuple(HEADS)
    for a, b in zip(m.keras_model.get_weights(), loaded.keras_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    _, r = loaded.predict_instances(X[0], label_sets=TAX["pannuke"], prob_thresh=0.01, nms_thresh=0.3)
    assert set(r["class_name"]) == {"fibroblast"}


def test_multi_head_models_are_not_exported(trained_heads, tmp_path):
    from stardist_hier.models.export import export

    m, _, _ = trained_heads
    with pytest.raises(InputError, match="2 class heads"):
        export(m, tmp_path / "out", to="stardist")
    assert not (tmp_path / "out").exists()


def test_invalid_heads_config_is_named(tiny_config):
    for bad in (["a", "a"], [], "pannuke", [1]):
        with pytest.raises(ValueError, match="hier_class_heads"):
            from stardist_hier import StarDist2DHier

            StarDist2DHier(tiny_config(hier_class_heads=bad), name=None, basedir=None)


def test_reset_class_head_is_seeded_and_leaves_the_trunk(tiny_config):
    from stardist_hier import StarDist2DHier

    m = StarDist2DHier(tiny_config(), name=None, basedir=None)
    head = m.keras_model.get_layer("prob_class")
    trunk = [w.copy() for l in m.keras_model.layers if l is not head for w in l.get_weights()]
    k0 = head.get_weights()[0].copy()
    head.set_weights([w + 1.0 for w in head.get_weights()])
    m.reset_class_head(seed=[0, 1])
    k1, b1 = head.get_weights()
    m.reset_class_head(seed=[0, 1])
    np.testing.assert_array_equal(head.get_weights()[0], k1)  # same seed, same weights
    np.testing.assert_array_equal(b1, 0)  # the bias initialiser (zeros)
    assert not np.allclose(k1, k0 + 1.0)
    assert abs(float(np.std(k1)) - float(np.std(k0))) < 0.5 * float(np.std(k0))  # same initialiser's scale
    m.reset_class_head(seed=[0, 2])
    assert not np.allclose(head.get_weights()[0], k1)
    after = [w for l in m.keras_model.layers if l is not head for w in l.get_weights()]
    for a, b in zip(trunk, after):
        np.testing.assert_array_equal(a, b)


def test_experiment_config_checks_heads_and_reset():
    """An experiment names a head for every trained dataset's label set; reset_class_head is a bool."""
    import copy

    from stardist_hier.training.experiment import ConfigError, load_config
    from tests.training.test_study import BASE

    ok = copy.deepcopy(BASE)
    ok["model"]["hier_class_heads"] = ["pannuke", "consep"]
    ok["episodes"][1]["reset_class_head"] = True
    cfg = load_config(ok)
    assert cfg.episodes[1].reset_class_head and not cfg.episodes[0].reset_class_head
    bad = copy.deepcopy(ok)
    bad["model"]["hier_class_heads"] = ["consep"]
    with pytest.raises(ConfigError, match=r"no head for the label set\(s\) \['pannuke'\]"):
        load_config(bad)
    bad = copy.deepcopy(ok)
    bad["episodes"][1]["reset_class_head"] = "yes"
    with pytest.raises(ConfigError, match="reset_class_head must be true or false"):
        load_config(bad)
    warm = copy.deepcopy(ok)
    warm["episodes"][1]["freeze_trunk"] = True
    assert load_config(warm).episodes[1].freeze_trunk
    warm["episodes"][1]["freeze_trunk"] = 1
    with pytest.raises(ConfigError, match="freeze_trunk must be true or false"):
        load_config(warm)
    bad = copy.deepcopy(ok)
    bad["model"]["hier_class_heads"] = ["consep", "consep"]
    with pytest.raises(ConfigError, match="hier_class_heads"):
        load_config(bad)


def test_frozen_trunk_trains_only_the_heads_of_a_multi_head_model(tmp_path, two_sets):
    """``set_trunk_trainable(False)`` (episodes with ``freeze_trunk``) on a model with one head
    per dataset: training on PanNuke images changes that head only; unfreezing trains the
    trunk again with the same optimizer."""
    from csbdeep.utils.tf import keras_import

    from stardist_hier import StarDist2DHier
    from tests.models.conftest import _tiny_config

    keras_import("utils", "set_random_seed")(4)
    (X, Y, Cl, _), _ = two_sets
    m = StarDist2DHier(_tiny_config(hier_class_heads=HEADS, train_learning_rate=3e-3), name="m", basedir=str(tmp_path))
    heads = {f"prob_class_{i}" for i in range(len(HEADS))}

    def weights():
        return {l.name: [w.copy() for w in l.get_weights()] for l in m.keras_model.layers if l.get_weights()}

    def fit():
        m.train(X[:6], Y[:6], (X[6:], Y[6:], Cl[6:], [TAX["pannuke"]] * 2), classes=Cl[:6],
                label_sets=[TAX["pannuke"]] * 6, epochs=1, steps_per_epoch=2, verbose=0)

    m.set_trunk_trainable(False)
    n_opt = len(m.keras_model.optimizer.variables)
    before = weights()
    fit()
    after = weights()
    moved = {n for n in before if any(not np.array_equal(a, b) for a, b in zip(before[n], after[n]))}
    assert moved == {"prob_class_0"}  # the PanNuke head; the CoNSeP head sees no sample, the trunk is frozen
    m.set_trunk_trainable(True)
    fit()
    again = weights()
    assert any(not np.array_equal(a, b) for n in after if n not in heads for a, b in zip(after[n], again[n]))
    assert len(m.keras_model.optimizer.variables) == n_opt
