"""Training under a tf.distribute strategy (MirroredStrategy on two logical CPU devices).

The logical devices must be configured before TensorFlow initialises, so the real
work runs once in a subprocess (this file run as a script) that writes a JSON report;
the tests below check it. Run by hand: ``python tests/models/test_distribute.py main|resume OUT.json``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------- tests
def test_names_and_checks():
    """In-process, without devices: names, refusals."""
    pytest.importorskip("tensorflow")
    from stardist_hier.models import distribute

    assert distribute.resolve(None) is None and distribute.resolve("none") is None
    assert all(distribute.is_valid_name(n) for n in (None, "none", "mirrored", "multiworker"))
    assert not distribute.is_valid_name("tpu")
    with pytest.raises(ValueError, match="expected one of"):
        distribute.resolve("tpu")
    distribute.check_batch_size(3, None)  # no strategy: any batch
    distribute.check_optimizer(object(), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("distribute") / "report.json"
    for mode in ("main", "resume"):  # resume: like a restarted job, a fresh process continues the checkpoint
        proc = _run_worker(out, mode)
        if proc.returncode != 0 or not out.is_file():
            pytest.fail(f"distribute worker {mode!r} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-6000:]}")
    return json.loads(out.read_text())


def test_two_replicas(report):
    assert report["replicas"] == 2, report["strategy"]
    assert "MirroredStrategy" in report["strategy"]


@pytest.mark.parametrize("key", ["loss", "prob_loss", "dist_loss", "prob_class_loss"])
def test_loss_of_global_batch_equals_single_device(report, key):
    single, dist = report["eval_single"][key], report["eval_mirrored"][key]
    np.testing.assert_allclose(dist, single, rtol=2e-5, atol=1e-6)


def test_the_fix_is_needed(report):
    """Without the replacements, Keras does not scale StarDist's scalar prob loss by
    1 / replicas (2x too large) and normalises dist per replica (mean of ratios)."""
    single, raw = report["eval_single"], report["eval_raw"]
    np.testing.assert_allclose(raw["prob_loss"], 2 * single["prob_loss"], rtol=1e-4)
    assert abs(raw["dist_loss"] - single["dist_loss"]) > 1e-4 * abs(single["dist_loss"])
    np.testing.assert_allclose(raw["prob_class_loss"], single["prob_class_loss"], rtol=2e-5)


def test_one_sgd_step_gives_the_same_weights(report):
    assert report["step_max_update"] > 1e-4  # the step did something
    assert report["step_max_abs_diff"] <= 1e-5 + 1e-3 * report["step_max_update"], report


def test_predict_with_a_strategy(report):
    assert report["predict_max_abs_diff"] < 1e-4


def test_episode_schedule_switches_datasets_under_the_strategy(report):
    ep = report["episodes"]
    assert ep["interrupted_after"] == 2 and ep["episode_at_interrupt"] == 1
    # every batch of epoch 0 came from dataset A, of epoch 1 (after the switch) from B
    assert ep["drawn_epoch0"] == ["A"] and ep["drawn_epoch1"] == ["B"], ep


def test_resume_from_checkpoint_under_the_strategy(report):
    r = report["resume"]
    assert r["resumed_from"] == 2 and r["restored_weights_equal"]
    assert r["finished"] and r["epochs_done"] == 3 and r["fit_epochs"] == 1
    assert r["epochs_run"] == [1, 2] and r["finite"]
    assert r["drawn"] == ["B"]


def test_config_option(report):
    assert report["config"]["hier_distribute"] == "mirrored"
    assert report["config"]["invalid"] == ["hier_distribute"]
    assert report["config"]["odd_batch_refused"]


# -------------------------------------------------------------------- worker
def _load(path, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker(out_path):
    from stardist_hier.models import distribute

    distribute.split_cpu(2)

    import keras

    models_conftest = _load(HERE / "conftest.py", "_models_conftest")
    training_conftest = _load(HERE.parent / "training" / "conftest.py", "_training_conftest")
    TAX, _make_images, _tiny_config = models_conftest.TAX, models_conftest._make_images, models_conftest._tiny_config

    from stardist_hier import Config2DHier, StarDist2DHier
    from stardist_hier.losses import build_class_loss
    from stardist_hier.models import _stardist_compat as compat

    report = {}
    rng = np.random.default_rng(7)
    Xa, Ya, Ca, _ = _make_images(rng, 4, TAX["pannuke"], size=64, n_nuclei=8)
    Xb, Yb, Cb, _ = _make_images(rng, 4, TAX["consep4"], size=64, n_nuclei=3)

    # ---- one global batch of 4: shards (2 images each) with different foreground fractions
    keras.utils.set_random_seed(1)
    single = StarDist2DHier(_tiny_config(), basedir=None, distribute="none")
    cuts = single.encode(Xa[:2] + Xb[:2], Ya[:2] + Yb[:2], Ca[:2] + Cb[:2], [TAX["pannuke"]] * 2 + [TAX["consep4"]] * 2)
    gen = compat.StarDistData2DHier(Xa[:2] + Xb[:2], Ya[:2] + Yb[:2], cuts, batch_size=4, length=1,
                                    **compat.data_kwargs(single.config))
    np.random.seed(0)
    gen.sampler = lambda i: np.arange(4)
    x, (prob, dist, cls) = gen[0]
    prob = np.array(prob)
    prob[1, :8, :8] = -1  # an ignore region in the first shard only
    y = [prob, np.asarray(dist), np.asarray(cls)]
    x = np.asarray(x[0] if isinstance(x, (list, tuple)) else x)

    mirrored = StarDist2DHier(_tiny_config(hier_distribute="mirrored"), basedir=None)
    report["strategy"] = distribute.describe(mirrored.strategy)
    report["replicas"] = distribute.num_replicas(mirrored.strategy)
    mirrored.keras_model.set_weights(single.keras_model.get_weights())
    single.prepare_for_training(keras.optimizers.SGD(0.5))
    with mirrored.strategy.scope():
        opt = keras.optimizers.SGD(0.5)
    mirrored.prepare_for_training(opt)

    def evaluate(m):
        return {k: float(v) for k, v in m.keras_model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True).items()}

    report["eval_single"], report["eval_mirrored"] = evaluate(single), evaluate(mirrored)

    # the same, with StarDist's losses as Keras would reduce them (no replacement)
    raw = StarDist2DHier(_tiny_config(), basedir=None, distribute=mirrored.strategy)
    raw.keras_model.set_weights(single.keras_model.get_weights())
    with raw.strategy.scope():
        loss = build_class_loss(raw.config.train_class_loss, raw.config.train_class_loss_options)
        compat.compile_with_class_loss(raw, loss, keras.optimizers.SGD(0.5))
    report["eval_raw"] = evaluate(raw)

    # one SGD step on the global batch
    w0 = single.keras_model.get_weights()
    for m in (single, mirrored):
        m.keras_model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ws, wm = single.keras_model.get_weights(), mirrored.keras_model.get_weights()
    report["step_max_update"] = float(max(np.abs(a - b).max() for a, b in zip(ws, w0)))
    report["step_max_abs_diff"] = float(max(np.abs(a - b).max() for a, b in zip(ws, wm)))
    # StarDist predicts one image at a time: on one device, also for a model with a strategy
    ps, pm = single.predict(x[0]), mirrored.predict(x[0])
    report["predict_max_abs_diff"] = float(max(np.abs(a - b).max() for a, b in zip(ps, pm)))

    # ---- config option
    cfg = Config2DHier(tree=TAX.tree, hier_distribute="mirrored")
    bad = Config2DHier(tree=TAX.tree, hier_distribute="tpu")
    odd = StarDist2DHier(_tiny_config(train_batch_size=3), basedir=None, distribute=mirrored.strategy)
    try:
        odd.train(Xa, Ya, (Xa[:1], Ya[:1], Ca[:1], [TAX["pannuke"]]), classes=Ca, label_sets=TAX["pannuke"],
                  epochs=1, steps_per_epoch=1, verbose=0)
        refused = False
    except ValueError as e:
        refused = "divisible" in str(e)
    report["config"] = dict(hier_distribute=cfg.hier_distribute, invalid=list(bad.is_valid(True)[1]),
                            odd_batch_refused=refused)

    # ---- episodes: A for one epoch, then B for two (fresh optimizer state), checkpointed;
    # interrupted after two epochs (the switch happened within this fit), resumed by _resume
    from stardist_hier.training import train_episodes

    data, episodes, drawn = _episode_setup(TAX, training_conftest.make_part)

    class Interrupt(Exception):
        pass

    class RaiseAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= 2:
                raise Interrupt()

    ck = Path(out_path).with_name("ck")
    try:
        train_episodes(_episode_model(_tiny_config), data, episodes, steps_per_epoch=2, seed=0, checkpoint_dir=ck,
                       callbacks=[RaiseAfter()], verbose=0)
    except Interrupt:
        pass
    state = json.loads((ck / "state.json").read_text())
    report["episodes"] = dict(interrupted_after=state["history"]["epochs_done"],
                              episode_at_interrupt=state["history"]["episode"],
                              drawn_epoch0=sorted(drawn.get(0, ())), drawn_epoch1=sorted(drawn.get(1, ())))
    Path(out_path).write_text(json.dumps(report, indent=1))


def _episode_setup(TAX, make_part):
    """Two datasets, the schedule, and a log of the datasets each epoch's batches came from."""
    from stardist_hier.training import DatasetMixer, Episode, MultiDataset

    data = MultiDataset({"A": make_part(TAX["pannuke"], 4, 1), "B": make_part(TAX["consep"], 4, 2)},
                        {"A": make_part(TAX["pannuke"], 2, 3), "B": make_part(TAX["consep"], 2, 4)})
    episodes = [Episode("pre", "A", 1), Episode("fine", "B", 2, keep_optimizer_state=False)]
    group_of = {int(i): name for name, idx in data.groups.items() for i in idx}
    drawn = {}
    original_call = DatasetMixer.__call__

    def logging_call(self, i):
        idx = original_call(self, i)
        drawn.setdefault(int(i) // 2, set()).update(
            group_of[int(k)] for k in idx)
        return idx

    DatasetMixer.__call__ = logging_call
    return data, episodes, drawn


