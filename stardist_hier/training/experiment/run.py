"""Running an experiment: model, training through the episodes, then evaluation (:func:`run_experiment`).

TensorFlow, StarDist and the training callback are imported when a run starts.
"""

from __future__ import annotations

from pathlib import Path

from ...tree import LabelSetError
from .build import load_data
from .config import ConfigError, ExperimentConfig, _model_kwargs, load_config
from .evaluate import evaluate_tests
from .outputs import plot_loss_curves

def run_experiment(config, out=None, *, restart: bool = False, max_epochs: int | None = None,
                   verbose: int = 1) -> dict:
    """Run an experiment: validate, load data, train the episodes, evaluate, write reports.

    Parameters
    ----------
    config : path, mapping or ExperimentConfig
    out : path, optional
        Run folder (default: the config's ``out``, else ``runs/<name>``).
    restart : bool
        Ignore an existing checkpoint in ``out`` and train from scratch.
    max_epochs : int, optional
        Train at most this many epochs in this call and stop (resumable): for time-sliced runs.
    verbose : int

    Returns
    -------
    dict
        ``{"finished": bool, "epochs_done": int, "history": ..., "results": [rows], "out": path}``.
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out = Path(out or cfg.out or Path("runs") / cfg.name)
    data, tests = load_data(cfg, verbose=verbose)
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    (out / "config.yaml").write_text(yaml.safe_dump(cfg.raw, sort_keys=False))

    from ...models.model2d import Config2DHier, StarDist2DHier
    from ..augment import Augmenter, oversampling_weights, rare_images
    from ..callback import train_episodes

    from csbdeep.utils.tf import keras_import

    keras_import("utils", "set_random_seed")(cfg.seed)  # weight initialisation, NumPy, Python
    conf = Config2DHier(tree=cfg.taxonomy.tree, n_channel_in=3,
                        **{"train_tensorboard": bool(cfg.training["tensorboard"]), **_model_kwargs(cfg.model)})
    # validate every label before training (raises naming the image)
    model = StarDist2DHier(conf, name="model", basedir=str(out))
    try:
        model.encode(data.X, data.Y, data.classes, data.label_sets, what="training")
        for name, p in tests.items():
            model.encode(p.X, p.Y, p.classes, p.label_sets, what=f"dataset {name!r} test")
    except (ValueError, LabelSetError) as e:
        raise ConfigError(str(e)) from None

    training = cfg.training
    rare = None
    image_weights = None
    if training.get("oversample"):
        o = training["oversample"]
        rare = rare_images(data.classes, data.label_sets, threshold=float(o.get("threshold", 0.1)))
        image_weights = oversampling_weights(rare, float(o.get("factor", 2.0)))
    augmenter = None
    if training.get("augment") not in (False, None):
        augmenter = Augmenter(rare=rare, **{"seed": cfg.seed, **training["augment"]})

    ck = out / "checkpoint"
    if restart:
        import shutil

        for d in (ck, ck.with_name("checkpoint.old"), ck.with_name("checkpoint.tmp")):
            shutil.rmtree(d, ignore_errors=True)
    extra = []
    if max_epochs is not None:
        extra.append(_epoch_limit(max_epochs))
    cb = train_episodes(model, data, cfg.episodes, steps_per_epoch=training["steps_per_epoch"], seed=cfg.seed,
                        augmenter=augmenter, image_weights=image_weights, history_path=out / "history.json",
                        checkpoint_dir=ck, resume=not restart, fingerprint=cfg.fingerprint, callbacks=extra,
                        verbose=verbose)
    history = cb.history
    result = {"finished": bool(history["finished"]), "epochs_done": int(history["epochs_done"]),
              "history": history, "results": [], "out": str(out)}
    if history["epochs_done"]:
        plot_loss_curves(history, out / "loss_curves.png", title=cfg.name)
    if not history["finished"]:
        return result
    # the model now holds the schedule's final weights (also saved as model/weights_best.h5)
    rows = evaluate_tests(model, cfg, tests, history, out, verbose=verbose)
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
