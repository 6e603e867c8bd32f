"""The synthetic Table-2 protocol: train on B only versus pre-train on A, fine-tune on B.

This is the README's main job (``stardist-hier demo``). Datasets come from
:mod:`stardist_hier.synthetic` (PanNuke-, MoNuSAC- and CoNSeP-like tiles, each labelled
with its own label set and with its own domain shift); a small StarDist2DHier is
trained per protocol row; every test set is scored at its own label set with
:func:`stardist_hier.metrics.evaluate_cut` (CoNIC convention: PQ pooled over images,
mPQ+ over labels, plus binary PQ).

Episodes run as consecutive ``train`` calls on the same model (the paper's
protocol: same last layer, loss adapted to each dataset's label set); the best
weights of each episode on its validation loss are restored by StarDist's checkpoint.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DemoSettings", "prepare", "run_protocol", "format_table"]


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run (defaults: a few minutes on 2 CPU cores)."""

    n_train: int = 48
    n_val: int = 8
    n_test: int = 12
    tile: int = 128
    epochs_pretrain: int = 10
    epochs_finetune: int = 10
    steps_per_epoch: int = 20
    seed: int = 0
    model: dict = field(default_factory=lambda: dict(
        n_rays=32, grid=(2, 2), unet_n_depth=3, unet_n_filter_base=16, net_conv_after_unet=64,
        train_patch_size=(128, 128), train_batch_size=4, train_learning_rate=1e-3,
        train_tensorboard=False, train_reduce_lr=None))


def prepare(settings: DemoSettings, names=("pannuke", "consep")):
    """Generate train/val/test splits of the synthetic datasets ``names``."""
    from .synthetic import generate_dataset

    n = settings.n_train + settings.n_val + settings.n_test
    out = {}
    for i, name in enumerate(names):
        samples = generate_dataset(name, n, seed=settings.seed * 100 + i, size=settings.tile)
        a, b = settings.n_train, settings.n_train + settings.n_val
        out[name] = dict(train=samples[:a], val=samples[a:b], test=samples[b:])
    return out


def _arrays(samples):
    X = [s.image.astype(np.float32) / 255.0 for s in samples]
    Y = [s.training_labels() for s in samples]
    C = [dict(s.classes) for s in samples]
    return X, Y, C


def _train_episode(model, data, taxonomy, epochs, steps, seed):
    X, Y, C = _arrays(data["train"])
    vX, vY, vC = _arrays(data["val"])
    ls = taxonomy[data["train"][0].label_set]
    hist = model.train(X, Y, validation_data=(vX, vY, vC, ls), classes=C, label_sets=ls, epochs=epochs,
                       steps_per_epoch=steps, seed=seed, verbose=0)
    return hist.history


def evaluate(model, samples, taxonomy):
    """PQ of ``model`` on ``samples`` at their own label set (CoNIC convention)."""
    from .metrics import evaluate_cut

    ls = taxonomy[samples[0].label_set]
    preds, probs = [], []
    for s in samples:
        labels, res = model.predict_instances(s.image.astype(np.float32) / 255.0, show_tile_progress=False)
        preds.append(labels)
        probs.append(np.asarray(res["class_prob"]))
    gts = [s.labels for s in samples]
    gcls = [dict(s.classes) for s in samples]
    report = evaluate_cut(gts, preds, gcls, probs, label_set=ls, convention="conic")
    return report, preds


