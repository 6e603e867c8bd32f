"""The settings of one prediction run, as one validated object.

:class:`PredictOptions` is built once (by :func:`~stardist_hier.predict.runner.predict_to_folder`,
:func:`~stardist_hier.predict.distributed.predict_distributed`,
:func:`~stardist_hier.predict.pipeline.plan_prediction` from their keywords, or by the
``predict`` command) and checks its values where it is built. Its messages name parameters
(:class:`~stardist_hier.errors.ParameterError`: ``block_size 0: must be positive``); the
command line renames them to its flags (``--block-size``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import ParameterError, shorten

__all__ = ["PredictOptions", "RECORDED", "PLANNED", "DEFAULT_BLOCK_SIZE", "DEFAULT_MIN_OVERLAP"]

#: ``"auto"``: the largest block whose memory estimate fits (:func:`~stardist_hier.predict.blocks.auto_block_size`).
DEFAULT_BLOCK_SIZE = "auto"
DEFAULT_MIN_OVERLAP = 128

#: The options recorded with an output folder (they change the outputs' content), in record order.
RECORDED = ("abstain", "mpp", "input_mpp", "tissue_mask", "block_size", "min_overlap", "context", "n_tiles",
            "prob_thresh", "nms_thresh")
#: The options :func:`~stardist_hier.predict.pipeline.plan_prediction` takes.
PLANNED = ("mpp", "input_mpp", "block_size", "min_overlap", "context", "tissue_mask", "backend", "prob_thresh",
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
    ParameterError
        When built with a value out of range, naming the parameter (an :class:`InputError`).
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
                raise ParameterError("n_tiles", f" {shorten(self.n_tiles)}: give two whole numbers NY NX")
            _whole("n_tiles", self.n_tiles, 1)

    @classmethod
    def of(cls, options: PredictOptions | None = None, /, **keywords) -> PredictOptions:
        """``options`` with ``keywords`` replacing some of its fields, or the options of ``keywords`` alone.

        The one way a function taking ``options=`` or the fields as keywords builds them
        (validated either way).

        Raises
        ------
        TypeError
            ``options`` not a :class:`PredictOptions`, or a keyword that is no field.
        ParameterError
            A value out of range.
        """
        unknown = sorted(set(keywords) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (not a field of PredictOptions)")
        if options is None:
            return cls(**keywords)
        if not isinstance(options, cls):
            raise TypeError(f"options must be a PredictOptions, got {type(options).__name__}")
        return replace(options, **keywords) if keywords else options

    def plan_kwargs(self) -> dict:
        """Keywords of :func:`~stardist_hier.predict.pipeline.plan_prediction`."""
        return {k: getattr(self, k) for k in PLANNED}

    def check_model(self, model) -> None:
        """What can be checked against the model before any input is read.

        Raises
        ------
        ParameterError
            ``abstain`` for a model that predicts no classes; block parameters the model's
            grid and receptive field refuse (:meth:`block_params`).
        """
        if self.abstain is not None and not model.is_multiclass:
            raise ParameterError("abstain", ": the model predicts no classes (segmentation only)")
        self.block_params(model)

    def block_params(self, model):
        """StarDist's block parameters for ``model`` (``block_size="auto"``: chosen from the model).

        Raises
        ------
        ParameterError
            Naming ``block_size/min_overlap/context`` with StarDist's reason.
        """
        from ..models import _stardist_big_compat as big

        block_size = self.block_size
        if isinstance(block_size, str) and block_size == "auto":
            from .blocks import auto_block_size

            block_size = auto_block_size(model, min_overlap=self.min_overlap, context=self.context)
        try:
            return big.block_params(model, block_size=block_size, min_overlap=self.min_overlap, context=self.context)
        except ValueError as e:
            raise ParameterError(("block_size", "min_overlap", "context"), f": {e}") from None

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
        raise ParameterError(name, f" {shorten(v)}: must be a number in {rng}")


def _whole(name, v, lo) -> None:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    for x in vals:
        if isinstance(x, bool) or not hasattr(x, "__index__"):
            raise ParameterError(name, f" {shorten(v)}: must be a whole number")
        if int(x) < lo:
            raise ParameterError(name, f" {shorten(v)}: must be {'positive' if lo > 0 else 'non-negative'}")
