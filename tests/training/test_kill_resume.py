"""A run killed (SIGKILL) after some epochs and resumed ends exactly like the uninterrupted run.

``stardist-hier experiment`` runs in subprocesses (the runner switches on TensorFlow's
op determinism, which is process-wide). The run is killed as soon as its checkpoint
records epoch 1 (so mid-epoch 2, or while writing the checkpoint), resumed, killed
again at epoch 3 (after the switch to the mixed episode), resumed to the end; its
final weights must equal the uninterrupted run's bit for bit, and so must every
epoch's losses. The schedule exercises every random state that crosses a checkpoint:
two datasets mixed with weights and oversampling (mixer), augmentation (augmenter),
StarDist's patch positions (NumPy's global generator), an optimizer reset at the
switch, ReduceLROnPlateau that halves the learning rate every 2nd epoch
(``min_delta`` 1: never an improvement; its counters cross both kills), and dropout
(Keras' seed generators).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow

CONFIG = {
    "name": "kill",
    "seed": 5,
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2,
              "train_reduce_lr": {"factor": 0.5, "patience": 2, "min_delta": 1.0}, "unet_dropout": 0.1},
    "training": {"steps_per_epoch": 3, "tensorboard": False,
                 "augment": {"p_color": 0.8, "p_geometric": 0.5, "p_elastic": 0.2},
                 "oversample": {"threshold": 0.2, "factor": 2.0}},
    "datasets": {
        "P": {"source": "synthetic", "generator": "pannuke", "n_tiles": 6, "size": 96, "seed": 1,
              "split": {"train": 4, "val": 1, "test": 1}},
        "C": {"source": "synthetic", "generator": "consep", "n_tiles": 6, "size": 96, "seed": 2,
              "split": {"train": 4, "val": 1, "test": 1}},
    },
    "episodes": [{"name": "pre", "datasets": "P", "epochs": 2},
                 {"name": "fine", "datasets": {"P": 1, "C": 2}, "epochs": 3, "keep_optimizer_state": False}],
    "tests": [{"name": "C-test", "dataset": "C"}],
    "evaluation": {"overlays": 0},
}
TOTAL_EPOCHS = 5
TIMEOUT = 300


def _cmd(cfg, out):
    # not --quiet: the log must show "resuming after epoch N"
    return [sys.executable, "-m", "stardist_hier.cli", "experiment", str(cfg), "--out", str(out)]


def _env():
    env = dict(os.environ)
    # the package from this checkout, whatever the working directory
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _epochs_done(out):
    for d in (out / "checkpoint", out / "checkpoint.old"):
        try:
            return json.loads((d / "state.json").read_text())["history"]["epochs_done"]
        except (OSError, ValueError, KeyError):
            continue
    return 0


def _run(cfg, out, log):
    with open(log, "ab") as f:
        p = subprocess.run(_cmd(cfg, out), stdout=f, stderr=subprocess.STDOUT, env=_env(), timeout=TIMEOUT)
    assert p.returncode == 0, Path(log).read_text()[-3000:]


def _run_and_kill(cfg, out, log, after_epoch):
    """Start (or resume) the run and SIGKILL it once its checkpoint holds ``after_epoch`` epochs."""
    with open(log, "ab") as f:
        p = subprocess.Popen(_cmd(cfg, out), stdout=f, stderr=subprocess.STDOUT, env=_env())
        t0 = time.monotonic()
        try:
            while _epochs_done(out) < after_epoch:
                if p.poll() is not None:
                    pytest.fail(f"the run ended (rc {p.returncode}) before epoch {after_epoch}:\n"
                                + Path(log).read_text()[-3000:])
                if time.monotonic() - t0 > TIMEOUT:
                    pytest.fail(f"no checkpoint of epoch {after_epoch} after {TIMEOUT} s")
                time.sleep(0.05)
            p.send_signal(signal.SIGKILL)
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = _epochs_done(out)
    assert after_epoch <= done < TOTAL_EPOCHS
    return done


def _weights(out):
    with np.load(out / "checkpoint" / "weights.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _per_epoch(out):
    h = json.loads((out / "history.json").read_text())
    return {k: [x for e in h["episodes"] for x in e[k]] for k in ("loss", "val_loss", "val_loss_episode")}, h


def _optimizer(out):
    with np.load(out / "checkpoint" / "optimizer.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.parametrize("input_workers", [1, 2])
def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path, input_workers):
    """The uninterrupted run builds its batches in one input thread; the killed and
    resumed one in ``input_workers`` threads (the parallel input gives the same batches)."""
    cfg = tmp_path / "kill.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    cfg_res = tmp_path / "kill_res.yaml"
    cfg_res.write_text(yaml.safe_dump({**CONFIG, "training": {**CONFIG["training"], "input_workers": input_workers}},
                                      sort_keys=False))
    ref, res = tmp_path / "ref", tmp_path / "res"

    _run(cfg, ref, tmp_path / "ref.log")
    first = _run_and_kill(cfg_res, res, tmp_path / "res.log", 1)
    second = _run_and_kill(cfg_res, res, tmp_path / "res.log", max(3, first + 1))
    _run(cfg_res, res, tmp_path / "res.log")
    log = (tmp_path / "res.log").read_text()
    assert f"resuming after epoch {first}" in log and f"resuming after epoch {second}" in log, log[-3000:]

    (a, ha), (b, hb) = _per_epoch(ref), _per_epoch(res)
    assert ha["finished"] and hb["finished"] and ha["epochs_done"] == hb["epochs_done"] == TOTAL_EPOCHS
    assert a == b  # every epoch's training and validation losses, exactly
    assert [e["best_epoch"] for e in ha["episodes"]] == [e["best_epoch"] for e in hb["episodes"]]
    wa, wb = _weights(ref), _weights(res)
    assert len(wa) == len(wb)
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(wa, wb))
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb)), f"final weights differ (max |diff| {diff})"
    # optimizer state too: step counter, learning rate (ReduceLROnPlateau), moments
    lr = _optimizer(ref)[1]  # Keras 3: iterations, learning_rate, then the moments
    assert lr.shape == () and 0 < float(lr) < 3e-4, "ReduceLROnPlateau should have lowered StarDist's 3e-4"
    assert all(np.array_equal(x, y) for x, y in zip(_optimizer(ref), _optimizer(res)))
    st_a = json.loads((ref / "checkpoint" / "state.json").read_text())
    st_b = json.loads((res / "checkpoint" / "state.json").read_text())
    for k in ("mixer", "augmenter", "global_step", "keras_callbacks"):
        assert st_a[k] == st_b[k], k
