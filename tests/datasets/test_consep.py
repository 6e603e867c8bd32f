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


# ---------------------------------------------------------------- files with merged codes (shared/data/consep)
@pytest.fixture
def merged_root(shared_data):
    root = shared_data / "consep"
    if not root.is_dir():
        pytest.skip(f"CoNSeP sample data not found at {root}")
    return root


def _counts(ds):
    from collections import Counter

    c = Counter()
    for s in ds:
        c.update(s.classes.values())
    return c


def test_merged_codes_class_counts(merged_root):
    """The README of shared/data/consep: 932 / 5,579 / 8,751 / 9,070 nuclei, 27 train + 14 test tiles."""
    from stardist_hier.datasets import open_dataset

    train = open_dataset("consep_merged", merged_root, split="train")
    test = open_dataset("consep_merged", merged_root, split="test")
    assert (len(train), len(test)) == (27, 14)
    total = _counts(train) + _counts(test)
    assert dict(total) == {"other": 932, "inflammatory": 5579, "epithelial": 8751, "spindle": 9070}
    assert sum(total.values()) == 24332
    s = test[test.names().index("test_1")]
    assert s.labels.max() == 865 and len(s.classes) == 865 and s.label_set == "consep4"
    assert s.meta["codes"] == "merged"


def test_native_tables_would_mislabel_merged_files(merged_root):
    """Read with CoNSeP's native tables, these files raise no error, but every spindle nucleus turns epithelial."""
    merged = _counts(CoNSeP(merged_root, split="test", label_set="consep4", codes="merged"))
    native4 = _counts(CoNSeP(merged_root, split="test", label_set="consep4"))
    assert merged["spindle"] > 0 and native4["spindle"] == 0
    assert native4["epithelial"] == merged["epithelial"] + merged["spindle"]
    native7 = _counts(CoNSeP(merged_root, split="test"))
    assert native7["malignant epithelial"] == merged["spindle"] and "fibroblast" not in native7


def test_merged_codes_only_at_consep4(tmp_path, consep_root):
    root, _, _ = consep_root
    with pytest.raises(ValueError, match="cannot be read from merged codes"):
        CoNSeP(root, label_set="consep", codes="merged")
    with pytest.raises(ValueError, match="codes must be"):
        CoNSeP(root, codes="hovernet")


def test_merged_code_above_4_names_the_file(consep_root):
    from scipy.io import savemat

    root, _, inst = consep_root  # the fixture's train tile carries codes up to 7
    mat = root / "CoNSeP" / "Train" / "Labels" / "train_1.mat"
    savemat(mat, {"inst_map": inst, "inst_type": np.array([[4], [5], [2], [1]])})
    with pytest.raises(DatasetError) as e:
        CoNSeP(root, split="train", label_set="consep4", codes="merged")[0]
    assert str(mat) in str(e.value) and "[5]" in str(e.value)
