"""argparse ``type=`` validators shared by the commands: a bad value ends as one line naming the argument.

argparse turns an :class:`argparse.ArgumentTypeError` into
``stardist-hier COMMAND: error: argument --NAME: MESSAGE`` and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["positive_int", "block_size", "non_negative_int", "positive_float", "unit_interval", "open_unit_interval",
           "pixel_size", "out_folder"]


def _int(text) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text) -> float:
    try:
        v = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def positive_int(text) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def block_size(text):
    """``auto`` or a positive integer (``--block-size``)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a positive integer, got {text!r}") from None


def non_negative_int(text) -> int:
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return v


def positive_float(text) -> float:
    v = _float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def unit_interval(text) -> float:
    """A number in (0, 1]."""
    v = _float(text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return v


def open_unit_interval(text) -> float:
    """A number in (0, 1) (a probability or overlap threshold, as the experiment config takes them)."""
    v = _float(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return v


def pixel_size(text) -> float:
    """A pixel size in microns, in (0, 100)."""
    v = _float(text)
    if not 0 < v < 100:
        raise argparse.ArgumentTypeError(f"must be a pixel size in microns, in (0, 100), got {text!r}")
    return v


def out_folder(text) -> Path:
    """An output folder: absent (it will be created) or an existing folder, not a file."""
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return p
