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
    on validation parts (``val_parts``, ``{dataset: Part}``), never on a test split (see
    :func:`.sections._tune_spec`), per test set by :func:`threshold_plan`: on the tested
    dataset's own validation split when the row trains on it, else on all trained datasets'.
    All are written to ``OUT/thresholds.json`` (``by_test``); the model folder keeps those
    tuned on the datasets named by ``tune_thresholds``.
    """
    from ...console import progress

    from ...metrics import evaluate_cut, format_csv, tidy_rows

    ev = cfg.evaluation
    kw = ev.thresholds
    by_test = {t.name: kw for t in cfg.tests}
    if ev.tune_thresholds:
        import json

        plan = threshold_plan(cfg)
        tuned = {}  # tuple of datasets -> thresholds, each tuned once
        for key in [ev.tune_thresholds] + [plan[t.name] for t in cfg.tests]:
            if key not in tuned:
                tuned[key] = tune_thresholds(model, [val_parts[d] for d in key], verbose=verbose)
        kw = tuned[ev.tune_thresholds]
        by_test = {t.name: tuned[plan[t.name]] for t in cfg.tests}
        atomic_write_text(out / "thresholds.json", json.dumps(
            {"tuned_on": [f"{d} (val)" for d in ev.tune_thresholds], **kw,
             "by_test": {t.name: {"tuned_on": [f"{d} (val)" for d in plan[t.name]], **by_test[t.name]}
                         for t in cfg.tests}}, indent=1))
        # the model folder keeps those of all the tuning datasets (StarDist's thresholds.json):
        # predicting with it later, e.g. `stardist-hier predict --model OUT/model`, uses them
        model.thresholds = {"prob": kw["prob_thresh"], "nms": kw["nms_thresh"]}
        if model.basedir is not None:
            atomic_write_text(model.logdir / "thresholds.json",
                              json.dumps({"prob": kw["prob_thresh"], "nms": kw["nms_thresh"]}))
    rows = []
    (out / "tests").mkdir(exist_ok=True)
    cache = {}
    for t in cfg.tests:
        if getattr(t, "truth", "labels") == "leaves":
            # the generator's true leaves (see build.leaf_truth_part): same images, leaf-level truth
            part = tests[(t.dataset, "leaves")]
            own = cfg.taxonomy["leaves"]
        else:
            part = tests[t.dataset]
            own = cfg.datasets[t.dataset].label_set
        cut = t.label_set or own
        th = by_test[t.name]
        key = (t.dataset, tuple(sorted(th.items())))
        if key not in cache:
            preds = []
            for x in progress(part.X, desc=f"predict {t.dataset}", verbose=verbose, leave=False):
                labels, res = model.predict_instances(x, head=_head(model, cfg, t.dataset), **th)
                preds.append((labels, {i + 1: p for i, p in enumerate(np.asarray(res["class_prob"]))}))
            cache[key] = preds
        preds = cache[key]
        gts, gcls = _with_ignore_instance(part)
        report = evaluate_cut(gts, [p[0] for p in preds], gcls, [p[1] for p in preds], label_set=own, cut=cut,
                              convention=ev.convention)
        atomic_write_text(out / "tests" / f"{_safe(t.name)}.csv", format_csv(tidy_rows(report)))
        rows.append(_table_row(cfg, history, t, cut, report))
        if ev.overlays:
            write_overlays(part, preds, cut, out / "overlays", t.name, n=ev.overlays)
    cols = ["Pre-train", "Eps", "Fine-tune", "Eps ", "Test", "Label set", "PQ", "mPQ+"]
    atomic_write_text(out / "results.csv", _csv(rows, cols))
    atomic_write_text(out / "results.md", _markdown(rows, cols, cfg))
    if verbose:
        print(_markdown(rows, cols, cfg), file=sys.stderr)
    return rows


def threshold_plan(cfg: ExperimentConfig) -> dict:
    """The validation splits each test set's thresholds are tuned on: ``{test name: (dataset, ...)}``.

    One rule for every row of every study (issue 19): a test set of a dataset the row trains on
    is scored with thresholds tuned on that dataset's validation split alone; a test set of a
    dataset no episode trains on, with thresholds tuned on the validation splits of all the
    datasets the row trains on (in the order the episodes name them). Never a test split, never
    an untrained dataset's validation split. ``evaluation: tune_thresholds`` switches tuning on
    (and names the datasets whose thresholds the model folder keeps, see :func:`evaluate_tests`);
    empty when it is not set.
    """
    from ..schedule import trained_datasets

    if not cfg.evaluation.tune_thresholds:
        return {}
    trained = tuple(trained_datasets(cfg.episodes))
    return {t.name: (t.dataset,) if t.dataset in trained else trained for t in cfg.tests}


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


def episode_scores(model, cfg: ExperimentConfig, val_parts: dict, datasets, *, max_images: int = 16,
                   thresholds: dict | None = None) -> dict:
    """PQ and mPQ+ of every dataset of ``datasets`` on its validation images, at its own label set.

    The one validation scorer: used at the end of each episode (TensorBoard ``episodes/``
    scalars and ``history.json``) and after every epoch by ``evaluation: curve``
    (:func:`curve_rows`). ``thresholds`` (``{prob_thresh, nms_thresh}``): default the
    model's current ones; at most ``max_images`` images per dataset.

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
            labels, res = model.predict_instances(x, show_tile_progress=False, **dict(thresholds or {}))
            preds.append((labels, {i + 1: p for i, p in enumerate(np.asarray(res["class_prob"]))}))
        gts, gcls = _with_ignore_instance(sub)
        own = cfg.datasets[d].label_set
        report = evaluate_cut(gts, [p[0] for p in preds], gcls, [p[1] for p in preds], label_set=own, cut=own,
                              convention=cfg.evaluation.convention)
        out[f"{d}/PQ"] = float(report.binary.pq)
        out[f"{d}/mPQ+"] = float(report.mpq)
    return out