def run_protocol(settings: DemoSettings = DemoSettings(), *, pretrain="pannuke", target="consep", out=None,
                 log=print):
    """Run the two Table-2 rows for one (pre-train, target) pair.

    Returns
    -------
    rows : list of dict
        ``pretrain, eps_pretrain, finetune, eps_finetune, test, pq, mpq`` per row,
        plus ``per_class`` and ``history`` (per-episode loss curves).
    """
    from .models.model2d import Config2DHier, StarDist2DHier
    from .tree import default_taxonomy

    taxonomy = default_taxonomy()
    log(f"generating synthetic datasets {pretrain!r} and {target!r} ...")
    t0 = time.time()
    data = prepare(settings, (pretrain, target))
    log(f"  {sum(len(v) for d in data.values() for v in d.values())} tiles in {time.time() - t0:.1f} s")
    rows = []
    for use_pretrain in (False, True):
        name = f"{pretrain}-then-{target}" if use_pretrain else f"{target}-only"
        basedir = None if out is None else str(Path(out) / "models")
        config = Config2DHier(tree=taxonomy.tree, n_channel_in=3, **settings.model)
        model = StarDist2DHier(config, name=name if basedir else None, basedir=basedir)
        history = []
        if use_pretrain:
            log(f"[{name}] pre-training on {pretrain} for {settings.epochs_pretrain} epochs ...")
            history.append((pretrain, _train_episode(model, data[pretrain], taxonomy, settings.epochs_pretrain,
                                                     settings.steps_per_epoch, settings.seed)))
        log(f"[{name}] training on {target} for {settings.epochs_finetune} epochs ...")
        history.append((target, _train_episode(model, data[target], taxonomy, settings.epochs_finetune,
                                               settings.steps_per_epoch, settings.seed + 1)))
        vX = [s.image.astype(np.float32) / 255.0 for s in data[target]["val"]]
        vY = [s.labels for s in data[target]["val"]]
        model.optimize_thresholds(vX, vY, nms_threshs=[0.3, 0.4], iou_threshs=[0.5],
                                  predict_kwargs=dict(show_tile_progress=False),
                                  save_to_json=basedir is not None)
        report, preds = evaluate(model, data[target]["test"], taxonomy)
        rows.append(dict(pretrain=pretrain if use_pretrain else "-",
                         eps_pretrain=settings.epochs_pretrain if use_pretrain else "-",
                         finetune=target, eps_finetune=settings.epochs_finetune, test=target,
                         pq=report.pq, mpq=report.mpq,
                         per_class={k: v.pq for k, v in report.per_class.items()},
                         history=history))
        log(f"[{name}] test on {target}: PQ {report.pq:.3f}, mPQ+ {report.mpq:.3f}")
        if out is not None:
            _overlay(data[target]["test"][0], preds[0], Path(out) / f"overlay_{name}.png", title=name)
    if out is not None:
        _loss_curves(rows, Path(out) / "loss_curves.png")
        _write_tables(rows, Path(out))
    return rows


def format_table(rows) -> str:
    """Markdown table shaped like the paper's Table 2, with per-label PQ."""
    labels = sorted({k for r in rows for k in r["per_class"]})
    head = ["Pre-train", "Eps", "Fine-tune", "Eps", "Test", "PQ", "mPQ+"] + [f"PQ {lab}" for lab in labels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["pretrain"]), str(r["eps_pretrain"]), r["finetune"], str(r["eps_finetune"]), r["test"],
                 f"{r['pq']:.3f}", f"{r['mpq']:.3f}"] + [f"{r['per_class'].get(lab, float('nan')):.3f}"
                                                        for lab in labels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_tables(rows, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    md = out / "results.md"
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(format_table(rows) + "\n")
    tmp.replace(md)
    labels = sorted({k for r in rows for k in r["per_class"]})
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pretrain", "eps_pretrain", "finetune", "eps_finetune", "test", "pq", "mpq"] + labels)
        for r in rows:
            w.writerow([r["pretrain"], r["eps_pretrain"], r["finetune"], r["eps_finetune"], r["test"],
                        f"{r['pq']:.4f}", f"{r['mpq']:.4f}"] + [f"{r['per_class'].get(lab, float('nan')):.4f}"
                                                              for lab in labels])
    tmp.replace(out / "results.csv")


def _loss_curves(rows, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.5), squeeze=False)
    for ax, r in zip(axes[0], rows):
        start = 0
        for name, h in r["history"]:
            ep = np.arange(start, start + len(h["loss"])) + 1
            ax.plot(ep, h["loss"], "-", label=f"train ({name})")
            ax.plot(ep, h["val_loss"], "--", label=f"val ({name})")
            if start:
                ax.axvline(start + 0.5, color="k", lw=0.8)
            start += len(h["loss"])
        ax.set_title(f"{r['pretrain']} -> {r['finetune']}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _overlay(sample, pred, path: Path, *, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, lab, name in zip(axes, (sample.labels, pred), ("ground truth", "prediction")):
        img = sample.image.copy()
        img[find_boundaries(lab, mode="inner")] = (0, 255, 0) if name == "ground truth" else (255, 255, 0)
        ax.imshow(img)
        ax.set_title(f"{title}: {name}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
