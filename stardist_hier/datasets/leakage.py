"""Train/test leakage through re-annotated source images (Lizard, CoNIC).

Lizard re-annotates images of other datasets; its ``info.csv``
(``Filename,Source,Split``) names the origin of each image: ``consep_3`` comes from
CoNSeP's ``test_9``, ``glas_1`` from GlaS ``testB_10``, and ``pannuke_1`` .. ``pannuke_28``
from PanNuke regions whose ``Source`` is ``None`` (not given). CoNIC patches are cut
from Lizard images (``consep_1-0000`` is a patch of ``consep_1``). Training on Lizard
or CoNIC and testing on CoNSeP or PanNuke therefore tests on training data.

Identity of a sample: ``(dataset, name)`` with ``name`` = :attr:`Sample.meta` ``["name"]``
(the image stem, or the CoNIC patch name). Its *origins* are itself plus, for Lizard
and CoNIC samples listed in ``info.csv``, ``(source dataset, source name)``. A train
and a test sample leak when their origins intersect. Rules:

- A Lizard image taken from PanNuke without a named source (``Source`` = ``None``)
  is assumed to overlap **every** PanNuke sample (conservative: its region could
  come from any fold).
- The ``Split`` column of ``info.csv`` is Lizard's cross-validation fold, not a
  train/test flag; it plays no part here.
- CoNIC patches whose names do not follow ``<lizard image>-<k>`` (no
  ``patch_info.csv``) have no known origin and are only matched to themselves.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from typing import Iterable

from .base import DatasetError, require_file

__all__ = ["LizardSource", "Leak", "LeakageWarning", "read_lizard_info", "sample_key", "reader_keys",
           "origins", "find_leaks", "check_leakage"]

_ANY = "*"


class LeakageWarning(UserWarning):
    """Training and test samples share a source image."""


@dataclass(frozen=True)
class LizardSource:
    """One row of Lizard's ``info.csv``.

    Attributes
    ----------
    filename : str
        Lizard image name, e.g. ``"consep_3"``.
    dataset : str
        Source dataset, the name's prefix: ``consep``, ``pannuke``, ``glas``, ``crag``, ``dpath``.
    source : str or None
        Source image name (``None`` where the table says ``None``).
    fold : str
        The ``Split`` column (cross-validation fold).
    """

    filename: str
    dataset: str
    source: str | None
    fold: str


@dataclass(frozen=True)
class Leak:
    """A train sample and a test sample with a common origin (``"dataset/name"`` strings)."""

    train: str
    test: str
    origin: str


def read_lizard_info(path) -> dict:
    """``{filename: LizardSource}`` from Lizard's ``info.csv``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DatasetError
        Missing ``Filename``/``Source`` columns or an empty table (naming the file).
    """
    path = require_file(path, what="Lizard info.csv")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "Filename" not in cols or "Source" not in cols:
            raise DatasetError(f"{path}: expected columns Filename,Source,Split, got {cols}")
        out = {}
        for row in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            name = row["Filename"]
            if not name:
                continue
            src = row["Source"]
            out[name] = LizardSource(filename=name, dataset=name.rsplit("_", 1)[0].lower(),
                                     source=None if src in ("", "None", "none", "nan") else src,
                                     fold=row.get("Split", ""))
    if not out:
        raise DatasetError(f"{path}: no rows")
    return out


def sample_key(item) -> tuple:
    """``(dataset, name)`` of a :class:`Sample`, a ``(dataset, name)`` pair or a ``"dataset/name"`` string."""
    from .record import Sample

    if isinstance(item, Sample):
        try:
            return str(item.meta["dataset"]), str(item.meta["name"])
        except KeyError:
            raise ValueError("sample has no meta['dataset'] / meta['name']: cannot identify it") from None
    if isinstance(item, str):
        if "/" not in item:
            raise ValueError(f"expected 'dataset/name', got {item!r}")
        d, n = item.split("/", 1)
        return d, n
    d, n = item
    return str(d), str(n)


def reader_keys(reader) -> list:
    """``(dataset, name)`` of every sample of a reader, without reading pixels."""
    return [(reader.dataset, n) for n in reader.names()]


def origins(key, info: dict | None = None) -> frozenset:
    """Origins of a sample key (rules in the module docstring)."""
    d, n = key
    out = {(d, n)}
    if info is not None and d in ("lizard", "conic"):
        lname = n if d == "lizard" else n.rsplit("-", 1)[0]
        out.add(("lizard", lname))
        src = info.get(lname)
        if src is not None:
            out.add((src.dataset, src.source if src.source is not None else _ANY))
    return frozenset(out)


def _load_info(info):
    if info is None or isinstance(info, dict):
        return info
    return read_lizard_info(info)


def find_leaks(train: Iterable, test: Iterable, *, info=None) -> list:
    """Every (train, test) pair with a common origin.

    Parameters
    ----------
    train, test : iterables
        Samples, ``(dataset, name)`` pairs or ``"dataset/name"`` strings (see
        :func:`reader_keys` to list a reader without reading its pixels).
    info : path or dict, optional
        Lizard's ``info.csv`` (or :func:`read_lizard_info`'s result). Without it only
        identical samples match.

    Returns
    -------
    list of Leak
    """
    info = _load_info(info)
    by_origin, by_dataset = {}, {}
    for t in test:
        k = sample_key(t)
        tname = "/".join(k)
        for o in origins(k, info):
            by_origin.setdefault(o, []).append(tname)
            by_dataset.setdefault(o[0], []).append((tname, o))
    leaks, seen = [], set()
    for item in train:
        k = sample_key(item)
        tr = "/".join(k)
        for o in origins(k, info):
            if o[1] == _ANY:
                hits = [(t, o) for t, _ in by_dataset.get(o[0], [])]
            else:
                hits = [(t, o) for t in by_origin.get(o, [])]
                hits += [(t, to) for t, to in by_dataset.get(o[0], []) if to[1] == _ANY]
            for t, org in hits:
                label = f"{org[0]}/{org[1]}" if org[1] != _ANY else f"{org[0]}/* (source region not named)"
                if (tr, t) not in seen:
                    seen.add((tr, t))
                    leaks.append(Leak(train=tr, test=t, origin=label))
    return leaks


def check_leakage(train, test, *, info=None, drop: bool = False) -> list:
    """Warn about training samples that share a source image with a test sample.

    Parameters
    ----------
    train, test : sequences
        As for :func:`find_leaks`.
    info : path or dict, optional
        Lizard's ``info.csv``.
    drop : bool
        Return ``train`` without the leaking samples (default: unchanged).

    Returns
    -------
    list
        The training items kept, in their original form and order.

    Warns
    -----
    LeakageWarning
        Naming every leaking pair and its common origin.
    """
    train = list(train)
    leaks = find_leaks(train, test, info=info)
    if not leaks:
        return train
    bad = {lk.train for lk in leaks}
    pairs = "; ".join(f"{lk.train} <-> {lk.test} (origin {lk.origin})" for lk in leaks)
    action = "dropped from the training set" if drop else "kept (pass drop=True to drop them)"
    warnings.warn(f"{len(bad)} training samples share source images with the test set, {action}: {pairs}",
                  LeakageWarning, stacklevel=2)
    if not drop:
        return train
    return [t for t in train if "/".join(sample_key(t)) not in bad]
