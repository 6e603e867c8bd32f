"""Training episodes: which datasets to train on, for how long (no TensorFlow).

The paper (section 4) trains on dataset A, then continues on dataset B with the same
last layer, each stage ("episode") stopped early on its own validation loss. An
:class:`Episode` describes one stage; a schedule is a sequence of episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..errors import UserError

__all__ = ["Episode", "ScheduleError", "validate_schedule", "trained_datasets"]


class ScheduleError(UserError):
    """An invalid episode or schedule; the message names the episode."""


@dataclass(frozen=True)
class Episode:
    """One stage of training.

    Parameters
    ----------
    name : str
        Name used in logs, histories and the results table.
    datasets : str, sequence of str, or mapping of str to float
        The dataset(s) trained on; a mapping gives mixing weights (batches draw each
        sample from dataset ``d`` with probability ``weight_d / sum``).
    max_epochs : int
        Epoch budget (>= 1).
    patience : int or None
        Early stopping on the episode's validation loss: the episode ends after
        ``max(patience, 1)`` epochs without improvement (Keras' convention;
        ``patience=0`` ends it at the first epoch without improvement).
        ``None``: no early stopping.
    min_delta : float
        An epoch improves when its validation loss is below ``best - min_delta``.
    keep_optimizer_state : bool
        Keep Adam's moments and step count from the previous episode (``True``) or
        start this episode with a fresh optimizer state and the configured learning
        rate (``False``). Ignored for the first episode.
    restore_best : bool
        Restore the weights of the episode's best epoch at its end even if it was not
        stopped early (they are always restored after an early stop).
    reset_class_head : bool
        Re-initialise the last class layer(s) at the start of this episode (an
        alternative to carrying the class head over from the previous dataset; the
        new weights are seeded by the run's seed and the episode index). Ignored for
        the first episode.
    class_weights : mapping of str to float, optional
        Per-label loss weights during this episode, ``{label name: weight}``, applied
        to the label set of every dataset of the episode that has the label (they
        replace the label set's own weights for those labels).
    """

    name: str
    datasets: object
    max_epochs: int
    patience: int | None = None
    min_delta: float = 0.0
    keep_optimizer_state: bool = True
    restore_best: bool = False
    reset_class_head: bool = False
    freeze_trunk: bool = False
    class_weights: Mapping | None = field(default=None, hash=False)

    def __post_init__(self):
        where = f"episode {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ScheduleError(f"episode names must be non-empty strings, got {self.name!r}")
        mix = self.mixture  # validates datasets
        if not mix:
            raise ScheduleError(f"{where} names no dataset")
        if not isinstance(self.max_epochs, (int,)) or isinstance(self.max_epochs, bool) or self.max_epochs < 1:
            raise ScheduleError(f"{where}: max_epochs must be an integer >= 1, got {self.max_epochs!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 0):
            raise ScheduleError(f"{where}: patience must be None or an integer >= 0, got {self.patience!r}")
        if not (isinstance(self.min_delta, (int, float)) and math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ScheduleError(f"{where}: min_delta must be a finite number >= 0, got {self.min_delta!r}")
        if self.class_weights is not None:
            if not isinstance(self.class_weights, Mapping):
                raise ScheduleError(f"{where}: class_weights must be a mapping {{label: weight}}")
            for k, v in self.class_weights.items():
                if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                    raise ScheduleError(f"{where}: class weight of label {k!r} must be positive, got {v!r}")

    @property
    def mixture(self) -> dict:
        """``{dataset: weight}`` (weights not normalised)."""
        where = f"episode {self.name!r}"
        d = self.datasets
        if isinstance(d, str):
            out = {d: 1.0}
        elif isinstance(d, Mapping):
            out = {}
            for k, v in d.items():
                if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                    raise ScheduleError(f"{where}: mixing weight of dataset {k!r} must be positive, got {v!r}")
                out[k] = float(v)
        elif isinstance(d, Sequence):
            out = {}
            for k in d:
                if not isinstance(k, str):
                    raise ScheduleError(f"{where}: dataset names must be strings, got {k!r}")
                if k in out:
                    raise ScheduleError(f"{where} names dataset {k!r} twice")
                out[k] = 1.0
        else:
            raise ScheduleError(f"{where}: datasets must be a name, a list or a mapping, got {d!r}")
        return out

    @property
    def dataset_names(self) -> tuple:
        return tuple(self.mixture)

    def early_stopping(self) -> bool:
        return self.patience is not None

    @classmethod
    def from_dict(cls, d: Mapping, *, index: int = 0) -> "Episode":
        """Build from a config mapping (keys as the fields; ``epochs`` for ``max_epochs``;
        ``early_stopping: {patience, min_delta}`` accepted too)."""
        if not isinstance(d, Mapping):
            raise ScheduleError(f"episode {index}: expected a mapping, got {d!r}")
        d = dict(d)
        name = d.pop("name", f"episode_{index}")
        where = f"episode {name!r}"
        if "epochs" in d:
            d["max_epochs"] = d.pop("epochs")
        es = d.pop("early_stopping", None)
        if es is not None:
            if es is False:
                pass
            elif isinstance(es, Mapping):
                unknown = set(es) - {"patience", "min_delta"}
                if unknown:
                    raise ScheduleError(f"{where}: unknown early_stopping keys {sorted(unknown)}")
                d.setdefault("patience", es.get("patience", 0))
                d.setdefault("min_delta", es.get("min_delta", 0.0))
            else:
                raise ScheduleError(f"{where}: early_stopping must be a mapping {{patience, min_delta}} or false")
        if "datasets" not in d and "dataset" in d:
            d["datasets"] = d.pop("dataset")
        if d.get("datasets") in (None, [], {}, ""):
            raise ScheduleError(f"{where} is empty: it names no dataset")
        if "max_epochs" not in d:
            raise ScheduleError(f"{where}: missing 'epochs'")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ScheduleError(f"{where}: unknown keys {sorted(unknown)}")
        try:
            return cls(name=name, **d)
        except TypeError as e:
            raise ScheduleError(f"{where}: {e}") from None

    def to_dict(self) -> dict:
        extra = {"reset_class_head": True} if self.reset_class_head else {}  # absent: older fingerprints hold
        if self.freeze_trunk:
            extra["freeze_trunk"] = True
        return {**extra, "name": self.name, "datasets": self.mixture, "max_epochs": self.max_epochs,
                "patience": self.patience, "min_delta": self.min_delta,
                "keep_optimizer_state": self.keep_optimizer_state, "restore_best": self.restore_best,
                "class_weights": None if self.class_weights is None else dict(self.class_weights)}


def validate_schedule(episodes: Sequence[Episode], datasets=None) -> tuple:
    """Check a schedule; return it as a tuple.

    Raises
    ------
    ScheduleError
        No episodes, duplicate episode names, or (when ``datasets``, the known dataset
        names, is given) an episode naming an unknown dataset.
    """
    episodes = tuple(episodes)
    if not episodes:
        raise ScheduleError("the schedule has no episodes")
    seen = set()
    for ep in episodes:
        if not isinstance(ep, Episode):
            raise ScheduleError(f"schedule entries must be Episode objects, got {type(ep).__name__}")
        if ep.name in seen:
            raise ScheduleError(f"two episodes are named {ep.name!r}")
        seen.add(ep.name)
        if datasets is not None:
            for d in ep.dataset_names:
                if d not in datasets:
                    raise ScheduleError(
                        f"episode {ep.name!r} names unknown dataset {d!r}; known: {', '.join(datasets) or '(none)'}")
    return episodes


def trained_datasets(episodes: Sequence[Episode]) -> list:
    """The datasets some episode of ``episodes`` trains on, in order of first appearance."""
    return list(dict.fromkeys(d for ep in episodes for d in ep.dataset_names))
