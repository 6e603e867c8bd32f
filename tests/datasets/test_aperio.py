import math

import numpy as np
import pytest

from stardist_hier.datasets import DatasetError
from stardist_hier.datasets.aperio import clean_vertices, rasterise_regions, read_aperio_xml


def test_clean_vertices():
    v = [(0, 0), (0, 0), (1, 0), (1, 1), (1, 1), (0, 0)]
    np.testing.assert_array_equal(clean_vertices(v), [(0, 0), (1, 0), (1, 1)])
    assert clean_vertices([]).shape == (0, 2)


def test_self_crossing_even_odd():
    # pentagram: its centre is enclosed twice and is left out (even-odd rule)
    star = [(50 + 40 * math.cos(math.pi / 2 + k * 4 * math.pi / 5), 50 + 40 * math.sin(math.pi / 2 + k * 4 * math.pi / 5))
            for k in range(5)]
    lab, n_deg, n_over = rasterise_regions([np.array(star)], (100, 100))
    assert lab[50, 50] == 0 and lab.max() == 1 and n_deg == 0 and n_over == 0


def test_read_xml(tmp_path, native):
    p = tmp_path / "a.xml"
    p.write_text(native.xml(native.monusac_blocks, mpp=0.19))
    a = read_aperio_xml(p)
    assert a.mpp == pytest.approx(0.19) and a.n_empty_blocks == 1
    assert [r.name for r in a.regions] == ["Epithelial", "Epithelial", "Macrophage", "Ambiguous"]
    assert a.regions[1].vertices.dtype == np.float64


def test_no_annotation_element(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<Foo/>")
    with pytest.raises(DatasetError) as e:
        read_aperio_xml(p)
    assert str(p) in str(e.value)
