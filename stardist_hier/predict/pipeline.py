"""Streaming prediction on images, folders and whole-slide images.

The slide is seen through a lazy :class:`~stardist_hier.slides.SlideArray` at the
model's pixel size; StarDist's block cover (``stardist.big``) splits it into
overlapping blocks; each block with tissue goes through ``predict_instances`` and
StarDist's own responsibility filter keeps every nucleus in exactly one block. The
result is a stream of :class:`~stardist_hier.predict.Nuclei` chunks (one per block,
level-0 coordinates): neither the full-resolution slide nor a label image of it is
ever held in memory. On the same pixels the nuclei are those of
``model.predict_instances_big`` (same order, same classes). Every block is normalised
with the model's input normalisation, fitted once per input (:func:`plan_prediction`).

:func:`predict_nuclei` runs the blocks as an overlapped pipeline by default
(:mod:`stardist_hier.predict.overlap`): blocks are read ahead in a thread, the network
runs in a second thread through a cached ``tf.function``, and NMS, polygons and classes
run in the caller's thread with StarDist's OpenMP threads limited there
(``nms_threads``); ``read_ahead=0`` is the serial loop (``predict_instances`` per
block). Both yield the same nuclei, bit for bit (tested).

TensorFlow is imported only when a model is loaded (:func:`load_model`); planning
(:func:`plan_prediction`) needs the model object but runs no network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelFolderError, ParameterError
from .nuclei import Nuclei
from .options import DEFAULT_BLOCK_SIZE, DEFAULT_MIN_OVERLAP, PLANNED, PredictOptions

__all__ = ["PredictionPlan", "PredictStats", "plan_prediction", "predict_nuclei", "predict_all", "list_inputs",
           "load_model", "model_normalization", "DEFAULT_BLOCK_SIZE", "DEFAULT_MIN_OVERLAP"]



@dataclass
class PredictStats:
    """Counters of one or more :func:`predict_nuclei` runs (filled in as blocks are processed).

    Attributes
    ----------
    n_blocks : int
        Blocks covering the inputs.
    n_predicted : int
        Blocks sent through the network.
    n_skipped : int
        Blocks skipped as blank glass (tissue mask).
    n_nuclei : int
        Nuclei yielded.
    seconds : float
        Wall time spent inside the generators.
    read_seconds, forward_seconds, nms_seconds : float
        Wall time of each stage, summed over blocks: reading and normalising a block,
        the network (with StarDist's candidate selection), and NMS with polygons,
        classes and the block filter. In the overlapped pipeline the stages run at the
        same time, so their sum exceeds ``seconds``; in the serial loop ``forward``
        holds the whole of ``predict_instances`` and ``nms`` the block filter.
    nms_threads : int or None
        The OpenMP threads of StarDist's C extension, read back (``threadpoolctl``) in
        the thread where NMS runs, during the first block (``None``: no block yet, or
        no OpenMP runtime found).
    """

    n_blocks: int = 0
    n_predicted: int = 0
    n_skipped: int = 0
    n_nuclei: int = 0
    seconds: float = 0.0
    read_seconds: float = 0.0
    forward_seconds: float = 0.0
    nms_seconds: float = 0.0
    nms_threads: int | None = None


@dataclass
class PredictionPlan:
    """A validated input, ready to predict (see :func:`plan_prediction`).

    Attributes
    ----------
    path : Path or None
        The input file (``None`` for an array).
    reader : SlideReader
    image : SlideArray
        The input at the model's pixel size.
    blocks : tuple of stardist.big.BlockND
        Block cover of ``image``.
    keep : list of bool
        Per block: send it through the network (tissue in the block's own region, its
        read region without the context: every nucleus the block keeps lies there).
    mask : TissueMask or None
        The tissue mask (slides with ``tissue_mask``).
    thumb : tuple or None
        ``(image, scale)`` of :func:`~stardist_hier.slides.thumbnail` for a slide, read
        once with the mask (reuse it, e.g. for an overlay).
    input_mpp, target_mpp : float or None
        Pixel size of the input's level 0 and of the model.
    predict_kwargs : dict
        Passed to ``predict_instances`` for every block.
    levels : stardist_hier.normalization.Levels or None
        The model's input normalisation fitted for this input, applied to every block by
        ``image``: on the whole image for an image, on the tissue of a low-resolution
        level for a slide (once, never per block).

    The thumbnail, the tissue mask, the normalisation levels and ``keep`` are computed
    once, when first used (:meth:`prepare`), so a plan made only to validate an input
    reads no pixels beyond the reader's probe.
    """

    path: Path | None
    reader: object
    _image: object
    blocks: tuple
    input_mpp: float | None
    target_mpp: float | None
    min_overlap: tuple
    predict_kwargs: dict = field(default_factory=dict)
    use_tissue_mask: bool = True
    normalization: object = None
    _prepared: dict | None = field(default=None, repr=False)

    def prepare(self) -> None:
        """Read the thumbnail, compute the tissue mask and fit the normalisation (once)."""
        if self._prepared is None:
            self._prepared = _prepare(self)

    @property
    def image(self):
        """The input at the model's pixel size, normalised with :attr:`levels` (prepared first)."""
        self.prepare()
        return self._image

    @property
    def keep(self) -> list:
        self.prepare()
        return self._prepared["keep"]

    @property
    def mask(self):
        self.prepare()
        return self._prepared["mask"]

    @property
    def levels(self):
        self.prepare()
        return self._prepared["levels"]

    @property
    def thumb(self):
        self.prepare()
        return self._prepared["thumb"]

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<array>"

    @property
    def stem(self) -> str:
        return self.path.stem if self.path is not None else "image"

    @property
    def is_slide(self) -> bool:
        return bool(self.reader.is_slide)

    @property
    def shape(self) -> tuple:
        """Level-0 ``(height, width)`` of the input."""
        return tuple(self.reader.shape)

    @property
    def n_predicted(self) -> int:
        return int(sum(self.keep))

    def close(self) -> None:
        self.reader.close()


def load_model(folder):
    """Load a ``StarDist2DHier`` model folder (imports TensorFlow).

    StarDist's informational prints are silenced.

    Raises
    ------
    ModelFolderError
        ``folder`` is not a folder (other problems are raised by the model loader).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"--model {folder}: not a model folder")
    from ..models.model2d import load_model as load  # TensorFlow is imported here, on demand

    return load(folder, quiet=True)


def list_inputs(paths) -> list:
    """Expand files and folders into the list of input files (folders: images and slides, not recursive).

    Raises
    ------
    InputError
        A path that does not exist, a folder holding no image, two inputs with the same stem.
    """
    from ..slides import IMAGE_SUFFIXES, SLIDE_SUFFIXES

    suffixes = set(IMAGE_SUFFIXES) | set(SLIDE_SUFFIXES)
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in suffixes)
            if not found:
                raise InputError(f"{p}: folder holds no images or slides ({', '.join(sorted(suffixes))})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    stems = {}
    for f in out:
        if f.stem in stems:
            raise InputError(f"{f}: same name stem as {stems[f.stem]} (outputs are named by stem)")
        stems[f.stem] = f
    return out


def plan_prediction(model, source, *, options: PredictOptions | None = None, **keywords) -> PredictionPlan:
    """Open and validate one input; decide level, resampling, blocks, tissue and normalisation (no network run).

    The model's input normalisation (``hier_normalize``, :func:`model_normalization`) is
    fitted here, once for the input (``plan.levels``): on the whole image at the model's
    pixel size for an image (as ``model.predict_instances(img, normalize=True)``), and
    on the tissue of the slide's low-resolution thumbnail for a slide (never per block).

    Parameters
    ----------
    model : StarDist2DHier
        The model (its channels, grid, receptive field and ``config.hier_mpp``).
    source : str, Path, ndarray or SlideReader
        An image or slide file, an in-memory image ``(H, W[, C])`` uint8, or an open reader.
    options : PredictOptions, optional
        The run's options; of these the planning reads (:data:`~stardist_hier.predict.options.PLANNED`):

        * ``mpp``: target pixel size (microns per pixel); default the model's ``config.hier_mpp``;
        * ``input_mpp``: pixel size of the input's level 0, overriding the file's metadata
          (required for a slide without one);
        * ``block_size``, ``min_overlap``, ``context``: StarDist's block parameters at the
          target pixel size (``context=None``: the network's receptive field;
          ``block_size="auto"``: chosen from the model). Nuclei must be smaller than ``min_overlap``;
        * ``tissue_mask``: skip blocks without tissue (slides only; Otsu on saturation of a low level);
        * ``backend``: slide reader backend, ``"openslide"`` or ``"tiffslide"``;
        * ``prob_thresh``, ``nms_thresh``, ``n_tiles``: passed to ``predict_instances``.
    **keywords
        Those options as keywords instead (or replacing fields of ``options``), e.g.
        ``plan_prediction(model, path, mpp=0.5, tissue_mask=False)``.

    Raises
    ------
    InputError
        Naming the input: unreadable, no pixel size for a slide, wrong number of channels;
        or naming the option (:class:`~stardist_hier.errors.ParameterError`): a value out
        of range, bad block parameters.
    TypeError
        A keyword that is not one of the planned options.
    """
    from ..models import _stardist_big_compat as big
    from ..slides import ArrayReader, SlideArray, SlideReader, open_input

    extra = sorted(set(keywords) - set(PLANNED))
    if extra:
        raise TypeError(f"plan_prediction() got an unexpected keyword argument {extra[0]!r}")
    options = PredictOptions.of(options, **keywords)  # validated once, here or where it was built
    mpp, input_mpp = options.mpp, options.input_mpp

    if isinstance(source, SlideReader):
        reader, path = source, source.path
        if input_mpp is not None:
            reader.mpp = float(input_mpp)
    elif isinstance(source, np.ndarray):
        reader, path = ArrayReader(source, mpp=input_mpp), None
    else:
        path = Path(source)
        reader = open_input(path, mpp=input_mpp, backend=options.backend)
    name = str(path) if path is not None else "<array>"
    try:
        reader.probe()
        target = mpp if mpp is not None else getattr(model.config, "hier_mpp", None)
        if reader.is_slide:
            if reader.mpp is None:
                raise InputError(f"{name}: the slide does not state its pixel size; give it with --input-mpp")
            if target is None:
                raise InputError(f"{name}: the model's training pixel size (config hier_mpp) is unknown; "
                                 f"give it with --mpp")
        elif target is None and input_mpp is not None:
            raise ParameterError("input_mpp", f" {input_mpp}: the model's training pixel size is unknown (no hier_mpp "
                                 f"in its config.json), so {name} cannot be resampled to it; give the model's pixel "
                                 f"size with --mpp, or leave out --input-mpp to predict at the image's own resolution")
        elif target is None and reader.mpp is not None:
            _warn_pixel_size(f"the model's training pixel size is unknown (no hier_mpp in its config.json): "
                             f"images are predicted at their own resolution, whatever pixel size they state; "
                             f"give the model's pixel size with --mpp to resample them to it")
        elif target is not None and reader.mpp is None:
            _warn_pixel_size(f"images without a pixel size (PNG, JPEG, TIFF without resolution tags) are predicted "
                             f"at their own resolution, taken to be the model's {target:g} um/px; give --input-mpp "
                             f"if it differs")
        downsample = target / reader.mpp if (target is not None and reader.mpp is not None) else 1.0
        cin = int(model.config.n_channel_in)
        if reader.channels != cin:
            raise InputError(f"{name}: image has {reader.channels} channel(s), the model expects {cin}")
        norm = model_normalization(model)
        image = SlideArray(reader, downsample=downsample)  # its levels are fitted by plan.prepare()
        params = options.block_params(model)
        blocks = big.cover(model, image.shape[:2], params, channels=image.shape[2])
        kw = {k: getattr(options, k) for k in ("prob_thresh", "nms_thresh", "n_tiles") if getattr(options, k) is not None}
        if "n_tiles" in kw:
            kw["n_tiles"] = tuple(kw["n_tiles"]) + (1,) * (3 - len(kw["n_tiles"]))
    except BaseException:
        if not isinstance(source, SlideReader):
            reader.close()
        raise
    return PredictionPlan(path, reader, image, blocks, reader.mpp, target, params.min_overlap, kw,
                          use_tissue_mask=bool(options.tissue_mask), normalization=norm)


def _prepare(plan: PredictionPlan) -> dict:
    """The once-per-input reads of a plan: thumbnail, tissue mask, normalisation levels, blocks to keep."""
    from ..models import _stardist_big_compat as big
    from ..slides import SlideArray, thumbnail
    from ..slides import tissue_mask as make_mask

    reader, norm, image = plan.reader, plan.normalization, plan._image
    fit_pixels = norm.kind == "percentile"
    thumb = mask = None
    if reader.is_slide:
        # the tissue of a low-resolution level: the tissue mask and the slide's normalisation
        tissue = None
        if plan.use_tissue_mask or fit_pixels:
            thumb = thumbnail(reader)
            tissue = make_mask(reader, thumb=thumb)
        levels = norm.fit(thumb[0], mask=tissue.mask) if fit_pixels else norm.fit()
        mask = tissue if plan.use_tissue_mask else None
    else:  # an image: the whole image, at the model's pixel size
        raw = SlideArray(reader, downsample=image.downsample)
        levels = norm.fit(raw.read_uint8(0, 0, *raw.shape[:2])) if fit_pixels else norm.fit()
    image.levels = levels
    keep = []
    s = image.scale
    for b in plan.blocks:
        if mask is None:
            keep.append(True)
            continue
        _, (top, left, bottom, right) = big.block_regions(b)  # the block's own region, output pixels
        keep.append(mask.any_in(top * s, left * s, bottom * s, right * s))  # -> level-0 pixel edges
    return {"thumb": thumb, "mask": mask, "levels": levels, "keep": keep}


class PixelSizeWarning(UserWarning):
    """The input's and the model's pixel sizes cannot be matched: the input is predicted at its own resolution."""


def _warn_pixel_size(message: str) -> None:
    import warnings

    warnings.warn(message, PixelSizeWarning, stacklevel=3)


def model_normalization(model):
    """The input normalisation of a model (:class:`~stardist_hier.normalization.Normalization`).

    ``model.normalization`` for a :class:`~stardist_hier.StarDist2DHier`; for another
    StarDist model the ``hier_normalize`` of its config, or the default (StarDist's
    usual percentiles 1 to 99.8 per channel).
    """
    from ..normalization import KEY, Normalization

    norm = getattr(model, "normalization", None)
    if isinstance(norm, Normalization):
        return norm
    return Normalization.from_config(getattr(getattr(model, "config", None), KEY, None))


def predict_nuclei(model, plan: PredictionPlan, *, progress: bool = False, stats: PredictStats | None = None,
                   read_ahead: int = 2, nms_threads: int | None = 1):
    """Predict the nuclei of a planned input, block by block.

    Parameters
    ----------
    model : StarDist2DHier
    plan : PredictionPlan
        From :func:`plan_prediction`.
    progress : bool
        Show a tqdm progress bar over the blocks sent to the network.
    stats : PredictStats, optional
        Counters updated as blocks are processed.
    read_ahead : int
        Blocks read ahead of the network in the overlapped pipeline
        (:mod:`stardist_hier.predict.overlap`); ``0``: the serial loop
        (``predict_instances`` per block). The nuclei are the same either way.
    nms_threads : int or None
        StarDist's OpenMP threads for NMS, set in the thread where NMS runs (default 1:
        on a shared machine StarDist's default of all cores made NMS 5 to 130 times
        slower per block, with identical output); ``None`` leaves the process's setting.

    Yields
    ------
    Nuclei
        One chunk per block sent to the network that holds nuclei (blocks without any
        yield nothing), level-0 coordinates, ids running from 1 over the input.

    Raises
    ------
    InputError
        A region that cannot be read, a nucleus larger than ``min_overlap``, or a bad
        ``read_ahead`` / ``nms_threads``.
    """
    from ..console import progress as progress_bar
    from ..models import _stardist_big_compat as big
    from .overlap import block_results

    for name, v, lo in (("read_ahead", read_ahead, 0), ("nms_threads", nms_threads, 1)):
        if v is not None and (isinstance(v, bool) or not hasattr(v, "__index__") or int(v) < lo):
            raise InputError(f"{name} {v!r}: must be a whole number >= {lo}")
    stats = stats if stats is not None else PredictStats()
    tree = getattr(model, "tree", None)
    plan.prepare()
    image = plan.image
    scale, offset = float(image.scale), float(image.offset)
    next_id = 1
    stats.n_blocks += len(plan.blocks)
    stats.n_skipped += len(plan.blocks) - plan.n_predicted
    bar = progress_bar(total=plan.n_predicted, verbose=int(bool(progress)), unit="tile", desc=plan.stem, leave=False)
    t0 = time.perf_counter()
    results = block_results(model, plan, read_ahead=read_ahead, nms_threads=nms_threads, stats=stats)
    try:
        while True:
            try:
                _, res = next(results)
            except StopIteration:
                break
            except big.ObjectTooLarge as e:
                raise InputError(f"{plan.name}: {e} (give a larger --min-overlap than {plan.min_overlap})") from None
            n = len(res["prob"])
            chunk = Nuclei.from_result(res, tree=tree, offset=(offset, offset), scale=scale,
                                       ids=np.arange(next_id, next_id + n), mpp=plan.input_mpp)
            next_id += n
            stats.n_predicted += 1
            stats.n_nuclei += n
            bar.update(1)
            if n:
                stats.seconds += time.perf_counter() - t0
                yield chunk
                t0 = time.perf_counter()
    finally:
        results.close()
        stats.seconds += time.perf_counter() - t0
        bar.close()


def predict_all(model, source, *, progress: bool = False, stats: PredictStats | None = None, **plan_kwargs) -> Nuclei:
    """All nuclei of one input in memory (see :func:`plan_prediction` for ``plan_kwargs``)."""
    plan = plan_prediction(model, source, **plan_kwargs)
    try:
        chunks = list(predict_nuclei(model, plan, progress=progress, stats=stats))
    finally:
        if not hasattr(source, "read"):
            plan.close()
    if not chunks:
        tree = getattr(model, "tree", None)
        return Nuclei.empty(n_rays=int(model.config.n_rays), tree=tree if model.is_multiclass else None,
                            mpp=plan.input_mpp)
    return Nuclei.concatenate(chunks)
