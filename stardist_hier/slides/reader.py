"""Readers of whole-slide images and plain images behind one interface (no TensorFlow).

:class:`SlideReader` is the interface: pyramid levels, pixel size, ``read`` of a
region at a level. Backends:

* :class:`OpenSlideReader`: every format OpenSlide reads (``.svs``, pyramidal
  ``.tif``, ``.ndpi``, ``.mrxs``, ...); needs ``pip install 'stardist-hier[slides]'``.
* :class:`TiffSlideReader`: tiffslide, a pure-Python fallback for TIFF and SVS.
* :class:`ArrayReader`: an image held in memory (PNG, JPEG, small TIFF, arrays).

:func:`open_input` picks one from the file name and content.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["SlideReader", "OpenSlideReader", "TiffSlideReader", "ArrayReader", "open_slide", "open_image",
           "open_input", "is_slide_path", "IMAGE_SUFFIXES", "SLIDE_SUFFIXES", "SLIDES_EXTRA"]

#: Suffixes read as plain images (a tiled or multi-level TIFF is read as a slide).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Suffixes only whole-slide readers open.
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".tif", ".tiff")
SLIDES_EXTRA = "pip install 'stardist-hier[slides]'"
_TIFFSLIDE_SUFFIXES = (".tif", ".tiff", ".svs")
#: A plain TIFF larger than this many pixels is read as a slide (never fully in memory).
_MAX_IMAGE_PIXELS = 8192 * 8192


@contextlib.contextmanager
def _quiet_tifffile():
    """Silence tifffile's log warnings about damaged files (they become one InputError instead)."""
    log = logging.getLogger("tifffile")
    old = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(old)


class SlideReader:
    """A pyramid of RGB (or grey) levels with an optional pixel size.

    Attributes
    ----------
    path : Path or None
        The file read (``None`` for an in-memory array).
    level_shapes : tuple of (int, int)
        ``(height, width)`` of every level, level 0 the full resolution.
    level_downsamples : tuple of float
        Level-0 pixels per level pixel.
    mpp : float or None
        Level-0 microns per pixel, ``None`` when the file does not say.
    channels : int
        Channels returned by :meth:`read`.
    is_slide : bool
        A whole-slide image (tissue mask applies) rather than a plain image.
    """

    path: Path | None = None
    level_shapes: tuple = ()
    level_downsamples: tuple = ()
    mpp: float | None = None
    channels: int = 3
    is_slide: bool = True
    backend: str = ""

    @property
    def shape(self) -> tuple:
        """Level-0 ``(height, width)``."""
        return self.level_shapes[0]

    @property
    def level_count(self) -> int:
        return len(self.level_shapes)

    def read(self, level: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Pixels ``[top:top+height, left:left+width]`` of ``level`` (level pixels), uint8 ``(h, w, channels)``.

        Raises
        ------
        InputError
            Naming the file when it cannot be decoded (truncated, corrupt).
        """
        if not (0 <= level < self.level_count):
            raise ValueError(f"level {level} out of range (0..{self.level_count - 1})")
        h, w = self.level_shapes[level]
        if top < 0 or left < 0 or height < 0 or width < 0 or top + height > h or left + width > w:
            raise ValueError(f"region {(top, left, height, width)} outside level {level} of shape {(h, w)}")
        try:
            with _quiet_tifffile():
                out = self._read(level, int(top), int(left), int(height), int(width))
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - backends raise many types for corrupt files
            raise InputError(f"{self.path}: cannot read pixels ({type(e).__name__}: {e})") from None
        return out

    def probe(self) -> None:
        """Decode a pixel at the end of every level, so a truncated file fails now, naming the file."""
        for level, (h, w) in enumerate(self.level_shapes):
            self.read(level, h - 1, w - 1, 1, 1)
            self.read(level, 0, 0, 1, 1)

    def _read(self, level, top, left, height, width):  # pragma: no cover - abstract
        raise NotImplementedError

    def _describe(self, slide, mpp):
        """Level shapes, downsamples and pixel size from an OpenSlide-like object (OpenSlide, tiffslide)."""
        self.level_shapes = tuple((int(h), int(w)) for w, h in slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in slide.level_downsamples)
        self.mpp = float(mpp) if mpp is not None else _mpp_from_properties(slide.properties)
        self.channels = 3

    def _location(self, level, top, left) -> tuple:
        """Level-0 ``(x, y)`` of a region's top-left corner given at ``level`` (OpenSlide's convention)."""
        d = self.level_downsamples[level]
        return int(round(left * d)), int(round(top * d))

    def close(self) -> None:
        """Release the file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"{type(self).__name__}({str(self.path) if self.path else '<array>'}, shape={self.shape}, "
                f"levels={self.level_count}, mpp={self.mpp})")