def _episode_model(tiny_config):
    import keras

    from stardist_hier import StarDist2DHier

    keras.utils.set_random_seed(2)
    return StarDist2DHier(tiny_config(n_rays=8, train_batch_size=2, hier_distribute="mirrored"), basedir=None)


def _resume(out_path):
    """Second process (a restarted job): continue the interrupted schedule from its checkpoint."""
    from stardist_hier.models import distribute

    distribute.split_cpu(2)
    import keras

    models_conftest = _load(HERE / "conftest.py", "_models_conftest")
    training_conftest = _load(HERE.parent / "training" / "conftest.py", "_training_conftest")
    from stardist_hier.training import DatasetMixer, EpisodeCallback, train_episodes

    report = json.loads(Path(out_path).read_text())
    data, episodes, drawn = _episode_setup(models_conftest.TAX, training_conftest.make_part)

    class CountEpochs(keras.callbacks.Callback):
        n = 0

        def on_epoch_end(self, epoch, logs=None):
            CountEpochs.n += 1

    ck = Path(out_path).with_name("ck")
    with np.load(ck / "weights.npz") as f:
        ck_weights = [f[f"arr_{i}"] for i in range(len(f.files))]
    m = _episode_model(models_conftest._tiny_config)
    probe = EpisodeCallback(m, episodes, data, DatasetMixer(data.groups, 2, seed=0), steps_per_epoch=2, verbose=0)
    m.prepare_for_training()
    probe.restore_checkpoint(ck)
    equal = all(np.array_equal(a, b) for a, b in zip(m.keras_model.get_weights(), ck_weights))
    cb = train_episodes(m, data, episodes, steps_per_epoch=2, seed=0, checkpoint_dir=ck, callbacks=[CountEpochs()],
                        verbose=0)
    h = cb.history
    report["resume"] = dict(resumed_from=probe.history["epochs_done"], finished=h["finished"],
                            epochs_done=h["epochs_done"], fit_epochs=CountEpochs.n, restored_weights_equal=bool(equal),
                            epochs_run=[e["epochs_run"] for e in h["episodes"]],
                            finite=bool(all(np.all(np.isfinite(e["loss"] + e["val_loss_episode"]))
                                            for e in h["episodes"])),
                            drawn=sorted(set().union(*drawn.values())) if drawn else [])
    Path(out_path).write_text(json.dumps(report, indent=1))


def _run_worker(out_path, mode="main", timeout=600):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0")
    return subprocess.run([sys.executable, str(Path(__file__)), mode, str(out_path)], env=env, capture_output=True,
                          text=True, timeout=timeout)


if __name__ == "__main__":
    import faulthandler

    faulthandler.dump_traceback_later(float(os.environ.get("DISTRIBUTE_WORKER_TIMEOUT", 300)), exit=True)
    if sys.argv[1] == "resume":
        _resume(sys.argv[2])
    else:
        _worker(sys.argv[2])
