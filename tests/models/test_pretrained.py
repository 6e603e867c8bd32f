"""Pretrained models by name: the shipped index, models fetched from a (local ``file://``) URL
with a SHA-256 into a cache (refused and nothing left behind on a wrong checksum or a broken
zip), ``StarDist2DHier.from_pretrained``, ``stardist-hier models`` and ``predict --model NAME``.

The tiny model folder is built here with untrained weights (loading, not accuracy, is under
test). Tests of the real shipped model skip when its folder is absent.
"""

import contextlib
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stardist_hier.cli import main
from stardist_hier.errors import InputError, ModelFolderError, UserError
from stardist_hier.models import pretrained
from stardist_hier.models.pretrained import (REGISTRY, SOURCE_FILE, get_model_details, get_model_folder,
                                             get_registered_models, load_index, resolve_model)

SHIPPED = "he_consep_nucls"
THRESHOLDS = {"prob": 0.61, "nms": 0.37}


# -- a tiny model folder, its zip, a registry naming it ----------------------------------------------

@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory, tiny_config):
    """A complete model folder (untrained weights, thresholds, model card), 3 channels, hier_mpp 0.5."""
    from stardist_hier import StarDist2DHier

    base = tmp_path_factory.mktemp("tiny")
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2DHier(tiny_config(n_channel_in=3, hier_mpp=0.5), name="tiny", basedir=str(base))
        model.keras_model.save_weights(str(model.logdir / "weights_best.h5"))
    folder = base / "tiny"
    (folder / "thresholds.json").write_text(json.dumps(THRESHOLDS))
    (folder / "README.md").write_text("# tiny\n\nModel card of the tiny test model.\n")
    (folder / "model_card.json").write_text(json.dumps({"name": "tiny", "license": "CC0-1.0"}))
    return folder


