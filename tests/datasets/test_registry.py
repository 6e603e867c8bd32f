import pytest

from stardist_hier import default_taxonomy
from stardist_hier.datasets import DATASETS, Reader, available_datasets, get_dataset, open_dataset


def test_entries_resolve_and_label_sets_exist():
    tax = default_taxonomy()
    for name in available_datasets():
        d = get_dataset(name)
        assert d.name == name and d.description and d.download and d.label_sets
        for ls in d.label_sets:
            assert ls == "root" or ls in tax, (name, ls)
        if d.reader is not None:
            cls = d.reader_class()
            assert issubclass(cls, Reader) and cls.dataset == name
        if name != "folder":
            assert d.url.startswith("https://")


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        DATASETS["x"] = None


def test_lookup_errors():
    with pytest.raises(KeyError, match="known: pannuke"):
        get_dataset("pan nuke")
    assert get_dataset(" PanNuke ").name == "pannuke"
    with pytest.raises(NotImplementedError, match="folder"):
        get_dataset("nuinsseg").reader_class()


def test_open_dataset(consep_root):
    root, _, _ = consep_root
    ds = open_dataset("consep", root, label_set="consep4", split="test")
    assert len(ds) == 1 and ds.label_set == "consep4"
    with pytest.raises(ValueError, match="no label set"):
        open_dataset("consep", root, label_set="nucls2")


def test_folder_accepts_any_label_set(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(FileNotFoundError, match="no samples"):
        open_dataset("folder", tmp_path, label_set="lizard")
