import numpy as np
import pytest

from stardist_hier import default_taxonomy
from stardist_hier.datasets import CoNIC, DatasetError, Lizard
from stardist_hier.datasets.lizard import LIZARD_CLASSES


def test_lizard_rows_not_in_inst_map_order(lizard_root):
    root, img, inst = lizard_root
    ds = Lizard(root)
    assert ds.names() == ("consep_1", "glas_1")
    s = ds[0]
    np.testing.assert_array_equal(s.image, img)
    # old ids 3, 8, 11 -> 1, 2, 3; rows (11, 6), (3, 2), (8, 1)
    assert s.classes == {1: "epithelial", 2: "neutrophil", 3: "connective"}
    assert s.labels[3, 3] == 1 and s.labels[12, 12] == 2 and s.labels[22, 22] == 3
    assert s.meta["origin"] == "consep/test_14" and s.meta["split"] == "3" and s.meta["mpp"] == 0.5
    assert ds[1].classes == {1: "lymphocyte"}


def test_lizard_split_is_info_fold(lizard_root):
    root, _, _ = lizard_root
    assert Lizard(root, split="1").names() == ("glas_1",)
    with pytest.raises(ValueError, match="unknown split"):
        Lizard(root, split="7")


def test_lizard_missing_row_names_file(lizard_root):
    from scipy.io import savemat

    root, _, inst = lizard_root
    mat = root / "Lizard_Labels" / "Labels" / "consep_1.mat"
    savemat(mat, {"inst_map": inst, "id": np.array([[11], [3]]), "class": np.array([[6], [2]])})
    with pytest.raises(DatasetError) as e:
        Lizard(root)[0]
    assert str(mat) in str(e.value) and "8" in str(e.value)


def test_lizard_unknown_class_names_file(lizard_root):
    from scipy.io import savemat

    root, _, inst = lizard_root
    mat = root / "Lizard_Labels" / "Labels" / "consep_1.mat"
    savemat(mat, {"inst_map": inst, "id": np.array([[11], [3], [8]]), "class": np.array([[6], [2], [0]])})
    with pytest.raises(DatasetError) as e:
        Lizard(root)[0]
    assert str(mat) in str(e.value)


def test_lizard_missing_keys_and_images(lizard_root):
    from scipy.io import savemat

    root, _, inst = lizard_root
    mat = root / "Lizard_Labels" / "Labels" / "consep_1.mat"
    savemat(mat, {"inst_map": inst})
    with pytest.raises(DatasetError, match="lack"):
        Lizard(root)[0]
    (root / "Lizard_Images1" / "consep_1.png").unlink()
    with pytest.raises(FileNotFoundError) as e:
        Lizard(root)
    assert str(mat) in str(e.value)


def test_conic(conic_root):
    root, imgs, labels = conic_root
    ds = CoNIC(root)
    assert len(ds) == 2 and ds.names() == ("consep_3-0000", "glas_1-0001")
    s = ds[0]
    np.testing.assert_array_equal(s.image, imgs[0])
    # old ids 2, 5, 9 -> 1, 2, 3
    assert s.classes == {1: "connective", 2: "lymphocyte", 3: None}
    assert s.labels.dtype == np.int32 and s.labels[3, 3] == 2
    assert s.meta["n_unknown_class"] == 1 and s.meta["lizard_image"] == "consep_3"
    assert ds[1].classes == {1: "epithelial"}
    assert s.label_set == "conic"


def test_conic_is_memory_mapped_row_by_row(conic_root):
    root, _, _ = conic_root
    ds = CoNIC(root)
    assert ds.images.shape == (2, 32, 32, 3) and ds.labels.dtype == np.float64
    import pickle

    assert len(pickle.dumps(ds)) < 10_000  # no array held


def test_conic_bad_shapes(conic_root):
    root, _, labels = conic_root
    np.save(root / "labels.npy", labels[..., :1])
    with pytest.raises(DatasetError) as e:
        CoNIC(root)
    assert str(root / "labels.npy") in str(e.value)
    np.save(root / "labels.npy", labels)
    (root / "images.npy").unlink()
    with pytest.raises(FileNotFoundError) as e:
        CoNIC(root)
    assert str(root / "images.npy") in str(e.value)


def test_conic_bad_class_code(conic_root):
    root, _, labels = conic_root
    labels = labels.copy()
    labels[0, 2:8, 2:8, 1] = 8
    np.save(root / "labels.npy", labels)
    with pytest.raises(DatasetError) as e:
        CoNIC(root)[0]
    assert str(root / "labels.npy") in str(e.value)


def test_tables_match_taxonomy():
    tax = default_taxonomy()
    for code, name in LIZARD_CLASSES.items():
        assert tax["lizard"].resolve(code) == name
        assert tax["conic"].resolve(name) == name
