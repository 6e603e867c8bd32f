"""One input normalisation everywhere (issue 17 section 1): the API, ``predict`` on an image and on a
pyramidal TIFF of the same pixels, the exported StarDist folder through plain ``StarDist2D`` and a
Dask worker find the same nuclei on the same pixels."""

import csv
import json
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from stardist_hier.cli import main
from stardist_hier.predict import Nuclei, plan_prediction
from stardist_hier.slides import SyntheticSlide, write_pyramid_tiff

pytestmark = pytest.mark.slow  # trains the tiny model once per session (~40 s on 2 cores)

SHAPE = (288, 256)


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    """One RGB tile as a PNG and as a 2-level pyramidal TIFF at the model's pixel size (0.5 um/px)."""
    img = SyntheticSlide(SHAPE, seed=12).region(0, 0, *SHAPE)
    root = tmp_path_factory.mktemp("same_pixels")
    (root / "png").mkdir()
    (root / "tif").mkdir()
    Image.fromarray(img).save(root / "png" / "tile.png")
    write_pyramid_tiff(root / "tif" / "tile.tif", img, mpp=0.5, downsamples=(1, 4), tile=64)
    return root, img


def _table(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    yx = np.array([[float(r["centroid_y"]), float(r["centroid_x"])] for r in rows]).reshape(-1, 2)
    return rows, yx


def _api_table(res):
    """Centroids, object probabilities and leaves of a predict_instances result, as the table has them."""
    nuc = Nuclei.from_result(res)
    return np.round(nuc.centroid, 3), np.round(res["prob"].astype(np.float64), 6), list(res["class_name"])


def _predict(inp, model_dir, out, *extra):
    assert main(["predict", str(inp), "--model", str(model_dir), "--out", str(out), "--format", "csv",
                 "--quiet", *extra]) == 0
    return _table(out / (inp.stem + ".csv"))


def _matched(a, b, tol=2.0):
    """Indices ``(i, j)`` of ``a``'s centroids within ``tol`` px of one of ``b``'s (nearest)."""
    if not len(a) or not len(b):
        return []
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    j = d.argmin(1)
    return [(i, int(j[i])) for i in range(len(a)) if d[i, j[i]] <= tol]


def test_api_cli_slide_export_and_dask_find_the_same_nuclei(tiny_model, tiny_model_dir, pixels, tmp_path):
    root, img = pixels
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["hier_normalize"] == {"kind": "percentile", "pmin": 1.0, "pmax": 99.8, "axis": "per-channel"}

    # the API: raw pixels, the model's own normalisation
    _, res = tiny_model.predict_instances(img, normalize=True)
    yx, prob, leaves = _api_table(res)
    assert len(prob) >= 15

    # `predict` on the image: exactly the API's nuclei
    rows, cli_yx = _predict(root / "png" / "tile.png", tiny_model_dir, tmp_path / "png")
    assert len(rows) == len(prob)
    np.testing.assert_allclose(cli_yx, yx, atol=2e-3)
    np.testing.assert_allclose([float(r["object_prob"]) for r in rows], prob, atol=2e-6)
    assert [r["leaf"] for r in rows] == leaves

    # what the old command line fed the network (pixels / 255) gives other nuclei
    _, old = tiny_model.predict_instances(img.astype(np.float32) / 255)
    assert len(old["prob"]) != len(prob) or not np.allclose(Nuclei.from_result(old).centroid, yx, atol=0.5)

    # `predict` on a pyramidal TIFF of the same pixels: the percentiles come from the slide's tissue at
    # its low-resolution level (once per slide), so they are close to the image's, not equal
    srows, slide_yx = _predict(root / "tif" / "tile.tif", tiny_model_dir, tmp_path / "tif")
    plan = plan_prediction(tiny_model, root / "tif" / "tile.tif")
    try:
        assert plan.is_slide and plan.image.level == 0 and plan.image.factor == 1.0
        slide_levels, image_levels = plan.levels, tiny_model.normalization_levels(img)
    finally:
        plan.close()
    np.testing.assert_allclose(slide_levels.lo, image_levels.lo, atol=25)
    np.testing.assert_allclose(slide_levels.hi, image_levels.hi, atol=25)
    # ... and with the slide's levels, the API finds exactly the slide's nuclei
    _, res_s = tiny_model.predict_instances(img, normalize=slide_levels)
    s_yx, s_prob, s_leaves = _api_table(res_s)
    np.testing.assert_allclose(slide_yx, s_yx, atol=2e-3)
    np.testing.assert_allclose([float(r["object_prob"]) for r in srows], s_prob, atol=2e-6)
    assert [r["leaf"] for r in srows] == s_leaves
    # ... and the slide and the image agree on (nearly) every nucleus and its class
    m = _matched(yx, slide_yx)
    assert len(m) >= 0.9 * max(len(yx), len(slide_yx)), (len(m), len(yx), len(slide_yx))
    assert np.mean([leaves[i] == s_leaves[j] for i, j in m]) >= 0.9

    # the exported StarDist folder through plain StarDist2D, normalised as its README says
    from csbdeep.utils import normalize
    from stardist.models import StarDist2D

    from stardist_hier.models.export import export_stardist

    out = export_stardist(tiny_model, tmp_path / "exported" / "tiny_plain")
    spec = json.loads((out / "normalization.json").read_text())["hier_normalize"]
    readme = (out / "README.md").read_text()
    assert "normalize(img, 1, 99.8, axis=(0, 1))" in readme and "stardist-predict2d" in readme
    assert spec["axis"] == "per-channel"
    plain = StarDist2D(None, name=out.name, basedir=str(out.parent))
    _, res_p = plain.predict_instances(normalize(img, spec["pmin"], spec["pmax"], axis=(0, 1)))
    np.testing.assert_array_equal(res_p["prob"], res["prob"])
    np.testing.assert_allclose(res_p["coord"], res["coord"], atol=1e-4)

    # a Dask worker (a real LocalCluster process): the same table as the command line
    pytest.importorskip("distributed")
    from stardist_hier.predict.distributed import predict_distributed

    s = predict_distributed([root / "png"], model=tiny_model_dir, out=tmp_path / "dask", workers=1,
                            formats=["csv"], tf_threads=1)
    assert s.n_failed == 0 and s.n_predicted == 1, s.table()
    drows, dask_yx = _table(tmp_path / "dask" / "tile.csv")
    assert drows == rows


def test_model_folder_made_before_the_key_warns_and_predicts_with_percentiles(tiny_model_dir, pixels, tmp_path,
                                                                               capsys):
    """A folder without ``hier_normalize`` (e.g. the experiment runner's before this change) gets one
    warning line and the percentiles its training path used: the same nuclei as the folder stating them."""
    root, _ = pixels
    old = tmp_path / "old_model"
    shutil.copytree(tiny_model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["hier_normalize"]
    (old / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        rows_old, _ = _predict(root / "png" / "tile.png", old, tmp_path / "out_old")
    err = [line for line in capsys.readouterr().err.splitlines() if "hier_normalize" in line]
    assert len(err) == 1 and err[0].startswith("stardist-hier predict: warning: ")
    assert str(old / "config.json") in err[0] and '"hier_normalize": {"kind": "percentile"' in err[0]
    rows_new, _ = _predict(root / "png" / "tile.png", tiny_model_dir, tmp_path / "out_new")
    assert not [line for line in capsys.readouterr().err.splitlines() if "hier_normalize" in line]
    assert rows_old == rows_new


def test_label_set_outside_and_abstain_from_the_command_line(tiny_model_dir, pixels, tmp_path):
    """``--label-set monusac --abstain``: outside mass and abstention columns, consistent with the API."""
    from stardist_hier import default_taxonomy
    from stardist_hier.classify import OUTSIDE, UNCERTAIN

    root, _ = pixels
    out = tmp_path / "ls"
    assert main(["predict", str(root / "png" / "tile.png"), "--model", str(tiny_model_dir), "--out", str(out),
                 "--format", "csv", "geojson", "--label-set", "monusac", "--abstain", "0.6", "--quiet"]) == 0
    rows, _ = _table(out / "tile.csv")
    mon = default_taxonomy()["monusac"]
    assert rows and {"label_monusac", "prob_monusac", "outside_monusac", "abstained_monusac"} <= set(rows[0])
    for r in rows:
        p, outside = float(r["prob_monusac"]), float(r["outside_monusac"])
        assert r["label_monusac"] in mon.labels + (OUTSIDE,)
        if r["label_monusac"] == OUTSIDE:
            assert p == outside
        else:
            assert p >= outside - 1e-6
        cond = p / max(1 - float(r["p_background"]), 1e-12)
        assert r["abstained_monusac"] == (r["label_monusac"] if cond >= 0.6 - 1e-5 else UNCERTAIN)
    doc = json.loads((out / "tile.geojson").read_text(encoding="utf-8"))
    assert [f["properties"]["classification"]["name"] for f in doc["features"]] == \
        [r["abstained_monusac"] for r in rows]
