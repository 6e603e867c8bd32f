"""The typed sections of an experiment config (``training``, ``evaluation``) and the value checks every section shares.

Each section is a frozen dataclass that validates its values where it is built
(``__post_init__``) and is read from the config's mapping by ``from_mapping``, which
also refuses unknown keys. A section's keys are its fields
(:data:`TRAINING_KEYS`, :data:`EVALUATION_KEYS`, :data:`CURVE_KEYS`), so a new key is
one field with its default and its check in ``__post_init__``. Messages name the
section and the key (``training: steps_per_epoch must be ...``).

:func:`~stardist_hier.training.experiment.config.load_config` builds the sections;
readers use their attributes (``cfg.training.steps_per_epoch``,
``cfg.evaluation.curve.datasets``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from ...errors import UserError, did_you_mean

__all__ = ["ConfigError", "TrainingSection", "EvaluationSection", "CurveSection", "TRAINING_KEYS",
           "EVALUATION_KEYS", "CURVE_KEYS"]


class ConfigError(UserError):
    """An invalid experiment config; the message names the entry."""


# ------------------------------------------------------------------ value checks shared by every section
def _mapping(v, where) -> dict:
    """``v`` as a new dict (``None``: empty), else a ConfigError naming ``where``."""
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(v).__name__}")
    return dict(v)


def _unknown(d, known, where) -> None:
    """Refuse a key of ``d`` not in ``known``, naming the closest known one."""
    extra = sorted((str(k) for k in set(d) - set(known)))
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}{did_you_mean(extra[0], known)}; "
                          f"known: {', '.join(sorted(known))}")


def _number(v, where, *, lo=None, hi=None, lo_open=True, hi_open=True, integer=False) -> float:
    """``v`` as a finite number within the bounds, else a ConfigError naming ``where``."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
    if integer:
        ok = ok and isinstance(v, numbers.Integral)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        what = "an integer" if integer else "a number"
        rng = ""
        if lo is not None or hi is not None:
            left = ("(" if lo_open else "[") + ("-inf" if lo is None else f"{lo:g}")
            right = ("inf" if hi is None else f"{hi:g}") + (")" if hi_open else "]")
            rng = f" in {left}, {right}"
        raise ConfigError(f"{where}: must be {what}{rng}, got {v!r}")
    return v


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _keys(cls) -> frozenset:
    return frozenset(f.name for f in fields(cls))


# ------------------------------------------------------------------ training
def _default_oversample() -> dict:
    return {"threshold": 0.1, "factor": 2.0}


@dataclass(frozen=True, kw_only=True)
class TrainingSection:
    """The ``training`` section: how the episodes are trained.

    Parameters
    ----------
    steps_per_epoch : int
        Optimiser steps per epoch, at least 2 (default 100).
    tensorboard : bool
        StarDist's TensorBoard logs in ``OUT/model/logs`` (default true).
    augment : dict or None
        :class:`~stardist_hier.training.augment.Augmenter` keywords (``{}``: its defaults;
        ``None`` or ``false``: no augmentation). ``rare`` and ``source`` are set by the runner.
    oversample : dict or None
        ``{threshold, factor}`` of rare-class image oversampling (``None`` or ``false``: none;
        a missing key takes its default 0.1, 2.0).
    deterministic : bool
        TensorFlow's deterministic kernels (default true).
    input_workers : int
        Threads building training batches, at least 1 (default 1; does not change the batches).

    Raises
    ------
    ConfigError
        A value out of range, naming ``training`` and the key.
    """

    steps_per_epoch: int = 100
    tensorboard: bool = True
    augment: dict | None = field(default_factory=dict)
    oversample: dict | None = field(default_factory=_default_oversample)
    deterministic: bool = True
    input_workers: int = 1

    def __post_init__(self):
        spe = self.steps_per_epoch
        if not _is_int(spe) or spe < 2:
            raise ConfigError(f"training: steps_per_epoch must be an integer >= 2, got {spe!r}")
        if not isinstance(self.tensorboard, bool):
            raise ConfigError(f"training: tensorboard must be true or false, got {self.tensorboard!r}")
        if not isinstance(self.deterministic, bool):
            raise ConfigError(f"training: deterministic must be true or false, got {self.deterministic!r}")
        iw = self.input_workers
        if not _is_int(iw) or iw < 1:
            raise ConfigError(f"training: input_workers must be an integer >= 1 (threads building training "
                              f"batches), got {iw!r}")
        object.__setattr__(self, "augment", _augment(self.augment))
        object.__setattr__(self, "oversample", _oversample(self.oversample))

    @classmethod
    def from_mapping(cls, raw) -> TrainingSection:
        """The section from the config's ``training`` mapping (``None``: every default)."""
        d = _mapping(raw, "training")
        _unknown(d, TRAINING_KEYS, "training")
        return cls(**d)


