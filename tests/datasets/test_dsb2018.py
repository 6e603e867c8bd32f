import numpy as np
import pytest

from stardist_hier.datasets import DSB2018, DatasetError


@pytest.fixture
def kaggle_root(tmp_path, rng, native):
    root = tmp_path / "dsb"
    case = root / "stage1_train" / "abc123"
    rgba = rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)
    native.png(case / "images" / "abc123.png", rgba)
    m1 = np.zeros((20, 20), np.uint8)
    m1[2:8, 2:8] = 255
    m2 = np.zeros((20, 20), np.uint8)
    m2[6:12, 6:12] = 255  # overlaps m1 on [6:8, 6:8]
    native.png(case / "masks" / "m1.png", m1)
    native.png(case / "masks" / "m2.png", m2)
    native.png(case / "masks" / "m3.png", np.zeros((20, 20), np.uint8))  # empty mask
    return root, rgba


def test_kaggle_layout(kaggle_root):
    root, rgba = kaggle_root
    for r in (root, root / "stage1_train"):
        ds = DSB2018(r)
        assert ds.names() == ("abc123",)
        s = ds[0]
        np.testing.assert_array_equal(s.image, rgba[..., :3])
        assert s.classes == {1: "nucleus", 2: "nucleus"}
        assert np.sum(s.labels == 1) == 36 and np.sum(s.labels == 2) == 36 - 4  # first mask keeps overlap
        assert s.meta["n_empty_masks"] == 1 and s.meta["split"] == "train" and s.label_set == "dsb2018"
    assert len(DSB2018(root, split="train")) == 1
    with pytest.raises(FileNotFoundError, match="no samples"):
        DSB2018(root, split="test")


def test_kaggle_mask_shape_mismatch(kaggle_root, native):
    root, _ = kaggle_root
    bad = root / "stage1_train" / "abc123" / "masks" / "m4.png"
    native.png(bad, np.ones((5, 5), np.uint8) * 255)
    with pytest.raises(DatasetError) as e:
        DSB2018(root)[0]
    assert str(bad) in str(e.value)


def test_stardist_layout(tmp_path, rng, native):
    img = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    lab = np.zeros((16, 16), np.uint16)
    lab[1:5, 1:5] = 7
    lab[8:12, 8:12] = 300
    for split in ("train", "test"):
        native.tif(tmp_path / split / "images" / "a.tif", img)
        native.tif(tmp_path / split / "masks" / "a.tif", lab)
    ds = DSB2018(tmp_path)
    assert len(ds) == 2
    s = DSB2018(tmp_path, split="test")[0]
    assert s.image.shape == (16, 16, 3) and np.all(s.image[..., 0] == img)
    assert s.classes == {1: "nucleus", 2: "nucleus"} and s.labels.max() == 2


def test_missing_masks(tmp_path, rng, native):
    native.tif(tmp_path / "train" / "images" / "a.tif", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    (tmp_path / "train" / "masks").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        DSB2018(tmp_path)
    assert str(tmp_path / "train" / "masks" / "a.tif") in str(e.value)
    with pytest.raises(FileNotFoundError, match="neither"):
        DSB2018(tmp_path / "train" / "masks")
