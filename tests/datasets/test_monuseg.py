"""MoNuSeg reader on the real sample image + XML, and on synthetic XML."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from stardist_hier.datasets import DatasetError, MoNuSeg

NAME = "TCGA-B0-5710-01Z-00-DX1"


def _degenerate(vertices, h, w):
    """Independent degeneracy test: < 3 distinct clipped vertices, or all on one line."""
    pts = [(min(max(x, 0), w - 1), min(max(y, 0), h - 1)) for x, y in vertices]
    distinct = sorted(set(pts))
    if len(distinct) < 3:
        return True
    (x0, y0), (x1, y1) = distinct[0], distinct[-1]
    return all((x1 - x0) * (y - y0) == (y1 - y0) * (x - x0) for x, y in distinct)


def test_real_image_and_xml(shared_data):
    root = shared_data / "monuseg"
    ds = MoNuSeg(root)
    assert ds.names() == (NAME,)
    s = ds[0]
    assert s.image.shape == (1000, 1000, 3) and s.image.dtype == np.uint8
    regions = ET.parse(root / f"{NAME}.xml").getroot().findall(".//Region")
    verts = [[(float(v.get("X")), float(v.get("Y"))) for v in r.findall(".//Vertex")] for r in regions]
    n_degenerate = sum(_degenerate(v, 1000, 1000) for v in verts)
    # nucleus count = regions - degenerate ones - ones entirely painted over by later regions
    assert len(s.classes) == len(regions) - n_degenerate - s.meta["n_overwritten"]
    assert s.meta["n_regions"] == len(regions) and s.meta["n_degenerate"] == n_degenerate
    assert s.meta["n_overwritten"] == 0  # none in this file
    assert set(s.classes.values()) == {"nucleus"} and s.label_set == "monuseg"
    assert s.labels.shape == (1000, 1000) and s.labels.max() == len(s.classes)
    assert set(np.unique(s.labels)) == set(range(len(s.classes) + 1))
    assert s.meta["mpp"] == pytest.approx(0.252)
    # some vertices lie outside the image: clipped, the instance is still inside
    assert any(min(x for x, _ in v) < 0 for v in verts)


def test_synthetic_degenerate_clipped_overlapping(tmp_path, native, rng):
    native.tif(tmp_path / "Tissue Images" / "img.tif", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    regions = [
        [(-5.0, -5.0), (5.0, -5.0), (5.0, 5.0), (-5.0, 5.0)],  # clipped to [0..5]^2
        [(8.0, 8.0), (8.0, 8.0), (12.0, 8.0)],                 # 2 distinct vertices: degenerate
        [(10.0, 10.0), (14.0, 14.0), (18.0, 18.0)],            # collinear: no area, degenerate
        [(15.0, 0.0), (19.0, 0.0), (19.0, 4.0), (15.0, 4.0)],
        [(14.0, 0.0), (19.5, 0.0), (19.5, 5.0), (14.0, 5.0)],  # covers the previous one entirely
    ]
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "img.xml").write_text(native.xml([("Description", regions)]))
    s = MoNuSeg(tmp_path, split="test")[0]
    assert s.meta["n_degenerate"] == 2
    assert s.meta["n_overwritten"] == 1
    assert len(s.classes) == 2 and s.meta["split"] == "test"
    assert np.sum(s.labels == 1) == 36  # rows/cols 0..5 after clipping
    assert np.all(s.labels[0:5, 14:20] == 2)


def test_broken_xml_names_the_file(tmp_path, native, rng):
    native.tif(tmp_path / "a.tif", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "a.xml").write_text("<Annotations><Annotation><Regions><Region>")
    with pytest.raises(DatasetError) as e:
        MoNuSeg(tmp_path)[0]
    assert str(tmp_path / "a.xml") in str(e.value)


def test_bad_vertex_names_the_file(tmp_path, native, rng):
    native.tif(tmp_path / "a.tif", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "a.xml").write_text('<Annotations><Annotation><Regions><Region Id="4"><Vertices>'
                                    '<Vertex X="1" Y="abc"/></Vertices></Region></Regions></Annotation>'
                                    '</Annotations>')
    with pytest.raises(DatasetError) as e:
        MoNuSeg(tmp_path)[0]
    assert str(tmp_path / "a.xml") in str(e.value) and "region 4" in str(e.value)


def test_missing_image_and_empty_folder(tmp_path):
    (tmp_path / "a.xml").write_text("<Annotations/>")
    with pytest.raises(FileNotFoundError) as e:
        MoNuSeg(tmp_path)
    assert str(tmp_path / "a.xml") in str(e.value)
    (tmp_path / "a.xml").unlink()
    with pytest.raises(FileNotFoundError, match="no samples"):
        MoNuSeg(tmp_path)
