import numpy as np
import pytest

from stardist_hier import default_taxonomy
from stardist_hier.datasets import DatasetError, MoNuSAC
from stardist_hier.datasets.monusac import MONUSAC_CLASSES, read_svs


def test_reads_xml_and_tif(monusac_root):
    root, rgb = monusac_root
    ds = MoNuSAC(root, image_format="tif", split="train")
    assert ds.names() == ("P1_1",)
    s = ds[0]
    # alpha dropped and red/blue swapped back
    np.testing.assert_array_equal(s.image, rgb)
    # 2 Epithelial + 1 Macrophage; the empty Lymphocyte block adds nothing
    assert s.classes == {1: "Epithelial", 2: "Epithelial", 3: "Macrophage"}
    assert np.sum(s.labels == 1) == 100  # (2.5..12.5)^2 float outline: centres 3..12
    # repeated vertices do not break the rectangle x 20..30, y 2..10 (boundary included)
    assert np.sum(s.labels == 2) == 9 * 11
    # self-crossing bow tie: both lobes filled, the crossing's top/bottom wedges are not
    assert s.labels[30, 4] == 3 and s.labels[30, 16] == 3
    assert s.labels[23, 10] == 0 and s.labels[37, 10] == 0
    # Ambiguous is an ignore region, not a nucleus
    assert s.ignore.dtype == bool and s.ignore[30:39, 30:39].all() and s.ignore.sum() == 81
    assert not np.any(s.labels[s.ignore])
    assert s.meta["n_empty_blocks"] == 1 and s.meta["mpp"] == 0.25 and s.meta["patient"] == "P1"
    assert s.meta["split"] == "train" and s.label_set == "monusac"
    y = s.training_labels()
    assert (y == -1).sum() == 81


def test_auto_without_openslide_uses_tif(monusac_root):
    root, rgb = monusac_root
    try:
        import openslide  # noqa: F401
        pytest.skip("openslide installed: 'auto' would prefer .svs")
    except ImportError:
        pass
    np.testing.assert_array_equal(MoNuSAC(root)[0].image, rgb)


def test_svs_needs_openslide(monusac_root, tmp_path):
    try:
        import openslide  # noqa: F401
        pytest.skip("openslide installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="openslide-python"):
        read_svs(tmp_path / "x.svs")
    root, _ = monusac_root
    (root / "P1" / "P1_1.svs").write_bytes(b"")
    ds = MoNuSAC(root, image_format="svs")
    with pytest.raises(ImportError, match="openslide"):
        ds[0]


def test_no_tif_fix_keeps_bgr(monusac_root):
    root, rgb = monusac_root
    s = MoNuSAC(root, image_format="tif", tif_fix=False)[0]
    np.testing.assert_array_equal(s.image, rgb[..., ::-1])


def test_classes_match_taxonomy():
    ls = default_taxonomy()["monusac"]
    for key, name in MONUSAC_CLASSES.items():
        assert ls.resolve(name if name else "Ambiguous") == name


def test_class_names_case_insensitive(monusac_root, native):
    root, _ = monusac_root
    blocks = [("  epithelial ", native.monusac_blocks[0][1][:1]), ("LYMPHOCYTE", native.monusac_blocks[0][1][1:])]
    (root / "P1" / "P1_1.xml").write_text(native.xml(blocks))
    assert MoNuSAC(root, image_format="tif")[0].classes == {1: "Epithelial", 2: "Lymphocyte"}


def test_unknown_class_names_the_file(monusac_root, native):
    root, _ = monusac_root
    xml = root / "P1" / "P1_1.xml"
    xml.write_text(native.xml([("Tumour", native.monusac_blocks[0][1])]))
    with pytest.raises(DatasetError) as e:
        MoNuSAC(root, image_format="tif")[0]
    assert str(xml) in str(e.value) and "Tumour" in str(e.value)


def test_broken_xml_names_the_file(monusac_root):
    root, _ = monusac_root
    xml = root / "P1" / "P1_1.xml"
    xml.write_text("<Annotations><Annotation>")
    with pytest.raises(DatasetError) as e:
        MoNuSAC(root, image_format="tif")[0]
    assert str(xml) in str(e.value) and "parse" in str(e.value)


def test_missing_image_names_the_xml(monusac_root):
    root, _ = monusac_root
    (root / "P1" / "P1_1.tif").unlink()
    with pytest.raises(FileNotFoundError) as e:
        MoNuSAC(root, image_format="tif")
    assert str(root / "P1" / "P1_1.xml") in str(e.value)


def test_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no samples"):
        MoNuSAC(tmp_path)
