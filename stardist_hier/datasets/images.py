"""Reading image files as RGB uint8.

Conversion rules (:func:`to_rgb_uint8`):

- (H, W) grey images are repeated to three channels; (H, W, 4) RGBA drops alpha;
  (H, W, 2) grey+alpha keeps the grey channel.
- uint8 is kept; bool becomes 0/255; floats within [0, 1] are scaled by 255; any
  other integer or float image whose values all lie in 0..255 is rounded and cast;
  anything else (e.g. 16-bit fluorescence) is min-max scaled per image to 0..255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, require_file

__all__ = ["read_image", "read_rgb", "to_rgb_uint8"]

TIFF_SUFFIXES = (".tif", ".tiff")


def read_image(path) -> np.ndarray:
    """Read an image file as stored (TIFF with :mod:`tifffile`, others with imageio's Pillow plugin).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DatasetError
        The file cannot be decoded (message names the file).
    """
    path = require_file(path, what="image file")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio  # a dependency of scikit-image

        return np.asarray(iio.imread(path, plugin="pillow"))
    except Exception as e:
        raise DatasetError(f"{path}: cannot read image: {e}") from None


def to_rgb_uint8(img, *, source="image") -> np.ndarray:
    """Convert an image array to (H, W, 3) uint8 RGB (rules in the module docstring).

    Parameters
    ----------
    img : array_like
    source : str or path
        Named in error messages.

    Raises
    ------
    DatasetError
        If the array is not an image of one of the accepted shapes.
    """
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 2:
        a = np.repeat(a[..., :1], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise DatasetError(f"{source}: expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype.kind not in "iuf":
        raise DatasetError(f"{source}: expected a numeric image, got dtype {a.dtype}")
    if a.size == 0:
        raise DatasetError(f"{source}: empty image of shape {a.shape}")
    lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise DatasetError(f"{source}: image has non-finite values")
    if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
        return np.rint(a * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255:
        return np.rint(a).astype(np.uint8)
    scaled = (a.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 255
    return np.rint(scaled).astype(np.uint8)


def read_rgb(path) -> np.ndarray:
    """Read an image file and convert it with :func:`to_rgb_uint8`."""
    return to_rgb_uint8(read_image(path), source=Path(path))