def _zip(folder: Path, path: Path, *, top: str | None = "tiny") -> tuple:
    """Zip ``folder``'s files (inside folder ``top``, or at the zip's top); return (file:// URL, sha256)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{top}/{f.name}" if top else f.name)
    return path.as_uri(), hashlib.sha256(path.read_bytes()).hexdigest()


def _registry(url, sha, *, name="tiny_url", aliases=("Tiny (tests)",)):
    return load_index({"models": {name: {"url": url, "sha256": sha, "description": "tiny test model",
                                         "license": "CC0-1.0", "aliases": list(aliases), "mpp": 0.5}}})


@pytest.fixture
def cache(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def zipped(tiny_folder, tmp_path_factory):
    """(file:// URL, sha256) of the tiny folder zipped inside one folder."""
    return _zip(tiny_folder, tmp_path_factory.mktemp("zips") / "tiny.zip")


# -- the shipped index --------------------------------------------------------------------------------

def test_shipped_index_registers_the_first_model():
    names, aliases = get_registered_models()
    assert SHIPPED in names and aliases[SHIPPED] == ()
    e = get_model_details(SHIPPED)
    assert e.shipped and e.folder == SHIPPED and e.url is None and e.sha256 is None
    assert e.license == "Apache-2.0" and e.mpp == 0.25  # CoNSeP Apache-2.0 + NuCLS CC0; no non-commercial data
    assert isinstance(REGISTRY, type(load_index({"models": {}})))  # a read-only mapping
    with pytest.raises(TypeError):
        REGISTRY["x"] = e
    with pytest.raises(InputError, match=r"unknown pretrained model 'he_consep' \(did you mean 'he_consep_nucls'\?\)"):
        get_model_details("he_consep")


@pytest.mark.parametrize("entry, match", [
    ({"description": "d", "license": "l"}, "either 'folder'"),
    ({"folder": "a", "url": "https://x/a.zip", "sha256": "0" * 64, "description": "d", "license": "l"}, "either"),
    ({"url": "https://x/a.zip", "sha256": "abc", "description": "d", "license": "l"}, "64 hex digits"),
    ({"url": "ftp://x/a.zip", "sha256": "0" * 64, "description": "d", "license": "l"}, "'url' must be"),
    ({"folder": "a-b", "description": "d", "license": "l"}, "'folder' must be"),
    ({"folder": "a", "sha256": "0" * 64, "description": "d", "license": "l"}, "not a shipped 'folder'"),
    ({"folder": "a", "description": "d"}, "'license' must be a non-empty string"),
    ({"folder": "a", "description": "d", "license": "l", "licence": "l"},
     r"unknown key 'licence' \(did you mean 'license'\?\)"),
    ({"folder": "a", "description": "d", "license": "l", "mpp": -1}, "'mpp' must be a positive number"),
])
def test_invalid_index_entries_are_named(entry, match):
    with pytest.raises(InputError, match=f"model 'm'.*{match}"):
        load_index({"models": {"m": entry}}, where="idx.yaml")


def test_a_name_or_alias_used_twice_is_refused():
    a = {"folder": "a", "description": "d", "license": "l", "aliases": ["b"]}
    with pytest.raises(InputError, match="name 'b' of model 'b' is already used by model 'a'"):
        load_index({"models": {"a": a, "b": {"folder": "b", "description": "d", "license": "l"}}})


def test_missing_shipped_folder_is_one_clear_error(tmp_path):
    reg = load_index({"models": {"gone": {"folder": "gone_model", "description": "d", "license": "l"}}})
    with pytest.raises(ModelFolderError, match=r"'gone' ships with the package, but its folder .*gone_model is miss"):
        get_model_folder("gone", registry=reg, cache_dir=tmp_path)
    assert pretrained.list_models(registry=reg)[0]["status"] == "missing from this installation"


# -- fetched from a URL with a checksum ---------------------------------------------------------------

def test_fetch_checks_extracts_caches_and_reuses(zipped, cache, tiny_folder, tmp_path):
    url, sha = zipped
    reg = _registry(url, sha)
    assert pretrained.list_models(registry=reg, cache_dir=cache)[0]["status"] == "download on first use"
    logged = []
    folder = get_model_folder("tiny_url", registry=reg, cache_dir=cache, log=logged.append)
    assert folder == cache / "tiny_url" and len(logged) == 1 and url in logged[0]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in tiny_folder.iterdir()), SOURCE_FILE])
    assert (folder / "weights_best.h5").read_bytes() == (tiny_folder / "weights_best.h5").read_bytes()
    assert json.loads((folder / SOURCE_FILE).read_text())["sha256"] == sha
    assert sorted(p.name for p in cache.iterdir()) == ["tiny_url"]  # no temporary file or folder left
    # the alias works, and a second call uses the cache: no download (the URL now points nowhere)
    gone = _registry((tmp_path / "nothing.zip").as_uri(), sha)
    assert get_model_folder("Tiny (tests)", registry=gone, cache_dir=cache, log=logged.append) == folder
    assert len(logged) == 1
    row = pretrained.list_models(registry=reg, cache_dir=cache)[0]
    assert row["status"] == "downloaded" and row["path"] == str(folder)
    assert "Model card of the tiny test model" in pretrained.model_card("tiny_url", registry=reg, cache_dir=cache)


def test_zip_with_files_at_its_top_and_a_stale_copy_replaced(tiny_folder, cache, tmp_path):
    url, sha = _zip(tiny_folder, tmp_path / "flat.zip", top=None)
    folder = get_model_folder("tiny_url", registry=_registry(url, sha), cache_dir=cache, log=lambda s: None)
    assert (folder / "config.json").is_file() and (folder / "thresholds.json").is_file()
    # a new release of the model (another SHA-256) replaces the cached copy
    other = tmp_path / "v2"
    other.mkdir()
    for f in tiny_folder.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "README.md").write_text("# tiny v2\n")
    url2, sha2 = _zip(other, tmp_path / "v2.zip")
    assert get_model_folder("tiny_url", registry=_registry(url2, sha2), cache_dir=cache, log=lambda s: None) == folder
    assert (folder / "README.md").read_text() == "# tiny v2\n"
    assert json.loads((folder / SOURCE_FILE).read_text())["sha256"] == sha2
    assert sorted(p.name for p in cache.iterdir()) == ["tiny_url"]


def _refused(reg, cache, match, *, cls=ModelFolderError):
    with pytest.raises(cls, match=match) as e:
        get_model_folder("tiny_url", registry=reg, cache_dir=cache, log=lambda s: None)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    assert list(cache.iterdir()) == [], "something was left behind in the cache"
    return str(e.value)


