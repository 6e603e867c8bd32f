"""Output writers: QuPath GeoJSON, nucleus tables, label images + class files, overlays (no TensorFlow)."""

import argparse
import csv
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.predict import Nuclei
from stardist_hier.predict.writers import WRITERS, table_columns
from stardist_hier.tree import ClassTree, LabelSet, default_taxonomy

SHAPE = (120, 160)
N_RAYS = 32


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


def _nuclei(tax, n=20, seed=0, *, classes=True, mpp=0.5, bowtie=True):
    """Circular nuclei (one self-intersecting 'bow tie' when ``bowtie``), level-0 (row, col)."""
    rng = np.random.default_rng(seed)
    tree = tax.tree
    ang = np.linspace(0, 2 * np.pi, N_RAYS, endpoint=False)
    # a grid of centres keeps the nuclei apart
    grid = np.array([(r, c) for r in range(15, SHAPE[0] - 10, 24) for c in range(15, SHAPE[1] - 10, 24)], float)
    cent = grid[rng.permutation(len(grid))[:n]] + rng.uniform(-2, 2, (n, 2))
    rad = rng.uniform(5, 9, (n, 1))
    coord = np.stack([cent[:, :1] + rad * np.sin(ang), cent[:, 1:] + rad * np.cos(ang)], 1)
    if bowtie:  # swap two far-apart vertices of nucleus 0: a self-intersecting polygon
        coord[0, :, [3, 19]] = coord[0, :, [19, 3]]
    cp = rng.dirichlet(np.full(tree.n_classes + 1, 0.3), n) if classes else None
    return Nuclei(np.arange(1, n + 1), coord, cent, rng.uniform(0.5, 1, n), cp, tree if classes else None, mpp)


def _chunks(nuc, cuts=(0, 7, 20)):
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        cp = None if nuc.class_prob is None else nuc.class_prob[a:b]
        out.append(Nuclei(nuc.ids[a:b], nuc.coord[a:b], nuc.points[a:b], nuc.prob[a:b], cp, nuc.tree, nuc.mpp))
    return out


def _write(name, stem, chunks, **kw):
    W = WRITERS[name]
    with W(stem, **kw) as w:
        for c in chunks:
            w.write(c)
    return w.path


def _kw(tax, **over):
    kw = dict(label_sets=[tax["pannuke"], tax["consep"]], abstain=0.6, tree=tax.tree, mpp=None,
              image_shape=SHAPE, image=None)
    kw.update(over)
    return kw


def _raster(coord, shape=SHAPE):
    from skimage.draw import polygon

    masks = []
    for c in coord:
        m = np.zeros(shape, bool)
        rr, cc = polygon(c[0], c[1], shape)
        m[rr, cc] = True
        masks.append(m)
    return masks


# ---------------------------------------------------------------------------- registry
def test_registry_names_suffixes_and_slide_flags():
    assert set(WRITERS) == {"geojson", "csv", "parquet", "labels", "overlay"}
    assert {k: W.suffix for k, W in WRITERS.items()} == {
        "geojson": ".geojson", "csv": ".csv", "parquet": ".parquet", "labels": ".tif", "overlay": ".png"}
    assert {k: W.slide_ok for k, W in WRITERS.items()} == {
        "geojson": True, "csv": True, "parquet": True, "labels": False, "overlay": True}
    # the overlay PNG lives apart from the label TIFF (evaluate --pred reads one image per stem)
    assert {k: W.target(Path("out/a.1")) for k, W in WRITERS.items()} == {
        "geojson": Path("out/a.1.geojson"), "csv": Path("out/a.1.csv"), "parquet": Path("out/a.1.parquet"),
        "labels": Path("out/a.1.tif"), "overlay": Path("out/overlay/a.1.png")}
    assert WRITERS["labels"].targets(Path("out/a")) == [Path("out/a.tif"), Path("out/a.json")]


