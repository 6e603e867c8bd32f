"""``stardist-hier predict``: outputs, resume, and one-line errors that leave the output folder unchanged."""

import json

import numpy as np
import pytest
from PIL import Image

from stardist_hier.cli import main
from stardist_hier.slides import SyntheticSlide, write_pyramid_tiff

pytestmark = pytest.mark.slow  # trains the tiny model once per session (~40 s on 2 cores)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    imgs = root / "images"
    imgs.mkdir()
    for i in range(2):
        Image.fromarray(SyntheticSlide((192, 160), seed=10 + i).region(0, 0, 192, 160)).save(imgs / f"tile{i}.png")
    slides = root / "slides"
    slides.mkdir()
    synth = SyntheticSlide((640, 576), seed=3, cell=48, radius=(8, 13), tissue=lambda r, c: c < 300)
    write_pyramid_tiff(slides / "wsi.tif", synth, mpp=0.25, downsamples=(1, 4), tile=128)
    data = (slides / "wsi.tif").read_bytes()
    bad = root / "bad"
    bad.mkdir()
    (bad / "cut.tif").write_bytes(data[: len(data) // 3])
    (bad / "cut90.tif").write_bytes(data[: len(data) * 9 // 10])  # opens, but level 0's last tiles are gone
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(bad / "grey.png")
    arr = SyntheticSlide((384, 384), seed=1).region(0, 0, 384, 384)
    import tifffile

    tifffile.imwrite(bad / "nompp.tif", arr, tile=(128, 128), photometric="rgb")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    other = root / "other_taxonomy.yaml"
    other.write_text("tree: {cell: {a: null, b: null}}\nlabel_sets:\n  other: {labels: {a: a, b: b}}\n")
    return root


def _snapshot(folder):
    if not folder.exists():
        return None
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))


BLOCK = ["--block-size", "160", "--min-overlap", "32", "--context", "24", "--quiet"]


def test_predict_images_and_slide_then_resume(tiny_model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(inputs / "images"), str(inputs / "slides" / "wsi.tif"), "--model", str(tiny_model_dir),
            "--out", str(out), "--format", "geojson", "csv", "--label-set", "pannuke", "--abstain", "0.6", *BLOCK]
    assert main(["predict", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "wrote 6 files" in lines[0]
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # .lock, the options record
    assert names == ["tile0.csv", "tile0.geojson", "tile1.csv", "tile1.geojson", "wsi.csv", "wsi.geojson"]
    gj = json.loads((out / "wsi.geojson").read_text())
    feats = gj["features"] if isinstance(gj, dict) else gj
    assert len(feats) > 5
    before = _snapshot(out)
    assert main(["predict", *args, "--resume"]) == 0
    assert "3 already complete" in capsys.readouterr().out
    assert _snapshot(out) == before


def test_labels_format_for_images(tiny_model_dir, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(inputs / "images" / "tile0.png"), "--model", str(tiny_model_dir), "--out", str(out),
                 "--format", "labels", *BLOCK]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["tile0.json", "tile0.tif"]


@pytest.mark.parametrize("case, named, out_exists", [
    ("truncated", "cut.tif", True),
    ("truncated_tail", "cut90.tif", True),
    ("empty_folder", "empty", True),
    ("empty_folder", "empty", False),
    ("channels", "grey.png", True),
    ("label_set", "--label-set nosuch", True),
    ("other_tree", "--label-set other", True),
    ("out_is_file", "--out", True),
    ("format", "--format nope", True),
    ("format", "--format nope", False),
    ("no_mpp", "--input-mpp", True),
    ("no_mpp", "--input-mpp", False),
    ("labels_on_slide", "--format labels", True),
    ("model", "--model", True),
])
def test_bad_input_one_line_exit_2_nothing_written(case, named, out_exists, tiny_model_dir, inputs, tmp_path,
                                                    capsys):
    """Each bad input: exit code 2, one stderr line naming it, the output folder as it was (or absent)."""
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
        (out / "keep.txt").write_text("earlier result")
    good = str(inputs / "images")
    argv = {
        "truncated": [good, str(inputs / "bad" / "cut.tif")],
        "truncated_tail": [good, str(inputs / "bad" / "cut90.tif")],
        "empty_folder": [good, str(inputs / "empty")],
        "channels": [good, str(inputs / "bad" / "grey.png")],
        "label_set": [good, "--label-set", "nosuch"],
        "other_tree": [good, "--label-set", "other", "--taxonomy", str(inputs / "other_taxonomy.yaml")],
        "out_is_file": [good],
        "format": [good, "--format", "csv", "nope"],
        "no_mpp": [good, str(inputs / "bad" / "nompp.tif")],
        "labels_on_slide": [good, str(inputs / "slides" / "wsi.tif"), "--format", "labels"],
        "model": [good],
    }[case]
    model = str(tmp_path / "no_model") if case == "model" else str(tiny_model_dir)
    if case == "out_is_file":
        out = tmp_path / "out.txt"
        out.write_text("a file")
    before = _snapshot(out) if case != "out_is_file" else out.read_text()
    capsys.readouterr()
    rc = main(["predict", *argv, "--model", model, "--out", str(out), *BLOCK])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stardist-hier predict: error:") and named in lines[0]
    assert "Traceback" not in err
    assert (_snapshot(out) if case != "out_is_file" else out.read_text()) == before
