"""The prediction output folder (issue 17): predict -> evaluate with no glue, outputs kept apart from
inputs, one run at a time, no mixing of options, plain progress lines in logs, an honest summary."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from stardist_hier.cli import main
from stardist_hier.slides import SyntheticSlide

pytestmark = pytest.mark.slow  # trains the tiny model once per session (tests/predict/conftest.py)

QUIET = ["--block-size", "160", "--min-overlap", "32", "--context", "24", "--quiet"]


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    """Two RGB tiles and their true instance labels (as evaluate's ground truth)."""
    import tifffile

    root = tmp_path_factory.mktemp("tiles")
    (root / "images").mkdir()
    (root / "gt").mkdir()
    for i in range(2):
        img, lab = SyntheticSlide((192, 160), seed=20 + i).region(0, 0, 192, 160, labels=True)
        Image.fromarray(img).save(root / "images" / f"t{i}.png")
        tifffile.imwrite(root / "gt" / f"t{i}.tif", lab.astype(np.int32))
    return root


def _visible(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.startswith("."))


def _bytes(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predict_labels_overlay_then_evaluate(tiny_model_dir, tiles, tmp_path, capsys):
    """The README's promise, exactly: predict --format labels overlay, then evaluate --pred on that folder."""
    out = tmp_path / "pred"
    assert main(["predict", str(tiles / "images"), "--model", str(tiny_model_dir), "--out", str(out),
                 "--format", "labels", "overlay", *QUIET]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # labels: a TIFF and a class file per image; overlays in their own sub-folder
    assert _visible(out) == ["overlay", "overlay/t0.png", "overlay/t1.png", "t0.json", "t0.tif", "t1.json", "t1.tif"]
    assert "wrote 6 files (labels, overlay)" in line and "on 2 inputs" in line
    rep = tmp_path / "report"
    assert main(["evaluate", "--pred", str(out), "--gt", str(tiles / "gt"), "--out", str(rep)]) == 0
    assert (rep / "summary.csv").is_file() and (rep / "per_image.csv").read_text().count("\n") >= 3


def test_summary_counts_files_and_says_one_tile(tiny_model_dir, tiles, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["predict", str(tiles / "images" / "t0.png"), "--model", str(tiny_model_dir), "--out", str(out),
                 "--format", "labels", "geojson", "--block-size", "256", "--min-overlap", "32", "--context", "24",
                 "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.search(r"on 1 input \(1 tile, 0 blank tiles skipped\)", line), line
    assert "wrote 3 files (labels, geojson)" in line  # t0.tif, t0.json, t0.geojson


def test_out_is_the_input_folder(tiny_model_dir, tiles, tmp_path, capsys):
    """Overlays (a sub-folder) and tables may go beside the inputs, which stay byte-identical; label
    images beside the inputs are refused."""
    import shutil

    folder = tmp_path / "imgs"
    shutil.copytree(tiles / "images", folder)
    before = _bytes(folder)
    assert main(["predict", str(folder), "--model", str(tiny_model_dir), "--out", str(folder),
                 "--format", "overlay", "geojson", *QUIET]) == 0
    after = _bytes(folder)
    assert {k: after[k] for k in before} == before
    assert {"overlay/t0.png", "overlay/t1.png", "t0.geojson", "t1.geojson"} <= set(after)
    capsys.readouterr()
    snap = _bytes(folder)
    assert main(["predict", str(folder), "--model", str(tiny_model_dir), "--out", str(folder),
                 "--format", "labels", *QUIET]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "folder of the input" in err[0]
    assert _bytes(folder) == snap


def test_second_run_with_other_options_is_refused(tiny_model_dir, tiles, tmp_path, capsys):
    """Two runs with different --label-set into one folder, and --resume with another threshold: refused,
    naming what differs, the folder untouched."""
    out = tmp_path / "o"
    base = [str(tiles / "images"), "--model", str(tiny_model_dir), "--out", str(out), "--format", "csv", *QUIET]
    assert main(["predict", *base, "--label-set", "pannuke"]) == 0
    record = json.loads((out / ".stardist-hier-predict.json").read_text())
    assert record["options"]["label_sets"] == ["pannuke"] and len(record["options"]["model"]) == 64
    snap = _bytes(out)
    capsys.readouterr()
    assert main(["predict", *base, "--label-set", "monusac"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other options" in err[0] and "label_sets: ['pannuke'] -> ['monusac']" in err[0]
    assert main(["predict", *base, "--label-set", "pannuke", "--resume", "--prob-thresh", "0.6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prob_thresh: None -> 0.6" in err[0]
    assert _bytes(out) == snap
    # the same options resume (nothing to do) and rerun
    assert main(["predict", *base, "--label-set", "pannuke", "--resume"]) == 0
    assert "2 already complete" in capsys.readouterr().out
    assert main(["predict", *base, "--label-set", "pannuke", "--format", "geojson"]) == 0  # another format: fine


def test_a_locked_output_folder_is_refused(tiny_model_dir, tiles, tmp_path, capsys):
    from stardist_hier.io.lock import FolderLock

    out = tmp_path / "o"
    with FolderLock(out, what="output folder"):
        snap = _bytes(out)
        assert main(["predict", str(tiles / "images"), "--model", str(tiny_model_dir), "--out", str(out),
                     *QUIET]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is in use by another stardist-hier predict" in err[0] and "PID" in err[0]
        assert _bytes(out) == snap
    assert not (out / ".lock.info").exists()


def test_plain_progress_lines_when_stderr_is_not_a_terminal(tiny_model_dir, tiles, tmp_path, capsys,
                                                            monkeypatch):
    """A batch job's log gets plain lines (no carriage returns, no colour codes), rate-limited."""
    from stardist_hier import console

    monkeypatch.setattr(console._PlainProgress, "interval", 0.0)  # every update a line
    assert main(["predict", str(tiles / "images"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                 "--block-size", "160", "--min-overlap", "32", "--context", "24"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert re.search(r"^inputs: 2/2 inputs \(\d+ s, done\)$", err, re.M), err
    assert re.search(r"^t0: 2/2 tiles \(\d+ s, done\)$", err, re.M), err  # 192 x 160 px in blocks of 160


def test_quiet_progress_is_rate_limited(tiny_model_dir, tiles, tmp_path, capsys):
    """With the default interval (30 s) a short run prints one closing line over inputs, no per-tile lines."""
    assert main(["predict", str(tiles / "images"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                 "--block-size", "160", "--min-overlap", "32", "--context", "24", "-v"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert [ln for ln in err if ln.startswith("inputs:")] and not [ln for ln in err if ln.startswith("t0:")]


def test_geojson_polygons_are_clipped_to_the_image(tiny_model_dir, tmp_path, capsys):
    """Nuclei at the border: every polygon lies within the image (as slides are clipped to the slide)."""
    import shapely.geometry

    img = SyntheticSlide((96, 112), seed=5, cell=30, radius=(9, 13)).region(0, 0, 96, 112)
    Image.fromarray(img).save(tmp_path / "edge.png")
    out = tmp_path / "o"
    assert main(["predict", str(tmp_path / "edge.png"), "--model", str(tiny_model_dir), "--out", str(out),
                 "--prob-thresh", "0.05", *QUIET]) == 0
    feats = json.loads((out / "edge.geojson").read_text())["features"]
    assert feats
    frame = shapely.geometry.box(0, 0, 112, 96)
    for f in feats:
        g = shapely.geometry.shape(f["geometry"])
        assert g.is_valid and g.geom_type == "Polygon" and frame.buffer(1e-6).contains(g)


def test_numeric_options_are_checked_in_the_api(tiny_model, tiles, tmp_path):
    from stardist_hier.errors import InputError
    from stardist_hier.predict import predict_to_folder

    for kw, match in ((dict(prob_thresh=2), "prob_thresh 2"), (dict(nms_thresh=-1), "nms_thresh -1"),
                      (dict(context=-8), "context -8"), (dict(n_tiles=(0, 0)), "n_tiles"),
                      (dict(block_size=0), "block_size 0"), (dict(abstain=0), "abstain 0")):
        with pytest.raises(InputError, match=re.escape(match)):
            predict_to_folder([tiles / "images"], model=tiny_model, out=tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()
    img = np.asarray(Image.open(tiles / "images" / "t0.png"), np.float32) / 255
    for kw, match in ((dict(prob_thresh=2), "prob_thresh=2"), (dict(nms_thresh=-1), "nms_thresh=-1"),
                      (dict(n_tiles=(0, 0)), "n_tiles"), (dict(abstain=1.5), "abstain=1.5")):
        with pytest.raises(InputError, match=re.escape(match)):
            tiny_model.predict_instances(img, **kw)
    with pytest.raises(InputError, match="prob_thresh"):
        tiny_model.predict_instances(img, None, None, True, 2.0)  # positionally, as StarDist allows
    with pytest.raises(InputError, match=r"block_size 64 along Y must exceed min_overlap \+ 2 \* context"):
        tiny_model.predict_instances_big(img, "YXC", 64, 32, context=24)
    with pytest.raises(InputError, match="larger than the image"):
        tiny_model.predict_instances_big(img, "YXC", 512, 32, context=24)


def test_dotted_stems_on_dask_are_not_a_false_overwrite(tiny_model_dir, tmp_path):
    """``s.1.png`` and ``s.2.png`` give ``s.1.geojson`` and ``s.2.geojson``, also on the Dask path."""
    from stardist_hier.predict import PredictOptions, distributed
    from stardist_hier.predict.runner import output_targets
    from stardist_hier.predict.writers import WRITERS

    img = SyntheticSlide((64, 64), seed=1).region(0, 0, 64, 64)
    for name in ("s.1.png", "s.2.png"):
        Image.fromarray(img).save(tmp_path / name)
    out = tmp_path / "o"
    files, formats, classes, out_, folder = distributed._validate(
        [tmp_path / "s.1.png", tmp_path / "s.2.png"], model=tiny_model_dir, out=out,
        options=PredictOptions(formats=["geojson", "csv"], label_sets=None, taxonomy=None, abstain=None, mpp=None,
                               input_mpp=None, block_size=160, min_overlap=32, context=24), writers=None)
    assert [t.name for f in files for t in output_targets(out, f, formats, classes)] == [
        "s.1.geojson", "s.1.csv", "s.2.geojson", "s.2.csv"]
    assert not out.exists()


def test_pixel_size_that_cannot_be_matched_is_said(tiny_model_dir, tiles, tmp_path, capsys):
    """The tiny model has hier_mpp 0.5; a PNG states no pixel size: predicted as it is, with one warning line."""
    assert main(["predict", str(tiles / "images"), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"),
                 *QUIET]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "warning:" in ln]
    assert len(err) == 1 and "predicted at their own resolution" in err[0] and "--input-mpp" in err[0]
