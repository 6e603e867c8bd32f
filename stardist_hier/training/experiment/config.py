"""Experiment configs: reading and validating everything that needs no image (:func:`load_config`).

See :mod:`stardist_hier.training.experiment` for the config format.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ...errors import UserError, did_you_mean
from ...tree import LabelSet, LabelSetError, Taxonomy, TreeError, default_taxonomy
from ..schedule import Episode, ScheduleError, validate_schedule
from .sections import (CURVE_KEYS, EVALUATION_KEYS, TRAINING_KEYS, ConfigError, CurveSection, EvaluationSection,
                       TrainingSection, _mapping, _number, _unknown)

__all__ = ["load_config", "ExperimentConfig", "DatasetSpec", "TestSpec", "ConfigError", "TrainingSection",
           "EvaluationSection", "CurveSection", "TOP_KEYS", "TRAINING_KEYS", "EVALUATION_KEYS", "CURVE_KEYS",
           "SYNTHETIC_KEYS", "REGISTRY_KEYS", "SOURCES"]

TOP_KEYS = {"name", "seed", "taxonomy", "model", "training", "datasets", "episodes", "tests", "evaluation", "out"}
TRUTHS = ("labels", "leaves")
SOURCES = ("synthetic", "registry")


@dataclass
class DatasetSpec:
    """One ``datasets`` entry (see :mod:`stardist_hier.training.experiment`)."""

    name: str
    source: str
    options: dict
    label_set: LabelSet  # the label set its samples are labelled with


@dataclass
class TestSpec:
    """One ``tests`` entry: a dataset's test split scored at ``label_set``.

    ``truth``: ``"labels"`` scores against the dataset's labels; ``"leaves"`` (synthetic
    datasets only) against the generator's true leaf of every nucleus, at ``label_set``
    (default the label set ``leaves``).
    """

    name: str
    dataset: str
    label_set: LabelSet | None  # None: the dataset's own (``truth: leaves``: the label set ``leaves``)
    truth: str = "labels"


@dataclass
class ExperimentConfig:
    """A validated experiment config (from :func:`load_config`).

    ``training`` and ``evaluation`` are typed sections
    (:class:`~stardist_hier.training.experiment.sections.TrainingSection`,
    :class:`~stardist_hier.training.experiment.sections.EvaluationSection`); ``raw`` is the
    config as given (written to ``OUT/config.yaml``, hashed into :attr:`fingerprint`).
    """

    name: str
    seed: int
    taxonomy: Taxonomy
    model: dict
    training: TrainingSection
    datasets: dict
    episodes: tuple
    tests: tuple
    evaluation: EvaluationSection
    out: str | None
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Hash of everything that determines the run (the config less ``out``; less
        ``training.input_workers``, which does not change the batches)."""
        raw = {k: v for k, v in self.raw.items() if k not in ("out", "tests", "evaluation")}
        if isinstance(raw.get("training"), Mapping) and "input_workers" in raw["training"]:
            raw["training"] = {k: v for k, v in raw["training"].items() if k != "input_workers"}
        return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------ the config
MODEL_FROM_TAXONOMY = ("tree", "hier_tree", "n_classes", "n_channel_in")


def load_config(config, *, base_dir=None) -> ExperimentConfig:
    """Read and validate an experiment config (a YAML/JSON file or a mapping).

    Checks everything that needs no image data: keys, the taxonomy, model keywords,
    dataset sources, episodes (an empty episode, an unknown dataset), class weights,
    test sets (unknown dataset, a label set not on the tree), one section after the other.

    Raises
    ------
    ConfigError
        Naming the offending entry.
    """
    raw, base_dir = _read_raw(config, base_dir)
    taxonomy = _taxonomy_section(raw.get("taxonomy", "default"), base_dir)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    model, conf = _model_section(raw.get("model"), taxonomy.tree)
    training = TrainingSection.from_mapping(raw.get("training"))
    datasets = _datasets_section(raw.get("datasets"), taxonomy, base_dir)
    episodes = _episodes_section(raw.get("episodes"), datasets, conf)
    tests = _tests_section(raw.get("tests"), datasets, taxonomy)
    evaluation = EvaluationSection.from_mapping(raw.get("evaluation"), datasets=datasets, episodes=episodes)
    return ExperimentConfig(name=str(raw.get("name", "experiment")), seed=seed, taxonomy=taxonomy, model=model,
                            training=training, datasets=datasets, episodes=episodes, tests=tests,
                            evaluation=evaluation, out=raw.get("out"), raw=raw)