def test_wrong_checksum_is_refused_and_nothing_left(zipped, cache, tmp_path):
    url, sha = zipped
    wrong = hashlib.sha256(b"something else").hexdigest()
    msg = _refused(_registry(url, wrong), cache, "has SHA-256 .* not the registered .*refused")
    assert sha in msg and wrong in msg
    fresh = tmp_path / "fresh_cache"  # a cache folder made for the download is removed again
    with pytest.raises(ModelFolderError, match="not the registered"):
        get_model_folder("tiny_url", registry=_registry(url, wrong), cache_dir=fresh, log=lambda s: None)
    assert not fresh.exists()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not_a_zip", "no_model", "unsafe"])
def test_broken_archive_is_refused_and_nothing_left(damage, zipped, tiny_folder, cache, tmp_path):
    """The registered checksum matches these files (a broken release), so extraction is what refuses them."""
    good = Path(zipped[0][len("file://"):]).read_bytes()
    bad = tmp_path / "bad.zip"
    if damage == "truncated":
        bad.write_bytes(good[: len(good) * 2 // 3])
    elif damage == "flipped":  # the central directory intact, the weights' compressed bytes damaged
        with zipfile.ZipFile(io.BytesIO(good)) as zf:
            info = zf.getinfo("tiny/weights_best.h5")
        data = bytearray(good)
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        for i in range(start + 10, start + min(info.compress_size, 400), 7):
            data[i] ^= 0xFF
        bad.write_bytes(bytes(data))
    elif damage == "not_a_zip":
        bad.write_bytes(b"<html>404 page of a proxy</html>")
    elif damage == "no_model":
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("tiny/README.md", "no config here")
    else:
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("config.json", "{}")
            zf.writestr("../escaped.h5", "x")
    reg = _registry(bad.as_uri(), hashlib.sha256(bad.read_bytes()).hexdigest())
    match = {"truncated": "truncated or corrupt", "flipped": "truncated or corrupt",
             "not_a_zip": "truncated or corrupt", "no_model": "holds no model folder",
             "unsafe": "unsafe entry '../escaped.h5'"}[damage]
    _refused(reg, cache, match)
    assert not (tmp_path / "escaped.h5").exists() and not (cache.parent / "escaped.h5").exists()


def test_unreachable_url_is_one_line(cache, tmp_path):
    _refused(_registry((tmp_path / "missing.zip").as_uri(), "0" * 64), cache, r"cannot download file://.*missing\.zip")


def test_cache_folder_from_argument_environment_or_keras_home(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.CACHE_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert pretrained.model_cache_dir() == tmp_path / "kh" / "models" / "StarDist2DHier"
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "env"))
    assert pretrained.model_cache_dir() == tmp_path / "env"
    assert pretrained.model_cache_dir(tmp_path / "arg") == tmp_path / "arg"


# -- resolving --model ---------------------------------------------------------------------------------

def test_resolve_model_folder_wins_over_name_and_unknown_names_get_a_hint(zipped, cache, tmp_path, monkeypatch):
    url, sha = zipped
    reg = _registry(url, sha)
    monkeypatch.chdir(tmp_path)
    assert resolve_model("tiny_url", registry=reg, cache_dir=cache) == cache / "tiny_url"
    (tmp_path / "tiny_url").mkdir()  # a folder of that name in the working folder wins
    assert resolve_model("tiny_url", registry=reg, cache_dir=cache) == Path("tiny_url")
    assert resolve_model("runs/x/model", registry=reg) == Path("runs/x/model")  # a path: the loader reports it
    with pytest.raises(InputError, match=r"--model tiny_ur: no such model folder, nor a registered model "
                                         r"\(did you mean 'tiny_url'\?\)"):
        resolve_model("tiny_ur", registry=reg)


# -- from_pretrained and the command line (TensorFlow) -------------------------------------------------

@pytest.fixture
def url_registry(zipped, cache, monkeypatch):
    """The module's registry replaced by one naming the tiny zip; the cache in a test folder."""
    monkeypatch.setattr(pretrained, "REGISTRY", _registry(*zipped))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(cache))
    return cache


