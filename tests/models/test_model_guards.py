"""Model folders are never overwritten, always guarded, and bad numbers are refused (issue 17)."""

import contextlib
import io
import json
import re
import warnings
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from stardist_hier import StarDist2DHier, default_taxonomy  # noqa: E402
from stardist_hier.errors import InputError, ModelFolderError  # noqa: E402
from stardist_hier.models import export as ex  # noqa: E402
from stardist_hier.models.model2d import WEIGHTS_TREE_FILE, MissingWeightsTreeWarning  # noqa: E402

TAX = default_taxonomy()


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def folder(tmp_path, tiny_config):
    """An untrained model folder (config.json, weights_best.h5, hier_weights.json)."""
    import keras

    keras.utils.set_random_seed(4)
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2DHier(tiny_config(), name="m", basedir=str(tmp_path))
        model.keras_model.save_weights(str(tmp_path / "m" / "weights_best.h5"))
    return tmp_path / "m", model


def test_from_stardist_never_overwrites_a_model(folder, tmp_path, capsys):
    path, _ = folder
    before = _files(path)
    with pytest.raises(ModelFolderError, match=f"{path} already holds a model; it is never overwritten"):
        StarDist2DHier.from_stardist(path, tree=TAX.tree, name="m", basedir=str(tmp_path))
    other = tmp_path / "trained"
    (other / "m").mkdir(parents=True)
    (other / "m" / "weights_best.h5").write_bytes(b"weights of another model")
    with pytest.raises(ModelFolderError, match="already holds a model"):
        StarDist2DHier.from_stardist(path, tree=TAX.tree, name="m", basedir=str(other))
    assert _files(path) == before and (other / "m" / "weights_best.h5").read_bytes() == b"weights of another model"
    # into a new folder: no misleading "Using default values" (the source's thresholds are copied)
    capsys.readouterr()
    new = StarDist2DHier.from_stardist(path, tree=TAX.tree, name="new", basedir=str(tmp_path))
    assert "Using default values" not in capsys.readouterr().out
    assert (tmp_path / "new" / WEIGHTS_TREE_FILE).is_file() and new.tree == TAX.tree


def test_export_never_replaces_a_model_folder(folder, tmp_path):
    path, model = folder
    before = _files(path)
    with pytest.raises(InputError, match="never replaces a model folder"):
        ex.export_stardist(model, path, force=True)
    with pytest.raises(InputError, match="never replaces a model folder"):
        ex.export_stardist(model, tmp_path, force=True)  # a folder holding the model
    with contextlib.redirect_stdout(io.StringIO()):
        other = StarDist2DHier(model.config, name="other", basedir=str(tmp_path))
        other.keras_model.save_weights(str(tmp_path / "other" / "weights_best.h5"))
    with pytest.raises(InputError, match="holds a stardist-hier model"):
        ex.export_savedmodel(model, tmp_path / "other", force=True)
    assert _files(path) == before
    # an earlier export is replaced with force=True
    out = ex.export_stardist(model, tmp_path / "plain")
    assert ex.export_stardist(model, out, force=True) == out and (out / "config.json").is_file()


def test_qupath_zip_is_at_full_resolution_with_integer_class_names(folder, tmp_path):
    """As StarDist's export_TF(upsample_grid=True): prob on the grid's points (0 between), rays and classes
    repeated over each grid cell; the README in the zip says which QuPath and turns the keys into Integers."""
    _, model = folder
    km = ex.single_output_model(model)
    x = np.random.default_rng(0).uniform(0, 1, (1, 64, 96, 1)).astype(np.float32)
    got = km.predict(x, verbose=0)
    prob, dist, cls = model.keras_model.predict(x, verbose=0)
    assert got.shape == (1, 64, 96, 1 + model.config.n_rays + model.config.n_classes + 1)
    np.testing.assert_allclose(got[:, ::2, ::2], np.concatenate([prob, dist, cls], -1), rtol=1e-5, atol=1e-6)
    assert np.all(got[:, 1::2, :, 0] == 0) and np.all(got[:, :, 1::2, 0] == 0)
    np.testing.assert_allclose(got[:, 1::2, 1::2, 1:], got[:, ::2, ::2, 1:], rtol=1e-6)
    out = ex.export_qupath_zip(model, tmp_path / "q.zip")
    with zipfile.ZipFile(out) as z:
        readme = z.read("README.md").decode()
        classes = json.loads(z.read("classes.json"))["classes"]
    assert "QuPath 0.4, 0.5 and 0.6" in readme and "Deep Java Library" in readme and "2.16" in readme
    assert "collectEntries { k, v -> [(k as Integer): v] }" in readme
    assert {int(k): v for k, v in classes.items()}[0] == "background"
    assert ex.export_qupath_zip(model, out, force=True) == out  # an earlier QuPath export: replaced


def test_a_model_folder_written_later_carries_the_guard(tmp_path, tiny_config):
    """The experiment runner builds the model with basedir=None and sets the folder after validation."""
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2DHier(tiny_config(), name="model", basedir=None)
        model.basedir = tmp_path
        model._set_logdir()
        model.keras_model.save_weights(str(tmp_path / "model" / "weights_best.h5"))
    rec = json.loads((tmp_path / "model" / WEIGHTS_TREE_FILE).read_text())
    assert rec["leaves"] == list(TAX.tree.leaves)


def test_a_folder_without_the_guard_is_warned_about(folder):
    path, _ = folder
    (path / WEIGHTS_TREE_FILE).unlink()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(io.StringIO()):
            StarDist2DHier(None, name=path.name, basedir=str(path.parent))
    msgs = [str(x.message) for x in w if issubclass(x.category, MissingWeightsTreeWarning)]
    assert len(msgs) == 1 and WEIGHTS_TREE_FILE in msgs[0] and "cannot be checked" in msgs[0]


def test_unknown_config_key_names_it(folder):
    path, _ = folder
    c = json.loads((path / "config.json").read_text())
    c["unet_n_dpeth"] = 3
    (path / "config.json").write_text(json.dumps(c))
    with pytest.raises(ModelFolderError, match=r"unknown key 'unet_n_dpeth' \(did you mean 'unet_n_depth'\?\)"):
        StarDist2DHier(None, name=path.name, basedir=str(path.parent))


def test_zero_or_negative_epochs_and_steps_are_ours(two_sets, tiny_config):
    (X, Y, C, _), _ = two_sets
    model = StarDist2DHier(tiny_config(), name=None, basedir=None)
    for kw, match in ((dict(epochs=0), "epochs=0"), (dict(epochs=-2), "epochs=-2"),
                      (dict(steps_per_epoch=0), "steps_per_epoch=0"), (dict(epochs=1.5), "epochs=1.5")):
        with pytest.raises(InputError, match=re.escape(match) + ": must be a positive whole number"):
            model.train(X[:2], Y[:2], (X[2:3], Y[2:3]), classes=C[:2], label_sets=TAX["pannuke"], **kw)
