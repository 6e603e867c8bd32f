"""``stardist-hier benchmark``: arguments checked before anything runs (the shipped studies it runs, as
``study_config`` adapts them, are tested in tests/training/test_study.py; a quick run in test_demo.py)."""

import pytest

from stardist_hier.cli import main


def test_repeated_seed_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["benchmark", "--seeds", "1", "1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["stardist-hier benchmark: error: --seeds: each seed once, got 1 1"]
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("argv, message", [
    (["--table", "5"], "argument --table: invalid choice: '5'"),
    (["--seeds", "-1"], "argument --seeds: must be a non-negative integer, got '-1'"),
    (["--epochs", "0"], "argument --epochs: must be a positive integer, got '0'"),
])
def test_bad_arguments_are_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["benchmark", *argv, "--out", str(tmp_path / "b")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "b").exists()
