"""The run folder's guards: one run at a time (lock), a finished run never changed by another config,
--restart moves the old run aside, Ctrl-C leaves the folder consistent.

One tiny experiment (two 1-epoch episodes, a few seconds of training) runs in a subprocess
for the whole module; a second run started while it holds the lock is refused.
"""

import copy
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stardist_hier.cli import main
from stardist_hier.errors import RunFolderError
from stardist_hier.training.experiment.runfolder import (RunLock, check_run_folder, config_differences,
                                                          move_run_aside)

sys.path.insert(0, str(Path(__file__).parent))
from test_experiment import BASE  # noqa: E402

TINY = copy.deepcopy(BASE)
TINY["training"]["steps_per_epoch"] = 3
TINY["episodes"] = [{"name": "pre", "datasets": "P", "epochs": 1}, {"name": "fine", "datasets": "C", "epochs": 1}]
TINY["evaluation"] = {"overlays": 0}


def snapshot(folder) -> dict:
    """``{relative path: sha256 of the bytes}`` of every file under ``folder`` (folders as ``/``)."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(Path(__file__).resolve().parents[2]))


def _cli(*args):
    return [sys.executable, "-m", "stardist_hier.cli", *map(str, args)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run; while it ran, a second run into the same folder was refused."""
    d = tmp_path_factory.mktemp("runfolder")
    cfg = d / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = d / "run"
    a = subprocess.Popen(_cli("experiment", cfg, "--out", out, "-q"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    try:
        t0 = time.time()
        while not (out / ".lock.info").is_file():
            assert a.poll() is None, f"first run ended early: {a.communicate()}"
            assert time.time() - t0 < 300, "first run never took the lock"
            time.sleep(0.1)
        b = subprocess.run(_cli("experiment", cfg, "--out", out, "-q"), capture_output=True, text=True,
                           env=_env(), timeout=300)
        a_out, a_err = a.communicate(timeout=600)
    finally:
        if a.poll() is None:
            a.kill()
    return {"cfg": cfg, "out": out, "a": (a.returncode, a_out, a_err, a.pid), "b": b}


@pytest.mark.slow
def test_second_run_is_refused_naming_the_holder(finished_run):
    b = finished_run["b"]
    rc_a, _, err_a, pid_a = finished_run["a"]
    assert b.returncode == 2, b.stderr
    lines = [ln for ln in b.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in b.stderr
    assert "in use by another run" in lines[0] and f"PID {pid_a} " in lines[0] and str(finished_run["out"]) in lines[0]
    # the first run was not disturbed: one complete, consistent run
    assert rc_a == 0, err_a
    out = finished_run["out"]
    hist = json.loads((out / "history.json").read_text())
    assert hist["finished"] and hist["epochs_done"] == 2
    assert yaml.safe_load((out / "config.yaml").read_text()) == TINY
    assert (out / "results.csv").read_text().count("\n") == 1 + len(TINY["tests"])
    assert (out / "model" / "weights_best.h5").is_file()
    names = [p.name for p in out.rglob("*")]
    assert ".lock.info" not in names and not [n for n in names if n.endswith(".tmp")]


@pytest.mark.slow
def test_lock_is_released_after_the_run(finished_run):
    with RunLock(finished_run["out"]):
        pass


@pytest.mark.slow
def test_changed_config_is_refused_and_finished_run_untouched(finished_run, tmp_path, capsys):
    out = finished_run["out"]
    changed = copy.deepcopy(TINY)
    changed["model"]["train_learning_rate"] = 0.01
    changed["episodes"][1]["epochs"] = 2
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(yaml.safe_dump(changed))
    before = snapshot(out)
    assert main(["experiment", str(cfg), "--out", str(out), "-q"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "Traceback" not in err[0]
    assert str(out) in err[0] and "finished run" in err[0]
    assert "model.train_learning_rate" in err[0] and "episodes[1].epochs" in err[0]
    assert snapshot(out) == before
    # the finished model still loads and predicts
    import numpy as np

    from stardist_hier import StarDist2DHier

    model = StarDist2DHier(None, name="model", basedir=str(out))
    labels, res = model.predict_instances(np.zeros((64, 64, 3), np.float32))
    assert labels.shape == (64, 64)
    assert snapshot(out) == before


@pytest.mark.slow
def test_restart_moves_the_finished_run_aside(finished_run, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run["out"], out)
    before = {k: v for k, v in snapshot(out).items() if k != ".lock"}
    changed = copy.deepcopy(TINY)
    changed["seed"] = 1
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(yaml.safe_dump(changed))
    assert main(["experiment", str(cfg), "--out", str(out), "--restart", "-q"]) == 0
    olds = list(tmp_path.glob("run.old-*"))
    assert len(olds) == 1 and f"moved to {olds[0]}" in capsys.readouterr().err
    assert snapshot(olds[0]) == before  # the old run, whole and unchanged
    assert yaml.safe_load((out / "config.yaml").read_text()) == changed
    assert json.loads((out / "history.json").read_text())["finished"]


def test_interrupted_run_leaves_folder_consistent(tmp_path, monkeypatch, capsys):
    from stardist_hier.training import callback

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(callback, "train_episodes", interrupted)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["experiment", str(cfg), "--out", str(out), "-q"]) == 130
    assert "interrupted; rerun to resume" in capsys.readouterr().err
    names = [p.name for p in out.rglob("*")]
    assert ".lock.info" not in names and not [n for n in names if n.endswith(".tmp")]
    with RunLock(out):  # released
        pass
    assert yaml.safe_load((out / "config.yaml").read_text()) == TINY


# ------------------------------------------------------------- without training
def test_lock_refuses_second_holder_with_pid_host_time(tmp_path):
    out = tmp_path / "run"
    with RunLock(out):
        info = json.loads((out / ".lock.info").read_text())
        assert info["pid"] == os.getpid() and info["host"] and info["started"]
        with pytest.raises(RunFolderError, match=f"in use by another run \\(PID {os.getpid()} on host "):
            RunLock(out).acquire()
    assert not (out / ".lock.info").exists()
    with RunLock(out):
        pass


def test_lock_refuses_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        RunLock(f).acquire()
    assert f.read_text() == "x"


def test_config_differences_name_keys():
    a = {"model": {"n_rays": 8, "grid": [2, 2]}, "episodes": [{"name": "x", "epochs": 1}], "out": "a"}
    b = {"model": {"n_rays": 16, "grid": [2, 2]}, "episodes": [{"name": "x", "epochs": 2}], "out": "b",
         "seed": 1}
    assert config_differences(a, b) == ["episodes[0].epochs", "model.n_rays", "seed"]
    assert config_differences(a, dict(a, out="elsewhere")) == []


def test_check_and_restart_move_the_old_run_aside(tmp_path):
    out = tmp_path / "run"
    assert check_run_folder(out, TINY) == "new"
    out.mkdir()
    (out / "other.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not empty and holds no run"):
        check_run_folder(out, TINY)
    (out / "other.txt").unlink()
    (out / "config.yaml").write_text(yaml.safe_dump(TINY))
    (out / "model").mkdir()
    (out / "model" / "weights_best.h5").write_bytes(b"w")
    (out / "history.json").write_text('{"finished": true}')
    assert check_run_folder(out, copy.deepcopy(TINY)) == "same"
    changed = dict(copy.deepcopy(TINY), seed=3)
    with pytest.raises(RunFolderError, match=r"finished run with another config \(keys that differ: seed\)"):
        check_run_folder(out, changed)
    before = snapshot(out)
    assert check_run_folder(out, changed, restart=True) == "restart"
    with RunLock(out):
        old = move_run_aside(out)
        assert sorted(p.name for p in out.iterdir()) == [".lock", ".lock.info"]
    assert old.parent == out.parent and old.name.startswith("run.old-")
    assert snapshot(old) == before
