"""The paper's protocols on synthetic datasets (Tables 2 and 4), and the README's main job.

Datasets come from :mod:`stardist_hier.synthetic` (PanNuke-, MoNuSAC- and CoNSeP-like
tiles, each labelled with its own label set and with its own domain shift). Every
row of a table is a sequence of *episodes* (train on one dataset for some epochs,
then continue on the next with the same model and last layer, the loss adapted to each
dataset's label set) followed by a test on one dataset, scored at that dataset's own
label set with :func:`stardist_hier.metrics.evaluate_cut` (CoNIC convention: PQ and
counts pooled over images; mPQ+ is the mean over labels).

Every episode runs through the dataset-switching callback
(:func:`stardist_hier.training.train_episodes`) on one model and ends with the weights
of its best epoch on that episode's validation loss; the optimizer state carries over
between episodes. Rows sharing their first episodes reuse the trained weights of that
prefix.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["Settings", "Row", "TABLE2", "TABLE4", "DEMO", "prepare", "run_rows", "format_table",
           "summarize"]


@dataclass(frozen=True)
class Settings:
    """Sizes of a run (defaults: a few minutes per row on 2 CPU cores)."""

    n_train: int = 48
    n_val: int = 8
    n_test: int = 12
    tile: int = 128
    steps_per_epoch: int = 20
    seed: int = 0
    model: dict = field(default_factory=lambda: dict(
        n_rays=32, grid=(2, 2), unet_n_depth=3, unet_n_filter_base=16, net_conv_after_unet=64,
        train_patch_size=(128, 128), train_batch_size=4, train_learning_rate=1e-3,
        train_tensorboard=False, train_reduce_lr=None))


@dataclass(frozen=True)
class Row:
    """One table row: ``episodes`` = ((dataset, epochs), ...), then ``test`` on a dataset."""

    episodes: tuple
    test: str

    @property
    def label(self) -> str:
        return " -> ".join(f"{d}({e})" for d, e in self.episodes) + f" | test {self.test}"


#: The README's main job: Table 2 for one pair, with the equal-budget control.
DEMO = (Row((("consep", 10),), "consep"), Row((("consep", 20),), "consep"),
        Row((("pannuke", 10), ("consep", 10)), "consep"))
#: Table 2: test on the target's own test split. The rows training on the target alone
#: for twice the epochs are a control the paper does not have: same number of steps as
#: pre-training plus fine-tuning.
TABLE2 = (
    Row((("consep", 10),), "consep"),
    Row((("consep", 20),), "consep"),
    Row((("monusac", 10), ("consep", 10)), "consep"),
    Row((("pannuke", 10), ("consep", 10)), "consep"),
    Row((("monusac", 10),), "monusac"),
    Row((("monusac", 20),), "monusac"),
    Row((("pannuke", 10), ("monusac", 10)), "monusac"),
)
#: Table 4: domain generalisation to a dataset never trained on.
TABLE4 = (
    Row((("consep", 10),), "monusac"),
    Row((("consep", 10), ("pannuke", 10)), "monusac"),
    Row((("monusac", 10),), "consep"),
    Row((("monusac", 10), ("pannuke", 10)), "consep"),
)


def prepare(settings: Settings, names):
    """Train/validation/test splits of the synthetic datasets ``names`` (deterministic per seed)."""
    from .synthetic import DATASET_NAMES, generate_dataset

    n = settings.n_train + settings.n_val + settings.n_test
    out = {}
    for name in names:
        samples = generate_dataset(name, n, seed=settings.seed * 100 + DATASET_NAMES.index(name), size=settings.tile)
        a, b = settings.n_train, settings.n_train + settings.n_val
        out[name] = dict(train=samples[:a], val=samples[a:b], test=samples[b:])
    return out


def _images(samples):
    return [s.image.astype(np.float32) / 255.0 for s in samples]


def _part(samples, taxonomy):
    from .training import Part

    return Part(X=_images(samples), Y=[s.training_labels() for s in samples], classes=[dict(s.classes) for s in samples],
                label_sets=[taxonomy[s.label_set] for s in samples], names=[f"tile {i}" for i in range(len(samples))])


def _train_episode(model, name, data, taxonomy, epochs, steps, seed, verbose=0):
    """One episode through the dataset-switching callback; ends on the episode's best weights.

    ``verbose`` is Keras's (0 silent, 1 bar, 2 one line per epoch; see :func:`stardist_hier.console.keras_verbose`).
    """
    from .training import Episode, MultiDataset, train_episodes

    multi = MultiDataset({name: _part(data["train"], taxonomy)}, {name: _part(data["val"], taxonomy)})
    cb = train_episodes(model, multi, [Episode(name=name, datasets=name, max_epochs=epochs, restore_best=True)],
                        steps_per_epoch=steps, seed=seed, verbose=verbose)
    eh = cb.history["episodes"][0]
    return dict(loss=eh["loss"], val_loss=eh["val_loss_episode"])


def evaluate(model, samples, taxonomy):
    """PQ of ``model`` on ``samples`` at their own label set (CoNIC convention)."""
    from .metrics import evaluate_cut

    ls = taxonomy[samples[0].label_set]
    preds, probs = [], []
    for s in samples:
        labels, res = model.predict_instances(s.image.astype(np.float32) / 255.0, show_tile_progress=False)
        preds.append(labels)
        probs.append(np.asarray(res["class_prob"]))
    report = evaluate_cut([s.labels for s in samples], preds, [dict(s.classes) for s in samples], probs,
                          label_set=ls, convention="conic")
    return report, preds, probs


def run_rows(rows, settings: Settings = Settings(), *, out=None, log=print, verbose: int = 1):
    """Train and test every row; returns one result dict per row.

    Result keys: ``row`` (:class:`Row`), ``pq`` (binary PQ), ``mpq`` (mPQ+ at the test
    set's label set), ``per_class``, ``history`` (``[(dataset, keras history dict)]``).

    ``verbose``: 0 prints nothing but ``log`` lines, 1 one progress bar for all rows
    (StarDist's status lines and threshold-optimisation bars held back), 2 and more also
    Keras's per-epoch output, StarDist's lines and bars and each episode's start.
    """
    from . import console

    console.import_tensorflow()  # before the models import it: TensorFlow's start-up notices held back
    from .models.model2d import Config2DHier, StarDist2DHier
    from .tree import default_taxonomy

    if log is print:
        log = console.write  # keeps the progress bar whole
    quiet = console.quiet_stardist
    from csbdeep.utils.tf import keras_import

    taxonomy = default_taxonomy()
    names = sorted({d for r in rows for d, _ in r.episodes} | {r.test for r in rows})
    t0 = time.time()
    data = prepare(settings, names)
    log(f"generated synthetic datasets {', '.join(names)} ({time.time() - t0:.1f} s)")
    prefix_cache = {}
    results = []
    # one bar for the phase: a unit per episode, plus threshold optimisation and test per row
    bar = console.progress(total=sum(len(r.episodes) + 2 for r in rows), desc="train and test", unit="step",
                           verbose=verbose)
    for i, row in enumerate(rows):
        basedir = None if out is None else str(Path(out) / "models")
        name = f"row{i}_seed{settings.seed}"
        config = Config2DHier(tree=taxonomy.tree, n_channel_in=3, **settings.model)
        # weight initialisation from the seed: every row of a seed starts from the same weights
        keras_import("utils", "set_random_seed")(settings.seed)
        with quiet(verbose):
            model = StarDist2DHier(config, name=name if basedir else None, basedir=basedir)
        history = []
        start = 0
        for k in range(len(row.episodes), 0, -1):  # longest cached prefix
            if row.episodes[:k] in prefix_cache:
                weights, history = prefix_cache[row.episodes[:k]]
                model.keras_model.set_weights(weights)
                history = list(history)
                start = k
                break
        bar.update(start)
        for k in range(start, len(row.episodes)):
            ds, eps = row.episodes[k]
            bar.set_postfix_str(f"row {i + 1}/{len(rows)}: {ds}, {eps} epochs", refresh=False)
            if verbose >= 2:
                log(f"[{row.label}] episode {k + 1}: {ds} for {eps} epochs")
            with quiet(verbose):
                history.append((ds, _train_episode(model, ds, data[ds], taxonomy, eps, settings.steps_per_epoch,
                                                   settings.seed + k,
                                                   verbose=console.keras_verbose(1) if verbose >= 2 else 0)))
            prefix_cache[row.episodes[:k + 1]] = (model.keras_model.get_weights(), list(history))
            bar.update()
        test = data[row.test]
        bar.set_postfix_str(f"row {i + 1}/{len(rows)}: thresholds", refresh=False)
        with quiet(verbose):
            model.optimize_thresholds(_images(test["val"]), [s.labels for s in test["val"]], nms_threshs=[0.3, 0.4],
                                      iou_threshs=[0.5], predict_kwargs=dict(show_tile_progress=False),
                                      optimize_kwargs=dict(verbose=1 if verbose >= 2 else 0),
                                      save_to_json=basedir is not None)
        bar.update()
        bar.set_postfix_str(f"row {i + 1}/{len(rows)}: test {row.test}", refresh=False)
        report, preds, probs = evaluate(model, test["test"], taxonomy)
        bar.update()
        results.append(dict(row=row, pq=report.pq, mpq=report.mpq,
                            per_class={k: v.pq for k, v in report.per_class.items()}, history=history))
        log(f"[{row.label}] PQ {report.pq:.3f}, mPQ+ {report.mpq:.3f}")
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            _overlay(test["test"][0], preds[0], probs[0], taxonomy[test["test"][0].label_set],
                     Path(out) / f"overlay_row{i}_seed{settings.seed}.png", title=row.label)
    bar.close()
    if out is not None:
        _loss_curves(results, Path(out) / f"loss_curves_seed{settings.seed}.png")
    return results


def summarize(runs):
    """Combine ``run_rows`` results of several seeds: per row mean and standard deviation."""
    out = []
    for per_seed in zip(*runs):
        r0 = per_seed[0]
        labels = sorted({k for r in per_seed for k in r["per_class"]})
        out.append(dict(row=r0["row"], n=len(per_seed),
                        pq=np.array([r["pq"] for r in per_seed]), mpq=np.array([r["mpq"] for r in per_seed]),
                        per_class={lab: np.array([r["per_class"].get(lab, np.nan) for r in per_seed])
                                   for lab in labels}))
    return out


def _fmt(v):
    v = np.atleast_1d(np.asarray(v, float))
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}"


def format_table(summary, *, per_class=True) -> str:
    """Markdown shaped like the paper's Tables 2 and 4 (mean ± std over seeds).

    With ``per_class``, one table per test set, with a PQ column for each of its labels.
    """
    groups = {}
    for r in summary:
        groups.setdefault(r["row"].test if per_class else "", []).append(r)
    out = []
    for rows in groups.values():
        labels = sorted({k for r in rows for k in r["per_class"]}) if per_class else []
        head = ["Pre-train", "Eps", "Fine-tune", "Eps", "Test", "PQ", "mPQ+"] + [f"PQ {lab}" for lab in labels]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            eps = list(r["row"].episodes)
            pre = eps[0] if len(eps) > 1 else ("-", "-")
            fine = eps[-1]
            cells = [str(pre[0]), str(pre[1]), fine[0], str(fine[1]), r["row"].test, _fmt(r["pq"]), _fmt(r["mpq"])]
            cells += [_fmt(r["per_class"][lab]) if lab in r["per_class"] else "" for lab in labels]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def write_tables(summary, out: Path, stem: str = "results"):
    """Write ``stem.md`` and ``stem.csv`` (per seed values joined by ';') atomically."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{stem}.md.tmp"
    tmp.write_text(format_table(summary) + "\n")
    tmp.replace(out / f"{stem}.md")
    labels = sorted({k for r in summary for k in r["per_class"]})
    tmp = out / f"{stem}.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["episodes", "test", "n_seeds", "pq_mean", "pq_std", "mpq_mean", "mpq_std"] + labels)
        for r in summary:
            w.writerow([" -> ".join(f"{d}:{e}" for d, e in r["row"].episodes), r["row"].test, r["n"],
                        f"{np.nanmean(r['pq']):.4f}", f"{np.nanstd(r['pq']):.4f}",
                        f"{np.nanmean(r['mpq']):.4f}", f"{np.nanstd(r['mpq']):.4f}"]
                       + [f"{np.nanmean(r['per_class'][lab]):.4f}" if lab in r["per_class"] else ""
                          for lab in labels])
    tmp.replace(out / f"{stem}.csv")


def with_epochs(rows, epochs: int):
    """The same rows with epoch budgets scaled so that the default 10 becomes ``epochs``."""
    return tuple(Row(tuple((d, max(1, e * epochs // 10)) for d, e in r.episodes), r.test) for r in rows)


def _loss_curves(results, path: Path):
    """One panel per row: train/validation loss per episode (:func:`stardist_hier.plotting.loss_curves_figure`)."""
    from .plotting import loss_curves_figure, save_figure

    runs = [[dict(name=name, loss=h["loss"], val_loss=h.get("val_loss")) for name, h in r["history"]]
            for r in results]
    save_figure(loss_curves_figure(runs, titles=[r["row"].label for r in results]), path, dpi=100)


def _overlay(sample, pred, probs, label_set, path: Path, *, title=""):
    """Ground truth and prediction side by side, coloured by label of the test set's label set,
    with a legend (:func:`stardist_hier.plotting.overlay_figure`)."""
    from .plotting import Panel, label_colors, overlay_figure, save_figure

    gt_cls = {int(k): v for k, v in dict(sample.classes).items() if v in label_set.labels}
    lp = label_set.label_probabilities(np.asarray(probs)) if len(probs) else np.zeros((0, 1))
    pred_cls = {i + 1: label_set.labels[int(np.argmax(p[1:]))] for i, p in enumerate(lp)}
    panels = [Panel(sample.image, labels=np.clip(sample.labels, 0, None), classes=gt_cls,
                    title=f"ground truth ({label_set.name})"),
              Panel(sample.image, labels=pred, classes=pred_cls, title=f"prediction ({label_set.name})")]
    fig = overlay_figure(panels, colors=label_colors(label_set), default_label="no label", title=title or None)
    save_figure(fig, path, dpi=100)


def quick(settings: Settings) -> Settings:
    """A much smaller run (smoke tests)."""
    return replace(settings, n_train=8, n_val=2, n_test=2, steps_per_epoch=2)
