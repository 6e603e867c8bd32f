"""``stardist-hier harmonise`` end to end: registry datasets in, a table and a harmonised training set out."""

import csv
import json

import numpy as np
import pytest

from stardist_hier.cli import main


def _write_folder_dataset(root, samples):
    """Synthetic samples in the ``folder`` reader's layout, classes as label names (label set of the samples)."""
    import imageio.v3 as iio
    import tifffile

    for sub in ("images", "labels", "ignore"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(samples):
        iio.imwrite(root / "images" / f"t{i}.png", s.image)
        tifffile.imwrite(root / "labels" / f"t{i}.tif", s.labels.astype(np.int32))
        (root / "labels" / f"t{i}.json").write_text(json.dumps({str(k): v for k, v in s.classes.items()
                                                               if v is not None}))
        if s.ignore is not None and s.ignore.any():
            iio.imwrite(root / "ignore" / f"t{i}.png", (s.ignore * 255).astype(np.uint8))


def test_harmonise_command(tmp_path, capsys):
    from stardist_hier.datasets.harmonise import read_harmonised
    from stardist_hier.synthetic import generate_dataset

    samples = generate_dataset("consep", 2, seed=5, size=96)
    _write_folder_dataset(tmp_path / "c", samples)
    out = tmp_path / "out"
    rc = main(["harmonise", "--dataset", "folder", str(tmp_path / "c"), "label_set=consep", "split=train",
               "--label-sets", "consep4", "monusac", "--export", "nucls4", "--unknown", "drop",
               "--format", "csv", "parquet", "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "| consep4 | 0 |" in printed and printed.strip().splitlines()[-1].startswith("stardist-hier harmonise: ")
    with open(out / "nuclei.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(s.classes) for s in samples)
    assert {r["dataset"] for r in rows} == {"folder"} and {r["split"] for r in rows} == {"train"}
    assert list(rows[0])[-9:] == ["label_consep4", "provenance_consep4", "prob_consep4", "label_monusac",
                                  "provenance_monusac", "prob_monusac", "label_nucls4", "provenance_nucls4",
                                  "prob_nucls4"]
    for r in rows:  # CoNSeP's 7 classes are finer than consep4, and than nucls4 but for inflammatory: exact
        if r["given_label"]:
            assert r["provenance_consep4"] == "coarsened"
        if r["given_label"] not in ("", "inflammatory"):
            assert (r["provenance_nucls4"], r["prob_nucls4"]) == ("coarsened", "1.0")
        if r["given_label"] == "fibroblast":
            assert (r["label_consep4"], r["label_nucls4"], r["provenance_monusac"]) == \
                ("spindle", "nonTIL_stromal", "outside")
        if r["given_label"] == "inflammatory":  # MoNuSAC and nucls4 split CoNSeP's inflammatory: no model, no guess
            assert (r["label_monusac"], r["provenance_monusac"], r["prob_monusac"]) == ("", "unknown", "")
            assert (r["label_nucls4"], r["provenance_nucls4"]) == ("", "unknown")
    back = read_harmonised(out / "harmonised")
    assert len(back) == 2
    labelled = {(r["image"], int(r["id"])) for r in rows if r["label_nucls4"]}
    assert sum(len(b.classes) for b in back) == len(labelled)
    assert {v for b in back for v in b.classes.values()} <= {"tumor_any", "nonTIL_stromal", "sTIL", "other_nucleus"}


def test_harmonise_command_on_nucls(shared_data, tmp_path, capsys):
    """The shared NuCLS tiles at nucls2, harmonised to nucls4 without a model: Tumor exact, Non-Tumor unknown."""
    root = shared_data / "nucls"
    if not root.is_dir():
        pytest.skip(f"NuCLS tiles not found under {root}")
    out = tmp_path / "o"
    assert main(["harmonise", "--dataset", "nucls", str(root), "label_set=nucls2", "--label-sets", "nucls4",
                 "--export", "nucls4", "--out", str(out), "-q"]) == 0
    with open(out / "nuclei.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["split"] for r in rows} == {"train", "test"}
    for r in rows:
        want = {"Tumor": ("tumor_any", "coarsened"), "Non-Tumor": ("", "unknown"), "": ("", "unknown")}
        assert (r["label_nucls4"], r["provenance_nucls4"]) == want[r["given_label"]]
    back = json.loads((out / "harmonised" / "harmonised.json").read_text())
    assert back["counts"]["labelled"] == sum(r["given_label"] == "Tumor" for r in rows)
    assert back["counts"]["unknown"] == len(rows) - back["counts"]["labelled"]


def test_harmonise_model_by_registered_name(shared_data, tmp_path, capsys):
    """``--model NAME`` takes a registered model (the shipped one) like ``predict --model NAME``:
    the NuCLS test tiles' Non-Tumor nuclei get inferred nucls4 labels, within their given label."""
    root = shared_data / "nucls"
    if not root.is_dir():
        pytest.skip(f"NuCLS tiles not found under {root}")
    out = tmp_path / "o"
    assert main(["harmonise", "--dataset", "nucls", str(root), "label_set=nucls2", "split=test",
                 "--label-sets", "nucls4", "--model", "he_consep_nucls", "--out", str(out), "-q"]) == 0
    with open(out / "nuclei.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["split"] for r in rows} == {"test"}
    inferred = [r for r in rows if r["provenance_nucls4"] == "inferred"]
    assert inferred, "a model was given: Non-Tumor nuclei are inferred, not unknown"
    assert all(r["given_label"] == "Non-Tumor" for r in inferred)
    # constrained to the given coarse label: never the tumour class under Non-Tumor
    assert {r["label_nucls4"] for r in inferred} <= {"nonTIL_stromal", "sTIL", "other_nucleus"}


def test_harmonise_unknown_model_name_is_one_line(shared_data, tmp_path, capsys):
    root = shared_data / "nucls"
    if not root.is_dir():
        pytest.skip(f"NuCLS tiles not found under {root}")
    out = tmp_path / "o"
    rc = main(["harmonise", "--dataset", "nucls", str(root), "--model", "he_consep_nucl",
               "--out", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "--model he_consep_nucl" in err[0] and "he_consep_nucls" in err[0], err
    assert not out.exists()
