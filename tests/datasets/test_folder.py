import json

import numpy as np
import pytest

from stardist_hier.datasets import DatasetError, Folder


@pytest.fixture
def folder(tmp_path, rng, native):
    img = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    lab = np.zeros((12, 12), np.uint16)
    lab[1:4, 1:4] = 5
    lab[6:9, 6:9] = 9
    lab[9:12, 0:3] = 11
    native.png(tmp_path / "images" / "a.png", img)
    native.tif(tmp_path / "labels" / "a.tif", lab)
    return tmp_path, img, lab


def test_root_labels_without_class_file(folder):
    root, img, _ = folder
    s = Folder(root)[0]
    np.testing.assert_array_equal(s.image, img)
    assert s.classes == {1: "nucleus", 2: "nucleus", 3: "nucleus"} and s.label_set == "root"
    assert s.meta["dataset"] == "folder"


def test_json_classes_names_and_codes(folder):
    root, _, _ = folder
    (root / "labels" / "a.json").write_text(json.dumps({"5": "lymphocyte", "9": 2}))
    s = Folder(root, label_set="lizard", dataset="mydata")[0]
    assert s.classes == {1: "lymphocyte", 2: "epithelial", 3: None}
    assert s.meta["n_unlabelled"] == 1 and s.meta["dataset"] == "mydata"


def test_csv_classes_with_ignore_label(folder):
    root, _, _ = folder
    (root / "labels" / "a.csv").write_text("id,class\n5,Epithelial\n9,Ambiguous\n11,4\n")
    s = Folder(root, label_set="monusac")[0]
    assert s.classes == {1: "Epithelial", 2: None, 3: "Macrophage"}


def test_unknown_class_names_the_file(folder):
    root, _, _ = folder
    cf = root / "labels" / "a.json"
    cf.write_text(json.dumps({"5": "goblet"}))
    with pytest.raises(DatasetError) as e:
        Folder(root, label_set="lizard")[0]
    assert str(cf) in str(e.value) and "goblet" in str(e.value)


def test_class_file_required_for_multi_label_sets(folder):
    root, _, _ = folder
    with pytest.raises(FileNotFoundError, match="a.json"):
        Folder(root, label_set="lizard")[0]


def test_ignore_masks(folder, native):
    root, _, _ = folder
    m = np.zeros((12, 12), np.uint8)
    m[0, :] = 255
    native.png(root / "ignore" / "a.png", m)
    s = Folder(root, ignore="ignore")[0]
    assert s.ignore.sum() == 12


def test_bad_labels_name_the_file(folder, native):
    root, _, _ = folder
    native.tif(root / "labels" / "a.tif", np.zeros((5, 5), np.uint16))
    with pytest.raises(DatasetError) as e:
        Folder(root)[0]
    assert str(root / "labels" / "a.tif") in str(e.value)
    native.tif(root / "labels" / "a.tif", np.full((12, 12), 0.5, np.float32))
    with pytest.raises(DatasetError, match="non-integer"):
        Folder(root)[0]


def test_missing_label_image(folder):
    root, _, _ = folder
    (root / "labels" / "a.tif").unlink()
    with pytest.raises(FileNotFoundError) as e:
        Folder(root)
    assert str(root / "images" / "a.png") in str(e.value)


def test_corrupt_image_names_the_file(folder):
    root, _, _ = folder
    (root / "images" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError) as e:
        Folder(root)[0]
    assert str(root / "images" / "a.png") in str(e.value)
