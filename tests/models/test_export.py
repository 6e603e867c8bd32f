"""Export to plain StarDist2D, SavedModel and the QuPath zip; start from a StarDist2D folder; the command."""

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from stardist.models import Config2D, StarDist2D  # noqa: E402

from stardist_hier import StarDist2DHier, default_taxonomy  # noqa: E402
from stardist_hier.errors import InputError, ModelFolderError  # noqa: E402
from stardist_hier.models import export as ex  # noqa: E402

TAX = default_taxonomy()
PANNUKE = TAX["pannuke"]
THRESH = dict(prob=0.4, nms=0.3)


@pytest.fixture(scope="module")
def trained(two_sets, tmp_path_factory, tiny_config):
    """A briefly trained model in a folder (a few steps: enough for nuclei-like instances)."""
    (Xa, Ya, Ca, _), _ = two_sets
    import keras

    keras.utils.set_random_seed(11)
    basedir = tmp_path_factory.mktemp("export")
    model = StarDist2DHier(tiny_config(), name="hier", basedir=str(basedir))
    model.train(Xa[:6], Ya[:6], validation_data=(Xa[6:], Ya[6:], Ca[6:], PANNUKE), classes=Ca[:6],
                label_sets=PANNUKE, epochs=3, steps_per_epoch=8, seed=0, verbose=0)
    # a few steps only: the highest threshold that gives some instances on the test image
    for prob in (0.4, 0.2, 0.1, 0.05, 0.02, 0.01):
        model.thresholds = dict(prob=prob, nms=0.3)
        if model.predict_instances(Xa[7])[0].max() >= 3:
            break
    return model, basedir


def test_export_stardist_is_a_plain_stardist_folder(trained, two_sets, tiny_config):
    model, basedir = trained
    (Xa, _, _, _), _ = two_sets
    out = ex.export_stardist(model, basedir / "plain")
    cfg = json.loads((out / "config.json").read_text())
    assert not [k for k in cfg if k.startswith(("hier_", "train_class_loss", "predict_class_aggregate"))]
    assert cfg["n_classes"] == 13
    classes = json.loads((out / "classes.json").read_text())
    assert classes["classes"]["0"] == "background"
    assert [classes["classes"][str(i)] for i in range(1, 14)] == list(TAX.tree.leaves)
    assert classes["paths"]["2"] == ["nucleus", "epithelial", "epithelial_tumor"]
    th = json.loads((out / "thresholds.json").read_text())
    assert th == {"prob": model.thresholds.prob, "nms": model.thresholds.nms}

    plain = StarDist2D(None, name=out.name, basedir=str(out.parent))
    assert (plain.thresholds.prob, plain.thresholds.nms) == (th["prob"], th["nms"])
    x = Xa[7]
    for a, b in zip(plain.predict(x), model.predict(x)):
        np.testing.assert_array_equal(a, b)
    labels_p, res_p = plain.predict_instances(x)
    labels_h, res_h = model.predict_instances(x)
    assert labels_h.max() >= 3
    np.testing.assert_array_equal(labels_p, labels_h)
    np.testing.assert_array_equal(res_p["points"], res_h["points"])
    # StarDist takes the class probabilities at the centre pixel: ours configured the same way
    center = StarDist2DHier(tiny_config(predict_class_aggregate="center"), name=None, basedir=None)
    center.keras_model.set_weights(model.keras_model.get_weights())
    center.thresholds = th
    _, res_c = center.predict_instances(x)
    np.testing.assert_allclose(res_p["class_prob"], res_c["class_prob"], rtol=1e-6)
    # StarDist's class_id may be 0 (background); ours is the most probable leaf
    np.testing.assert_array_equal(res_p["class_id"], np.argmax(res_p["class_prob"], 1))
    np.testing.assert_array_equal(res_c["class_id"], np.argmax(res_p["class_prob"][:, 1:], 1) + 1)


def test_export_refuses_existing_out_unless_force(trained):
    model, basedir = trained
    out = basedir / "again"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(InputError, match=f"--out {out} exists"):
        ex.export_stardist(model, out)
    # force replaces an earlier export only, never a folder of something else (issue 17)
    with pytest.raises(InputError, match=f"--out {out} exists and is not an earlier export"):
        ex.export_stardist(model, out, force=True)
    assert (out / "keep").exists()
    ex.export_savedmodel(model, basedir / "again_sm")
    (basedir / "again_sm").rename(out.with_name("again_tmp"))
    import shutil

    shutil.rmtree(out)
    out.with_name("again_tmp").rename(out)
    (out / "keep").write_text("x")  # an earlier export, with a file of its own
    ex.export_stardist(model, out, force=True)
    assert not (out / "keep").exists() and (out / "weights_best.h5").is_file()
    assert not [p for p in basedir.iterdir() if p.name.startswith(".again")], "temporary folders left behind"