# ----------------------------------------------------------------------------- GeoJSON
def test_geojson_matches_qupath_schema(tmp_path, tax):
    """Assertions after QuPath's GeoJSON reader (qupath-core PathObjectTypeAdapters) and its docs."""
    import shapely.geometry
    from stardist_hier.plotting import label_colors

    nuc = _nuclei(tax)
    path = _write("geojson", tmp_path / "img", _chunks(nuc), **_kw(tax, mpp=0.5))
    assert path == tmp_path / "img.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and isinstance(doc["features"], list)
    assert len(doc["features"]) == len(nuc)
    colors = label_colors(tax["pannuke"], decisions=True)
    # with --abstain the classification is the label at the first set, or "uncertain" below 0.6
    names = nuc.label_set_decisions(tax["pannuke"], abstain=0.6).abstained
    assert "uncertain" in names and set(names) - {"uncertain"}  # the threshold matters here
    abst = nuc.abstain(0.6)
    ids = set()
    for i, f in enumerate(doc["features"]):
        assert f["type"] == "Feature"
        ids.add(str(uuid.UUID(f["id"])))  # QuPath parses the id with UUID.fromString
        g = f["geometry"]
        assert g["type"] == "Polygon"
        ring = g["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4  # closed ring
        assert all(len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in ring)
        shp = shapely.geometry.shape(g)
        assert shp.geom_type == "Polygon" and shp.is_valid and shp.area > 0
        # x = column, y = row, level-0 pixels (nucleus 0 is the repaired bow tie: its own test)
        assert i == 0 or abs(shp.centroid.x - nuc.centroid[i, 1]) < 1.5 and abs(shp.centroid.y - nuc.centroid[i, 0]) < 1.5
        p = f["properties"]
        assert p["objectType"] == "detection"
        cls = p["classification"]
        assert cls["name"] == names[i] and cls["name"] in tax["pannuke"].labels + ("uncertain", "outside label set")
        assert cls["color"] == list(colors[cls["name"]])
        assert len(cls["color"]) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in cls["color"])
        assert p["name"] == abst[i] and p["name"] in tax.tree  # abstention node
        m = p["measurements"]
        assert isinstance(m, dict) and all(isinstance(v, (int, float)) and np.isfinite(v) for v in m.values())
        assert m["Nucleus id"] == nuc.ids[i]
        assert m["Object probability"] == pytest.approx(nuc.prob[i], abs=1e-5)
        assert m["Area µm^2"] == pytest.approx(nuc.area[i] * 0.25, rel=1e-3)
        for ls in (tax["pannuke"], tax["consep"]):
            assert sum(m[f"Prob {ls.name}: {lab}"] for lab in ls.labels) <= 1 + 1e-4
        for node in tax.tree.node_names():
            assert 0 <= m[f"Prob node: {node}"] <= 1 + 1e-5
        assert m["Prob node: nucleus"] + m["Prob node: background"] == pytest.approx(1, abs=1e-4)
        assert m["Abstained"] == float(abst[i] != nuc.leaves()[i])
    assert len(ids) == len(nuc)


def test_geojson_repairs_self_intersecting_polygon(tmp_path, tax):
    import shapely.geometry
    from shapely import Polygon

    nuc = _nuclei(tax)
    assert not Polygon(np.stack([nuc.coord[0, 1], nuc.coord[0, 0]], -1)).is_valid  # the bow tie
    path = _write("geojson", tmp_path / "img", [nuc], **_kw(tax))
    f0 = json.loads(path.read_text())["features"][0]
    shp = shapely.geometry.shape(f0["geometry"])
    assert shp.geom_type == "Polygon" and shp.is_valid and shp.area > 10


def test_geojson_is_streamed(tmp_path, tax):
    nuc = _nuclei(tax)
    W = WRITERS["geojson"]
    with W(tmp_path / "img", **_kw(tax)) as w:
        sizes = []
        for c in _chunks(nuc):
            w.write(c)
            tmp = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            assert len(tmp) == 1 and not (tmp_path / "img.geojson").exists()
            sizes.append(tmp[0].stat().st_size)
        assert sizes[0] > 1000 and sizes[1] > sizes[0]  # features reach the disk chunk by chunk
    assert [p.name for p in tmp_path.iterdir()] == ["img.geojson"]


