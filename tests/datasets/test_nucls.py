"""NuCLS reader on the real sample tiles; expected counts computed here from the raw files."""

import csv
from collections import Counter

import numpy as np
import pytest

from stardist_hier import default_taxonomy
from stardist_hier.datasets import DatasetError, NuCLS

N2 = {1: "Non-Tumor", 2: "Tumor"}
N4 = {0: "tumor_any", 1: "nonTIL_stromal", 2: "sTIL", 3: "other_nucleus"}


def _raw(root, split, name):
    d = np.load(root / "segmentation" / split / "labels" / f"{name}.npy", allow_pickle=True).item()
    with open(root / "detection" / split / "labels" / f"{name}.csv") as f:
        pts = [tuple(int(float(v)) for v in row) for row in csv.reader(f) if row]
    return d["inst_map"], d["type_map"], pts


def _expected_nucls2(inst, types):
    out = Counter()
    for i in set(inst.ravel().tolist()) - {0}:
        votes = Counter(t for t in types[inst == i].tolist() if t != 0).most_common()
        if not votes or (len(votes) > 1 and votes[0][1] == votes[1][1]):
            out[None] += 1
        else:
            out[N2[votes[0][0]]] += 1
    return out


def _expected_nucls4(inst, pts):
    h, w = inst.shape
    per = {i: Counter() for i in set(inst.ravel().tolist()) - {0}}
    outside = 0
    for x, y, c in pts:
        if 0 <= x < w and 0 <= y < h and inst[y, x] > 0:
            per[int(inst[y, x])][c] += 1
        else:
            outside += 1
    out = Counter()
    for votes in per.values():
        mc = votes.most_common()
        if not mc or (len(mc) > 1 and mc[0][1] == mc[1][1]):
            out[None] += 1
        else:
            out[N4[mc[0][0]]] += 1
    return out, outside


@pytest.fixture
def nucls(shared_data):
    return shared_data / "nucls"


def test_both_label_sets_on_real_tiles(nucls):
    ds2 = NuCLS(nucls, label_set="nucls2")
    ds4 = NuCLS(nucls, label_set="nucls4")
    assert len(ds2) == len(ds4) == 15
    assert ds2.names() == ds4.names()
    total2, total4 = Counter(), Counter()
    for s2, s4 in zip(ds2, ds4):
        split, name = s2.meta["split"], s2.meta["name"]
        inst, types, pts = _raw(nucls, split, name)
        n_inst = len(set(inst.ravel().tolist()) - {0})
        # same tiles, same instances in both label sets
        for s in (s2, s4):
            assert s.image.shape == (256, 256, 3) and s.image.dtype == np.uint8
            assert s.labels.dtype == np.int32
            assert len(s.classes) == n_inst == s.labels.max()
            assert set(np.unique(s.labels)) - {0} == set(s.classes)
            np.testing.assert_array_equal(s.labels > 0, inst > 0)
        exp2 = _expected_nucls2(inst, types)
        exp4, outside = _expected_nucls4(inst, pts)
        assert Counter(s2.classes.values()) == exp2, name
        assert Counter(s4.classes.values()) == exp4, name
        assert s4.meta["n_points"] == len(pts)
        assert s4.meta["n_points_outside"] == outside
        total2 += exp2
        total4 += exp4
        assert s2.label_set == "nucls2" and s4.label_set == "nucls4"
        assert s2.meta["tissue"] == "breast"
    assert sum(total2.values()) == sum(total4.values()) > 0
    # most points fall inside instances, as documented for the sample
    assert total4[None] < sum(total4.values()) / 2


def test_split_selection(nucls):
    assert len(NuCLS(nucls, split="test")) == 5
    assert NuCLS(nucls, split="train").names()[:3] == ("train_1", "train_2", "train_3")


def test_class_names_belong_to_label_sets(nucls):
    tax = default_taxonomy()
    for ls in ("nucls2", "nucls4"):
        for s in NuCLS(nucls, label_set=ls, split="test"):
            for v in s.classes.values():
                if v is not None:
                    assert tax[ls].resolve(v) == v


