"""What a run writes besides the model: results tables, loss curves and overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...metrics.table import format_csv, format_markdown
from ...tree import LabelSet
from ..data import Part

def results_table(rows, cols=None) -> str:
    """Markdown text of result rows."""
    return _markdown(rows, cols or list(rows[0]), None)


def _stripped(rows, cols) -> list:
    """Rows keyed by the stripped column names (the headers written)."""
    return [{c.strip(): r[c] for c in cols} for r in rows]


def _markdown(rows, cols, cfg) -> str:
    """Markdown of result rows (3 decimals), under the run's title when ``cfg`` is given."""
    title = []
    if cfg is not None:
        title = [f"# {cfg.name}", "",
                 f"PQ: class-agnostic PQ; mPQ+: mean over the test label set's labels of the per-label PQ "
                 f"({cfg.evaluation.convention} convention).", ""]
    table = format_markdown(_stripped(rows, cols), columns=[c.strip() for c in cols], digits=3)
    return ("\n".join(title) + "\n" if title else "") + table


def _csv(rows, cols) -> str:
    """CSV of result rows (lines end with ``\\r\\n``, as Python's ``csv`` writes by default)."""
    return format_csv(_stripped(rows, cols), columns=[c.strip() for c in cols], lineterminator="\r\n")


def _safe(name) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))


def plot_loss_curves(history: dict, path, *, title=None):
    """Training loss and episode validation loss over the schedule (paper's Figure 3).

    Drawn by :func:`stardist_hier.plotting.loss_curves_figure`: markers on every
    epoch, a dotted vertical line at each episode switch, a star at each episode's
    best epoch. Written atomically.
    """
    from ...plotting import loss_curves_figure, save_figure

    episodes = [dict(name=eh["name"], first_epoch=eh["first_epoch"], loss=eh["loss"],
                     val_loss=eh.get("val_loss_episode"), best_epoch=eh.get("best_epoch"),
                     best_val_loss=eh.get("best_val_loss"))
                for eh in history["episodes"]]
    save_figure(loss_curves_figure([episodes], title=title), path, dpi=110)


def write_overlays(part: Part, preds, cut: LabelSet, folder, test_name, *, n=2):
    """PNG per test image: ground truth and prediction outlines, coloured by label of ``cut``.

    Colours come from the class tree (:func:`stardist_hier.plotting.label_colors`); the
    legend lists the labels present. Drawn by :mod:`stardist_hier.plotting`.
    """
    from ...plotting import Panel, label_colors, overlay_figure, save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    colors = label_colors(cut)
    for i in range(min(n, len(part.X))):
        x = np.clip(part.X[i], 0, 1)
        gt, (pred, probs) = np.asarray(part.Y[i]), preds[i]
        own = part.label_sets[i]
        pred_cls = {int(k): cut.labels[int(np.argmax(cut.label_probabilities(p)[1:]))] for k, p in probs.items()}
        panels = [Panel(x, labels=np.clip(gt, 0, None), classes=_gt_labels(part.classes[i], own, cut),
                        title=f"ground truth ({cut.name})"),
                  Panel(x, labels=np.asarray(pred), classes=pred_cls, title=f"prediction ({cut.name})")]
        fig = overlay_figure(panels, colors=colors, default_label="other / no label")
        save_figure(fig, folder / f"{_safe(test_name)}_{i}.png", dpi=100)


def _gt_labels(classes, own: LabelSet, cut: LabelSet) -> dict:
    out = {}
    for k, v in classes.items():
        lab = None if v is None else own.resolve(v)
        if lab is None:
            continue
        leaves = own.leaf_set(lab)
        out[int(k)] = next((c for c in cut.labels if leaves <= cut.leaf_set(c)), None)
    return out