# ------------------------------------------------------------------ evaluation: curve
#: Thresholds of the curve's PQ: StarDist's defaults, the same at every epoch.
CURVE_THRESHOLDS = {"prob_thresh": 0.5, "nms_thresh": 0.4}
CURVE_COLUMNS = ["episode", "epoch", "global_epoch", "dataset", "val_loss", "pq", "mpq"]


def validation_batch(model, part: Part, *, seed: int, what: str = "validation"):
    """A fixed validation batch ``(x, y)`` of ``part``, built as the training callback builds its
    episode batch (:func:`stardist_hier.training.callback.fixed_validation_batch`)."""
    from ..callback import fixed_validation_batch

    return fixed_validation_batch(model, part, seed=seed, what=what)


def validation_losses(model, batch) -> dict:
    """The compiled training loss on ``batch`` (what the callback's ``val_loss_episode`` is):
    ``{"val_loss": total, "val_<output>_loss": ...}`` for every loss Keras reports."""
    x, y = batch
    res = model.keras_model.evaluate(x, y, batch_size=model.config.train_batch_size, verbose=0, return_dict=True)
    out = {"val_loss": float(res["loss"])}
    for k, v in res.items():
        if k != "loss" and k.endswith("loss"):
            out[f"val_{k}"] = float(v)
    return out


def curve_rows(model, cfg: ExperimentConfig, val_parts: dict, batches: dict, *, episode: str, epoch: int,
               global_epoch: int) -> list:
    """One ``evaluation: curve`` row per named dataset: validation loss (on ``batches[d]``, see
    :func:`validation_batch`) and PQ / mPQ+ (:func:`episode_scores`, fixed thresholds
    :data:`CURVE_THRESHOLDS`, at most ``max_images`` images) at the dataset's label set."""
    spec = cfg.evaluation.curve
    rows = []
    for d in spec.datasets:
        sc = episode_scores(model, cfg, val_parts, [d], max_images=spec.max_images, thresholds=CURVE_THRESHOLDS)
        rows.append({"episode": str(episode), "epoch": int(epoch), "global_epoch": int(global_epoch), "dataset": d,
                     **validation_losses(model, batches[d]),
                     "pq": sc.get(f"{d}/PQ", float("nan")), "mpq": sc.get(f"{d}/mPQ+", float("nan"))})
    return rows


def history_curve_rows(history: dict) -> list:
    """The curve rows kept in a run's history (``episodes[k]["curve"]``), in epoch order."""
    rows = [r for eh in history.get("episodes", []) for r in eh.get("curve") or []]
    return sorted(rows, key=lambda r: (int(r["global_epoch"]), str(r["dataset"])))


def write_curve(history: dict, out: Path, *, title=None, plot: bool = True) -> list:
    """``OUT/curve.csv`` (atomically) and ``OUT/curve.png`` from the curve rows of ``history``."""
    import csv
    import io

    rows = history_curve_rows(history)
    cols = CURVE_COLUMNS + sorted({k for r in rows for k in r} - set(CURVE_COLUMNS))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(out) / "curve.csv", buf.getvalue())
    if plot and rows:
        from ...plotting import save_figure, validation_curve_figure

        save_figure(validation_curve_figure(rows, title=title), Path(out) / "curve.png", dpi=110)
    return rows


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


def _head(model, cfg: ExperimentConfig, dataset: str):
    """The class head for ``dataset``'s test split: its label set's head when the model has one
    per dataset (``hier_class_heads``); else the model's default (the last head; an unseen dataset)."""
    name = cfg.datasets[dataset].label_set.name
    heads = getattr(model, "class_heads", ())
    return name if len(heads) > 1 and name in heads else None
