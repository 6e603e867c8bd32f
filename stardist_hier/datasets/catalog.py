"""The known datasets as ``stardist-hier datasets`` reports them (no TensorFlow).

:func:`list_datasets` gives every registered dataset with its label sets on the class tree;
:func:`verify_dataset` reads a local copy through its reader and counts images and nuclei
per class, checking every sample's classes against its labels and label set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

__all__ = ["list_datasets", "verify_dataset", "Verification"]


def _taxonomy(taxonomy):
    """A :class:`~stardist_hier.tree.Taxonomy`: ``taxonomy`` itself, read from a file, or the built-in one."""
    from ..tree import Taxonomy, default_taxonomy

    if isinstance(taxonomy, Taxonomy):
        return taxonomy
    return Taxonomy.from_file(taxonomy) if taxonomy else default_taxonomy()


def _mapping(tax, ls_name) -> dict | None:
    if ls_name not in tax and ls_name != "root":
        return None
    ls = tax[ls_name]
    out = {lab: list(ls.nodes(lab)) for lab in ls.labels}
    out.update({lab: "ignore" for lab in ls.ignore_labels})
    return out


def list_datasets(taxonomy=None) -> list:
    """Every registered dataset as a JSON-ready mapping: name, reader, description, ``any_label_set``
    and ``label_sets`` (``{label: [tree nodes] or "ignore"}`` per label set, ``None`` when the
    taxonomy lacks it). ``taxonomy``: a Taxonomy, a taxonomy file, or ``None`` for the built-in one."""
    from .registry import DATASETS

    tax = _taxonomy(taxonomy)
    rows = []
    for d in DATASETS.values():
        rows.append({"name": d.name, "reader": d.reader, "description": d.description,
                     "label_sets": {ls: _mapping(tax, ls) for ls in d.label_sets},
                     "any_label_set": d.any_label_set})
    return rows


@dataclass
class Verification:
    """What :func:`verify_dataset` counted: ``result`` (JSON-ready) and the label set read."""

    result: dict
    label_set: object

    def text(self) -> str:
        """The counts as the command line prints them, one line each."""
        r, ls = self.result, self.label_set
        per_class = r["per_class"]
        lines = [f"{r['dataset']} at {r['path']}  (label set {r['label_set']})",
                 f"  images: {r['images']}", f"  nuclei: {r['nuclei']}"]
        for lab in list(ls.labels) + list(ls.ignore_labels) + ["(class unknown)"]:
            if lab in per_class:
                nodes = " + ".join(ls.nodes(lab)) if lab in ls.labels else "ignore"
                lines.append(f"    {lab:<28} {per_class[lab]:>8}   -> {nodes}")
        lines.append(f"  ignore pixels: {r['ignore_pixels']}")
        lines += [f"  {k}: {v}" for k, v in sorted(r["counters"].items())]
        return "\n".join(lines)


def verify_dataset(name: str, path, *, label_set=None, split=None, limit=None, taxonomy=None) -> Verification:
    """Read the local copy of dataset ``name`` at ``path`` (at most ``limit`` samples) and count it.

    Raises ``ValueError`` (or the reader's error) naming the sample whose classes do not
    match its instance ids or label set, or the path when no sample is read.
    """
    from .registry import get_dataset

    tax = _taxonomy(taxonomy)
    d = get_dataset(name)
    kwargs = {}
    if d.any_label_set:
        kwargs["taxonomy"] = tax
    reader = d.open(path, label_set=label_set, split=split, **kwargs)
    ls = tax[reader.label_set]
    n_images, n_nuclei, ignore_px = 0, 0, 0
    per_class, counters = Counter(), Counter()
    shapes = set()
    for i, s in enumerate(reader):
        if limit is not None and i >= limit:
            break
        n_images += 1
        shapes.add(s.image.shape[:2])
        ids = {int(v) for v in np.unique(s.labels) if v != 0}
        if ids != set(s.classes):
            raise ValueError(f"{s.meta.get('source')}: classes do not match the instance ids of the labels")
        for lab in s.classes.values():
            if lab is not None:
                ls.resolve(lab)  # raises for a label that is not in the label set
            per_class["(class unknown)" if lab is None else lab] += 1
        n_nuclei += len(s.classes)
        if s.ignore is not None:
            ignore_px += int(s.ignore.sum())
        for k, v in s.meta.items():
            if k.startswith("n_") and isinstance(v, int):
                counters[k] += v
    if n_images == 0:
        raise ValueError(f"{path}: no samples read")
    result = {"dataset": d.name, "path": str(path), "label_set": reader.label_set, "images": n_images,
              "nuclei": n_nuclei, "per_class": dict(per_class), "ignore_pixels": ignore_px,
              "image_shapes": sorted(list(x) for x in shapes)[:10], "counters": dict(counters)}
    return Verification(result, ls)
