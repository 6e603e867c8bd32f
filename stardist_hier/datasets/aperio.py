"""Aperio ImageScope XML annotations: parsing and polygon rasterisation (MoNuSAC, MoNuSeg).

Format: ``Annotations/Annotation`` blocks (MoNuSAC: one per class, the class name in
``Annotation/Attributes/Attribute/@Name``), each with ``Regions/Region`` elements (one
nucleus) holding ``Vertices/Vertex`` with float ``X`` (column) and ``Y`` (row).
The root may carry ``MicronsPerPixel``.

Rules:

- Coordinates are parsed as floats; a vertex without a finite ``X`` or ``Y``, or an
  XML that does not parse, raises :class:`~.base.DatasetError` naming the file.
- Blocks without regions are skipped (whatever their name).
- Consecutive repeated vertices and a closing vertex equal to the first are removed.
- Polygons are filled with :func:`skimage.draw.polygon` (pixel centres inside the
  outline). For self-crossing outlines that test is even-odd: a part enclosed twice
  is left out. With ``clip=True`` vertices are first clipped to the image.
- A region is *degenerate* when fewer than 3 distinct vertices remain, when all
  its vertices lie on one line (no area), or when it fills no pixel; degenerate
  regions are dropped and counted.
- Regions are painted in document order; where outlines overlap the later region
  wins. A region left with no pixel is dropped and counted as *overwritten*.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DatasetError, require_file

__all__ = ["Region", "AperioAnnotations", "read_aperio_xml", "clean_vertices", "rasterise_regions"]


@dataclass(frozen=True)
class Region:
    """One annotated outline.

    Attributes
    ----------
    name : str or None
        Class name of the enclosing ``Annotation`` block (``None`` when it has none).
    vertices : ndarray, (n, 2) float
        ``(x, y)`` = (column, row) coordinates as written.
    region_id : str
        The ``Region/@Id`` attribute.
    block : int
        0-based index of the enclosing ``Annotation`` block.
    """

    name: str | None
    vertices: np.ndarray
    region_id: str
    block: int


@dataclass(frozen=True)
class AperioAnnotations:
    """Parsed XML: regions in document order, ``mpp`` (or None), number of empty blocks."""

    path: Path
    regions: tuple
    mpp: float | None
    n_empty_blocks: int


def _block_name(ann) -> str | None:
    attr = ann.find("Attributes/Attribute")
    if attr is not None and attr.get("Name"):
        return attr.get("Name").strip()
    name = (ann.get("Name") or "").strip()
    return name or None


def read_aperio_xml(path) -> AperioAnnotations:
    """Parse an Aperio ImageScope XML file.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DatasetError
        The XML does not parse, has no ``Annotation`` element, or a vertex has no
        finite coordinates (message names the file).
    """
    path = require_file(path, what="annotation XML")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DatasetError(f"{path}: XML does not parse ({e})") from None
    anns = [root] if root.tag == "Annotation" else root.findall("Annotation")
    if not anns:
        raise DatasetError(f"{path}: no <Annotation> element (root element is <{root.tag}>)")
    mpp = None
    if root.get("MicronsPerPixel"):
        try:
            mpp = float(root.get("MicronsPerPixel"))
        except ValueError:
            mpp = None
    regions, n_empty = [], 0
    for b, ann in enumerate(anns):
        regs = ann.findall("Regions/Region")
        if not regs:
            n_empty += 1
            continue
        name = _block_name(ann)
        for reg in regs:
            rid = reg.get("Id", "?")
            pts = []
            for v in reg.findall("Vertices/Vertex"):
                try:
                    x, y = float(v.get("X")), float(v.get("Y"))
                except (TypeError, ValueError):
                    raise DatasetError(f"{path}: region {rid} has a vertex without numeric X/Y: "
                                       f"{v.attrib}") from None
                if not (np.isfinite(x) and np.isfinite(y)):
                    raise DatasetError(f"{path}: region {rid} has a non-finite vertex {v.attrib}")
                pts.append((x, y))
            regions.append(Region(name=name, vertices=np.asarray(pts, np.float64).reshape(-1, 2),
                                  region_id=rid, block=b))
    return AperioAnnotations(path=path, regions=tuple(regions), mpp=mpp, n_empty_blocks=n_empty)


def clean_vertices(vertices) -> np.ndarray:
    """Remove consecutive repeated vertices and a closing vertex equal to the first."""
    v = np.asarray(vertices, np.float64).reshape(-1, 2)
    if len(v) == 0:
        return v
    keep = np.r_[True, np.any(v[1:] != v[:-1], axis=1)]
    v = v[keep]
    while len(v) > 1 and np.all(v[-1] == v[0]):
        v = v[:-1]
    return v


def rasterise_regions(regions, shape, *, clip: bool = True) -> tuple:
    """Paint outlines into an instance map (rules in the module docstring).

    Parameters
    ----------
    regions : sequence of Region or of (n, 2) arrays
        Outlines in ``(x, y)`` order; region ``k`` (0-based) is painted with id ``k + 1``.
    shape : tuple
        Output (H, W).
    clip : bool
        Clip vertices to the image before filling.

    Returns
    -------
    labels : ndarray of int32
        Ids ``k + 1`` of the regions that kept pixels (not relabelled).
    n_degenerate : int
    n_overwritten : int
    """
    from skimage.draw import polygon

    h, w = int(shape[0]), int(shape[1])
    labels = np.zeros((h, w), np.int32)
    n_degenerate = 0
    painted = []
    for k, reg in enumerate(regions, start=1):
        v = clean_vertices(reg.vertices if isinstance(reg, Region) else reg)
        if clip and len(v):
            v = np.stack([np.clip(v[:, 0], 0, w - 1), np.clip(v[:, 1], 0, h - 1)], axis=1)
            v = clean_vertices(v)
        if len(np.unique(v, axis=0)) < 3 or _collinear(v):
            n_degenerate += 1
            continue
        rr, cc = polygon(v[:, 1], v[:, 0], shape=(h, w))
        if rr.size == 0:
            n_degenerate += 1
            continue
        labels[rr, cc] = k
        painted.append(k)
    present = np.zeros(len(regions) + 1, bool)
    present[np.unique(labels)] = True
    n_overwritten = int(sum(not present[k] for k in painted))
    return labels, n_degenerate, n_overwritten


def _collinear(v) -> bool:
    d = v[1:] - v[0]
    cross = d[:, 0, None] * d[None, :, 1] - d[:, 1, None] * d[None, :, 0]
    return bool(np.all(np.abs(cross) <= 1e-9 * max(1.0, float(np.abs(d).max()) ** 2)))
