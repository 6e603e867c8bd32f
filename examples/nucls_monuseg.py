"""Real data: NuCLS tiles with two label sets; epochs and thresholds chosen by K-fold CV on the train tiles.

Reads the real samples in ``../shared/data`` (never copied into the repository):

* the 10 NuCLS train tiles, each used twice: with the 2-class label set (``nucls2``:
  Tumor / Non-Tumor, from the segmentation masks) and with the 4-super-class label set
  (``nucls4``, from the detection points assigned to the instances);
* optionally (``--with-monuseg``) the MoNuSeg image, every nucleus labelled only with
  the root ("nucleus"), added to the training data of every fold and of the final model
  (never used for validation).

No choice looks at the 5 NuCLS test tiles. For every seed:

1. The 10 train tiles are split into K folds (default 5: train on 8, validate on 2; the
   partition is fixed by ``--fold-seed``). Every fold trains a model for ``--epochs``
   epochs with its held-out tiles (both label sets) as Keras validation data, and keeps
   the weights after every epoch.
2. The epoch count is the argmin over epochs of the validation loss averaged over the
   folds (the per-fold best epochs are reported too).
3. At that epoch, every fold tunes ``prob_thresh`` and ``nms_thresh`` on its held-out
   tiles (:func:`stardist_hier.training.experiment.evaluate.tune_thresholds`, StarDist's
   ``optimize_thresholds``; segmentation only); the thresholds used are the medians over
   the folds. Each fold's held-out tiles are then scored with them (validation PQ).
4. A model is trained on all 10 train tiles for the chosen epochs and scored once on the
   5 test tiles at both label sets: binary PQ, mPQ+ and per-label PQ (CoNIC convention,
   pooled over the test tiles).

Writes ``OUT/results.md`` (the tables), ``OUT/results.json`` (every number) and
``OUT/splits.json`` (which tile is in which fold, and the test tiles). Run from the
project root:

    python examples/nucls_monuseg.py [--seeds 0 1] [--folds 5] [--epochs 30] [--steps 20] [--out runs/nucls_cv]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from stardist_hier.errors import UserError  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LABEL_SETS = ("nucls2", "nucls4")


# ------------------------------------------------------------------ data
def load(data=DATA, *, with_monuseg=False):
    """``(train, test, monuseg)``: ``train[ls]`` / ``test[ls]`` are lists of Samples (same tile order per label set)."""
    from stardist_hier.datasets import MoNuSeg, NuCLS

    if not (Path(data) / "nucls").is_dir():
        raise UserError(f"real samples not found: {Path(data) / 'nucls'} is not a folder")
    if with_monuseg and not (Path(data) / "monuseg").is_dir():
        raise UserError(f"--with-monuseg: {Path(data) / 'monuseg'} is not a folder")
    train = {ls: list(NuCLS(Path(data) / "nucls", split="train", label_set=ls)) for ls in LABEL_SETS}
    test = {ls: list(NuCLS(Path(data) / "nucls", split="test", label_set=ls)) for ls in LABEL_SETS}
    for part in (train, test):  # the two label sets describe the same tiles and instances
        a, b = (part[ls] for ls in LABEL_SETS)
        if len(a) != len(b) or any(x.meta.get("name") != y.meta.get("name") or not np.array_equal(x.labels, y.labels)
                                   for x, y in zip(a, b)):
            raise UserError(f"{data}/nucls: the two label sets do not describe the same tiles")
    monuseg = list(MoNuSeg(Path(data) / "monuseg")) if with_monuseg else []
    return train, test, monuseg


def tile_id(sample) -> dict:
    """Name and content hash of a tile (for the split record)."""
    return {"name": f"{sample.meta.get('split')}/{sample.meta.get('name')}",
            "md5": hashlib.md5(np.ascontiguousarray(sample.image).tobytes()).hexdigest()}


def make_folds(n: int, k: int, seed: int = 0) -> list:
    """K folds of ``range(n)``: ``[(train indices, validation indices)]``; every index validates exactly once."""
    if not 2 <= k <= n:
        raise UserError(f"--folds must be between 2 and the {n} train tiles, got {k}")
    order = np.random.default_rng(seed).permutation(n)
    vals = [sorted(int(i) for i in v) for v in np.array_split(order, k)]
    return [(sorted(set(range(n)) - set(v)), v) for v in vals]


def parts(samples_by_ls, idx, taxonomy, extra=()):
    """One :class:`~stardist_hier.training.data.Part` of tiles ``idx`` at both label sets (plus ``extra`` samples)."""
    from stardist_hier.training.data import Part

    chosen = [samples_by_ls[ls][i] for ls in LABEL_SETS for i in idx] + list(extra)
    return Part.from_samples(chosen, taxonomy)


# ------------------------------------------------------------------ model
def new_model(taxonomy, seed, n_val_images):
    import keras

    from stardist_hier import Config2DHier, StarDist2DHier

    keras.utils.set_random_seed(seed)
    conf = Config2DHier(tree=taxonomy.tree, n_channel_in=3, n_rays=32, grid=(2, 2), unet_n_depth=3,
                        unet_n_filter_base=16, net_conv_after_unet=64, train_patch_size=(128, 128),
                        train_batch_size=4, train_learning_rate=1e-3, train_tensorboard=False,
                        train_reduce_lr=None, train_n_val_patches=8 * n_val_images)
    return StarDist2DHier(conf, name=None, basedir=None)


def fit(model, train, val, *, seed, epochs, steps, snapshots=None):
    """Train; return the per-epoch validation losses. ``snapshots`` (a list) receives the weights after every epoch."""
    import keras

    class Snap(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append([w.copy() for w in model.keras_model.get_weights()])

    hist = model.train(train.X, train.Y, validation_data=(val.X, val.Y, val.classes, val.label_sets),
                       classes=train.classes, label_sets=train.label_sets, epochs=epochs, steps_per_epoch=steps,
                       seed=seed, callbacks=[Snap()] if snapshots is not None else [], verbose=0)
    return [float(v) for v in hist.history["val_loss"]]


def score(model, part, label_set, thresholds) -> dict:
    """Binary PQ, mPQ+ and per-label PQ of ``part`` (one label set), CoNIC convention, pooled over its images."""
    from stardist_hier.metrics import evaluate_cut

    preds, probs = [], []
    for x in part.X:
        lab, res = model.predict_instances(x, show_tile_progress=False, **thresholds)
        preds.append(lab)
        probs.append(res["class_prob"])
    rep = evaluate_cut(part.Y, preds, part.classes, probs, label_set=label_set, convention="conic")
    return dict(pq=float(rep.pq), mpq=float(rep.mpq), per_class={k: float(v.pq) for k, v in rep.per_class.items()})


# ------------------------------------------------------------------ one seed
def run_seed(train, test, extra, folds, *, seed, epochs, steps, taxonomy, nms_threshs, log=print):
    from stardist_hier.training.experiment.evaluate import tune_thresholds

    t0 = time.time()
    runs = []
    for f, (tr, va) in enumerate(folds):
        model = new_model(taxonomy, seed, 2 * len(va))
        snaps = []
        vl = fit(model, parts(train, tr, taxonomy, extra), parts(train, va, taxonomy), seed=seed, epochs=epochs,
                 steps=steps, snapshots=snaps)
        runs.append(dict(model=model, snaps=snaps, val_loss=vl))
        log(f"  seed {seed} fold {f}: trained on {len(tr)} tiles (+{len(extra)} extra images), best val loss at epoch {int(np.argmin(vl)) + 1} "
            f"({time.time() - t0:.0f} s)")
    mean_vl = np.mean([r["val_loss"] for r in runs], axis=0)
    chosen = int(np.argmin(mean_vl)) + 1
    ths = []
    for r, (tr, va) in zip(runs, folds):  # thresholds at the chosen epoch, on the held-out tiles (segmentation)
        r["model"].keras_model.set_weights(r["snaps"][chosen - 1])
        ths.append(tune_thresholds(r["model"], [_one_ls(train, "nucls2", va, taxonomy)], nms_threshs=nms_threshs))
    th = {k: float(np.median([t[k] for t in ths])) for k in ("prob_thresh", "nms_thresh")}
    fold_scores = []
    for r, (tr, va) in zip(runs, folds):
        fold_scores.append({ls: score(r["model"], _one_ls(train, ls, va, taxonomy), taxonomy[ls], th)
                            for ls in LABEL_SETS})
        r.pop("snaps")
        r.pop("model")
    log(f"  seed {seed}: {chosen} epochs, thresholds {th} ({time.time() - t0:.0f} s); final model")
    all_idx = list(range(len(train[LABEL_SETS[0]])))
    full = parts(train, all_idx, taxonomy, extra)
    model = new_model(taxonomy, seed, 2)
    # model.train needs validation data; nothing is chosen from it here, so a train tile serves (never a test tile)
    fit(model, full, parts(train, all_idx[:1], taxonomy), seed=seed, epochs=chosen, steps=steps)
    test_scores = {ls: score(model, _one_ls(test, ls, range(len(test[ls])), taxonomy), taxonomy[ls], th)
                   for ls in LABEL_SETS}
    return dict(seed=seed, chosen_epochs=chosen, mean_val_loss=[float(v) for v in mean_vl],
                fold_best_epochs=[int(np.argmin(r["val_loss"])) + 1 for r in runs],
                fold_val_loss=[r["val_loss"] for r in runs], fold_thresholds=ths, thresholds=th,
                fold_val=fold_scores, test=test_scores, seconds=time.time() - t0)


def _one_ls(samples_by_ls, ls, idx, taxonomy):
    from stardist_hier.training.data import Part

    return Part.from_samples([samples_by_ls[ls][i] for i in idx], taxonomy)


# ------------------------------------------------------------------ tables
def _ms(vals):
    vals = np.asarray(vals, float)
    return "n/a" if np.all(np.isnan(vals)) else f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}"


def test_table(table, taxonomy) -> str:
    """Test PQ / mPQ+ / per-label PQ, mean ± std over seeds (the script's table format)."""
    lines = []
    for ls in LABEL_SETS:
        labels = list(taxonomy[ls].labels)
        head = ["training data", "test label set", "PQ", "mPQ+"] + [f"PQ {lab}" for lab in labels]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, runs in table.items():
            cells = [name, ls, _ms([r["test"][ls]["pq"] for r in runs]), _ms([r["test"][ls]["mpq"] for r in runs])]
            cells += [_ms([r["test"][ls]["per_class"].get(lab, np.nan) for r in runs]) for lab in labels]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def cv_table(table) -> str:
    """Per seed: chosen epochs and thresholds, validation PQ per fold and mean ± std over the folds."""
    head = ["training data", "seed", "epochs (mean-loss argmin)", "per-fold best epochs", "prob_thresh",
            "nms_thresh", "val PQ nucls2 per fold", "val PQ nucls2", "val mPQ+ nucls2", "val mPQ+ nucls4"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, runs in table.items():
        for r in runs:
            fv = r["fold_val"]
            lines.append("| " + " | ".join([
                name, str(r["seed"]), str(r["chosen_epochs"]), " ".join(map(str, r["fold_best_epochs"])),
                f"{r['thresholds']['prob_thresh']:.3f}", f"{r['thresholds']['nms_thresh']:.2f}",
                " ".join(f"{v['nucls2']['pq']:.3f}" for v in fv), _ms([v["nucls2"]["pq"] for v in fv]),
                _ms([v["nucls2"]["mpq"] for v in fv]), _ms([v["nucls4"]["mpq"] for v in fv])]) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--folds", type=int, default=5, help="K of the K-fold CV on the 10 train tiles (default 5)")
    ap.add_argument("--fold-seed", type=int, default=0, help="seed of the (fixed) fold partition")
    ap.add_argument("--epochs", type=int, default=30, help="maximum epochs; the CV picks the count")
    ap.add_argument("--steps", type=int, default=20, help="steps per epoch")
    ap.add_argument("--out", default="runs/nucls_cv")
    ap.add_argument("--with-monuseg", action="store_true", help="also run with the MoNuSeg image as root-labelled data")
    ap.add_argument("--monuseg-only", action="store_true", help="run only the variant with MoNuSeg (implies --with-monuseg)")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder (holding nucls/ and monuseg/)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 epochs x 2 steps, one seed, one NMS threshold")
    args = ap.parse_args(argv)
    args.with_monuseg = args.with_monuseg or args.monuseg_only
    if args.quick:
        args.epochs, args.steps, args.seeds = 2, 2, args.seeds[:1]
    if any(s < 0 for s in args.seeds):
        raise UserError(f"--seeds must be non-negative integers, got {args.seeds}")
    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    return args


def main(argv=None):
    args = parse(argv)
    from stardist_hier import default_taxonomy

    taxonomy = default_taxonomy()
    train, test, monuseg = load(args.data, with_monuseg=args.with_monuseg)
    n = len(train[LABEL_SETS[0]])
    folds = make_folds(n, args.folds, args.fold_seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids = [tile_id(s) for s in train[LABEL_SETS[0]]]
    (out / "splits.json").write_text(json.dumps({
        "train_tiles": ids, "test_tiles": [tile_id(s) for s in test[LABEL_SETS[0]]],
        "folds": [{"train": tr, "val": va} for tr, va in folds]}, indent=1))
    print(f"NuCLS: {n} train tiles x {len(LABEL_SETS)} label sets, {len(test[LABEL_SETS[0]])} test tiles; "
          f"{args.folds} folds: validation tiles {[va for _, va in folds]}", flush=True)
    variants = {} if args.monuseg_only else {"NuCLS (2 label sets)": []}
    if args.with_monuseg:
        variants["NuCLS + MoNuSeg (root)"] = monuseg
    nms = (0.4,) if args.quick else (0.3, 0.4, 0.5)
    t0 = time.time()
    table = {}
    for name, extra in variants.items():
        table[name] = [run_seed(train, test, extra, folds, seed=s, epochs=args.epochs, steps=args.steps,
                                taxonomy=taxonomy, nms_threshs=nms, log=lambda m: print(m, flush=True))
                       for s in args.seeds]
        print(f"{name}: done ({time.time() - t0:.0f} s)", flush=True)
    foot = (f"seeds {args.seeds}, {args.folds}-fold CV on the {n} train tiles (fold seed {args.fold_seed}), at most "
            f"{args.epochs} epochs x {args.steps} steps; mean ± std (ddof=0); CoNIC convention; test = the "
            f"{len(test[LABEL_SETS[0]])} NuCLS test tiles, scored once ({time.time() - t0:.0f} s)")
    text = ("## Cross-validation on the train tiles\n\n" + cv_table(table) +
            "\n## Test (5 NuCLS test tiles), mean ± std over seeds\n\n" + test_table(table, taxonomy) + "\n" + foot)
    print()
    print(text)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": table}, indent=1))
    (out / "results.md").write_text(text + "\n")
    return table


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