def test_geojson_segmentation_only(tmp_path, tax):
    nuc = _nuclei(tax, classes=False)
    path = _write("geojson", tmp_path / "img", _chunks(nuc), **_kw(tax, tree=None, label_sets=None))
    for f in json.loads(path.read_text())["features"]:
        assert f["properties"]["objectType"] == "detection"
        assert "classification" not in f["properties"] and "name" not in f["properties"]
        assert set(f["properties"]["measurements"]) == {"Nucleus id", "Object probability", "Area px^2",
                                                        "Area µm^2"}  # mpp from the chunks


def test_default_label_set_is_the_leaves(tmp_path, tax):
    nuc = _nuclei(tax)
    path = _write("geojson", tmp_path / "img", [nuc], **_kw(tax, label_sets=None, abstain=None))
    feats = json.loads(path.read_text())["features"]
    assert [f["properties"]["classification"]["name"] for f in feats] == nuc.leaves()
    assert all("name" not in f["properties"] for f in feats)


# ------------------------------------------------------------------------------ tables
def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_columns_and_values_against_regionprops(tmp_path, tax):
    from skimage.measure import regionprops

    nuc = _nuclei(tax, bowtie=False)
    path = _write("csv", tmp_path / "img", _chunks(nuc), **_kw(tax, mpp=0.25))
    rows = _read_csv(path)
    cols = list(rows[0])
    assert cols == table_columns(tree=tax.tree, label_sets=[tax["pannuke"], tax["consep"]], abstain=0.6, mpp=0.25)
    assert cols[:9] == ["id", "centroid_y", "centroid_x", "centroid_y_um", "centroid_x_um", "area_px", "area_um2",
                        "object_prob", "label_pannuke"]
    assert {"prob_pannuke", "label_consep", "prob_consep", "leaf", "prob_leaf", "p_background", "p_nucleus",
            "p_epithelial_tumor", "abstain_node"} <= set(cols)
    assert len(rows) == len(nuc)
    names, lp = nuc.labels(tax["pannuke"])
    for i, (row, mask) in enumerate(zip(rows, _raster(nuc.coord))):
        rp = regionprops(mask.astype(np.uint8))[0]
        assert int(row["id"]) == nuc.ids[i]
        assert float(row["centroid_y"]) == pytest.approx(rp.centroid[0], abs=0.6)
        assert float(row["centroid_x"]) == pytest.approx(rp.centroid[1], abs=0.6)
        assert float(row["area_px"]) == pytest.approx(rp.area, rel=0.12)
        assert float(row["area_um2"]) == pytest.approx(float(row["area_px"]) * 0.0625, rel=1e-3)
        assert float(row["centroid_x_um"]) == pytest.approx(float(row["centroid_x"]) * 0.25, abs=1e-3)
        assert row["label_pannuke"] == names[i]
        assert float(row["prob_pannuke"]) == pytest.approx(lp[i, 1:].max(), abs=1e-5)
        assert row["leaf"] == nuc.leaves()[i]
        assert row["abstain_node"] == nuc.abstain(0.6)[i]
        assert float(row["p_nucleus"]) + float(row["p_background"]) == pytest.approx(1, abs=1e-4)


def test_csv_without_mpp_or_classes(tmp_path, tax):
    nuc = _nuclei(tax, classes=False, mpp=None)
    path = _write("csv", tmp_path / "img", _chunks(nuc), **_kw(tax, tree=None))
    rows = _read_csv(path)
    assert list(rows[0]) == ["id", "centroid_y", "centroid_x", "area_px", "object_prob"]
    assert len(rows) == len(nuc)


def test_csv_empty_stream_writes_header(tmp_path, tax):
    path = _write("csv", tmp_path / "img", [], **_kw(tax))
    assert path.read_text().splitlines() == [",".join(table_columns(
        tree=tax.tree, label_sets=[tax["pannuke"], tax["consep"]], abstain=0.6, mpp=None))]


def test_parquet_matches_csv(tmp_path, tax):
    pq = pytest.importorskip("pyarrow.parquet")
    nuc = _nuclei(tax)
    kw = _kw(tax, mpp=0.5)
    rows = _read_csv(_write("csv", tmp_path / "img", _chunks(nuc), **kw))
    table = pq.read_table(_write("parquet", tmp_path / "img", _chunks(nuc), **kw))
    assert table.column_names == list(rows[0])
    assert table.num_rows == len(nuc)
    d = table.to_pydict()
    assert d["id"] == [int(r["id"]) for r in rows]
    assert d["label_consep"] == [r["label_consep"] for r in rows]
    assert np.allclose(d["p_inflammatory"], [float(r["p_inflammatory"]) for r in rows])
    assert np.allclose(d["area_um2"], [float(r["area_um2"]) for r in rows])