def _mpp_from_properties(props) -> float | None:
    """Pixel size from OpenSlide/tiffslide properties, falling back to TIFF resolution tags."""
    for kx, ky in (("openslide.mpp-x", "openslide.mpp-y"), ("tiffslide.mpp-x", "tiffslide.mpp-y")):
        try:
            x = float(props.get(kx))
            y = float(props.get(ky, x))
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and x > 0:
            return float((x + y) / 2) if math.isfinite(y) and y > 0 else float(x)
    try:
        res = float(props.get("tiff.XResolution"))
    except (TypeError, ValueError):
        return None
    unit = str(props.get("tiff.ResolutionUnit", "")).lower()
    if not (math.isfinite(res) and res > 0):
        return None
    if unit in ("centimeter", "3"):
        return 1e4 / res
    if unit in ("inch", "2"):
        return 25400.0 / res
    return None


def _rgba_to_rgb(a: np.ndarray) -> np.ndarray:
    """Composite RGBA on white (OpenSlide's transparent pixels are glass)."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] == 4:
        alpha = a[..., 3:4].astype(np.uint16)
        rgb = (a[..., :3].astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
        return rgb.astype(np.uint8)
    return a


class OpenSlideReader(SlideReader):
    """A slide read by OpenSlide (``openslide-python``)."""

    backend = "openslide"

    def __init__(self, path, *, mpp: float | None = None):
        try:
            import openslide
        except ImportError as e:
            raise InputError(f"{path}: reading whole-slide images needs OpenSlide ({SLIDES_EXTRA}): {e}") from None
        self.path = Path(path)
        try:
            self._slide = openslide.OpenSlide(str(self.path))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{self.path}: not a readable slide ({type(e).__name__}: {e})") from None
        self._describe(self._slide, mpp)

    def _read(self, level, top, left, height, width):
        loc = self._location(level, top, left)
        return _rgba_to_rgb(np.asarray(self._slide.read_region(loc, level, (width, height))))

    def close(self):
        self._slide.close()


class TiffSlideReader(SlideReader):
    """A TIFF or SVS slide read by tiffslide (pure Python)."""

    backend = "tiffslide"

    def __init__(self, path, *, mpp: float | None = None):
        try:
            import tiffslide
        except ImportError as e:
            raise InputError(f"{path}: reading whole-slide images needs OpenSlide or tiffslide "
                             f"({SLIDES_EXTRA}): {e}") from None
        self.path = Path(path)
        try:
            with _quiet_tifffile():
                self._slide = tiffslide.TiffSlide(str(self.path))
                self.level_shapes = tuple((int(h), int(w)) for w, h in self._slide.level_dimensions)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"{self.path}: not a readable slide ({type(e).__name__}: {e})") from None
        self._describe(self._slide, mpp)

    def _read(self, level, top, left, height, width):
        loc = self._location(level, top, left)
        a = np.asarray(self._slide.read_region(loc, level, (width, height), as_array=True))
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        return _rgba_to_rgb(a)[..., :3]

    def close(self):
        self._slide.close()


class ArrayReader(SlideReader):
    """An image held in memory, as a one-level slide.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8
        The pixels (a 4th alpha channel of an RGBA image is dropped).
    mpp : float, optional
        Microns per pixel.
    path : Path, optional
        The file it came from (for messages).
    is_slide : bool
        Treat as a slide (tissue mask applies); default ``False``.
    """

    backend = "array"

    def __init__(self, image, *, mpp: float | None = None, path=None, is_slide: bool = False):
        a = np.asarray(image)
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
            raise InputError(f"{path or 'image'}: expected a 2-D image (H, W) or (H, W, C), "
                             f"got shape {np.shape(image)}")
        if a.dtype != np.uint8:
            if np.issubdtype(a.dtype, np.integer) and a.size and a.max() <= 255 and a.min() >= 0:
                a = a.astype(np.uint8)
            else:
                raise InputError(f"{path or 'image'}: expected 8-bit pixels, got dtype {a.dtype}")
        self._a = a
        self.path = None if path is None else Path(path)
        self.level_shapes = (a.shape[:2],)
        self.level_downsamples = (1.0,)
        self.mpp = None if mpp is None else float(mpp)
        self.channels = int(a.shape[2])
        self.is_slide = bool(is_slide)

    def _read(self, level, top, left, height, width):
        return self._a[top:top + height, left:left + width]


def is_slide_path(path) -> bool:
    """Whether ``path`` is read as a whole-slide image (slide suffix, or a tiled/multi-level/huge TIFF)."""
    path = Path(path)
    suf = path.suffix.lower()
    if suf not in SLIDE_SUFFIXES:
        return False
    if suf not in (".tif", ".tiff"):
        return True
    import tifffile

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tf:
            page = tf.pages.first
            series = tf.series[0] if tf.series else None
            levels = len(series.levels) if series is not None else 1
            big = int(np.prod(page.shape[:2])) > _MAX_IMAGE_PIXELS
            return bool(page.is_tiled or levels > 1 or len(tf.pages) > 1 and tf.pages[1].is_reduced or big)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: not a readable TIFF ({type(e).__name__}: {e})") from None


def open_slide(path, *, mpp: float | None = None, backend: str | None = None) -> SlideReader:
    """Open a whole-slide image with OpenSlide, or tiffslide for TIFF/SVS when OpenSlide is missing.

    Parameters
    ----------
    path : str or Path
    mpp : float, optional
        Override the file's pixel size (microns per pixel).
    backend : {"openslide", "tiffslide"}, optional
        Force a backend.

    Raises
    ------
    InputError
        Missing file, unreadable slide, or no backend (naming ``pip install 'stardist-hier[slides]'``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if backend == "tiffslide":
        return TiffSlideReader(path, mpp=mpp)
    try:
        import openslide  # noqa: F401
    except ImportError:
        if backend == "openslide" or path.suffix.lower() not in _TIFFSLIDE_SUFFIXES:
            raise InputError(f"{path}: reading this slide format needs OpenSlide ({SLIDES_EXTRA})") from None
        try:
            import tiffslide  # noqa: F401
        except ImportError:
            raise InputError(f"{path}: reading whole-slide images needs OpenSlide ({SLIDES_EXTRA})") from None
        return TiffSlideReader(path, mpp=mpp)
    try:
        return OpenSlideReader(path, mpp=mpp)
    except InputError:
        # a TIFF layout OpenSlide does not know (e.g. a SubIFD pyramid): tiffslide may read it
        if backend == "openslide" or path.suffix.lower() not in _TIFFSLIDE_SUFFIXES:
            raise
        try:
            return TiffSlideReader(path, mpp=mpp)
        except InputError:
            pass
        raise


def _tiff_mpp(path) -> float | None:
    import tifffile

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tf:
            tags = tf.pages.first.tags
            if "XResolution" not in tags:
                return None
            num, den = tags["XResolution"].value
            unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    except Exception:  # noqa: BLE001
        return None
    res = num / den if den else 0
    if res <= 0 or unit not in (2, 3):
        return None
    return (1e4 if unit == 3 else 25400.0) / res


def open_image(path, *, mpp: float | None = None) -> ArrayReader:
    """Read a plain image (PNG, JPEG, TIFF) into an :class:`ArrayReader`.

    The pixel size comes from ``mpp``, else from TIFF resolution tags (centimetre or
    inch units), else it is unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suf = path.suffix.lower()
    try:
        if suf in (".tif", ".tiff"):
            import tifffile

            with _quiet_tifffile():
                a = tifffile.imread(path)
            if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):
                a = np.moveaxis(a, 0, -1)
            if mpp is None:
                mpp = _tiff_mpp(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode not in ("L", "RGB", "RGBA"):
                    im = im.convert("RGBA" if "A" in im.mode else "RGB")
                a = np.asarray(im)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    return ArrayReader(a, mpp=mpp, path=path)


def open_input(path, *, mpp: float | None = None, backend: str | None = None) -> SlideReader:
    """Open an image or a slide, deciding from the suffix (and, for TIFF, its layout).

    Parameters
    ----------
    path : str or Path
    mpp : float, optional
        Override the input's pixel size.
    backend : str, optional
        Slide backend (see :func:`open_slide`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suf = path.suffix.lower()
    if suf not in IMAGE_SUFFIXES and suf not in SLIDE_SUFFIXES:
        raise InputError(f"{path}: unsupported file type {suf!r} (images: {', '.join(IMAGE_SUFFIXES)}; "
                         f"slides: {', '.join(SLIDE_SUFFIXES)})")
    if is_slide_path(path):
        return open_slide(path, mpp=mpp, backend=backend)
    return open_image(path, mpp=mpp)