def test_from_pretrained_loads_read_only_and_lists_without_a_name(url_registry, tiny_folder, capsys):
    from stardist_hier import StarDist2DHier

    assert StarDist2DHier.from_pretrained() is None
    out = capsys.readouterr().out
    assert "1 registered pretrained model for StarDist2DHier" in out and "tiny_url" in out
    assert "download on first use" in out

    model = StarDist2DHier.from_pretrained("tiny_url")
    assert isinstance(model, StarDist2DHier) and model.basedir is None  # read-only, like StarDist's
    assert (url_registry / "tiny_url" / "config.json").is_file()
    assert model.config.hier_mpp == 0.5 and model.config.n_channel_in == 3
    assert model.thresholds.prob == pytest.approx(THRESHOLDS["prob"])
    assert model.thresholds.nms == pytest.approx(THRESHOLDS["nms"])
    with contextlib.redirect_stdout(io.StringIO()):
        direct = StarDist2DHier(None, name=tiny_folder.name, basedir=str(tiny_folder.parent))
    ours, theirs = model.keras_model.get_weights(), direct.keras_model.get_weights()
    assert len(ours) == len(theirs) and all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    labels, res = model.predict_instances(img)
    assert labels.shape == (64, 64) and "node_prob" in res
    with pytest.raises(InputError, match=r"did you mean 'tiny_url'"):
        StarDist2DHier.from_pretrained("tiny-url")


def test_models_command_list_show_fetch(url_registry, capsys):
    assert main(["models", "list"]) == 0
    assert "tiny_url" in capsys.readouterr().out
    assert main(["models", "show", "tiny_url"]) == 0
    out = capsys.readouterr().out
    assert "not downloaded yet (stardist-hier models fetch tiny_url)" in out and "licence:  CC0-1.0" in out
    assert main(["models", "fetch", "tiny_url"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"stardist-hier models: tiny_url is in {url_registry / 'tiny_url'}/"
    assert captured.err.startswith("downloading pretrained model 'tiny_url'")
    assert main(["models", "show", "Tiny (tests)"]) == 0
    assert "Model card of the tiny test model" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"]) for r in rows] == [("tiny_url", "downloaded")]


def test_models_command_errors_are_one_line(zipped, cache, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "REGISTRY", _registry(zipped[0], "0" * 64))
    assert main(["models", "fetch", "tiny_url", "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("downloading")  # the download line, then the error
    assert err[1].startswith("stardist-hier models: error: pretrained model 'tiny_url': the file downloaded")
    assert list(cache.iterdir()) == []
    assert main(["models", "show", "tiny"]) == 2
    assert "did you mean 'tiny_url'" in capsys.readouterr().err


def test_predict_with_a_registered_name(url_registry, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "tile.png"
    Image.fromarray((np.random.default_rng(1).random((96, 80, 3)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "pred"
    rc = main(["predict", str(img), "--model", "tiny_url", "--out", str(out), "--format", "geojson", "csv", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (out / "tile.geojson").is_file() and (out / "tile.csv").is_file()
    assert json.loads((out / "tile.geojson").read_text())["type"] == "FeatureCollection"
    assert (url_registry / "tiny_url" / "weights_best.h5").is_file()
    # an unknown name: one line with the closest registered name, nothing written
    out2 = tmp_path / "pred2"
    assert main(["predict", str(img), "--model", "tiny_ulr", "--out", str(out2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model tiny_ulr: no such model folder" in err[0] and "did you mean 'tiny_url'" in err[0]
    assert not out2.exists()


# -- the real shipped model (added by its training run; skipped until then) -----------------------------

@pytest.fixture
def shipped_folder():
    folder = pretrained.cached_folder(get_model_details(SHIPPED))
    if folder is None:
        pytest.skip(f"the shipped model folder stardist_hier/pretrained/{SHIPPED}/ is not in this checkout yet "
                    f"(it is added by the training run of stardist_hier/examples/{SHIPPED}.yaml)")
    return folder


def test_shipped_model_folder_is_complete(shipped_folder):
    names = {p.name for p in shipped_folder.iterdir()}
    assert {"config.json", "thresholds.json", "README.md", "model_card.json"} <= names
    assert any(n.endswith(".h5") for n in names)
    config = json.loads((shipped_folder / "config.json").read_text())
    assert config["hier_mpp"] == get_model_details(SHIPPED).mpp and config["hier_tree"]
    assert sum(p.stat().st_size for p in shipped_folder.iterdir()) < 20e6, "keep the shipped model a few MB"


def test_shipped_model_loads_without_network(shipped_folder, monkeypatch):
    from stardist_hier import StarDist2DHier

    def no_network(*a, **k):
        raise AssertionError("network access while loading the shipped model")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    model = StarDist2DHier.from_pretrained(SHIPPED)
    assert model.basedir is None and model.config.hier_mpp == get_model_details(SHIPPED).mpp