def test_savedmodel_gives_keras_outputs(trained, two_sets):
    import tensorflow as tf

    model, basedir = trained
    (Xa, _, _, _), _ = two_sets
    out = ex.export_savedmodel(model, basedir / "saved")
    assert (out / "saved_model.pb").is_file() and (out / "variables").is_dir()
    assert json.loads((out / "classes.json").read_text())["classes"]["13"] == TAX.tree.leaves[-1]
    loaded = tf.saved_model.load(str(out))
    x = np.stack([Xa[6], Xa[7]])[..., None].astype(np.float32)
    got = loaded.signatures["serving_default"](input=tf.constant(x))
    ref = model.keras_model.predict(x, verbose=0)
    assert sorted(got) == ["output_0", "output_1", "output_2"]
    for i, r in enumerate(ref):
        np.testing.assert_allclose(got[f"output_{i}"].numpy(), r, rtol=1e-5, atol=1e-6)


def test_qupath_zip_layout_and_outputs(trained, two_sets, tmp_path):
    import tensorflow as tf

    model, basedir = trained
    (Xa, _, _, _), _ = two_sets
    out = ex.export_qupath_zip(model, basedir / "qupath.zip")
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "unzipped")
    # csbdeep's export_TF layout: the SavedModel at the root of the zip
    assert {"saved_model.pb", "variables/variables.index", "classes.json", "thresholds.json"} <= names
    loaded = tf.saved_model.load(str(tmp_path / "unzipped"))
    sig = loaded.signatures["serving_default"]
    assert list(sig.structured_input_signature[1]) == ["input"]
    x = Xa[7][None, ..., None].astype(np.float32)
    (got,) = sig(input=tf.constant(x)).values()
    prob, dist, prob_class = model.keras_model.predict(x, verbose=0)
    n_rays, n_classes = model.config.n_rays, model.config.n_classes
    # QuPath splits one output into prob, n_rays = channels - 1 - len(classifications), classes; at the input's
    # full resolution, as StarDist's export_TF(upsample_grid=True): the network's values on the grid's points
    assert got.shape[-1] == 1 + n_rays + n_classes + 1 and got.shape[1:3] == x.shape[1:3]
    g = tuple(model.config.grid)
    np.testing.assert_allclose(got.numpy()[:, ::g[0], ::g[1]], np.concatenate([prob, dist, prob_class], -1),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="is a .zip file"):
        ex.export_qupath_zip(model, basedir / "qupath_dir")


def test_every_export_states_the_input_normalisation(trained, tmp_path):
    """StarDist2D refuses unknown config keys, so the normalisation travels in normalization.json + README.md."""
    model, _ = trained
    spec = model.normalization.to_config()
    assert spec == {"kind": "percentile", "pmin": 1.0, "pmax": 99.8, "axis": "per-channel"}
    sd = ex.export_stardist(model, tmp_path / "sd")
    sm = ex.export_savedmodel(model, tmp_path / "sm")
    zp = ex.export_qupath_zip(model, tmp_path / "q.zip")
    for folder in (sd, sm):
        assert json.loads((folder / "normalization.json").read_text())["hier_normalize"] == spec
        assert "normalize(img, 1, 99.8, axis=(0, 1))" in (folder / "README.md").read_text()
    assert "hier_normalize" not in json.loads((sd / "config.json").read_text())
    readme = (sd / "README.md").read_text()
    assert "stardist-predict2d" in readme and "all channels together" in readme and "napari-stardist" in readme
    with zipfile.ZipFile(zp) as z:
        assert {"normalization.json", "README.md"} <= set(z.namelist())
        assert json.loads(z.read("normalization.json"))["hier_normalize"] == spec
        qreadme = z.read("README.md").decode("utf-8")
    assert ".normalizePercentiles(1, 99.8, true, 0.0)" in qreadme  # per tile, per channel
    glob = "StarDist2D.imageNormalizationBuilder().percentiles(1, 99.8).perChannel(true).maxDimension(2048).build()"
    assert f".preprocessGlobal({glob})" in qreadme and f".preprocess({glob})" in qreadme  # v0.6 / v0.4-0.5
    # importing the export back keeps its normalisation; another value in normalization.json is read too
    assert StarDist2DHier.from_stardist(sd, tree=TAX.tree).normalization.to_config() == spec
    (sd / "normalization.json").write_text(json.dumps({"hier_normalize": {"kind": "divide", "by": 255}}))
    assert StarDist2DHier.from_stardist(sd, tree=TAX.tree).normalization.to_config() == {"kind": "divide", "by": 255.0}
    (sd / "normalization.json").write_text(json.dumps({"hier_normalize": {"kind": "zscore"}}))
    with pytest.raises(ModelFolderError, match="normalization.json: hier_normalize: kind must be one of"):
        StarDist2DHier.from_stardist(sd, tree=TAX.tree)


# ------------------------------------------------------------------ from StarDist
def _plain_config(**kw):
    opts = dict(n_rays=16, grid=(2, 2), unet_n_depth=2, unet_n_filter_base=8, net_conv_after_unet=16,
                train_patch_size=(64, 64), train_batch_size=4, train_tensorboard=False, train_learning_rate=1e-2)
    opts.update(kw)
    return Config2D(**opts)