def _augment(aug) -> dict | None:
    if aug is False or aug is None:
        return None
    if not isinstance(aug, Mapping):
        raise ConfigError("training: augment must be a mapping of Augmenter keywords or false")
    from ..augment import Augmenter

    if "rare" in aug or "source" in aug:
        raise ConfigError("training: augment: 'rare' and 'source' are set by the runner (see 'oversample')")
    try:
        Augmenter(**aug)
    except (TypeError, ValueError, ImportError) as e:
        raise ConfigError(f"training: augment: {e}") from None
    return dict(aug)


def _oversample(over) -> dict | None:
    if over is False or over is None:
        return None
    over = _mapping(over, "training: oversample")
    _unknown(over, {"threshold", "factor"}, "training: oversample")
    _number(over.get("threshold", 0.1), "training: oversample: threshold", lo=0, hi=1, hi_open=False)
    _number(over.get("factor", 2.0), "training: oversample: factor", lo=0)
    return over


TRAINING_KEYS = _keys(TrainingSection)


# ------------------------------------------------------------------ evaluation
@dataclass(frozen=True, kw_only=True)
class CurveSection:
    """``evaluation: curve``: validation loss, PQ and mPQ+ of the named datasets after every epoch.

    ``{datasets: [NAME, ...], max_images: 4}`` (or just the list of names). A dataset may be
    one the current episode does not train on (e.g. the target during pre-training); its
    validation split is used, never its test split.

    Parameters
    ----------
    datasets : tuple of str
        Dataset names, at least one, each once.
    max_images : int
        Validation images scored per dataset, at least 1 (default 4).
    """

    datasets: tuple
    max_images: int = 4

    def __post_init__(self):
        where = "evaluation: curve"
        names = [self.datasets] if isinstance(self.datasets, str) else self.datasets
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(d, str) for d in names):
            raise ConfigError(f"{where}: datasets must be a non-empty list of dataset names, got {names!r}")
        _number(self.max_images, f"{where}: max_images", lo=1, lo_open=False, integer=True)
        object.__setattr__(self, "datasets", tuple(dict.fromkeys(names)))
        object.__setattr__(self, "max_images", int(self.max_images))

    @classmethod
    def from_mapping(cls, spec, *, datasets) -> CurveSection:
        """The section from ``evaluation: curve`` (a mapping, a list of names or one name);
        every name must be a key of ``datasets``."""
        where = "evaluation: curve"
        if isinstance(spec, (str, list)):
            spec = {"datasets": spec}
        spec = _mapping(spec, where)
        _unknown(spec, CURVE_KEYS, where)
        names = spec.get("datasets")
        section = cls(datasets=names, max_images=spec.get("max_images", 4))
        for d in section.datasets:
            if d not in datasets:
                raise ConfigError(f"{where}: unknown dataset {d!r}{did_you_mean(d, list(datasets))}; "
                                  f"known: {', '.join(datasets)}")
            # every dataset has a non-empty validation split (checked with the dataset, and when read)
        return section


CURVE_KEYS = _keys(CurveSection)

_FIXED = ("prob_thresh", "nms_thresh")


