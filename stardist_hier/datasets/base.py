"""The reader base class and the error every reader raises for bad input.

Every dataset reader is a :class:`Reader`: a lazy sequence of
:class:`~stardist_hier.datasets.record.Sample` records. Constructing a reader only
discovers and checks file names (and array headers); pixels are read in
``reader[i]``. A reader that finds no samples raises instead of being empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .record import Sample

__all__ = ["Reader", "DatasetError", "require_dir", "require_file"]


class DatasetError(InputError):
    """Bad dataset content: wrong shape or dtype, unknown class, unparsable file.

    The message always names the offending file.
    """


def require_dir(path, *, what: str = "dataset folder") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`; raise if it is not a directory.

    Raises
    ------
    FileNotFoundError
        Naming the path.
    """
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def require_file(path, *, what: str = "file") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`; raise if it is not a file.

    Raises
    ------
    FileNotFoundError
        Naming the path.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


class Reader(Sequence):
    """Lazy sequence of :class:`Sample` records (base class of all readers).

    Subclasses set :attr:`dataset`, fill ``self._names`` (one name per sample, e.g.
    the image file's stem) in ``__init__`` and implement :meth:`_read`.

    Attributes
    ----------
    dataset : str
        Registry name of the dataset (``meta["dataset"]`` of every sample).
    label_set : str
        Name of the taxonomy label set the samples' classes belong to.
    root : pathlib.Path
        The folder the reader was opened on.
    """

    dataset: str = ""

    def __init__(self, root, *, label_set: str):
        self.root = Path(root)
        self.label_set = label_set
        self._names: list = []

    # -- subclass interface
    def _read(self, index: int) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def check_label_set(cls, label_set: str, allowed, *, title: str | None = None, because: str | None = None,
                        where: str | None = None) -> None:
        """Refuse a label set the reader cannot produce: the one check shared by the readers.

        Parameters
        ----------
        label_set : str
            The label set asked for.
        allowed : sequence of str
            The label sets this reader can produce.
        title : str, optional
            The dataset's display name: with one allowed label set the message says
            "``title`` has only 'x'" (else "use 'a' or 'b'").
        because : str, optional
            Why the label set is refused, instead of "unknown label set" (e.g. "cannot be
            read from native codes").
        where : str, optional
            What the message starts with (default :attr:`dataset`).

        Raises
        ------
        ValueError
            ``label_set`` is not in ``allowed``; the message starts with ``where``.
        """
        allowed = tuple(allowed)
        if label_set in allowed:
            return
        if title is not None and len(allowed) == 1:
            hint = f"{title} has only {allowed[0]!r}"
        else:
            hint = "use " + " or ".join(repr(k) for k in allowed)
        what = f"label set {label_set!r} {because}" if because else f"unknown label set {label_set!r}"
        raise ValueError(f"{where or cls.dataset}: {what}; {hint}")

    def _check_nonempty(self, where) -> None:
        """Raise :class:`FileNotFoundError` when discovery found no samples."""
        if len(self._names) == 0:
            raise FileNotFoundError(f"{self.dataset}: no samples found under {where}")

    # -- sequence protocol
    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(len(self)))]
        i = int(index)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.dataset}: index {index} out of range for {n} samples")
        return self._read(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self._read(i)

    def names(self) -> tuple:
        """Sample names in reading order (``meta["name"]`` of each sample)."""
        return tuple(self._names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, n={len(self)}, label_set={self.label_set!r})"
