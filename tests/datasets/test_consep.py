import numpy as np
import pytest

from stardist_hier import default_taxonomy
from stardist_hier.datasets import CoNSeP, DatasetError
from stardist_hier.datasets.consep import CONSEP4_CLASSES, CONSEP_CLASSES


def test_seven_classes(consep_root):
    root, rgba, inst = consep_root
    ds = CoNSeP(root)  # root holds CoNSeP/
    assert ds.names() == ("train_1", "test_1")
    s = ds[0]
    np.testing.assert_array_equal(s.image, rgba[..., :3])
    np.testing.assert_array_equal(s.labels, inst)
    assert s.labels.dtype == np.int32
    assert s.classes == {1: "malignant epithelial", 2: "fibroblast", 3: "inflammatory", 4: "endothelial"}
    assert s.label_set == "consep" and s.meta["split"] == "train" and s.meta["dataset"] == "consep"
    assert ds[1].classes == {1: "healthy epithelial"} and ds[1].meta["split"] == "test"


def test_four_class_merge(consep_root):
    root, _, _ = consep_root
    ds = CoNSeP(root / "CoNSeP", split="train", label_set="consep4")
    assert len(ds) == 1
    s = ds[0]
    assert s.label_set == "consep4"
    assert s.classes == {1: "epithelial", 2: "spindle", 3: "inflammatory", 4: "spindle"}
    assert CoNSeP(root, split="test", label_set="consep4")[0].classes == {1: "epithelial"}


def test_tables_match_taxonomy():
    tax = default_taxonomy()
    for code, name in CONSEP_CLASSES.items():
        assert tax["consep"].resolve(code) == name
    for name in set(CONSEP4_CLASSES.values()):
        assert tax["consep4"].resolve(name) == name


def test_legacy_npy_labels(tmp_path, rng, native):
    d = tmp_path / "Train"
    native.png(d / "Images" / "train_1.png", rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))
    lab = np.zeros((10, 10, 2), np.int32)
    lab[1:4, 1:4] = (1, 5)
    lab[6:9, 6:9] = (2, 4)
    (d / "Labels").mkdir()
    np.save(d / "Labels" / "train_1.npy", lab)
    assert CoNSeP(tmp_path)[0].classes == {1: "fibroblast", 2: "malignant epithelial"}


def test_unknown_code_names_the_file(consep_root):
    from scipy.io import savemat

    root, _, inst = consep_root
    mat = root / "CoNSeP" / "Train" / "Labels" / "train_1.mat"
    savemat(mat, {"inst_map": inst, "inst_type": np.array([[4], [9], [2], [7]])})
    with pytest.raises(DatasetError) as e:
        CoNSeP(root, split="train")[0]
    assert str(mat) in str(e.value) and "9" in str(e.value)


def test_missing_row_and_bad_shape(consep_root):
    from scipy.io import savemat

    root, _, inst = consep_root
    mat = root / "CoNSeP" / "Train" / "Labels" / "train_1.mat"
    savemat(mat, {"inst_map": inst, "inst_type": np.array([[4], [5]])})
    with pytest.raises(DatasetError, match="no row"):
        CoNSeP(root, split="train")[0]
    savemat(mat, {"inst_map": inst[:20], "inst_type": np.array([[4], [5], [2], [7]])})
    with pytest.raises(DatasetError) as e:
        CoNSeP(root, split="train")[0]
    assert str(mat) in str(e.value)


def test_unreadable_mat_names_the_file(consep_root):
    root, _, _ = consep_root
    mat = root / "CoNSeP" / "Train" / "Labels" / "train_1.mat"
    mat.write_bytes(b"not a mat file")
    with pytest.raises(DatasetError) as e:
        CoNSeP(root, split="train")[0]
    assert str(mat) in str(e.value)


def test_missing_files(consep_root, tmp_path):
    root, _, _ = consep_root
    (root / "CoNSeP" / "Test" / "Labels" / "test_1.mat").unlink()
    with pytest.raises(FileNotFoundError) as e:
        CoNSeP(root)
    assert "test_1.png" in str(e.value)
    empty = tmp_path / "empty"
    (empty / "Train" / "Images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no samples"):
        CoNSeP(empty)
    with pytest.raises(ValueError):
        CoNSeP(root, split="val")
