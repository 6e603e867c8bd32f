"""The obvious alternative to the pretrained model: a plain multi-class ``StarDist2D`` on CoNSeP alone.

Same data split (the experiment runner's, read from ``benchmarks/he_consep_only.yaml``: 23 CoNSeP
train tiles, 4 validation tiles, the 14 test tiles untouched), same network size, patch, batch,
learning rate and schedule, same augmentation (:class:`stardist_hier.training.augment.Augmenter`
with the config's settings), same step budget and early stopping on the validation loss (best
weights restored), thresholds tuned on the validation tiles with StarDist's
``optimize_thresholds``. Classes are CoNSeP's 4 merged classes as StarDist class ids 1..4.

    python benchmarks/stardist_consep_baseline.py --out runs/stardist_consep

The model folder ``OUT/stardist_consep`` opens with ``StarDist2D(None, name, basedir)``;
``docs/MODELS.md`` scores it with ``benchmarks/pretrained_eval.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
#: StarDist class id of each CoNSeP (merged) label, as in the files.
CLASS_IDS = {"other": 1, "inflammatory": 2, "epithelial": 3, "spindle": 4}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=HERE / "he_consep_only.yaml")
    p.add_argument("--out", type=Path, default=Path("runs/stardist_consep"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tune-only", action="store_true",
                   help="only tune the thresholds of the model already in OUT (e.g. after an interrupted run)")
    args = p.parse_args(argv)

    import keras
    from stardist.models import Config2D, StarDist2D

    from stardist_hier.training.augment import Augmenter
    from stardist_hier.training.experiment import load_config, load_data

    cfg = load_config(args.config)
    data, _ = load_data(cfg, verbose=0)
    train, val = data.train["consep"], data.val["consep"]
    m = cfg.model
    (ep,) = cfg.episodes
    if args.tune_only:
        model = StarDist2D(None, name="stardist_consep", basedir=str(args.out))
        model.optimize_thresholds(val.X, val.Y)
        return 0
    keras.utils.set_random_seed(args.seed)
    conf = Config2D(n_rays=m["n_rays"], grid=tuple(m["grid"]), n_channel_in=3, n_classes=len(CLASS_IDS),
                    unet_n_depth=m["unet_n_depth"], unet_n_filter_base=m["unet_n_filter_base"],
                    net_conv_after_unet=m["net_conv_after_unet"], train_patch_size=tuple(m["train_patch_size"]),
                    train_batch_size=m["train_batch_size"], train_learning_rate=m["train_learning_rate"],
                    train_reduce_lr=m["train_reduce_lr"], train_tensorboard=False,
                    train_epochs=ep.max_epochs, train_steps_per_epoch=cfg.training.steps_per_epoch)
    args.out.mkdir(parents=True, exist_ok=True)
    model = StarDist2D(conf, name="stardist_consep", basedir=str(args.out))

    def cls(part):
        return [{int(k): CLASS_IDS[v] for k, v in c.items() if v is not None} for c in part.classes]

    aug = Augmenter(seed=args.seed, **cfg.training.augment)
    model.prepare_for_training()
    model.callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=ep.patience,
                                                         min_delta=ep.min_delta, restore_best_weights=True))
    t0 = time.perf_counter()
    hist = model.train(train.X, train.Y, classes=cls(train), validation_data=(val.X, val.Y, cls(val)),
                       augmenter=lambda x, y: aug(x, y), epochs=ep.max_epochs,
                       steps_per_epoch=cfg.training.steps_per_epoch)
    wall = time.perf_counter() - t0
    model.optimize_thresholds(val.X, val.Y)
    losses = {k: [float(v) for v in vs] for k, vs in hist.history.items() if "loss" in k}
    (args.out / "stardist_consep" / "training.json").write_text(json.dumps(
        {"epochs_run": len(losses.get("loss", [])), "wall_s": wall, "history": losses,
         "config": str(args.config), "seed": args.seed}, indent=1))
    print(f"done: {len(losses.get('loss', []))} epochs in {wall:.0f} s -> {args.out / 'stardist_consep'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
