"""Model folder robustness and input checks (issue 9): errors name the folder, file or key."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from stardist_hier import Config2DHier, LabelSetError, StarDist2DHier, default_taxonomy  # noqa: E402
from stardist_hier.errors import InputError, ModelFolderError, UserError  # noqa: E402
from stardist_hier.models.model2d import WEIGHTS_TREE_FILE  # noqa: E402

TAX = default_taxonomy()


@pytest.fixture
def folder(tmp_path, tiny_config):
    """A model folder with config.json, weights_best.h5 and hier_weights.json (untrained, seeded)."""
    import keras

    keras.utils.set_random_seed(3)
    model = StarDist2DHier(tiny_config(), name="m", basedir=str(tmp_path))
    model.keras_model.save_weights(str(tmp_path / "m" / "weights_best.h5"))
    return tmp_path / "m", model


def _load(folder):
    return StarDist2DHier(None, name=folder.name, basedir=str(folder.parent))


def test_saving_weights_records_the_class_head_leaves(folder):
    path, model = folder
    rec = json.loads((path / WEIGHTS_TREE_FILE).read_text())
    assert rec["leaves"] == list(TAX.tree.leaves)
    reloaded = _load(path)
    np.testing.assert_array_equal(reloaded.keras_model.get_weights()[-1], model.keras_model.get_weights()[-1])


def test_missing_weights_refused(folder):
    path, _ = folder
    (path / "weights_best.h5").unlink()
    with pytest.raises(ModelFolderError, match=f"model folder {path} has no weights file"):
        _load(path)


def test_missing_folder_and_config(tmp_path, folder):
    with pytest.raises(ModelFolderError, match="does not exist"):
        _load(tmp_path / "nope")
    path, _ = folder
    (path / "config.json").unlink()
    with pytest.raises(ModelFolderError, match=f"{path} has no config.json"):
        _load(path)


def test_truncated_config_names_the_file(folder):
    path, _ = folder
    text = (path / "config.json").read_text()
    (path / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(ModelFolderError, match=f"{path / 'config.json'} is truncated or not valid JSON"):
        _load(path)


def test_invalid_config_value_names_file_and_key(folder):
    path, _ = folder
    cfg = json.loads((path / "config.json").read_text())
    cfg["predict_class_aggregate"] = "median"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="config.json: invalid config: predict_class_aggregate: must be"):
        _load(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_bad_weights_file_names_the_file(folder, damage):
    path, _ = folder
    w = path / "weights_best.h5"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"not hdf5 at all" * 10)
    with pytest.raises(ModelFolderError, match=f"weights file {w} is truncated or not an HDF5 file"):
        _load(path)


def _add_leaf(cfg):
    cfg["hier_tree"]["nucleus"]["other"]["mitotic"] = None
    cfg["n_classes"] += 1
    cfg["train_class_weights"].append(1.0)


@pytest.mark.parametrize("record", [True, False], ids=["with_record", "without_record"])
def test_tree_with_added_leaves_refused(folder, record):
    path, _ = folder
    cfg = json.loads((path / "config.json").read_text())
    _add_leaf(cfg)
    (path / "config.json").write_text(json.dumps(cfg))
    if not record:  # an older folder: the weights' class head shape gives it away
        (path / WEIGHTS_TREE_FILE).unlink()
        match = "weights file .*weights_best.h5 does not fit the network built from .*config.json"
    else:
        match = "config.json: the tree has 14 leaves but the class head of weights_best.h5 was trained on 13"
    with pytest.raises(ModelFolderError, match=match):
        _load(path)


def test_renamed_leaves_refused(folder):
    path, _ = folder
    cfg = json.loads((path / "config.json").read_text())
    cfg["hier_tree"]["nucleus"]["epithelial"] = {"epithelial_tumor": None, "epithelial_normal": None}  # swapped
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match="config.json: the tree's leaves were renamed or reordered .*"
                                               "'epithelial_normal' -> 'epithelial_tumor'.*hier_weights.json"):
        _load(path)


def test_regrouped_internal_nodes_load(folder):
    """Internal nodes only group leaves: regrouping them keeps the class head's meaning."""
    path, model = folder
    cfg = json.loads((path / "config.json").read_text())
    cfg["hier_tree"].pop("colors", None)  # colours name the old internal nodes
    t = cfg["hier_tree"]["nucleus"]
    rest = {**t["inflammatory"], **t["connective"], **t["other"]}
    cfg["hier_tree"]["nucleus"] = {"epi": t["epithelial"], "rest": rest}
    (path / "config.json").write_text(json.dumps(cfg))
    m = _load(path)
    assert m.tree.leaves == TAX.tree.leaves and "rest" in m.tree and "epithelial" not in m.tree
    np.testing.assert_array_equal(m.keras_model.get_weights()[-1], model.keras_model.get_weights()[-1])