@pytest.fixture(scope="module")
def plain_folder(two_sets, tmp_path_factory):
    """A plain segmentation-only StarDist2D trained for a few steps, like 2D_versatile_he."""
    import keras

    (Xa, Ya, _, _), _ = two_sets
    keras.utils.set_random_seed(5)
    basedir = tmp_path_factory.mktemp("plain")
    plain = StarDist2D(_plain_config(), name="seg", basedir=str(basedir))
    plain.train(Xa[:6], Ya[:6], validation_data=(Xa[6:], Ya[6:]), epochs=1, steps_per_epoch=4, seed=0)
    plain.thresholds = THRESH
    return basedir / "seg", plain


def _weights(model):
    """``[(layer name, weights)]`` of the layers with weights, in network order."""
    return [(layer.name, layer.get_weights()) for layer in model.keras_model.layers if layer.get_weights()]


def test_from_stardist_copies_all_but_the_class_head(plain_folder, two_sets, tmp_path):
    folder, plain = plain_folder
    (Xa, _, _, _), _ = two_sets
    import keras

    keras.utils.set_random_seed(6)
    model = StarDist2DHier.from_stardist(folder, tree=TAX.tree, name="hier", basedir=str(tmp_path),
                                         train_epochs=7)
    assert model.tree == TAX.tree and model.config.n_classes == 13 and model.config.train_epochs == 7
    src, new = _weights(plain), _weights(model)
    assert set(model.transferred["initialised"]) == {"features_class", "prob_class"}
    trunk = [(n, w) for n, w in new if n not in ("features_class", "prob_class")]
    assert [n for n, _ in trunk] == model.transferred["copied"] and len(trunk) == len(src) == 15
    for (_, a), (_, b) in zip(src, trunk):  # every shared layer, weights equal
        assert len(a) == len(b) == 2
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # the class head is freshly initialised: zero bias, a non-degenerate random kernel
    kernel, bias = dict(new)["prob_class"]
    assert kernel.shape[-1] == 14 and np.all(bias == 0) and kernel.std() > 0
    # the segmentation outputs are the source's
    x = Xa[7]
    p_src, d_src = plain.predict(x)
    p_new, d_new, c_new = model.predict(x)
    np.testing.assert_allclose(p_new, p_src, rtol=1e-6)
    np.testing.assert_allclose(d_new, d_src, rtol=1e-6)
    model.thresholds = THRESH
    labels, res = model.predict_instances(x, label_sets=PANNUKE)
    assert labels.max() == len(res["points"]) and res["class_prob"].shape == (labels.max(), 14)
    # the new folder reloads (weights saved with their leaves recorded)
    reloaded = StarDist2DHier(None, name="hier", basedir=str(tmp_path))
    np.testing.assert_array_equal(reloaded.predict(x)[2], c_new)


def test_from_stardist_multiclass_source_keeps_class_features(tmp_path):
    import keras

    keras.utils.set_random_seed(8)
    src = StarDist2D(_plain_config(n_classes=3), name="mc", basedir=str(tmp_path))
    src.keras_model.save_weights(str(tmp_path / "mc" / "weights_best.h5"))
    model = StarDist2DHier.from_stardist(tmp_path / "mc", tree=TAX.tree)
    assert "features_class" in model.transferred["copied"]
    assert model.transferred["initialised"] == ["prob_class"]
    same = StarDist2DHier.from_stardist(tmp_path / "mc")  # no tree: the source's classes, flat
    assert same.tree.leaves == ("class_1", "class_2", "class_3")


def test_from_stardist_bad_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        StarDist2DHier.from_stardist(tmp_path / "nope", tree=TAX.tree)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="has no weights file"):
        StarDist2DHier.from_stardist(tmp_path / "empty", tree=TAX.tree)


# ----------------------------------------------------------------------- command
def test_export_command(trained, capsys):
    from stardist_hier.cli import main

    model, basedir = trained
    out = basedir / "cli_plain"
    assert main(["export", str(model.logdir), "--to", "stardist", "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert lines == [f"exported {model.logdir} (13 classes) as stardist to {out}"]
    assert StarDist2D(None, name=out.name, basedir=str(basedir)).config.n_classes == 13
    assert main(["export", str(model.logdir), "--to", "stardist", "--out", str(out)]) == 2
    assert f"--out {out} exists; pass --force" in capsys.readouterr().err
    assert main(["export", str(model.logdir), "--to", "savedmodel", "--out", str(out), "--force"]) == 0
    assert (out / "saved_model.pb").is_file() and not (out / "config.json").exists()
    assert main(["export", str(model.logdir), "--to", "qupath", "--out", str(basedir / "cli.zip")]) == 0
    assert "saved_model.pb" in zipfile.ZipFile(basedir / "cli.zip").namelist()
    capsys.readouterr()
    assert main(["export", str(model.logdir), "--to", "qupath", "--out", str(basedir / "cli_dir")]) == 2
    assert "is a .zip file" in capsys.readouterr().err
    assert main(["export", str(basedir / "missing"), "--to", "stardist", "--out", str(basedir / "x")]) == 2
    assert "model folder" in capsys.readouterr().err and not (basedir / "x").exists()