def test_parquet_empty_stream(tmp_path, tax):
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(_write("parquet", tmp_path / "img", [], **_kw(tax)))
    assert table.num_rows == 0 and "label_pannuke" in table.column_names


def test_parquet_without_pyarrow_names_the_extra(tmp_path, tax, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match=r"\[parquet\]"):
        WRITERS["parquet"](tmp_path / "img", **_kw(tax))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- atomic behaviour
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_exception_mid_stream_leaves_no_file(tmp_path, tax, name):
    if name == "parquet":
        pytest.importorskip("pyarrow")
    nuc = _nuclei(tax)
    img = np.zeros(SHAPE + (3,), np.uint8)
    with pytest.raises(RuntimeError, match="boom"):
        with WRITERS[name](tmp_path / "img", **_kw(tax, image=img)) as w:
            w.write(_chunks(nuc)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_an_older_file(tmp_path, tax):
    old = tmp_path / "img.csv"
    old.write_text("old\n")
    with pytest.raises(RuntimeError):
        with WRITERS["csv"](tmp_path / "img", **_kw(tax)) as w:
            w.write(_nuclei(tax))
            raise RuntimeError("boom")
    assert old.read_text() == "old\n" and list(tmp_path.iterdir()) == [old]


def test_bad_chunk_fails_cleanly(tmp_path, tax):
    nuc = _nuclei(tax, classes=False)
    with pytest.raises(InputError, match="no class probabilities"):
        with WRITERS["geojson"](tmp_path / "img", **_kw(tax)) as w:
            w.write(nuc)
    assert list(tmp_path.iterdir()) == []


def test_argument_checks(tmp_path, tax):
    other = ClassTree.from_dict({"root": {"x": None, "y": None}})
    with pytest.raises(InputError, match="not defined on the model's class tree"):
        WRITERS["csv"](tmp_path / "a", **_kw(tax, label_sets=[LabelSet.leaves_of(other)]))
    with pytest.raises(InputError, match="abstain"):
        WRITERS["csv"](tmp_path / "a", **_kw(tax, abstain=1.5))
    with pytest.raises(InputError, match="image_shape"):
        WRITERS["labels"](tmp_path / "a", **_kw(tax, image_shape=None))
    with pytest.raises(InputError, match="overlay"):
        WRITERS["overlay"](tmp_path / "a", **_kw(tax, image_shape=None, image=None))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------- labels + evaluate
def test_labels_round_trip_through_evaluate_readers(tmp_path, tax):
    from stardist_hier.metrics.folders import read_class_file, read_label_image

    nuc = _nuclei(tax, bowtie=False)
    tif = _write("labels", tmp_path / "img", _chunks(nuc), **_kw(tax))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.json", "img.tif"]
    lab = read_label_image(tif)
    assert lab.dtype == np.int32 and lab.shape == SHAPE
    assert sorted(np.unique(lab)[1:]) == list(nuc.ids)  # ids 1..N, all present (no overlaps)
    for i, mask in zip(nuc.ids, _raster(nuc.coord)):
        assert np.array_equal(lab == i, mask)
    classes = read_class_file(tmp_path / "img.json")
    assert sorted(classes) == list(nuc.ids)
    for k, i in enumerate(nuc.ids):
        assert np.allclose(classes[int(i)], nuc.class_prob[k], atol=1e-5)


def test_labels_overlap_goes_to_the_more_probable(tmp_path, tax):
    from stardist_hier.metrics.folders import read_label_image

    nuc = _nuclei(tax, n=2, bowtie=False)
    nuc.coord[1] = nuc.coord[0] + 3  # overlapping pair
    nuc.prob[:] = [0.9, 0.6]
    lab = read_label_image(_write("labels", tmp_path / "img", [nuc], **_kw(tax)))
    first = _raster(nuc.coord[:1])[0]
    assert np.array_equal(lab == 1, first)


def test_labels_segmentation_only_writes_no_class_file(tmp_path, tax):
    nuc = _nuclei(tax, classes=False)
    _write("labels", tmp_path / "img", _chunks(nuc), **_kw(tax, tree=None))
    assert [p.name for p in tmp_path.iterdir()] == ["img.tif"]


def test_predict_then_evaluate_needs_no_glue(tmp_path, tax):
    """Labels + class file from the writer go straight into ``stardist-hier evaluate``."""
    from stardist_hier.commands import evaluate

    nuc = _nuclei(tax, bowtie=False)
    # ground truth: the same nuclei, labelled in PanNuke with the class the prediction gives
    pred_dir, gt_dir, out = tmp_path / "pred", tmp_path / "gt", tmp_path / "out"
    _write("labels", pred_dir / "img", _chunks(nuc), **_kw(tax))
    import tifffile

    gt_dir.mkdir()
    gt = np.zeros(SHAPE, np.int32)
    for i, m in zip(nuc.ids, _raster(nuc.coord)):
        gt[m] = i
    tifffile.imwrite(gt_dir / "img.tif", gt)
    names, _ = nuc.labels(tax["pannuke"])
    (gt_dir / "img.json").write_text(json.dumps({str(i): n for i, n in zip(nuc.ids.tolist(), names)}))
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out),
                              "--label-set", "pannuke", "--convention", "conic"])
    assert evaluate.run(args) == 0
    rows = _read_csv(out / "summary.csv")
    binary = [r for r in rows if r["kind"] == "binary"]
    assert binary and all(float(r["pq"]) == pytest.approx(1.0, abs=1e-4) for r in binary)
    per_class = {r["label"]: float(r["pq"]) for r in rows if r["kind"] == "class"}
    assert set(names) <= set(per_class)
    assert all(per_class[n] == pytest.approx(1.0, abs=1e-4) for n in set(names))  # every class present is perfect


