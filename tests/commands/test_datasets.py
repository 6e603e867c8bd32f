"""``stardist-hier datasets list/verify/info`` end to end."""

import json
import subprocess
import sys

from stardist_hier.cli import main


def test_list(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("pannuke", "consep", "monusac", "lizard", "conic", "nucls", "monuseg", "dsb2018", "folder"):
        assert f"\n{name}  [" in "\n" + out
    assert "spindle -> fibroblast + muscle + endothelial" in out
    assert "Neoplastic -> epithelial_tumor" in out
    assert "Ambiguous -> ignore" in out


def test_list_json(capsys):
    assert main(["datasets", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by = {r["name"]: r for r in rows}
    assert by["nucls"]["label_sets"]["nucls2"]["Tumor"] == ["epithelial_tumor"]
    assert by["monuseg"]["label_sets"]["monuseg"] == {"nucleus": ["nucleus"]}


def test_info(capsys):
    assert main(["datasets", "info", "pannuke"]) == 0
    out = capsys.readouterr().out
    assert "https://" in out and "Fold N" in out and "CC BY-NC-SA" in out


def test_unknown_dataset(capsys):
    assert main(["datasets", "info", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_verify_synthetic_pannuke(pannuke_root, capsys):
    root, _, _ = pannuke_root
    assert main(["datasets", "verify", "pannuke", str(root), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 3 and r["nuclei"] == 6
    assert r["per_class"] == {"Neoplastic": 1, "Inflammatory": 2, "Connective": 1, "Dead": 1,
                              "Non-neoplastic epithelial": 1}
    assert r["counters"]["n_overlap_pixels"] == 1 and r["ignore_pixels"] == 25


def test_verify_real_nucls(shared_data, capsys):
    assert main(["datasets", "verify", "nucls", str(shared_data / "nucls"), "--label-set", "nucls4"]) == 0
    out = capsys.readouterr().out
    assert "images: 15" in out and "sTIL" in out and "-> lymphocyte + plasma_cell" in out
    assert main(["datasets", "verify", "nucls", str(shared_data / "nucls"), "--split", "test", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 5 and r["label_set"] == "nucls2"


def test_verify_consep4_and_limit(consep_root, capsys):
    root, _, _ = consep_root
    assert main(["datasets", "verify", "consep", str(root), "--label-set", "consep4", "--limit", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 1 and r["per_class"] == {"epithelial": 1, "spindle": 2, "inflammatory": 1}


def test_verify_errors_name_the_path(tmp_path, capsys):
    assert main(["datasets", "verify", "pannuke", str(tmp_path / "absent")]) == 2
    assert str(tmp_path / "absent") in capsys.readouterr().err
    assert main(["datasets", "verify", "consep", str(tmp_path), "--label-set", "lizard"]) == 2
    assert "no label set 'lizard'" in capsys.readouterr().err
    assert main(["datasets", "verify", "nuinsseg", str(tmp_path)]) == 2
    assert "no reader yet" in capsys.readouterr().err


def test_verify_broken_xml(tmp_path, capsys, native, rng):
    import numpy as np

    native.tif(tmp_path / "a.tif", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "a.xml").write_text("<Annotations")
    assert main(["datasets", "verify", "monuseg", str(tmp_path)]) == 2
    assert str(tmp_path / "a.xml") in capsys.readouterr().err


def test_cli_subprocess():
    r = subprocess.run([sys.executable, "-m", "stardist_hier.cli", "datasets", "list"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "pannuke" in r.stdout
