"""Row-by-row reading of large ``.npy`` arrays through short-lived memory maps.

PanNuke folds are several GB of float64 and CoNIC's arrays about 1-2 GB. Keeping one
``np.load(mmap_mode='r')`` map open while touching every row makes the whole file
resident in the reading process (mapped pages count towards its RSS). :class:`NpyRows`
parses the header once with ``np.load(mmap_mode='r')`` and then maps only the bytes
of the requested row, copies them and unmaps, so a full pass stays at one row of
memory however large the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, require_file

__all__ = ["NpyRows"]


class NpyRows:
    """Lazy access to the rows (first-axis items) of a ``.npy`` file.

    Parameters
    ----------
    path : str or path
        A ``.npy`` file holding a numeric array without pickled objects.
    what : str
        Description used in error messages.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DatasetError
        Not a readable ``.npy`` file, pickled objects, a 0-d array or a non-numeric dtype.

    Notes
    -----
    Instances hold no open map, so they pickle cheaply to worker processes.
    """

    def __init__(self, path, *, what: str = "array file"):
        self.path = require_file(path, what=what)
        try:
            m = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise DatasetError(f"{self.path}: cannot memory-map {what} ({e})") from None
        except Exception as e:
            raise DatasetError(f"{self.path}: not a readable .npy file ({e})") from None
        if not isinstance(m, np.memmap):
            raise DatasetError(f"{self.path}: expected a .npy array file, not an archive")
        if m.ndim == 0:
            raise DatasetError(f"{self.path}: expected an array with a first axis, got a scalar")
        if m.dtype.kind not in "biuf":
            raise DatasetError(f"{self.path}: expected a numeric {what}, got dtype {m.dtype}")
        self.shape = tuple(m.shape)
        self.dtype = m.dtype
        self._offset = int(m.offset)
        self._c_order = bool(m.flags.c_contiguous)
        del m

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def row_shape(self) -> tuple:
        return self.shape[1:]

    def __getitem__(self, i: int) -> np.ndarray:
        """Row ``i`` as an in-memory array (a copy; the map is closed on return)."""
        i = int(i)
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"{self.path}: row {i} out of range for {self.shape[0]} rows")
        if self._c_order:
            nbytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
            mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self._offset + i * nbytes,
                           shape=self.row_shape or (1,))
            out = np.array(mm) if self.row_shape else np.array(mm[0])
        else:  # Fortran order: rows are not contiguous; slice a full map (rare)
            mm = np.load(self.path, mmap_mode="r")
            out = np.array(mm[i])
        del mm
        return out

    def __repr__(self) -> str:
        return f"NpyRows({str(Path(self.path))!r}, shape={self.shape}, dtype={self.dtype})"
