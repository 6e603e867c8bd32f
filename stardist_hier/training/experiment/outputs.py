"""What a run writes besides the model: results tables, loss curves and overlays."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ...tree import LabelSet
from ..data import Part

def results_table(rows, cols=None) -> str:
    """Markdown text of result rows."""
    return _markdown(rows, cols or list(rows[0]), None)


def _fmt(v):
    return ("nan" if math.isnan(v) else f"{v:.3f}") if isinstance(v, float) else str(v)


def _markdown(rows, cols, cfg) -> str:
    head = [c.strip() for c in cols]
    lines = []
    if cfg is not None:
        lines += [f"# {cfg.name}", "",
                  f"PQ: class-agnostic PQ; mPQ+: mean over the test label set's labels of the per-label PQ "
                  f"({cfg.evaluation['convention']} convention).", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _csv(rows, cols) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c.strip() for c in cols])
    for r in rows:
        w.writerow([r[c] for c in cols])
    return buf.getvalue()


def _safe(name) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def plot_loss_curves(history: dict, path, *, title=None):
    """Training loss and episode validation loss over the schedule (paper's Figure 3).

    Each episode's epochs are shaded, and the switch epochs marked by dashed lines.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    colors = ["C0", "C1", "C2", "C3", "C4", "C5"]
    for k, eh in enumerate(history["episodes"]):
        if not eh["loss"]:
            continue
        e0 = eh["first_epoch"]
        xs = np.arange(e0 + 1, e0 + 1 + len(eh["loss"]))
        c = colors[k % len(colors)]
        ax.plot(xs, eh["loss"], "-", color=c, label=f"{eh['name']}: train loss")
        ax.plot(xs, eh["val_loss_episode"], "--", color=c, label=f"{eh['name']}: validation loss")
        if eh["best_epoch"] is not None:
            ax.plot([eh["best_epoch"] + 1], [eh["best_val_loss"]], "o", color=c, mfc="none")
        if k > 0:
            ax.axvline(e0 + 0.5, color="k", ls=":", lw=1)
            ax.text(e0 + 0.6, ax.get_ylim()[1], f"switch to {eh['name']}", va="top", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)


def write_overlays(part: Part, preds, cut: LabelSet, folder, test_name, *, n=2):
    """PNG per test image: ground truth and prediction outlines, coloured by label of ``cut``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from skimage.segmentation import find_boundaries

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cmap = np.array([[0.9, 0.1, 0.1], [0.1, 0.7, 0.1], [0.1, 0.3, 0.9], [0.9, 0.6, 0.0], [0.6, 0.1, 0.8],
                     [0.0, 0.7, 0.7], [0.5, 0.3, 0.1], [0.9, 0.4, 0.7], [0.3, 0.3, 0.3]])
    for i in range(min(n, len(part.X))):
        x = np.clip(part.X[i], 0, 1)
        gt, (pred, probs) = np.asarray(part.Y[i]), preds[i]
        own = part.label_sets[i]
        panels = []
        for lab_img, cls_of in ((gt, _gt_labels(part.classes[i], own, cut)),
                                (pred, {k: cut.labels[int(np.argmax(cut.label_probabilities(p)[1:]))]
                                        for k, p in probs.items()})):
            rgb = x.copy()
            b = find_boundaries(np.clip(lab_img, 0, None), mode="inner")
            ids = np.clip(lab_img, 0, None)
            for k in np.unique(ids[b]):
                lab = cls_of.get(int(k))
                color = cmap[cut.labels.index(lab) % len(cmap)] if lab in cut.labels else np.ones(3)
                rgb[b & (ids == k)] = color
            panels.append(rgb)
        fig = Figure(figsize=(8, 4.3))
        FigureCanvasAgg(fig)
        for j, (rgb, ttl) in enumerate(zip(panels, ("ground truth", "prediction"))):
            ax = fig.add_subplot(1, 2, j + 1)
            ax.imshow(rgb)
            ax.set_title(f"{ttl} ({cut.name})", fontsize=9)
            ax.axis("off")
        fig.legend(handles=[Patch(color=cmap[k % len(cmap)], label=lab) for k, lab in enumerate(cut.labels)],
                   loc="lower center", ncol=min(4, len(cut.labels)), fontsize=7)
        fig.tight_layout(rect=(0, 0.08, 1, 0.97))
        fig.savefig(str(folder / f"{_safe(test_name)}_{i}.png"), dpi=100)


def _gt_labels(classes, own: LabelSet, cut: LabelSet) -> dict:
    out = {}
    for k, v in classes.items():
        lab = None if v is None else own.resolve(v)
        if lab is None:
            continue
        leaves = own.leaf_set(lab)
        out[int(k)] = next((c for c in cut.labels if leaves <= cut.leaf_set(c)), None)
    return out
