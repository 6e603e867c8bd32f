"""Running an experiment: model, training through the episodes, then evaluation (:func:`run_experiment`).

TensorFlow, StarDist and the training callback are imported when a run starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ...tree import LabelSetError
from .build import load_data
from .config import ConfigError, ExperimentConfig, _model_kwargs, load_config
from .evaluate import evaluate_tests
from .outputs import plot_loss_curves
from .runfolder import RunLock, check_run_folder, move_run_aside

def run_experiment(config, out=None, *, restart: bool = False, max_epochs: int | None = None,
                   verbose: int = 1) -> dict:
    """Run an experiment: validate, load data, train the episodes, evaluate, write reports.

    Parameters
    ----------
    config : path, mapping or ExperimentConfig
    out : path, optional
        Run folder (default: the config's ``out``, else ``runs/<name>``).
    restart : bool
        Start afresh: an existing run in ``out`` (finished or not) is first moved, whole, to
        ``<out>.old-<UTC time>`` beside it (nothing is deleted); see :mod:`.runfolder`.
    max_epochs : int, optional
        Train at most this many epochs in this call and stop (resumable): for time-sliced runs.
        A run stopped this way or killed after any epoch, then resumed, ends with the same
        weights (bit for bit on CPU) and per-epoch losses as an uninterrupted run: the
        config's ``training.deterministic`` (default ``true``) switches on TensorFlow's op
        determinism (``tf.config.experimental.enable_op_determinism()``, process-wide) and
        the seed makes every batch's randomness a function of ``(seed, global batch index)``
        (see :mod:`stardist_hier.training.callback`).
    verbose : int

    Returns
    -------
    dict
        ``{"finished": bool, "epochs_done": int, "history": ..., "results": [rows], "out": path}``.

    Raises
    ------
    ConfigError, RunFolderError
        Before anything is written: a bad config or data; ``out`` is locked by another
        run (the holder named), or holds a run with another config (the keys named).
        ``out`` is locked for the whole call (:mod:`.runfolder`).
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out = Path(out or cfg.out or Path("runs") / cfg.name)
    lock = RunLock(out)
    try:
        if (out / "config.yaml").is_file():  # an existing run: lock it before reading it
            lock.acquire()
        check_run_folder(out, cfg.raw, restart=restart)
        return _run_locked(cfg, out, lock, restart=restart, max_epochs=max_epochs, verbose=verbose)
    finally:
        lock.release()


def _trained_only(data, episodes):
    """``data`` without the training images of datasets no episode trains on (kept for
    validation and testing only: they are never sampled, and a model with one class head per
    trained dataset has no head to encode them with). The trained datasets keep their order
    and image indices when the untrained ones come after them."""
    from ..data import MultiDataset
    from ..schedule import trained_datasets

    trained = set(trained_datasets(episodes))
    if trained >= set(data.names):
        return data
    return MultiDataset({k: data.train[k] for k in data.names if k in trained}, data.val)


def _run_locked(cfg, out, lock, *, restart, max_epochs, verbose) -> dict:
    data, tests = load_data(cfg, verbose=verbose)
    fit_data = _trained_only(data, cfg.episodes)

    from ...models.model2d import Config2DHier, StarDist2DHier
    from ..augment import Augmenter, oversampling_weights, rare_images
    from ..callback import train_episodes

    from csbdeep.utils.tf import keras_import

    keras_import("utils", "set_random_seed")(cfg.seed)  # weight initialisation, NumPy, Python
    if cfg.training.deterministic:
        # resume = uninterrupted run, bit for bit (see stardist_hier.training.callback):
        # TensorFlow's deterministic kernels; process-wide and cannot be switched off again
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    conf = Config2DHier(tree=cfg.taxonomy.tree, n_channel_in=3,
                        **{"train_tensorboard": cfg.training.tensorboard, **_model_kwargs(cfg.model)})
    # validate every label before training (raises naming the image), before the folder is touched
    model = StarDist2DHier(conf, name="model", basedir=None)
    try:
        model.encode(fit_data.X, fit_data.Y, fit_data.classes, fit_data.label_sets, what="training")
        for name, p in tests.items():
            what = f"dataset {name!r} test" if isinstance(name, str) else f"dataset {name[0]!r} test ({name[1]})"
            model.encode(p.X, p.Y, p.classes, p.label_sets, what=what, heads=False)
    except (ValueError, LabelSetError) as e:
        raise ConfigError(str(e)) from None

    lock.acquire()  # creates OUT; refuses when another run holds it
    if check_run_folder(out, cfg.raw, restart=restart) == "restart":  # again, under the lock
        old = move_run_aside(out)
        print(f"--restart: the previous run in {out} was moved to {old}", file=sys.stderr)
    import yaml

    from ...io import atomic_write_text

    if not (out / "config.yaml").is_file():  # a rerun keeps the config the run was started with
        atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.raw, sort_keys=False))
    model.basedir = out  # the model folder OUT/model (config.json) is written only now
    import warnings

    with warnings.catch_warnings():  # "output path for model already exists": expected when resuming
        warnings.filterwarnings("ignore", message="output path for model already exists")
        model.set_logdir()

    training = cfg.training
    rare = None
    image_weights = None
    if training.oversample:
        o = training.oversample
        rare = rare_images(fit_data.classes, fit_data.label_sets, threshold=float(o.get("threshold", 0.1)))
        image_weights = oversampling_weights(rare, float(o.get("factor", 2.0)))
    augmenter = None
    if training.augment is not None:
        augmenter = Augmenter(rare=rare, **{"seed": cfg.seed, **training.augment})

    ck = out / "checkpoint"
    if restart:
        import shutil

        for d in (ck, ck.with_name("checkpoint.old"), ck.with_name("checkpoint.tmp")):
            shutil.rmtree(d, ignore_errors=True)
    extra = []
    if max_epochs is not None:
        extra.append(_epoch_limit(max_epochs))
    hooks = [_episode_scorer(model, cfg, data.val, out)] if training.tensorboard else []
    curve_cb = None
    if cfg.evaluation.curve is not None:
        curve_cb, curve_hook = _curve_recorder(model, cfg, data.val, out)
        hooks.insert(0, curve_hook)
        model.ensure_prepared()
        # in StarDist's list, so after the episode callback and before its checkpoint (commit_callback)
        model.callbacks.append(curve_cb)
    try:
        cb = train_episodes(model, fit_data, cfg.episodes, steps_per_epoch=training.steps_per_epoch, seed=cfg.seed,
                            augmenter=augmenter, image_weights=image_weights, history_path=out / "history.json",
                            checkpoint_dir=ck, resume=not restart, fingerprint=cfg.fingerprint, callbacks=extra,
                            verbose=verbose, on_episode_end=_chain(hooks),
                            input_workers=training.input_workers)
    finally:
        if curve_cb is not None and curve_cb in model.callbacks:
            model.callbacks.remove(curve_cb)
    history = cb.history
    if cfg.evaluation.curve is not None:
        from .evaluate import write_curve

        write_curve(history, out, title=cfg.name)
    result = {"finished": bool(history["finished"]), "epochs_done": int(history["epochs_done"]),
              "history": history, "results": [], "out": str(out)}
    if history["epochs_done"]:
        plot_loss_curves(history, out / "loss_curves.png", title=cfg.name)
    if not history["finished"]:
        return result
    # the model now holds the schedule's final weights (also saved as model/weights_best.h5)
    rows = evaluate_tests(model, cfg, tests, history, out, verbose=verbose, val_parts=data.val)
    result["results"] = rows
    return result