def _copy(nucls, tmp_path, names=("test_1",)):
    import shutil

    root = tmp_path / "nucls"
    for kind in ("segmentation", "detection"):
        (root / kind).mkdir(parents=True)
        shutil.copy(nucls / kind / "label_map.yaml", root / kind)
    for n in names:
        for sub in ("images", "labels"):
            (root / "segmentation" / "test" / sub).mkdir(parents=True, exist_ok=True)
        (root / "detection" / "test" / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copy(nucls / "segmentation" / "test" / "images" / f"{n}.png", root / "segmentation" / "test" / "images")
        shutil.copy(nucls / "segmentation" / "test" / "labels" / f"{n}.npy", root / "segmentation" / "test" / "labels")
        shutil.copy(nucls / "detection" / "test" / "labels" / f"{n}.csv", root / "detection" / "test" / "labels")
    return root


def test_point_rules_on_synthetic_points(nucls, tmp_path):
    root = _copy(nucls, tmp_path)
    inst = np.load(root / "segmentation/test/labels/test_1.npy", allow_pickle=True).item()["inst_map"]
    ids = sorted(set(inst.ravel().tolist()) - {0})
    ys, xs = zip(*[np.argwhere(inst == i)[0] for i in ids[:3]])
    bg = np.argwhere(inst == 0)[0]
    rows = [(xs[0], ys[0], 2), (xs[0], ys[0], 2), (xs[0], ys[0], 1),  # majority sTIL
            (xs[1], ys[1], 0), (xs[1], ys[1], 3),                      # tie -> None
            (xs[2], ys[2], 0),                                         # class 0 = tumor_any counts
            (300, 5, 1), (-1, 0, 1),                                   # outside the image
            (bg[1], bg[0], 2)]                                         # on background
    (root / "detection/test/labels/test_1.csv").write_text("".join(f"{x},{y},{c}\n" for x, y, c in rows))
    s = NuCLS(root, label_set="nucls4")[0]
    assert s.classes[1] == "sTIL" and s.classes[2] is None and s.classes[3] == "tumor_any"
    assert all(v is None for k, v in s.classes.items() if k > 3)
    assert s.meta["n_points_outside"] == 3 and s.meta["n_ties"] == 1
    assert s.meta["n_unlabelled"] == len(ids) - 3


def test_unknown_point_class_names_file(nucls, tmp_path):
    root = _copy(nucls, tmp_path)
    csvp = root / "detection/test/labels/test_1.csv"
    csvp.write_text("10,10,7\n")
    with pytest.raises(DatasetError) as e:
        NuCLS(root, label_set="nucls4")[0]
    assert str(csvp) in str(e.value)


def test_unknown_label_map_name_names_file(nucls, tmp_path):
    root = _copy(nucls, tmp_path)
    lm = root / "segmentation" / "label_map.yaml"
    lm.write_text('1: "Benign"\n2: "Tumor"\n')
    with pytest.raises(DatasetError) as e:
        NuCLS(root)
    assert str(lm) in str(e.value)


def test_bad_label_pickle_names_file(nucls, tmp_path):
    root = _copy(nucls, tmp_path)
    lp = root / "segmentation/test/labels/test_1.npy"
    np.save(lp, np.zeros((256, 256)))
    with pytest.raises(DatasetError) as e:
        NuCLS(root)[0]
    assert str(lp) in str(e.value)


def test_missing_points_file(nucls, tmp_path):
    root = _copy(nucls, tmp_path)
    csvp = root / "detection/test/labels/test_1.csv"
    csvp.unlink()
    assert len(NuCLS(root, label_set="nucls2")) == 1
    with pytest.raises(FileNotFoundError) as e:
        NuCLS(root, label_set="nucls4")
    assert str(csvp) in str(e.value)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        NuCLS(tmp_path)
    assert str(tmp_path / "segmentation") in str(e.value)


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: the code a crafted label file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("where", ["inst_map", "top"])
def test_crafted_pickle_is_never_executed(nucls, tmp_path, capsys, where):
    from stardist_hier.cli import main

    root = _copy(nucls, tmp_path)
    lp = root / "segmentation/test/labels/test_1.npy"
    marker = tmp_path / "marker"
    d = np.load(lp, allow_pickle=True).item()  # the real file (trusted): keep its other content
    payload = _Payload(marker)
    if where == "inst_map":
        d["inst_map"] = payload
        obj = np.empty((), dtype=object)
        obj[()] = d
    else:
        obj = np.empty((), dtype=object)
        obj[()] = payload
    np.save(lp, obj, allow_pickle=True)
    with pytest.raises(DatasetError) as e:
        NuCLS(root)[0]
    assert str(lp) in str(e.value) and "mkdir" in str(e.value)  # names the file and what it asked to run
    assert not marker.exists()
    assert main(["datasets", "verify", "nucls", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(lp) in err[0] and "Traceback" not in err[0]
    assert not marker.exists()


def test_plain_array_labels_load_without_pickle(nucls, tmp_path):
    root = _copy(nucls, tmp_path)
    lp = root / "segmentation/test/labels/test_1.npy"
    ref = NuCLS(root)[0]
    d = np.load(lp, allow_pickle=True).item()
    np.save(lp, np.stack([d["inst_map"], d["type_map"]]).astype(np.int32))  # converted: no pickle
    s = NuCLS(root)[0]
    np.testing.assert_array_equal(s.labels, ref.labels)
    assert s.classes == ref.classes
