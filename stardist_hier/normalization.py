"""The input normalisation of a model: one function for training and every prediction path (no TensorFlow).

A model is trained on images normalised one way, and must see images normalised the
same way wherever it predicts: in Python, on images and slides from the command line,
on Dask workers, and in the tools its exports go to. The normalisation is therefore
part of the model: ``config.json`` holds it under the key ``hier_normalize`` (see
:data:`KEY`), written when the model is created, and every path applies it through
:meth:`Normalization.fit` (the parameters, once per image or slide) and
:meth:`Levels.apply` (the pixels). :func:`normalize` is the two together.

``hier_normalize`` in ``config.json`` is one of::

    {"kind": "percentile", "pmin": 1.0, "pmax": 99.8, "axis": "per-channel"}   # the default
    {"kind": "percentile", "pmin": 1.0, "pmax": 99.8, "axis": "joint"}
    {"kind": "divide", "by": 255.0}
    {"kind": "none"}

* ``percentile``: ``(x - lo) / (hi - lo + 1e-20)`` in float32, ``lo`` and ``hi`` the
  ``pmin`` and ``pmax`` percentiles of the image, per channel (``"per-channel"``, the
  default, as stardist-hier has always trained: csbdeep's ``normalize(x, 1, 99.8,
  axis=(0, 1))``) or over all channels together (``"joint"``: ``axis=None``, what
  ``stardist-predict2d`` and napari-stardist do with RGB images). Images: the
  percentiles of the whole image. Slides: estimated once per slide from the tissue of a
  low-resolution level (:func:`stardist_hier.slides.thumbnail`, at most 2048 pixels a
  side, and the tissue mask), never per block.
* ``divide``: ``x / by`` (``by: 255`` maps 8-bit pixels to [0, 1]).
* ``none``: the pixels as they are (the caller normalises).

A model folder written before this key existed loads with a one-line warning and the
normalisation stardist-hier's training paths (demo, experiment runner, notebooks) have
always used: :data:`DEFAULT` (:data:`LEGACY`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import InputError, did_you_mean

__all__ = ["KEY", "DEFAULT", "LEGACY", "KINDS", "AXES", "Normalization", "Levels", "normalize", "legacy_message",
           "LegacyNormalizationWarning"]

#: The key of ``config.json`` (and of an experiment's ``model:`` section) holding the normalisation.
KEY = "hier_normalize"
#: Kinds of normalisation.
KINDS = ("percentile", "divide", "none")
#: ``axis`` of the percentile kind.
AXES = ("per-channel", "joint")
#: What a new model is trained with unless its config says otherwise.
DEFAULT = {"kind": "percentile", "pmin": 1.0, "pmax": 99.8, "axis": "per-channel"}
#: What a model folder without :data:`KEY` was trained with (stardist-hier's training paths before the key).
LEGACY = dict(DEFAULT)



class LegacyNormalizationWarning(UserWarning):
    """A model folder does not state its input normalisation; :data:`LEGACY` is assumed."""


_KEYS = {"percentile": ("kind", "pmin", "pmax", "axis"), "divide": ("kind", "by"), "none": ("kind",)}
_EPS = 1e-20  # csbdeep's normalize_mi_ma


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class Normalization:
    """How a model's input images are normalised (the ``hier_normalize`` value of its config).

    Parameters
    ----------
    kind : {"percentile", "divide", "none"}
    pmin, pmax : float
        Percentiles mapped to 0 and 1 (``percentile``), ``0 <= pmin < pmax <= 100``.
    axis : {"per-channel", "joint"}
        Percentiles of every channel, or of all channels together (``percentile``).
    by : float
        Divisor (``divide``).

    Notes
    -----
    Build it from a config value with :meth:`from_config`; :meth:`to_config` gives the
    value back (plain JSON).
    """

    kind: str = "percentile"
    pmin: float = 1.0
    pmax: float = 99.8
    axis: str = "per-channel"
    by: float = 255.0

    # ------------------------------------------------------------------ config
    @classmethod
    def from_config(cls, value=None, *, where: str = KEY) -> "Normalization":
        """The normalisation a config value describes (``None``: :data:`DEFAULT`).

        Parameters
        ----------
        value : dict, Normalization or None
            ``{"kind": ..., ...}`` as in the module docstring. Keys other than ``kind``
            may be left out (their defaults are taken).
        where : str
            Named in error messages (e.g. ``"model.json: hier_normalize"``).

        Raises
        ------
        InputError
            Naming ``where`` and the key: not a mapping, an unknown kind or key, a value
            out of range.
        """
        if value is None:
            value = DEFAULT
        if isinstance(value, Normalization):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{where}: must be a mapping such as {DEFAULT}, got {value!r:.80}")
        kind = value.get("kind")
        if kind not in KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r:.40}"
                             f"{did_you_mean(str(kind), KINDS)}")
        extra = [k for k in value if k not in _KEYS[kind]]
        if extra:
            raise InputError(f"{where}: unknown key {str(extra[0])!r:.40} for kind {kind!r}"
                             f"{did_you_mean(str(extra[0]), _KEYS[kind])}; known: {', '.join(_KEYS[kind])}")
        if kind == "percentile":
            pmin, pmax = value.get("pmin", DEFAULT["pmin"]), value.get("pmax", DEFAULT["pmax"])
            axis = value.get("axis", DEFAULT["axis"])
            for k, v in (("pmin", pmin), ("pmax", pmax)):
                if not (_real(v) and 0 <= v <= 100):
                    raise InputError(f"{where}: {k} must be a percentile between 0 and 100, got {v!r:.40}")
            if not pmin < pmax:
                raise InputError(f"{where}: pmin ({pmin}) must be below pmax ({pmax})")
            if axis not in AXES:
                raise InputError(f"{where}: axis must be one of {', '.join(AXES)}, got {axis!r:.40}"
                                 f"{did_you_mean(str(axis), AXES)}")
            return cls("percentile", float(pmin), float(pmax), str(axis))
        if kind == "divide":
            by = value.get("by", 255.0)
            if not (_real(by) and by > 0):
                raise InputError(f"{where}: by must be a positive number, got {by!r:.40}")
            return cls("divide", by=float(by))
        return cls("none")

    def to_config(self) -> dict:
        """The plain-JSON config value (accepted by :meth:`from_config`)."""
        if self.kind == "percentile":
            return {"kind": "percentile", "pmin": self.pmin, "pmax": self.pmax, "axis": self.axis}
        if self.kind == "divide":
            return {"kind": "divide", "by": self.by}
        return {"kind": "none"}

    # ------------------------------------------------------------------ fitting
    def fit(self, pixels=None, *, mask=None) -> "Levels":
        """The normalisation's parameters for an image (or a slide, from its thumbnail).

        Parameters
        ----------
        pixels : array_like, (H, W) or (H, W, C), optional
            The image (channels last), or a slide's low-resolution thumbnail. Needed only
            for ``percentile``.
        mask : array_like of bool, (H, W), optional
            Pixels to take the percentiles of (a slide's tissue); ``None`` or a mask
            without any pixel: all pixels.

        Returns
        -------
        Levels
            ``lo`` and ``hi`` per channel (one value for a grey image or ``"joint"``).
        """
        if self.kind == "divide":
            return Levels((0.0,), (self.by,))
        if self.kind == "none":
            return Levels((0.0,), (1.0,))
        if pixels is None:
            raise ValueError("percentile normalisation needs the pixels to fit on")
        x = np.asarray(pixels)
        if x.ndim not in (2, 3):
            raise ValueError(f"pixels must be (H, W) or (H, W, C), got shape {x.shape}")
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != x.shape[:2]:
                raise ValueError(f"mask of shape {mask.shape} does not fit pixels of shape {x.shape}")
            if mask.any() and not mask.all():
                x = x[mask]  # (N, C) or (N,)
                x = x.reshape(-1, 1) if x.ndim == 1 else x
                axis = 0 if self.axis == "per-channel" else None
                lo = np.atleast_1d(np.percentile(x, self.pmin, axis=axis))
                hi = np.atleast_1d(np.percentile(x, self.pmax, axis=axis))
                return Levels(tuple(map(float, lo)), tuple(map(float, hi)))
        # as csbdeep's normalize(x, pmin, pmax, axis=(0, 1) per channel, None jointly)
        axis = (0, 1) if (x.ndim == 3 and self.axis == "per-channel") else None
        lo = np.atleast_1d(np.percentile(x, self.pmin, axis=axis))
        hi = np.atleast_1d(np.percentile(x, self.pmax, axis=axis))
        return Levels(tuple(map(float, lo)), tuple(map(float, hi)))

    def __call__(self, img) -> np.ndarray:
        """``self.fit(img).apply(img)``: the image normalised, float32 (see :func:`normalize`)."""
        return self.fit(img).apply(img)

    # ------------------------------------------------------------------ words
    def describe(self) -> str:
        """One line for people: what the normalisation is."""
        if self.kind == "percentile":
            how = "each channel on its own" if self.axis == "per-channel" else "all channels together"
            return f"percentiles {self.pmin:g} to {self.pmax:g} mapped to 0 and 1, {how}"
        if self.kind == "divide":
            return f"pixels divided by {self.by:g}"
        return "none (pixels as they are)"

    def python(self) -> str:
        """The same normalisation with csbdeep, as a Python line on an image ``img`` (channels last)."""
        if self.kind == "percentile":
            axis = "(0, 1)" if self.axis == "per-channel" else "None"
            return f"from csbdeep.utils import normalize; x = normalize(img, {self.pmin:g}, {self.pmax:g}, axis={axis})"
        if self.kind == "divide":
            return f"x = img.astype('float32') / {self.by:g}"
        return "x = img.astype('float32')"

    def qupath(self) -> list:
        """QuPath StarDist builder lines for this normalisation: ``[(when, groovy), ...]``."""
        if self.kind == "percentile":
            per = "true" if self.axis == "per-channel" else "false"
            glob = (f"StarDist2D.imageNormalizationBuilder().percentiles({self.pmin:g}, {self.pmax:g})"
                    f".perChannel({per}).maxDimension(2048).build()")
            return [("once per image, from the whole image downsampled to 2048 px (as stardist-hier does for "
                     "slides); QuPath StarDist extension v0.6", f".preprocessGlobal({glob})"),
                    ("the same in extension v0.4 and v0.5", f".preprocess({glob})"),
                    ("per tile (QuPath's H&E template; differs from stardist-hier on tiles with little tissue)",
                     f".normalizePercentiles({self.pmin:g}, {self.pmax:g}, {per}, 0.0)")]
        if self.kind == "divide":
            return [("fixed, every tile", f".inputScale({1.0 / self.by!r})")]
        return [("none", "// no normalisation")]


@dataclass(frozen=True)
class Levels:
    """Fitted normalisation parameters: ``x -> (x - lo) / (hi - lo + 1e-20)`` along the last axis.

    Attributes
    ----------
    lo, hi : tuple of float
        One value per channel, or one value for all channels.
    """

    lo: tuple
    hi: tuple

    def apply(self, img) -> np.ndarray:
        """The image normalised, float32 (channels last); bit-identical to csbdeep's ``normalize_mi_ma``.

        Parameters
        ----------
        img : array_like, (..., C) or (H, W)

        Raises
        ------
        ValueError
            When the image's channels do not match the number of levels.
        """
        x = np.asarray(img).astype(np.float32, copy=False)
        lo = np.asarray(self.lo, np.float64).astype(np.float32)
        hi = np.asarray(self.hi, np.float64).astype(np.float32)
        if lo.size > 1:
            if x.ndim < 3 or x.shape[-1] != lo.size:
                raise ValueError(f"image of shape {x.shape} does not have the {lo.size} channels of these levels")
        else:
            lo, hi = lo.reshape(()), hi.reshape(())
        return (x - lo) / (hi - lo + np.float32(_EPS))

    def to_dict(self) -> dict:
        return {"lo": list(self.lo), "hi": list(self.hi)}


def normalize(img, normalization=None) -> np.ndarray:
    """The image normalised as a model expects: the one function of training and prediction.

    Parameters
    ----------
    img : array_like, (H, W) or (H, W, C)
        Channels last.
    normalization : Normalization, dict or None
        A config value (``None``: :data:`DEFAULT`, percentiles 1 to 99.8 per channel).

    Returns
    -------
    ndarray of float32
    """
    return Normalization.from_config(normalization)(img)


def legacy_message(config_path) -> str:
    """The one-line warning for a model folder whose ``config.json`` has no :data:`KEY`."""
    import json

    return (f"{config_path} has no {KEY!r} (a model made before stardist-hier stored its input normalisation): "
            f"assuming {Normalization.from_config(LEGACY).describe()}, as stardist-hier's training paths used; "
            f"add \"{KEY}\": {json.dumps(LEGACY)} to it to state it")