def test_invalid_weights_record_names_the_file(folder):
    path, _ = folder
    (path / WEIGHTS_TREE_FILE).write_text("{\"leaves\": [")
    with pytest.raises(ModelFolderError, match=f"{path / WEIGHTS_TREE_FILE} is truncated or invalid"):
        _load(path)


# ----------------------------------------------------------------- prediction input
@pytest.fixture(scope="module")
def rgb_model(tiny_config):
    import keras

    keras.utils.set_random_seed(4)
    return StarDist2DHier(tiny_config(n_channel_in=3), name=None, basedir=None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_non_finite_images(rgb_model, bad):
    x = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    x[5, 7, 1] = bad
    with pytest.raises(InputError, match="contains 1 NaN or infinite values"):
        rgb_model.predict_instances(x)
    with pytest.raises(InputError, match="NaN or infinite"):
        rgb_model.predict(x)


@pytest.mark.parametrize("shape, got", [((64, 64, 2), "2 channels"), ((64, 64, 4), "4 channels"),
                                        ((64, 64), None)])
def test_predict_refuses_wrong_channel_count(rgb_model, shape, got):
    x = np.zeros(shape, np.float32)
    with pytest.raises(InputError, match="the model expects 3 channels") as e:
        rgb_model.predict_instances(x)
    if got:
        assert f"has {got}" in str(e.value)


def test_predict_still_works_on_good_images(rgb_model):
    x = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    prob, dist, prob_class = rgb_model.predict(x)
    assert prob.shape == (32, 32) and prob_class.shape == (32, 32, 14)
    assert np.isfinite(prob).all()


# ------------------------------------------------------------------------ training
def test_class_keys_as_digit_strings(rng, make_images, tiny_config):
    model = StarDist2DHier(tiny_config(), name=None, basedir=None)
    X, Y, C, _ = make_images(rng, 2, TAX["pannuke"])
    as_json = [json.loads(json.dumps(c)) for c in C]  # JSON object keys are strings
    assert all(isinstance(k, str) for k in as_json[0])
    cuts = model.encode(X, Y, as_json, TAX["pannuke"])
    ref = model.encode(X, Y, C, TAX["pannuke"])
    for a, b in zip(cuts, ref):
        np.testing.assert_array_equal(a.label_of_id, b.label_of_id)
    bad = [dict(as_json[0], nucleus_7="Neoplastic"), as_json[1]]
    with pytest.raises(LabelSetError, match="training image 0: instance id 'nucleus_7' is not an integer"):
        model.encode(X, Y, bad, TAX["pannuke"])


def test_single_loss_config_is_valid(tiny_config):
    conf = tiny_config(train_class_loss={"ce": 1.0})
    assert conf.is_valid(), conf.describe_invalid()
    assert conf.train_class_loss_options == {}
    model = StarDist2DHier(conf, name=None, basedir=None)
    model.prepare_for_training()
    assert model._model_prepared


def test_non_default_options_of_an_unused_loss_are_refused_naming_the_key(tiny_config):
    conf = tiny_config(train_class_loss={"ce": 1.0},
                       train_class_loss_options={"focal_tversky": {"alpha": 0.5, "gamma": 1.0, "form": "pixel"}})
    assert not conf.is_valid()
    with pytest.raises(InputError, match="train_class_loss_options: options for 'focal_tversky', which "
                                         "train_class_loss .* does not use"):
        StarDist2DHier(conf, name=None, basedir=None)


def test_unknown_loss_names_the_key(tiny_config):
    conf = Config2DHier(tree=TAX.tree, train_class_loss={"focal_tverski": 1.0},
                        train_class_loss_options={})
    with pytest.raises(UserError, match="train_class_loss: unknown loss 'focal_tverski' "
                                        "\\(did you mean 'focal_tversky'\\?\\)"):
        StarDist2DHier(conf, name=None, basedir=None)


# ------------------------------------------------------------------ input normalisation (issue 17)
def test_config_states_the_input_normalisation(folder, tiny_config):
    from stardist_hier.normalization import DEFAULT

    path, model = folder
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["hier_normalize"] == DEFAULT  # written when the model is created, before training
    assert model.normalization.kind == "percentile" and model.normalization_stated
    assert tiny_config(hier_normalize={"kind": "divide"}).hier_normalize == {"kind": "divide", "by": 255.0}


def test_folder_without_normalisation_key_warns_once_and_assumes_the_training_paths_percentiles(folder):
    from stardist_hier.normalization import LEGACY, LegacyNormalizationWarning

    path, _ = folder
    cfg = json.loads((path / "config.json").read_text())
    del cfg["hier_normalize"]
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(LegacyNormalizationWarning) as rec:
        model = _load(path)
    [w] = [w for w in rec if issubclass(w.category, LegacyNormalizationWarning)]
    msg = str(w.message)
    assert "\n" not in msg and str(path / "config.json") in msg and '"hier_normalize": {"kind": "percentile"' in msg
    assert model.normalization.to_config() == LEGACY and not model.normalization_stated


@pytest.mark.parametrize("value, why", [({"kind": "percentil"}, "kind must be one of"),
                                        ({"kind": "percentile", "pmin": 99, "pmax": 1}, "pmin"),
                                        ({"kind": "percentile", "axes": "joint"}, "unknown key 'axes'"),
                                        ("percentile", "must be a mapping")])
def test_invalid_normalisation_names_file_and_key(folder, value, why):
    path, _ = folder
    cfg = json.loads((path / "config.json").read_text())
    cfg["hier_normalize"] = value
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match=f"config.json: invalid config: hier_normalize: .*{why}"):
        _load(path)