def _read_raw(config, base_dir) -> tuple:
    """The config as a plain mapping (a copy) with its top-level keys checked, and the folder
    relative paths are read from (the file's by default)."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        from ...io import load_yaml

        try:
            raw = load_yaml(path)  # safe loader, duplicate keys refused
        except UserError as e:
            raise ConfigError(str(e)) from None
        base_dir = path.parent if base_dir is None else Path(base_dir)
    else:
        raw = copy.deepcopy(config)
    base_dir = Path(base_dir or ".")
    raw = _mapping(raw, "config")
    _unknown(raw, TOP_KEYS, "config")
    try:
        json.dumps(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config: holds a value that is not plain data ({e})") from None
    if "name" in raw and not (isinstance(raw["name"], str) and raw["name"].strip()):
        raise ConfigError(f"name: must be a non-empty string, got {raw['name']!r}")
    if raw.get("out") is not None and not isinstance(raw["out"], str):
        raise ConfigError(f"out: must be a folder path (a string), got {raw['out']!r}")
    return raw, base_dir


def _taxonomy_section(tx_spec, base_dir) -> Taxonomy:
    """``taxonomy``: ``default``, a mapping or a file; the label set ``leaves`` always added."""
    try:
        if tx_spec in (None, "default"):
            taxonomy = default_taxonomy()
        elif isinstance(tx_spec, Mapping):
            taxonomy = Taxonomy.from_dict(tx_spec, source="config taxonomy")
        else:
            p = Path(tx_spec)
            taxonomy = Taxonomy.from_file(p if p.is_absolute() else base_dir / p)
    except (TreeError, LabelSetError, ValueError, TypeError, FileNotFoundError) as e:
        raise ConfigError(f"taxonomy: {e}") from None
    tree = taxonomy.tree
    if "leaves" not in taxonomy.names():
        # every leaf its own label: for datasets labelled at the finest level (e.g. an oracle source)
        taxonomy = Taxonomy(tree, {**{n: taxonomy[n] for n in taxonomy.names()}, "leaves": LabelSet.leaves_of(tree)})
    return taxonomy


def _model_section(spec, tree) -> tuple:
    """``model``: ``(keywords, Config2DHier)``; the tree's keys come from the taxonomy."""
    model = _mapping(spec, "model")
    for k in MODEL_FROM_TAXONOMY:
        if k in model:
            raise ConfigError(f"model: {k!r} comes from the taxonomy (3 input channels); remove it")
    return model, _check_model(model, tree)


def _datasets_section(spec, taxonomy, base_dir) -> dict:
    """``datasets``: ``{name: DatasetSpec}``, at least one."""
    dspecs = _mapping(spec, "datasets")
    if not dspecs:
        raise ConfigError("datasets: the config defines no dataset")
    return {str(name): _dataset_spec(str(name), s, taxonomy, base_dir) for name, s in dspecs.items()}


def _episodes_section(eps, datasets, conf) -> list:
    """``episodes``: the validated schedule, its class heads and class weights checked against the datasets."""
    if not isinstance(eps, list) or not eps:
        raise ConfigError("episodes: expected a non-empty list of episodes")
    episodes = []
    for i, e in enumerate(eps):
        for k in ("keep_optimizer_state", "restore_best", "reset_class_head", "freeze_trunk"):
            if isinstance(e, Mapping) and k in e and not isinstance(e[k], bool):
                raise ConfigError(f"episodes: episode {e.get('name', i)!r}: {k} must be true or false, got {e[k]!r}")
        try:
            episodes.append(Episode.from_dict(e, index=i))
        except ScheduleError as err:
            raise ConfigError(f"episodes: {err}") from None
    try:
        episodes = validate_schedule(episodes, datasets)
    except ScheduleError as err:
        raise ConfigError(f"episodes: {err}") from None
    _check_class_heads(conf.hier_class_heads, episodes, datasets)
    for ep in episodes:
        if ep.class_weights:
            labels = set().union(*(datasets[d].label_set.labels for d in ep.dataset_names))
            bad = [k for k in ep.class_weights if k not in labels]
            if bad:
                raise ConfigError(f"episodes: episode {ep.name!r}: class_weights name labels {bad} that none of "
                                  f"its datasets' label sets has")
    return episodes


def _check_class_heads(heads, episodes, datasets) -> None:
    """``model: hier_class_heads`` must be the label sets of the trained datasets, each once."""
    if not heads:
        return
    trained = [d for ep in episodes for d in ep.dataset_names]
    missing = sorted({datasets[d].label_set.name for d in trained} - set(heads))
    if missing:
        raise ConfigError(f"model: hier_class_heads {list(heads)} has no head for the label set(s) {missing} "
                          f"of the trained datasets; add them (one head per dataset label set)")
    names = sorted({datasets[d].label_set.name for d in trained})
    untrained = [h for h in heads if h not in names]
    if untrained:  # a typo: that head would never be trained, and the last head is the default
        raise ConfigError(f"model: hier_class_heads: head {untrained[0]!r} names no label set an episode trains "
                          f"on{did_you_mean(untrained[0], names)}; the heads must be the label sets of the "
                          f"trained datasets: {names}")


