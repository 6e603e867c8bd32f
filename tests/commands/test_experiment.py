"""``stardist-hier experiment``: examples, one-line errors, and a study config recognised as a study
(runs, resume and refusals of experiments: tests/training/test_experiment.py, test_run_folder.py)."""

import pytest

from stardist_hier.cli import main


def test_examples_are_listed_and_printed(capsys):
    assert main(["experiment", "--list-examples"]) == 0
    names = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert {"ablation", "demo", "two_datasets"} <= set(names)
    assert main(["experiment", "--example", "two_datasets"]) == 0
    assert "episodes:" in capsys.readouterr().out


def test_no_config_is_one_line(capsys):
    assert main(["experiment"]) == 2
    assert capsys.readouterr().err.strip() == \
        "stardist-hier experiment: error: give CONFIG.yaml (or --example NAME, --list-examples)"


def test_max_epochs_must_be_positive(capsys):
    with pytest.raises(SystemExit) as e:
        main(["experiment", "x.yaml", "--max-epochs", "0"])
    assert e.value.code == 2
    assert "argument --max-epochs: must be a positive integer, got '0'" in capsys.readouterr().err


def test_a_study_config_is_checked_as_a_study(tmp_path, capsys):
    """``rows`` and ``base`` make a study (is_study_config): --check loads it, --restart is refused."""
    from stardist_hier.examples import example_text

    cfg = tmp_path / "ablation.yaml"
    cfg.write_text(example_text("ablation"))
    assert main(["experiment", str(cfg), "--check"]) == 0
    assert capsys.readouterr().out.startswith("study OK: ")
    assert main(["experiment", str(cfg), "--restart", "--out", str(tmp_path / "run")]) == 2
    assert "--restart and --max-epochs apply to one experiment, not to a study" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
