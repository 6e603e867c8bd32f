"""Scoring a trained model on the experiment's test sets (:func:`evaluate_tests`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ...io import atomic_write_text
from ..data import Part
from .config import ExperimentConfig
from .outputs import _csv, _markdown, _safe, write_overlays

def evaluate_tests(model, cfg: ExperimentConfig, tests: dict, history: dict, out: Path, *, verbose=1,
                   val_parts: dict | None = None) -> list:
    """Predict and score every test set; write the results table, per-label CSVs, overlays.

    With ``evaluation: tune_thresholds`` the probability and NMS thresholds are first tuned
    on the validation parts (``val_parts``, ``{dataset: Part}``) of the named training
    datasets (never on a test split; see :func:`.config._tune_spec`) and written to
    ``OUT/thresholds.json``.
    """
    from ...console import progress

    from ...metrics import evaluate_cut, format_csv, tidy_rows

    ev = cfg.evaluation
    kw = {k: ev[k] for k in ("prob_thresh", "nms_thresh") if k in ev}
    if ev.get("tune_thresholds"):
        kw = tune_thresholds(model, [val_parts[d] for d in ev["tune_thresholds"]], verbose=verbose)
        import json

        atomic_write_text(out / "thresholds.json", json.dumps(
            {"tuned_on": [f"{d} (val)" for d in ev["tune_thresholds"]], **kw}, indent=1))
    rows = []
    (out / "tests").mkdir(exist_ok=True)
    cache = {}
    for t in cfg.tests:
        part = tests[t.dataset]
        own = cfg.datasets[t.dataset].label_set
        cut = t.label_set or own
        if t.dataset not in cache:
            preds = []
            for x in progress(part.X, desc=f"predict {t.dataset}", verbose=verbose, leave=False):
                labels, res = model.predict_instances(x, **kw)
                preds.append((labels, {i + 1: p for i, p in enumerate(np.asarray(res["class_prob"]))}))
            cache[t.dataset] = preds
        preds = cache[t.dataset]
        gts, gcls = _with_ignore_instance(part)
        report = evaluate_cut(gts, [p[0] for p in preds], gcls, [p[1] for p in preds], label_set=own, cut=cut,
                              convention=ev["convention"])
        atomic_write_text(out / "tests" / f"{_safe(t.name)}.csv", format_csv(tidy_rows(report)))
        rows.append(_table_row(cfg, history, t, cut, report))
        if ev.get("overlays"):
            write_overlays(part, preds, cut, out / "overlays", t.name, n=int(ev["overlays"]))
    cols = ["Pre-train", "Eps", "Fine-tune", "Eps ", "Test", "Label set", "PQ", "mPQ+"]
    atomic_write_text(out / "results.csv", _csv(rows, cols))
    atomic_write_text(out / "results.md", _markdown(rows, cols, cfg))
    if verbose:
        print(_markdown(rows, cols, cfg), file=sys.stderr)
    return rows


def tune_thresholds(model, parts, *, nms_threshs=(0.3, 0.4, 0.5), verbose=0) -> dict:
    """Tune ``prob_thresh`` and ``nms_thresh`` on ``parts`` (validation parts); ``{prob_thresh, nms_thresh}``.

    Ignore regions (negative labels) count as nuclei here, one per connected region:
    the thresholds are about segmentation, and ignored regions hold unannotated nuclei.
    """
    from skimage.measure import label as cc

    X, Y = [], []
    for p in parts:
        for x, y in zip(p.X, p.Y):
            y = np.asarray(y).astype(np.int32)
            if (y < 0).any():
                extra = cc(y < 0, connectivity=1)
                y = np.where(y < 0, extra + max(int(y.max()), 0), y)
            X.append(x)
            Y.append(y)
    t = model.optimize_thresholds(X, Y, nms_threshs=list(nms_threshs), iou_threshs=[0.5],
                                  predict_kwargs=dict(show_tile_progress=False),
                                  optimize_kwargs=dict(verbose=0), save_to_json=False)
    return {"prob_thresh": float(t["prob"]), "nms_thresh": float(t["nms"])}


def _with_ignore_instance(part: Part):
    """Ground truth for scoring: ignore pixels (negative labels) become one extra instance with
    class ``None``, so that predictions lying mostly inside them are dropped, not counted as false."""
    gts, gcls = [], []
    for y, c in zip(part.Y, part.classes):
        y = np.asarray(y)
        c = dict(c)
        if (y < 0).any():
            k = int(max(y.max(), max(c, default=0))) + 1
            y = np.where(y < 0, k, y)
            c[k] = None
        gts.append(y)
        gcls.append(c)
    return gts, gcls


def _table_row(cfg, history, t, cut, report) -> dict:
    eps = history["episodes"]

    def names(ep):
        return "+".join(f"{k}" if len(ep["datasets"]) == 1 else f"{k}({v:g})" for k, v in ep["datasets"].items())

    first, rest = eps[0], eps[1:]
    return {"Pre-train": names(first), "Eps": first["epochs_run"],
            "Fine-tune": " -> ".join(names(e) for e in rest) if rest else "-",
            "Eps ": "+".join(str(e["epochs_run"]) for e in rest) if rest else "-",
            "Test": t.name, "Label set": cut.name, "PQ": report.binary.pq, "mPQ+": report.mpq}


def episode_scores(model, cfg: ExperimentConfig, val_parts: dict, datasets, *, max_images: int = 16) -> dict:
    """PQ and mPQ+ of every dataset of an episode on its validation images, at its own label set.

    Used at the end of each episode (TensorBoard ``episodes/`` scalars and ``history.json``);
    thresholds are the model's current ones, at most ``max_images`` images per dataset.

    Returns
    -------
    dict
        ``{"<dataset>/PQ": binary PQ, "<dataset>/mPQ+": mean per-label PQ}``.
    """
    from ...metrics import evaluate_cut

    out = {}
    for d in datasets:
        part = val_parts[d]
        n = min(len(part.X), int(max_images))
        if n == 0:
            continue
        sub = Part(part.X[:n], part.Y[:n], part.classes[:n], part.label_sets[:n]) if n < len(part.X) else part
        preds = []
        for x in sub.X:
            labels, res = model.predict_instances(x, show_tile_progress=False)
            preds.append((labels, {i + 1: p for i, p in enumerate(np.asarray(res["class_prob"]))}))
        gts, gcls = _with_ignore_instance(sub)
        own = cfg.datasets[d].label_set
        report = evaluate_cut(gts, [p[0] for p in preds], gcls, [p[1] for p in preds], label_set=own, cut=own,
                              convention=cfg.evaluation["convention"])
        out[f"{d}/PQ"] = float(report.binary.pq)
        out[f"{d}/mPQ+"] = float(report.mpq)
    return out


def tensorboard_episode_logger(logdir: Path):
    """``log(step, scores)``: write ``scores`` as TensorBoard scalars under ``logdir`` (tag ``episodes/<name>``)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))

    def log(step: int, scores: dict):
        with writer.as_default():
            for k, v in scores.items():
                tf.summary.scalar(f"episodes/{k}", float(v), step=int(step))
        writer.flush()

    return log
