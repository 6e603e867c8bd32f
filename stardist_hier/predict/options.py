"""The settings of one prediction run, as one validated object.

:class:`PredictOptions` is built once (by :func:`~stardist_hier.predict.runner.predict_to_folder`,
:func:`~stardist_hier.predict.distributed.predict_distributed` or the ``predict`` command)
and checks its values where it is built. Its messages name parameters (``block_size``);
the command line translates them to its flags.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import InputError, shorten
from .pipeline import DEFAULT_BLOCK_SIZE, DEFAULT_MIN_OVERLAP

__all__ = ["PredictOptions", "RECORDED"]

#: The options recorded with an output folder (they change the outputs' content), in record order.
RECORDED = ("abstain", "mpp", "input_mpp", "tissue_mask", "block_size", "min_overlap", "context", "n_tiles",
            "prob_thresh", "nms_thresh")
#: The options :func:`~stardist_hier.predict.pipeline.plan_prediction` takes.
_PLANNED = ("mpp", "input_mpp", "block_size", "min_overlap", "context", "tissue_mask", "backend", "prob_thresh",
            "nms_thresh", "n_tiles")


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """What a prediction run is asked for (everything but inputs, model and output folder).

    Parameters
    ----------
    formats : sequence of str
        Output format names (checked against the writers by the runner).
    label_sets : sequence of str, optional
        Label-set names (resolved against the model's tree by the runner).
    taxonomy : path or Taxonomy, optional
        Where the label sets are defined; default the built-in taxonomy.
    abstain : float, optional
        Abstention threshold in (0, 1].
    mpp, input_mpp : float, optional
        Model and input pixel sizes in microns per pixel, in (0, 100).
    tissue_mask : bool
        Skip blocks of a slide without tissue.
    block_size, min_overlap, context : int or sequence of int
        Block parameters: positive, non-negative, non-negative (``context=None``: the
        network's receptive field). ``block_size="auto"``: chosen from the model
        (:func:`~stardist_hier.predict.blocks.auto_block_size`).
    n_tiles : pair of int, optional
        Tiles per block for the network, two positive whole numbers.
    prob_thresh, nms_thresh : float, optional
        Thresholds in (0, 1); default the model's.
    backend : {"openslide", "tiffslide"}, optional
        Slide reader.
    read_ahead : int
        Blocks read ahead of the network (0: the serial loop); does not change the nuclei.
    nms_threads : int, optional
        StarDist's OpenMP threads for NMS, set where NMS runs (``None``: the process's
        setting); does not change the nuclei.

    Raises
    ------
    InputError
        When built with a value out of range, naming the parameter.
    """

    formats: tuple = ("geojson",)
    label_sets: object = None
    taxonomy: object = None
    abstain: float | None = None
    mpp: float | None = None
    input_mpp: float | None = None
    tissue_mask: bool = True
    block_size: object = DEFAULT_BLOCK_SIZE
    min_overlap: object = DEFAULT_MIN_OVERLAP
    context: object = None
    n_tiles: object = None
    prob_thresh: float | None = None
    nms_thresh: float | None = None
    backend: str | None = None
    read_ahead: int = 2
    nms_threads: int | None = 1

    def __post_init__(self):
        if isinstance(self.formats, str):
            object.__setattr__(self, "formats", (self.formats,))
        if self.abstain is not None:
            _number("abstain", self.abstain, 0, 1, lo_open=True)
        if self.prob_thresh is not None:
            _number("prob_thresh", self.prob_thresh, 0, 1, lo_open=True, hi_open=True)
        if self.nms_thresh is not None:
            _number("nms_thresh", self.nms_thresh, 0, 1, lo_open=True, hi_open=True)
        for name in ("mpp", "input_mpp"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), 0, 100, lo_open=True, hi_open=True)
        if not (isinstance(self.block_size, str) and self.block_size == "auto"):
            _whole("block_size", self.block_size, 1)
        _whole("read_ahead", self.read_ahead, 0)
        if self.nms_threads is not None:
            _whole("nms_threads", self.nms_threads, 1)
        _whole("min_overlap", self.min_overlap, 0)
        if self.context is not None:
            _whole("context", self.context, 0)
        if self.n_tiles is not None:
            if not isinstance(self.n_tiles, (list, tuple)) or len(self.n_tiles) != 2:
                raise InputError(f"n_tiles {shorten(self.n_tiles)}: give two whole numbers NY NX")
            _whole("n_tiles", self.n_tiles, 1)

    def plan_kwargs(self) -> dict:
        """Keywords of :func:`~stardist_hier.predict.pipeline.plan_prediction`."""
        return {k: getattr(self, k) for k in _PLANNED}

    def recorded(self) -> dict:
        """The options an output folder records (:func:`~stardist_hier.predict.runner.output_record`)."""
        return {k: getattr(self, k) for k in RECORDED}

    def as_dict(self) -> dict:
        """Every field, as keywords of :func:`~stardist_hier.predict.runner.predict_to_folder`."""
        return asdict(self)


def _number(name, v, lo, hi, *, lo_open=False, hi_open=False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise InputError(f"{name} {shorten(v)}: must be a number in {rng}")


def _whole(name, v, lo) -> None:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    for x in vals:
        if isinstance(x, bool) or not hasattr(x, "__index__"):
            raise InputError(f"{name} {shorten(v)}: must be a whole number")
        if int(x) < lo:
            raise InputError(f"{name} {shorten(v)}: must be {'positive' if lo > 0 else 'non-negative'}")
