"""Experiments from a YAML file: datasets, episodes, test sets -> tables, curves, overlays.

An experiment config (see ``examples/two_datasets.yaml``)::

    name: two_datasets
    seed: 0
    taxonomy: default              # or a taxonomy file (JSON/YAML), relative to the config
    model: {n_rays: 16, grid: [2, 2], train_patch_size: [64, 64], ...}   # Config2DHier keywords
    training:
      steps_per_epoch: 10          # >= 2
      tensorboard: true            # StarDist's TensorBoard logs in OUT/model/logs
      augment: {p_color: 0.8, rare_p_elastic: 0.5, ...}   # Augmenter keywords, or false
      oversample: {threshold: 0.1, factor: 2.0}          # rare-class images, or false
    datasets:
      A: {source: synthetic, generator: pannuke, n_tiles: 12, size: 128, seed: 1,
          split: {train: 8, val: 2, test: 2}}
      C: {source: registry, dataset: consep, path: /data/consep, split: train, test_split: test,
          split_fractions: {val: 0.2}, patch_size: 256, limit: 40}
    episodes:
      - {name: pretrain, datasets: A, epochs: 20, early_stopping: {patience: 3, min_delta: 0.0}}
      - {name: finetune, datasets: {A: 0.3, B: 0.7}, epochs: 10, keep_optimizer_state: false}
    tests:
      - {name: B-test, dataset: B}                       # at B's own label set
      - {name: B-coarse, dataset: B, label_set: consep4} # or a label set name / {labels: {...}}
    evaluation: {convention: conic, overlays: 2}

Everything that needs no image is checked first (:func:`load_config`), then the data
are read and checked (labels against label sets), all before any training; errors
are :class:`ConfigError` naming the entry.

The run folder ``OUT`` holds ``config.yaml`` (the config as run), ``model/`` (the
StarDist model folder, TensorBoard logs in ``model/logs``), ``checkpoint/`` (resume
state, rewritten after every epoch), ``history.json`` (per-episode histories),
``results.md`` / ``results.csv`` (shaped like the paper's Tables 2 and 4),
``tests/<name>.csv`` (per-label PQ), ``loss_curves.png`` (Figure 3 style) and
``overlays/``. Rerunning with the same config and ``OUT`` continues an interrupted run
from its last completed epoch; a finished run is only evaluated again.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..tree import LabelSet, LabelSetError, Taxonomy, TreeError, default_taxonomy
from .data import MultiDataset, Part
from .schedule import Episode, ScheduleError, validate_schedule

__all__ = ["ConfigError", "ExperimentConfig", "DatasetSpec", "TestSpec", "load_config", "load_data",
           "run_experiment", "results_table", "plot_loss_curves"]

TOP_KEYS = {"name", "seed", "taxonomy", "model", "training", "datasets", "episodes", "tests", "evaluation", "out"}
TRAINING_KEYS = {"steps_per_epoch", "tensorboard", "augment", "oversample"}
EVALUATION_KEYS = {"convention", "overlays", "prob_thresh", "nms_thresh"}
SOURCES = ("synthetic", "registry")


class ConfigError(ValueError):
    """An invalid experiment config; the message names the entry."""


@dataclass
class DatasetSpec:
    """One ``datasets`` entry (see the module docs)."""

    name: str
    source: str
    options: dict
    label_set: LabelSet  # the label set its samples are labelled with


@dataclass
class TestSpec:
    """One ``tests`` entry: a dataset's test split scored at ``label_set``."""

    name: str
    dataset: str
    label_set: LabelSet | None  # None: the dataset's own