@dataclass(frozen=True, kw_only=True)
class EvaluationSection:
    """The ``evaluation`` section: how the test sets are scored.

    Parameters
    ----------
    convention : str
        PQ convention (:data:`stardist_hier.metrics.CONVENTIONS`; default ``conic``).
    overlays : int
        Overlay images per test set, at least 0 (default 2; ``false``: 0).
    prob_thresh, nms_thresh : float, optional
        Fixed thresholds in (0, 1); default the model's.
    tune_thresholds : tuple of str, optional
        Datasets whose validation splits tune the thresholds (see :meth:`from_mapping`).
    curve : CurveSection, optional
        Per-epoch validation curve.

    Raises
    ------
    ConfigError
        A value out of range, naming ``evaluation`` and the key.
    """

    convention: str = "conic"
    overlays: int = 2
    prob_thresh: float | None = None
    nms_thresh: float | None = None
    tune_thresholds: tuple | None = None
    curve: CurveSection | None = None

    def __post_init__(self):
        from ...metrics import CONVENTIONS

        if self.convention not in CONVENTIONS:
            raise ConfigError(f"evaluation: convention must be one of {CONVENTIONS}, got {self.convention!r}")
        if self.overlays is False or self.overlays is None:
            object.__setattr__(self, "overlays", 0)
        else:
            _number(self.overlays, "evaluation: overlays (images per test set)", lo=0, lo_open=False, integer=True)
        for k in _FIXED:
            if getattr(self, k) is not None:
                _number(getattr(self, k), f"evaluation: {k}", lo=0, hi=1)
        tune = self.tune_thresholds
        if tune is not None:
            if not isinstance(tune, (list, tuple)) or not tune or not all(isinstance(d, str) for d in tune):
                raise ConfigError(f"evaluation: tune_thresholds: expected a non-empty list of dataset names, "
                                  f"got {tune!r}")
            fixed = [k for k in _FIXED if getattr(self, k) is not None]
            if fixed:
                raise ConfigError(f"evaluation: tune_thresholds: cannot be combined with fixed {' and '.join(fixed)}")
            object.__setattr__(self, "tune_thresholds", tuple(tune))
        if self.curve is not None and not isinstance(self.curve, CurveSection):
            raise ConfigError(f"evaluation: curve: expected a CurveSection, got {type(self.curve).__name__}")

    @property
    def thresholds(self) -> dict:
        """The fixed thresholds given, as ``predict_instances`` keywords (``{}``: the model's)."""
        return {k: getattr(self, k) for k in _FIXED if getattr(self, k) is not None}

    @classmethod
    def from_mapping(cls, raw, *, datasets, episodes) -> EvaluationSection:
        """The section from the config's ``evaluation`` mapping; ``tune_thresholds`` and
        ``curve`` are checked against the config's ``datasets`` and ``episodes``."""
        d = _mapping(raw, "evaluation")
        _unknown(d, EVALUATION_KEYS, "evaluation")
        section = cls(**{k: d[k] for k in ("convention", "overlays", *_FIXED) if k in d})
        for k in _FIXED:  # given as null: refused (absent means the model's)
            if k in d and d[k] is None:
                _number(None, f"evaluation: {k}", lo=0, hi=1)
        tune = _tune_spec(d, datasets, episodes) if d.get("tune_thresholds") is not None else None
        curve = CurveSection.from_mapping(d["curve"], datasets=datasets) if d.get("curve") not in (None, False) \
            else None
        return replace(section, tune_thresholds=tune, curve=curve)


def _tune_spec(evaluation, datasets, episodes) -> tuple:
    """``evaluation: tune_thresholds``: datasets whose *validation* parts tune the thresholds.

    Entries are dataset names or ``{dataset: NAME, split: val}``. Refused: a split other
    than ``val`` (a test split, above all), a dataset that no episode trains on (its
    validation split is as unseen as its test split), and fixed thresholds given too.
    """
    where = "evaluation: tune_thresholds"
    spec = evaluation["tune_thresholds"]
    if isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where}: expected a non-empty list of dataset names, got {spec!r}")
    fixed = [k for k in _FIXED if k in evaluation]
    if fixed:
        raise ConfigError(f"{where}: cannot be combined with fixed {' and '.join(fixed)}")
    trained = {d for ep in episodes for d in ep.dataset_names}
    out = []
    for e in spec:
        e = {"dataset": e} if isinstance(e, str) else _mapping(e, where)
        _unknown(e, {"dataset", "split"}, where)
        d, split = e.get("dataset"), e.get("split", "val")
        if d not in datasets:
            raise ConfigError(f"{where}: unknown dataset {d!r}; known: {', '.join(datasets)}")
        if split == "test":
            raise ConfigError(f"{where}: thresholds tuned on the test split of {d!r} would be scored on the "
                              "data they were tuned on; tune on the validation split ('val') of a training dataset")
        if split != "val":
            raise ConfigError(f"{where}: split must be 'val', got {split!r}")
        if d not in trained:
            raise ConfigError(f"{where}: dataset {d!r} is not trained on by any episode; tuning on its validation "
                              "split uses the unseen domain (tune only on training datasets)")
        if d not in out:
            out.append(d)
    return tuple(out)


EVALUATION_KEYS = _keys(EvaluationSection)
