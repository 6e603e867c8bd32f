"""Experiment configs: reading and validating everything that needs no image (:func:`load_config`).

See :mod:`stardist_hier.training.experiment` for the config format.
"""

from __future__ import annotations

from ...errors import UserError
import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ...tree import LabelSet, LabelSetError, Taxonomy, TreeError, default_taxonomy
from ..schedule import Episode, ScheduleError, validate_schedule

TOP_KEYS = {"name", "seed", "taxonomy", "model", "training", "datasets", "episodes", "tests", "evaluation", "out"}
TRAINING_KEYS = {"steps_per_epoch", "tensorboard", "augment", "oversample"}
EVALUATION_KEYS = {"convention", "overlays", "prob_thresh", "nms_thresh"}
SOURCES = ("synthetic", "registry")


class ConfigError(UserError):
    """An invalid experiment config; the message names the entry."""


@dataclass
class DatasetSpec:
    """One ``datasets`` entry (see :mod:`stardist_hier.training.experiment`)."""

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
        from ...models.model2d import Config2DHier

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
        from ..augment import Augmenter

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
    from ...metrics import CONVENTIONS

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
            from ... import synthetic
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
        from ...datasets import get_dataset

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
