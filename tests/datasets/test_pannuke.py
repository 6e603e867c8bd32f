import numpy as np
import pytest

from stardist_hier import default_taxonomy
from stardist_hier.datasets import DatasetError, PanNuke
from stardist_hier.datasets.pannuke import PANNUKE_CLASSES, fold_paths


def test_fixture_is_native_float64(pannuke_root):
    root, _, _ = pannuke_root
    p = fold_paths(root, 1)
    assert np.load(p["images"], mmap_mode="r").dtype == np.float64
    assert np.load(p["masks"], mmap_mode="r").dtype == np.float64


def test_reads_all_folds_lazily(pannuke_root):
    root, _, _ = pannuke_root
    ds = PanNuke(root)
    assert len(ds) == 3
    assert ds.names() == ("fold1_0000", "fold1_0001", "fold2_0000")
    assert len(PanNuke(root, split="fold2")) == 1
    assert len(PanNuke(root, split=1)) == 2


def test_patch_with_defects(pannuke_root):
    root, imgs, _ = pannuke_root
    s = PanNuke(root)[0]
    assert s.image.dtype == np.uint8 and s.image.shape == (64, 64, 3)
    np.testing.assert_array_equal(s.image, imgs[0].astype(np.uint8))
    assert s.labels.dtype == np.int32
    # ids relabelled 1..5 in channel order; channel 5 is never an instance
    assert sorted(np.unique(s.labels)) == [0, 1, 2, 3, 4, 5]
    assert s.classes == {1: "Neoplastic", 2: "Inflammatory", 3: "Connective", 4: "Dead",
                         5: "Non-neoplastic epithelial"}
    # overlap pixel (14, 14) goes to the first channel (Neoplastic)
    assert s.labels[14, 14] == 1
    assert np.sum(s.labels == 1) == 100 and np.sum(s.labels == 4) == 35
    # two-component id: largest component kept, fragment -> background + ignore
    assert np.sum(s.labels == 5) == 100
    assert np.all(s.labels[55:58, 55:58] == 0) and np.all(s.ignore[55:58, 55:58])
    # void pixels -> ignore
    assert np.all(s.ignore[60:64, 0:4])
    assert s.ignore.sum() == 9 + 16
    assert s.meta["n_overlap_pixels"] == 1
    assert s.meta["n_split_ids"] == 1
    assert s.meta["n_void_pixels"] == 16
    assert s.meta["tissue"] == "Breast" and s.meta["fold"] == 1 and s.meta["split"] == "fold1"
    assert s.meta["dataset"] == "pannuke" and s.meta["mpp"] == 0.25
    assert s.label_set == "pannuke"


def test_split_components_option(pannuke_root):
    root, _, _ = pannuke_root
    s = PanNuke(root, components="split")[0]
    assert len(s.classes) == 6
    assert list(s.classes.values()).count("Non-neoplastic epithelial") == 2
    assert not s.ignore[55:58, 55:58].any()
    assert s.meta["n_split_ids"] == 1


def test_void_as_background(pannuke_root):
    root, _, _ = pannuke_root
    s = PanNuke(root, void="background")[0]
    assert not s.ignore[60:64, 0:4].any()


def test_empty_patch_and_other_fold(pannuke_root):
    root, _, _ = pannuke_root
    ds = PanNuke(root)
    s = ds[1]
    assert s.classes == {} and s.labels.max() == 0
    s = ds[-1]
    assert s.classes == {1: "Inflammatory"} and s.meta["tissue"] == "Liver" and s.meta["fold"] == 2
    assert np.sum(s.labels == 1) == 64


def test_class_names_belong_to_label_set():
    ls = default_taxonomy()["pannuke"]
    for name in PANNUKE_CLASSES:
        assert ls.resolve(name) == name


def test_missing_fold_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="Fold"):
        PanNuke(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        PanNuke(tmp_path, split=3)
    assert str(fold_paths(tmp_path, 3)["images"]) in str(e.value)
    with pytest.raises(FileNotFoundError, match="PanNuke folder"):
        PanNuke(tmp_path / "absent")


def test_wrong_shapes_name_the_file(tmp_path, native):
    imgs = np.zeros((2, 8, 8, 3))
    native.pannuke_fold(tmp_path, 1, imgs, np.zeros((2, 8, 8, 5)), ["a", "b"])
    with pytest.raises(DatasetError) as e:
        PanNuke(tmp_path)
    assert str(fold_paths(tmp_path, 1)["masks"]) in str(e.value)
    native.pannuke_fold(tmp_path, 1, imgs, np.zeros((2, 8, 8, 6)), ["a"])
    with pytest.raises(DatasetError) as e:
        PanNuke(tmp_path)
    assert str(fold_paths(tmp_path, 1)["types"]) in str(e.value)


def test_wrong_dtype_names_the_file(tmp_path, native):
    imgs = np.zeros((1, 8, 8, 3), dtype="<U1")
    native.pannuke_fold(tmp_path, 1, imgs, np.zeros((1, 8, 8, 6)), ["a"])
    with pytest.raises(DatasetError) as e:
        PanNuke(tmp_path)
    assert str(fold_paths(tmp_path, 1)["images"]) in str(e.value)


def test_non_integer_ids_name_the_file(tmp_path, native):
    masks = np.zeros((1, 8, 8, 6))
    masks[0, 0, 0, 0] = 1.5
    native.pannuke_fold(tmp_path, 1, np.zeros((1, 8, 8, 3)), masks, ["a"])
    with pytest.raises(DatasetError) as e:
        PanNuke(tmp_path)[0]
    assert str(fold_paths(tmp_path, 1)["masks"]) in str(e.value)


def test_bad_options():
    with pytest.raises(ValueError):
        PanNuke(".", label_set="consep")
    with pytest.raises(ValueError):
        PanNuke(".", components="merge")
