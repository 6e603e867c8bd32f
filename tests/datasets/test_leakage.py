import warnings

import numpy as np
import pytest

from stardist_hier.datasets import DatasetError, LeakageWarning, Sample, check_leakage, find_leaks, reader_keys
from stardist_hier.datasets.leakage import origins, read_lizard_info, sample_key


@pytest.fixture
def real_info(shared_data):
    return shared_data / "lizard" / "info.csv"


def test_real_info_csv(real_info):
    info = read_lizard_info(real_info)
    assert len(info) == 238
    consep = {k: v for k, v in info.items() if v.dataset == "consep"}
    assert len(consep) == 16
    assert sum(v.source.startswith("test_") for v in consep.values()) == 7
    pannuke = [v for v in info.values() if v.dataset == "pannuke"]
    assert len(pannuke) == 28 and all(v.source is None for v in pannuke)
    assert info["consep_1"].source == "test_14"


def test_leaks_with_real_info(real_info):
    info = read_lizard_info(real_info)
    test_consep = {v.source for v in info.values() if v.dataset == "consep" and v.source.startswith("test_")}
    train = ["lizard/consep_1", "lizard/glas_1", "lizard/pannuke_3", "conic/consep_3-0002", "lizard/consep_2"]
    test = [f"consep/{n}" for n in sorted(test_consep)] + ["consep/test_1", ("pannuke", "fold3_0001")]
    leaks = find_leaks(train, test, info=real_info)
    pairs = {(lk.train, lk.test) for lk in leaks}
    assert pairs == {("lizard/consep_1", "consep/test_14"), ("conic/consep_3-0002", "consep/test_9"),
                     ("lizard/pannuke_3", "pannuke/fold3_0001")}
    with pytest.warns(LeakageWarning) as rec:
        kept = check_leakage(train, test, info=info, drop=True)
    msg = str(rec[0].message)
    for name in ("lizard/consep_1", "consep/test_14", "conic/consep_3-0002", "lizard/pannuke_3"):
        assert name in msg
    assert kept == ["lizard/glas_1", "lizard/consep_2"]
    with pytest.warns(LeakageWarning, match="drop=True"):
        assert check_leakage(train, test, info=info) == train


def test_every_consep_test_image_re_annotated_in_lizard_is_found(real_info):
    info = read_lizard_info(real_info)
    train = [("lizard", n) for n in info]
    test = [("consep", f"test_{i}") for i in range(1, 15)]
    leaking_tests = {lk.test for lk in find_leaks(train, test, info=info)}
    assert len(leaking_tests) == 7


@pytest.fixture
def synthetic_info(tmp_path):
    p = tmp_path / "info.csv"
    p.write_text("Filename,Source,Split\nconsep_1,test_3,1\nconsep_2,train_5,2\npannuke_1,None,3\n"
                 "crag_1,train_9,1\n")
    return p


def test_synthetic_info_and_samples(synthetic_info):
    s_train = Sample(image=np.zeros((1, 1, 3), np.uint8), labels=np.zeros((1, 1), np.int32), classes={},
                     label_set="conic", meta={"dataset": "conic", "name": "consep_1-0007"})
    s_test = Sample(image=np.zeros((1, 1, 3), np.uint8), labels=np.zeros((1, 1), np.int32), classes={},
                    label_set="consep", meta={"dataset": "consep", "name": "test_3"})
    leaks = find_leaks([s_train, "lizard/crag_1"], [s_test, "crag/train_9"], info=synthetic_info)
    assert {(lk.train, lk.test, lk.origin) for lk in leaks} == {
        ("conic/consep_1-0007", "consep/test_3", "consep/test_3"),
        ("lizard/crag_1", "crag/train_9", "crag/train_9")}
    with pytest.warns(LeakageWarning):
        assert check_leakage([s_train], [s_test], info=synthetic_info, drop=True) == []


def test_reverse_direction_and_pannuke_wildcard(synthetic_info):
    # training on PanNuke, testing on Lizard's PanNuke-derived image: flagged conservatively
    leaks = find_leaks(["pannuke/fold1_0000"], ["lizard/pannuke_1"], info=synthetic_info)
    assert len(leaks) == 1 and "not named" in leaks[0].origin
    # Lizard vs CoNIC of the same image
    assert len(find_leaks(["conic/consep_2-0001"], ["lizard/consep_2"], info=synthetic_info)) == 1


def test_no_leak_no_warning(synthetic_info):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_leakage(["lizard/consep_2"], ["consep/test_3"], info=synthetic_info) == ["lizard/consep_2"]


def test_without_info_only_identity():
    assert find_leaks(["consep/test_3", "lizard/consep_1"], ["consep/test_3"]) != []
    assert find_leaks(["lizard/consep_1"], ["consep/test_3"]) == []


def test_reader_keys(lizard_root):
    from stardist_hier.datasets import Lizard

    root, _, _ = lizard_root
    keys = reader_keys(Lizard(root))
    assert keys == [("lizard", "consep_1"), ("lizard", "glas_1")]
    leaks = find_leaks(keys, ["consep/test_14"], info=root / "Lizard_Labels" / "info.csv")
    assert [lk.train for lk in leaks] == ["lizard/consep_1"]


def test_bad_info_names_the_file(tmp_path):
    p = tmp_path / "info.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError) as e:
        read_lizard_info(p)
    assert str(p) in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        read_lizard_info(tmp_path / "absent.csv")
    assert "absent.csv" in str(e.value)


def test_sample_key_forms():
    assert sample_key("consep/test_1") == ("consep", "test_1")
    assert sample_key(("a", "b")) == ("a", "b")
    with pytest.raises(ValueError):
        sample_key("no-slash")
    assert origins(("consep", "x")) == frozenset({("consep", "x")})