# ---------------------------------------------------------------------------- overlay
def _png(path):
    import imageio.v3 as iio

    return iio.imread(path)


def test_overlay_on_image(tmp_path, tax):
    nuc = _nuclei(tax)
    img = (np.random.default_rng(0).uniform(0.5, 0.9, SHAPE + (3,)) * 255).astype(np.uint8)
    path = _write("overlay", tmp_path / "img", _chunks(nuc), **_kw(tax, image=img))
    assert path == tmp_path / "overlay" / "img.png" and _png(path).ndim == 3
    assert [p.name for p in tmp_path.iterdir()] == ["overlay"]
    assert [p.name for p in (tmp_path / "overlay").iterdir()] == ["img.png"]


def test_overlay_on_slide_thumbnail(tmp_path, tax):
    """A slide: level-0 shape 10x the thumbnail; nuclei arrive in level-0 coordinates."""
    nuc = _nuclei(tax)
    big = Nuclei(nuc.ids, nuc.coord * 10, nuc.points * 10, nuc.prob, nuc.class_prob, tax.tree, 0.25)
    thumb = np.full(SHAPE + (3,), 230, np.uint8)
    W = WRITERS["overlay"]
    w = W(tmp_path / "slide", **_kw(tax, image=thumb, image_shape=(SHAPE[0] * 10, SHAPE[1] * 10)))
    assert w._scale == (0.1, 0.1)
    with w:
        for c in _chunks(big):
            w.write(c)
    assert np.array_equal(np.unique(w._labels)[1:], np.arange(1, len(nuc) + 1))  # every nucleus drawn
    assert _png(tmp_path / "overlay" / "slide.png").ndim == 3


def test_overlay_without_image_uses_a_canvas(tmp_path, tax):
    nuc = _nuclei(tax, classes=False)
    W = WRITERS["overlay"]
    w = W(tmp_path / "s", **_kw(tax, tree=None, image_shape=(40000, 30000)))
    assert max(w._labels.shape) <= W.max_side
    with w:
        w.write(Nuclei(nuc.ids, nuc.coord * 200, nuc.points * 200, nuc.prob, None, None, None))
    assert (tmp_path / "overlay" / "s.png").is_file()