@dataclass
class ExperimentConfig:
    """A validated experiment config (from :func:`load_config`)."""

    name: str
    seed: int
    taxonomy: Taxonomy
    model: dict
    training: dict
    datasets: dict
    episodes: tuple
    tests: tuple
    evaluation: dict
    out: str | None
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Hash of everything that determines the run (the config less ``out``)."""
        raw = {k: v for k, v in self.raw.items() if k not in ("out", "tests", "evaluation")}
        return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ the config
def _mapping(v, where) -> dict:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(v).__name__}")
    return dict(v)


def _unknown(d, known, where):
    extra = sorted(set(d) - set(known))
    if extra:
        raise ConfigError(f"{where}: unknown keys {extra}; known: {sorted(known)}")


def load_config(config, *, base_dir=None) -> ExperimentConfig:
    """Read and validate an experiment config (a YAML/JSON file or a mapping).

    Checks everything that needs no image data: keys, the taxonomy, model keywords,
    dataset sources, episodes (an empty episode, an unknown dataset), class weights,
    test sets (unknown dataset, a label set not on the tree).

    Raises
    ------
    ConfigError
        Naming the offending entry.
    """
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        import yaml

        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        base_dir = path.parent if base_dir is None else Path(base_dir)
    else:
        raw = copy.deepcopy(config)
    base_dir = Path(base_dir or ".")
    raw = _mapping(raw, "config")
    _unknown(raw, TOP_KEYS, "config")

    # taxonomy
    tx_spec = raw.get("taxonomy", "default")
    try:
        if tx_spec in (None, "default"):
            taxonomy = default_taxonomy()
        elif isinstance(tx_spec, Mapping):
            taxonomy = Taxonomy.from_dict(tx_spec, source="config taxonomy")
        else:
            p = Path(tx_spec)
            taxonomy = Taxonomy.from_file(p if p.is_absolute() else base_dir / p)
    except (TreeError, LabelSetError, ValueError, FileNotFoundError) as e:
        raise ConfigError(f"taxonomy: {e}") from None
    tree = taxonomy.tree

    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: must be an integer, got {seed!r}")

    # model
    model = _mapping(raw.get("model"), "model")
    for k in ("tree", "hier_tree", "n_classes"):
        if k in model:
            raise ConfigError(f"model: {k!r} comes from the taxonomy; remove it")
    try:
        from ..models.model2d import Config2DHier

        conf = Config2DHier(tree=tree, n_channel_in=3, **_model_kwargs(model))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None
    ok, invalid = conf.is_valid(return_invalid=True)
    if not ok:
        raise ConfigError(f"model: invalid values for {', '.join(invalid)}")

    # training
    training = _mapping(raw.get("training"), "training")
    _unknown(training, TRAINING_KEYS, "training")
    spe = training.setdefault("steps_per_epoch", 100)
    if not isinstance(spe, int) or spe < 2:
        raise ConfigError(f"training: steps_per_epoch must be an integer >= 2, got {spe!r}")
    training.setdefault("tensorboard", True)
    aug = training.setdefault("augment", {})
    if aug not in (False, None) and not isinstance(aug, Mapping):
        raise ConfigError("training: augment must be a mapping of Augmenter keywords or false")
    if isinstance(aug, Mapping):
        from .augment import Augmenter

        if "rare" in aug or "source" in aug:
            raise ConfigError("training: augment: 'rare' and 'source' are set by the runner (see 'oversample')")
        try:
            Augmenter(**aug)
        except (TypeError, ValueError, ImportError) as e:
            raise ConfigError(f"training: augment: {e}") from None
    over = training.setdefault("oversample", {"threshold": 0.1, "factor": 2.0})
    if over not in (False, None):
        over = _mapping(over, "training: oversample")
        _unknown(over, {"threshold", "factor"}, "training: oversample")
        if not 0 < float(over.get("threshold", 0.1)) <= 1 or not float(over.get("factor", 2.0)) > 0:
            raise ConfigError("training: oversample needs 0 < threshold <= 1 and factor > 0")
        training["oversample"] = over

    # datasets
    dspecs = _mapping(raw.get("datasets"), "datasets")
    if not dspecs:
        raise ConfigError("datasets: the config defines no dataset")
    datasets = {}
    for name, spec in dspecs.items():
        datasets[str(name)] = _dataset_spec(str(name), spec, taxonomy, base_dir)

    # episodes
    eps = raw.get("episodes")
    if not isinstance(eps, list) or not eps:
        raise ConfigError("episodes: expected a non-empty list of episodes")
    episodes = []
    for i, e in enumerate(eps):
        try:
            episodes.append(Episode.from_dict(e, index=i))
        except ScheduleError as err:
            raise ConfigError(f"episodes: {err}") from None
    try:
        episodes = validate_schedule(episodes, datasets)
    except ScheduleError as err:
        raise ConfigError(f"episodes: {err}") from None
    for ep in episodes:
        if ep.class_weights:
            labels = set().union(*(datasets[d].label_set.labels for d in ep.dataset_names))
            bad = [k for k in ep.class_weights if k not in labels]
            if bad:
                raise ConfigError(f"episodes: episode {ep.name!r}: class_weights name labels {bad} that none of "
                                  f"its datasets' label sets has")

    # tests
    tests = []
    tspecs = raw.get("tests") or []
    if not isinstance(tspecs, list):
        raise ConfigError("tests: expected a list of test sets")
    seen = set()
    for i, t in enumerate(tspecs):
        tests.append(_test_spec(i, t, datasets, taxonomy))
        if tests[-1].name in seen:
            raise ConfigError(f"tests: two test sets are named {tests[-1].name!r}")
        seen.add(tests[-1].name)

    evaluation = _mapping(raw.get("evaluation"), "evaluation")
    _unknown(evaluation, EVALUATION_KEYS, "evaluation")
    from ..metrics import CONVENTIONS

    evaluation.setdefault("convention", "conic")
    if evaluation["convention"] not in CONVENTIONS:
        raise ConfigError(f"evaluation: convention must be one of {CONVENTIONS}, got {evaluation['convention']!r}")
    evaluation.setdefault("overlays", 2)

    return ExperimentConfig(name=str(raw.get("name", "experiment")), seed=seed, taxonomy=taxonomy, model=model,
                            training=training, datasets=datasets, episodes=episodes, tests=tuple(tests),
                            evaluation=evaluation, out=raw.get("out"), raw=raw)


def _model_kwargs(model: dict) -> dict:
    kw = dict(model)
    for k in ("grid", "train_patch_size"):
        if k in kw and isinstance(kw[k], list):
            kw[k] = tuple(kw[k])
    return kw


SYNTHETIC_KEYS = {"source", "generator", "n_tiles", "size", "seed", "domain", "split", "label_set"}
REGISTRY_KEYS = {"source", "dataset", "path", "split", "test_split", "split_fractions", "patch_size", "limit",
                 "label_set", "options", "seed"}


def _dataset_spec(name, spec, taxonomy, base_dir) -> DatasetSpec:
    where = f"dataset {name!r}"
    spec = _mapping(spec, where)
    source = spec.get("source", "synthetic")
    if source not in SOURCES:
        raise ConfigError(f"{where}: unknown source {source!r}; known: {', '.join(SOURCES)}")
    ls_name = spec.get("label_set")
    if source == "synthetic":
        _unknown(spec, SYNTHETIC_KEYS, where)
        try:
            from .. import synthetic
        except ImportError:
            raise ConfigError(f"{where}: stardist_hier.synthetic is not available") from None
        gen = spec.setdefault("generator", name)
        try:
            dom = synthetic.domain_params(gen, **_mapping(spec.get("domain"), f"{where}: domain"))
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}: unknown synthetic generator {gen!r} ({e}); "
                              f"known: {', '.join(synthetic.DATASET_NAMES)}") from None
        n = spec.setdefault("n_tiles", 10)
        if not isinstance(n, int) or n < 3:
            raise ConfigError(f"{where}: n_tiles must be an integer >= 3 (train, val and test), got {n!r}")
        ls_name = ls_name or dom.label_set
        _split_counts(spec.get("split"), n, where, need_test=True)
    else:
        _unknown(spec, REGISTRY_KEYS, where)
        from ..datasets import get_dataset

        try:
            info = get_dataset(spec.get("dataset", name))
        except KeyError as e:
            raise ConfigError(f"{where}: {e.args[0]}") from None
        if "path" not in spec:
            raise ConfigError(f"{where}: missing 'path' (the dataset folder)")
        p = Path(spec["path"])
        spec["path"] = str(p if p.is_absolute() else base_dir / p)
        if not Path(spec["path"]).exists():
            raise ConfigError(f"{where}: path not found: {spec['path']}")
        ls_name = ls_name or info.label_sets[0]
    try:
        ls = taxonomy[ls_name]
    except LabelSetError as e:
        raise ConfigError(f"{where}: {e}") from None
    return DatasetSpec(name=name, source=source, options=spec, label_set=ls)


def _test_spec(i, t, datasets, taxonomy) -> TestSpec:
    if isinstance(t, str):
        t = {"dataset": t}
    t = _mapping(t, f"tests[{i}]")
    name = str(t.get("name", t.get("dataset", f"test_{i}")))
    where = f"test set {name!r}"
    _unknown(t, {"name", "dataset", "label_set"}, where)
    d = t.get("dataset")
    if d not in datasets:
        raise ConfigError(f"{where}: unknown dataset {d!r}; known: {', '.join(datasets)}")
    spec = t.get("label_set")
    if spec is None:
        return TestSpec(name, d, None)
    tree = taxonomy.tree
    try:
        if isinstance(spec, str):
            ls = taxonomy[spec]
        elif isinstance(spec, Mapping):
            spec = dict(spec) if "labels" in spec else {"labels": dict(spec)}
            ls = LabelSet.from_dict(tree, spec, name=spec.get("name", name))
        else:
            raise ConfigError(f"{where}: label_set must be a label set name or a mapping of labels")
    except LabelSetError as e:
        raise ConfigError(f"{where}: its labels are not on the class tree: {e}") from None
    own = datasets[d].label_set
    if not (ls.covered_leaves() & own.covered_leaves()):
        raise ConfigError(f"{where}: label set {ls.name!r} shares no tree leaf with dataset {d!r}'s "
                          f"label set {own.name!r}")
    return TestSpec(name, d, ls)


def _split_counts(split, n, where, *, need_test=True) -> dict:
    """``{train, val, test}`` image counts of a pool of ``n`` (counts or fractions)."""
    split = {"train": 0.6, "val": 0.2, "test": 0.2} if split is None else _mapping(split, f"{where}: split")
    _unknown(split, {"train", "val", "test"}, f"{where}: split")
    out = {}
    for k in ("val", "test", "train"):
        v = split.get(k, 0 if k != "train" else None)
        if v is None:
            out[k] = n - out["val"] - out["test"]
        elif isinstance(v, float) and 0 <= v <= 1:
            out[k] = max(1, int(round(v * n))) if v > 0 else 0
        elif isinstance(v, int) and v >= 0:
            out[k] = v
        else:
            raise ConfigError(f"{where}: split {k!r} must be a count or a fraction, got {v!r}")
    if out["val"] < 1 or out["train"] < 1 or (need_test and out["test"] < 1):
        raise ConfigError(f"{where}: split {out} of {n} images leaves a part empty")
    if sum(out.values()) > n:
        raise ConfigError(f"{where}: split {out} asks for more than the {n} images")
    return out


# -------------------------------------------------------------------- the data
def load_data(cfg: ExperimentConfig, *, verbose=1):
    """Read every dataset; return ``(MultiDataset, {dataset: test Part})``."""
    from tqdm.auto import tqdm

    train, val, test = {}, {}, {}
    for name, spec in tqdm(cfg.datasets.items(), desc="datasets", disable=not verbose, leave=False):
        where = f"dataset {name!r}"
        o = spec.options
        if spec.source == "synthetic":
            from .. import synthetic

            samples = synthetic.generate_dataset(o["generator"], o["n_tiles"], seed=o.get("seed", cfg.seed),
                                                 size=o.get("size", 256), taxonomy=cfg.taxonomy,
                                                 domain=o.get("domain"))
            counts = _split_counts(o.get("split"), len(samples), where)
            pools = {"train": samples[:counts["train"]],
                     "val": samples[counts["train"]:counts["train"] + counts["val"]],
                     "test": samples[counts["train"] + counts["val"]:][:counts["test"]]}
        else:
            pools = _registry_pools(name, o, spec, cfg, where)
        parts = {}
        for k, ss in pools.items():
            try:
                parts[k] = Part.from_samples(ss, cfg.taxonomy, label_set=spec.label_set)
            except (LabelSetError, KeyError) as e:
                raise ConfigError(f"{where}: {e}") from None
            if parts[k].X and parts[k].X[0].ndim != 3 or any(x.shape[-1] != 3 for x in parts[k].X):
                raise ConfigError(f"{where}: images must be RGB (H, W, 3)")
        train[name], val[name], test[name] = parts["train"], parts["val"], parts["test"]
    return MultiDataset(train, val), test


def _registry_pools(name, o, spec, cfg, where) -> dict:
    from ..datasets import extract_patches, open_dataset

    def read(split):
        try:
            ds = open_dataset(o.get("dataset", name), o["path"], label_set=spec.label_set.name, split=split,
                              **dict(o.get("options") or {}))
        except (ValueError, FileNotFoundError, NotImplementedError) as e:
            raise ConfigError(f"{where}: {e}") from None
        out = []
        limit = o.get("limit")
        for s in ds:
            out.extend(extract_patches(s, size=o["patch_size"]) if o.get("patch_size") else [s])
            if limit is not None and len(out) >= limit:
                break
        return out[:limit] if limit is not None else out

    pool = read(o.get("split"))
    rng = np.random.default_rng(o.get("seed", cfg.seed))
    order = rng.permutation(len(pool))
    pool = [pool[i] for i in order]
    fr = _mapping(o.get("split_fractions"), f"{where}: split_fractions")
    if o.get("test_split") is not None:
        test = read(o["test_split"])
        n_val = max(1, int(round(float(fr.get("val", 0.2)) * len(pool))))
        pools = {"train": pool[n_val:], "val": pool[:n_val], "test": test}
    else:
        c = _split_counts({"val": float(fr.get("val", 0.2)), "test": float(fr.get("test", 0.2))}, len(pool), where)
        pools = {"val": pool[:c["val"]], "test": pool[c["val"]:c["val"] + c["test"]],
                 "train": pool[c["val"] + c["test"]:]}
    for k, v in pools.items():
        if not v:
            raise ConfigError(f"{where}: the {k} part is empty")
    return pools


# -------------------------------------------------------------------- the run
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

    from ..models.model2d import Config2DHier, StarDist2DHier
    from .augment import Augmenter, oversampling_weights, rare_images
    from .callback import train_episodes

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


# ----------------------------------------------------------------- evaluation
def evaluate_tests(model, cfg: ExperimentConfig, tests: dict, history: dict, out: Path, *, verbose=1) -> list:
    """Predict and score every test set; write the results table, per-label CSVs, overlays."""
    from tqdm.auto import tqdm

    from ..metrics import evaluate_cut, format_csv, tidy_rows

    ev = cfg.evaluation
    kw = {k: ev[k] for k in ("prob_thresh", "nms_thresh") if k in ev}
    rows = []
    (out / "tests").mkdir(exist_ok=True)
    cache = {}
    for t in cfg.tests:
        part = tests[t.dataset]
        own = cfg.datasets[t.dataset].label_set
        cut = t.label_set or own
        if t.dataset not in cache:
            preds = []
            for x in tqdm(part.X, desc=f"predict {t.dataset}", disable=not verbose, leave=False):
                labels, res = model.predict_instances(x, **kw)
                preds.append((labels, {i + 1: p for i, p in enumerate(np.asarray(res["class_prob"]))}))
            cache[t.dataset] = preds
        preds = cache[t.dataset]
        gts, gcls = _with_ignore_instance(part)
        report = evaluate_cut(gts, [p[0] for p in preds], gcls, [p[1] for p in preds], label_set=own, cut=cut,
                              convention=ev["convention"])
        (out / "tests" / f"{_safe(t.name)}.csv").write_text(format_csv(tidy_rows(report)))
        rows.append(_table_row(cfg, history, t, cut, report))
        if ev.get("overlays"):
            write_overlays(part, preds, cut, out / "overlays", t.name, n=int(ev["overlays"]))
    cols = ["Pre-train", "Eps", "Fine-tune", "Eps ", "Test", "Label set", "PQ", "bPQ"]
    (out / "results.csv").write_text(_csv(rows, cols))
    (out / "results.md").write_text(_markdown(rows, cols, cfg))
    if verbose:
        print(_markdown(rows, cols, cfg), file=sys.stderr)
    return rows


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
            "Test": t.name, "Label set": cut.name, "PQ": report.mpq, "bPQ": report.binary.pq}


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
                  f"PQ: mean over the test label set's labels of the per-label PQ "
                  f"({cfg.evaluation['convention']} convention); bPQ: class-agnostic PQ.", ""]
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


# ---------------------------------------------------------------------- figures
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