def test_predict_instances_normalize_applies_the_models_own_normalisation(rgb_model):
    from csbdeep.utils import normalize

    from stardist_hier.normalization import Levels

    img = (np.random.default_rng(2).random((96, 80, 3)) * 180 + 40).astype(np.uint8)
    want = normalize(img, 1, 99.8, axis=(0, 1))  # what the training paths feed the network
    np.testing.assert_array_equal(rgb_model.normalize(img), want)
    probs = [rgb_model.predict(x)[0] for x in (want, img.astype(np.float32) / 255)]
    assert not np.allclose(*probs)  # the normalisation matters to the network
    _, ref = rgb_model.predict_instances(want)
    _, got = rgb_model.predict_instances(img, normalize=True)
    levels = rgb_model.normalization_levels(img)
    _, fixed = rgb_model.predict_instances(img, normalize=levels)
    _, chw = rgb_model.predict_instances(np.moveaxis(img, -1, 0), axes="CYX", normalize=True)
    for res in (got, fixed, chw):
        np.testing.assert_array_equal(res["prob"], ref["prob"])
        np.testing.assert_array_equal(res["coord"], ref["coord"])
    np.testing.assert_array_equal(rgb_model.normalize(np.moveaxis(img, -1, 0), axes="CYX"), np.moveaxis(want, -1, 0))
    # one normalisation for the whole image, also block by block
    assert len(ref["prob"]) > 10
    big = ("YXC", 64, 8, 24, False, np.int32, False)  # axes, block_size, min_overlap, context, labels_out, ...
    _, b_ref = rgb_model.predict_instances_big(want, *big)
    _, b_got = rgb_model.predict_instances_big(img, *big, normalize=True)
    np.testing.assert_array_equal(b_got["prob"], b_ref["prob"])
    with pytest.raises(InputError, match="normalize and normalizer"):
        from csbdeep.data import NoNormalizer

        rgb_model.predict_instances(img, normalize=True, normalizer=NoNormalizer())
    with pytest.raises(InputError, match="normalize='yes'"):
        rgb_model.predict_instances(img, normalize="yes")
    assert isinstance(levels, Levels) and len(levels.lo) == 3