def _epoch_limit(n):
    from csbdeep.utils.tf import keras_import

    Callback = keras_import("callbacks", "Callback")

    class EpochLimit(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= n:
                self.model.stop_training = True

    return EpochLimit()


def _episode_scorer(model, cfg, val_parts, out):
    """At each episode's end: PQ and mPQ+ on its datasets' validation images, logged to TensorBoard
    (``OUT/model/logs/episodes``, tags ``episodes/<dataset>/PQ``) and kept in ``history.json``.
    Only with ``training: {tensorboard: true}`` (the default): studies that switch it off skip
    these extra predictions."""
    from .evaluate import episode_scores, tensorboard_episode_logger

    log = tensorboard_episode_logger(out / "model" / "logs" / "episodes")

    def on_episode_end(k, episode, episode_history):
        scores = episode_scores(model, cfg, val_parts, list(episode.mixture))
        log(int(episode_history["first_epoch"] or 0) + int(episode_history["epochs_run"]), scores)
        return scores

    return on_episode_end


def _chain(hooks):
    """One ``on_episode_end`` calling every hook in turn; the scores they return are merged."""
    if not hooks:
        return None

    def on_episode_end(k, episode, episode_history):
        scores = {}
        for h in hooks:
            scores.update(h(k, episode, episode_history) or {})
        return scores

    return on_episode_end


def _curve_recorder(model, cfg, val_parts, out):
    """``evaluation: curve``: ``(keras callback, on_episode_end hook)`` recording after every epoch.

    Each epoch adds one row per named dataset (:func:`.evaluate.curve_rows`) to
    ``history["episodes"][k]["curve"]``, so the rows are in the checkpoint written after
    the epoch (the callback sits in StarDist's list, before the episode callback's
    checkpoint) and survive a resume; ``OUT/curve.csv`` is rewritten from the history
    (atomically) after every epoch and when a fit starts, so rows of an epoch that a
    killed run did not checkpoint are dropped, never duplicated. The last epoch of an
    episode is recorded by the hook, with the episode's final weights (best weights
    restored, where the episode restores them) and before the next episode starts.
    """
    from csbdeep.utils.tf import keras_import

    from ..callback import EpisodeCallback
    from .evaluate import curve_rows, validation_batch, write_curve

    Callback = keras_import("callbacks", "Callback")
    spec = cfg.evaluation.curve
    batches = {}
    state = {"ecb": None}

    def get_batches():
        if not batches:
            for i, d in enumerate(spec.datasets):
                batches[d] = validation_batch(model, val_parts[d], seed=cfg.seed + 104729 * (i + 1),
                                              what=f"evaluation: curve: dataset {d!r} validation")
        return batches

    def recorded(history, g):
        return any(int(r["global_epoch"]) == g for eh in history["episodes"] for r in eh.get("curve") or [])

    def record(eh):
        history = state["ecb"].history
        g = int(eh["first_epoch"]) + int(eh["epochs_run"])  # the global epoch just done, from 1
        if recorded(history, g):
            return
        rows = curve_rows(model, cfg, val_parts, get_batches(), episode=eh["name"], epoch=int(eh["epochs_run"]),
                          global_epoch=g)
        eh.setdefault("curve", []).extend([{k: (None if isinstance(v, float) and v != v else v)
                                            for k, v in r.items()} for r in rows])
        write_curve(history, out, plot=False)

    class CurveCallback(Callback):
        def on_train_begin(self, logs=None):
            state["ecb"] = next(c for c in model.callbacks if isinstance(c, EpisodeCallback))
            get_batches()
            write_curve(state["ecb"].history, out, plot=False)  # the (restored) history's rows only

        def on_epoch_end(self, epoch, logs=None):
            h = state["ecb"].history
            if not recorded(h, int(h["epochs_done"])):  # else recorded at its episode's end
                record(h["episodes"][h["episode"]])

    def on_episode_end(k, episode, episode_history):
        if state["ecb"] is not None:
            record(episode_history)
        return {}

    return CurveCallback(), on_episode_end
