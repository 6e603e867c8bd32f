import csv
import json

import numpy as np
import pytest
import tifffile

from stardist_hier.cli import main
from stardist_hier.tree import default_taxonomy

from tests.metrics.test_conventions import block

TAX = default_taxonomy()


def leaf_probs(leaf, p=0.9):
    """Leaf probabilities (background first) with ``p`` on ``leaf``."""
    v = np.full(TAX.tree.n_classes + 1, (1 - p) / TAX.tree.n_classes)
    v[TAX.tree.leaf_index(leaf)] = p
    return v.tolist()


def write_dataset(root):
    """Two images; image a is predicted perfectly, image b misses one nucleus and adds one."""
    gt, pred = root / "gt", root / "pred"
    gt.mkdir()
    pred.mkdir()
    a = block((32, 32), (1, 0, 8, 0, 8), (2, 10, 18, 10, 18), (3, 20, 28, 0, 8))
    np.save(gt / "a.npy", a.astype(np.uint16))
    tifffile.imwrite(pred / "a.tif", (a * 10).astype(np.uint16))
    (gt / "a.json").write_text(json.dumps({"1": "Neoplastic", "2": "Inflammatory", "3": None}))
    (pred / "a.json").write_text(json.dumps({"10": leaf_probs("epithelial_tumor"), "20": leaf_probs("lymphocyte"),
                                             "30": leaf_probs("fibroblast")}))
    b_gt = block((32, 32), (4, 0, 8, 0, 8), (5, 20, 28, 20, 28))
    b_pred = block((32, 32), (4, 0, 8, 0, 8), (9, 12, 16, 12, 16))
    np.save(gt / "b.npy", b_gt.astype(np.int32))
    np.save(pred / "b.npy", b_pred.astype(np.int32))
    (gt / "b.json").write_text(json.dumps({"4": "Connective", "5": "Connective"}))
    (pred / "b.json").write_text(json.dumps({"4": leaf_probs("muscle"), "9": "Dead"}))
    return gt, pred


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_end_to_end(tmp_path, capsys):
    gt, pred = write_dataset(tmp_path)
    out = tmp_path / "out"
    rc = main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--label-set", "pannuke",
               "--levels"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["detection.csv", "per_image.csv", "pq_per_class.png",
                                                     "summary.csv", "summary.md"]
    rows = read_csv(out / "summary.csv")
    binary = {r["convention"]: r for r in rows if r["kind"] == "binary"}
    # a: 2 TP (nucleus 3 is an ignore region, and so is its prediction); b: 1 TP, 1 FP, 1 FN
    assert (binary["hovernet"]["tp"], binary["hovernet"]["fp"], binary["hovernet"]["fn"]) == ("3", "1", "1")
    assert float(binary["hovernet"]["pq"]) == pytest.approx((1 + 1 / 2) / 2)
    assert float(binary["stardist"]["pq"]) == pytest.approx(3 / 4)
    conic = {r["label"]: r for r in rows if r["convention"] == "conic" and r["label_set"] == "pannuke"}
    assert float(conic["Neoplastic"]["pq"]) == pytest.approx(1.0, abs=1e-5)
    assert (conic["Connective"]["tp"], conic["Connective"]["fn"]) == ("1", "1")
    assert (conic["Dead"]["tp"], conic["Dead"]["fp"]) == ("0", "1")
    levels = {r["label_set"] for r in rows}
    assert {"pannuke", "depth 0", "depth 1", "depth 2"} <= levels
    per_image = read_csv(out / "per_image.csv")
    assert [r["image"] for r in per_image] == ["a", "b"]
    assert float(per_image[0]["pq"]) == 1.0 and float(per_image[1]["aji"]) == pytest.approx(64 / (64 + 16 + 64))
    det = {r["metric"] + r["label"]: r["value"] for r in read_csv(out / "detection.csv")}
    assert float(det["detection F1"]) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert (out / "pq_per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "summary.md").read_text()
    assert "| conic | pannuke |  | mean | mPQ+ |" in md
    assert "depth 2: not scored" in md


def test_evaluate_binary_only(tmp_path):
    gt, pred = write_dataset(tmp_path)
    for p in list(gt.glob("*.json")) + list(pred.glob("*.json")):
        p.unlink()
    out = tmp_path / "out"
    assert main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(out),
                 "--convention", "conic", "stardist"]) == 0
    rows = read_csv(out / "summary.csv")
    assert [(r["convention"], r["kind"]) for r in rows] == [("conic", "binary"), ("stardist", "binary")]
    # without class files nucleus 3 is scored too: image a has 3 TP
    assert rows[1]["tp"] == "4"


def _break(kind, gt, pred):
    if kind == "no partner":
        np.save(pred / "c.npy", np.zeros((32, 32), np.int32))
        return "prediction .*c.npy has no ground-truth partner c"
    if kind == "shape":
        np.save(pred / "b.npy", np.zeros((32, 31), np.int32))
        return r"shape mismatch: .*b.npy has shape \(32, 32\), .*b.npy has shape \(32, 31\)"
    if kind == "negative":
        np.save(gt / "b.npy", -np.ones((32, 32), np.int32))
        return r"gt/b.npy: negative labels"
    if kind == "float":
        np.save(pred / "b.npy", np.full((32, 32), 0.5))
        return r"pred/b.npy: float label image holds non-integer values"
    if kind == "missing class file":
        (gt / "b.json").unlink()
        return r"has class files for some images but not for b"
    if kind == "bad vector":
        (pred / "a.json").write_text(json.dumps({"10": [0.5, 0.5], "20": [1], "30": [1]}))
        return r"pred/a.json: pred_probs: instance 10: 2 leaf probabilities, expected n_classes \+ 1 = 14"
    if kind == "missing folder":
        for p in pred.iterdir():
            p.unlink()
        pred.rmdir()
        return "prediction folder not found"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["no partner", "shape", "negative", "float", "missing class file", "bad vector",
                                  "missing folder"])
def test_bad_input_writes_nothing(tmp_path, capsys, kind):
    gt, pred = write_dataset(tmp_path)
    message = _break(kind, gt, pred)
    out = tmp_path / "out"
    rc = main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(out), "--label-set", "pannuke"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("stardist-hier evaluate: error: ")
    import re

    assert re.search(message, err), err
    assert not out.exists()


def test_class_files_need_a_label_set(tmp_path, capsys):
    gt, pred = write_dataset(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    assert main(["evaluate", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 2
    assert "pass --label-set NAME" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["old.txt"]