def _tests_section(tspecs, datasets, taxonomy) -> tuple:
    """``tests``: one :class:`TestSpec` per entry, names unique."""
    tspecs = [] if tspecs is None else tspecs
    if not isinstance(tspecs, list):
        raise ConfigError("tests: expected a list of test sets")
    tests, seen = [], set()
    for i, t in enumerate(tspecs):
        tests.append(_test_spec(i, t, datasets, taxonomy))
        if tests[-1].name in seen:
            raise ConfigError(f"tests: two test sets are named {tests[-1].name!r}")
        seen.add(tests[-1].name)
    return tuple(tests)


def _check_model(model: dict, tree):
    """The model's ``Config2DHier``; every key and value checked (ConfigError naming the key)."""
    from ...models.model2d import Config2DHier

    allowed = sorted(set(vars(Config2DHier(tree=tree, n_channel_in=3))) - set(MODEL_FROM_TAXONOMY))
    for k in model:
        if k not in allowed:
            raise ConfigError(f"model: unknown key {k!r}{did_you_mean(k, allowed)} (Config2DHier keywords)")
    for k in ("grid", "train_patch_size", "unet_kernel_size", "unet_pool"):
        v = model.get(k)
        if k in model and not (isinstance(v, (list, tuple)) and len(v) == 2 and all(
                isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v)):
            raise ConfigError(f"model: {k} must be two positive integers [y, x], got {v!r}")
    for k, lo in (("n_rays", 3), ("unet_n_depth", 1), ("unet_n_filter_base", 1), ("train_batch_size", 1),
                  ("unet_n_conv_per_depth", 1), ("net_conv_after_unet", 0), ("train_epochs", 1),
                  ("train_steps_per_epoch", 1), ("train_completion_crop", 0)):
        if k in model:
            _number(model[k], f"model: {k}", lo=lo, lo_open=False, integer=True)
    if model.get("train_n_val_patches") is not None:
        _number(model["train_n_val_patches"], "model: train_n_val_patches", lo=1, lo_open=False, integer=True)
    for k, hi in (("unet_dropout", 1), ("train_foreground_only", 1), ("train_background_reg", None)):
        if k in model:
            _number(model[k], f"model: {k}", lo=0, lo_open=False, hi=hi, hi_open=True if k == "unet_dropout" else False)
    for k in ("unet_batch_norm", "train_shape_completion", "train_tensorboard", "use_gpu"):
        if k in model and not isinstance(model[k], bool):
            raise ConfigError(f"model: {k}: must be true or false, got {model[k]!r}")
    if "train_learning_rate" in model:
        _number(model["train_learning_rate"], "model: train_learning_rate", lo=0)
    try:
        conf = Config2DHier(tree=tree, n_channel_in=3, **_model_kwargs(model))
    except (TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"model: {e}") from None
    reasons = conf.invalid_reasons()
    if reasons:
        k = sorted(reasons)[0]
        raise ConfigError(f"model: {k}: {reasons[k]}")
    ok, invalid = conf.is_valid(return_invalid=True)
    if not ok:
        raise ConfigError(f"model: invalid values for {', '.join(invalid)}")
    stride = [2 ** int(conf.unet_n_depth) * int(g) for g in conf.grid]
    patch = tuple(conf.train_patch_size)
    if any(p % s for p, s in zip(patch, stride)):
        raise ConfigError(f"model: train_patch_size {list(patch)} must be divisible by the network's stride "
                          f"{stride} (2**unet_n_depth * grid)")
    return conf


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
    if ls_name is not None and not isinstance(ls_name, str):
        raise ConfigError(f"{where}: label_set must be the name of a label set of the taxonomy, got {ls_name!r}")
    if source == "synthetic":
        _unknown(spec, SYNTHETIC_KEYS, where)
        try:
            from ... import synthetic
        except ImportError:
            raise ConfigError(f"{where}: stardist_hier.synthetic is not available") from None
        gen = spec.setdefault("generator", name)
        if gen not in synthetic.DATASET_NAMES:
            raise ConfigError(f"{where}: unknown synthetic generator {gen!r}; "
                              f"known: {', '.join(synthetic.DATASET_NAMES)}")
        try:
            dom = synthetic.domain_params(gen, **_mapping(spec.get("domain"), f"{where}: domain"))
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}: domain: {e}") from None
        if dom.lookalike:
            from ...synthetic import default_leaf_styles

            unknown = sorted({l for pair in dom.lookalike for l in pair} - set(default_leaf_styles()))
            if unknown:
                raise ConfigError(f"{where}: domain: lookalike names unknown leaves {unknown}")
        n = spec.setdefault("n_tiles", 10)
        if not isinstance(n, int) or n < 3:
            raise ConfigError(f"{where}: n_tiles must be an integer >= 3 (train, val and test), got {n!r}")
        for k in ("size", "seed"):
            if k in spec:
                _number(spec[k], f"{where}: {k}", lo=16 if k == "size" else 0, lo_open=False, integer=True)
        ls_name = ls_name or dom.label_set
        _split_counts(spec.get("split"), n, where, need_test=True)
    else:
        _unknown(spec, REGISTRY_KEYS, where)
        from ...datasets import get_dataset

        try:
            info = get_dataset(spec.get("dataset", name))
        except KeyError as e:
            raise ConfigError(f"{where}: {e.args[0]}") from None
        if "path" not in spec:
            raise ConfigError(f"{where}: missing 'path' (the dataset folder)")
        if not isinstance(spec["path"], str):
            raise ConfigError(f"{where}: path must be a folder path (a string), got {spec['path']!r}")
        p = Path(spec["path"])
        spec["path"] = str(p if p.is_absolute() else base_dir / p)
        if not Path(spec["path"]).exists():
            raise ConfigError(f"{where}: path not found: {spec['path']}")
        for k in ("patch_size", "limit"):
            if spec.get(k) is not None:
                _number(spec[k], f"{where}: {k}", lo=1, lo_open=False, integer=True)
        if "seed" in spec:
            _number(spec["seed"], f"{where}: seed", lo=0, lo_open=False, integer=True)
        _mapping(spec.get("options"), f"{where}: options")
        for k in ("split", "test_split"):
            if spec.get(k) is not None and not isinstance(spec[k], str):
                raise ConfigError(f"{where}: {k} must be the name of a split (a string), got {spec[k]!r}")
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
    if "name" in t and not (isinstance(t["name"], str) and t["name"].strip()):
        raise ConfigError(f"tests[{i}]: name must be a non-empty string, got {t['name']!r}")
    name = str(t.get("name", t.get("dataset", f"test_{i}")))
    where = f"test set {name!r}"
    _unknown(t, {"name", "dataset", "label_set", "truth"}, where)
    d = t.get("dataset")
    if not isinstance(d, str) or d not in datasets:
        raise ConfigError(f"{where}: unknown dataset {d!r}; known: {', '.join(datasets)}")
    truth = t.get("truth", "labels")
    if truth not in TRUTHS:
        raise ConfigError(f"{where}: truth must be one of {', '.join(TRUTHS)}, got {truth!r}")
    if truth == "leaves" and datasets[d].source != "synthetic":
        raise ConfigError(f"{where}: truth: leaves needs a synthetic dataset (the generator knows every "
                          f"nucleus' true leaf); dataset {d!r} has source {datasets[d].source!r}")
    spec = t.get("label_set")
    if spec is None:
        return TestSpec(name, d, None, truth)
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
        if "unknown tree node" in str(e) or "unknown label set" in str(e):
            raise ConfigError(f"{where}: its labels are not on the class tree: {e}") from None
        raise ConfigError(f"{where}: label_set: {e}") from None
    except TypeError as e:
        raise ConfigError(f"{where}: invalid label_set ({e})") from None
    own = datasets[d].label_set if truth == "labels" else taxonomy["leaves"]
    if not (ls.covered_leaves() & own.covered_leaves()):
        raise ConfigError(f"{where}: label set {ls.name!r} shares no tree leaf with dataset {d!r}'s "
                          f"label set {own.name!r}")
    return TestSpec(name, d, ls, truth)


def _split_counts(split, n, where, *, need_test=True) -> dict:
    """``{train, val, test}`` image counts of a pool of ``n`` (counts or fractions)."""
    split = {"train": 0.6, "val": 0.2, "test": 0.2} if split is None else _mapping(split, f"{where}: split")
    _unknown(split, {"train", "val", "test"}, f"{where}: split")
    out = {}
    for k in ("val", "test", "train"):
        v = split.get(k, 0 if k != "train" else None)
        if v is None and k != "train":
            raise ConfigError(f"{where}: split {k!r} must be a count or a fraction, got None")
        if v is None:
            out[k] = n - out["val"] - out["test"]
        elif isinstance(v, float) and 0 <= v <= 1:
            out[k] = max(1, int(round(v * n))) if v > 0 else 0
        elif isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            out[k] = v
        else:
            raise ConfigError(f"{where}: split {k!r} must be a count or a fraction, got {v!r}")
    if out["val"] < 1 or out["train"] < 1 or (need_test and out["test"] < 1):
        raise ConfigError(f"{where}: split {out} of {n} images leaves a part empty")
    if sum(out.values()) > n:
        raise ConfigError(f"{where}: split {out} asks for more than the {n} images")
    return out
