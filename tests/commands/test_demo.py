"""The README's main job, in its quick form: generate, train through episodes, evaluate, write outputs."""

import csv

import pytest

pytest.importorskip("tensorflow")


@pytest.mark.slow
def test_demo_quick_writes_table_and_figures(tmp_path, capsys):
    from stardist_hier.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Pre-train | Eps | Fine-tune | Eps | Test | PQ | mPQ+ |" in printed
    assert "SMOKE TEST (--quick)" in printed and (out / "results.md").read_text().startswith("**SMOKE TEST")
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["episodes"] for r in rows] == ["consep:1", "consep:2", "pannuke:1 -> consep:1"]
    for r in rows:
        assert 0.0 <= float(r["pq_mean"]) <= 1.0
    assert (out / "loss_curves_seed0.png").stat().st_size > 1000
    assert len(list(out.glob("overlay_row*_seed0.png"))) == 3


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    from stardist_hier.cli import main

    with pytest.raises(SystemExit) as e:
        main(["demo", "--epochs", "0", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --epochs: must be a positive integer, got '0'" in err[0]
    assert not (tmp_path / "x").exists()
