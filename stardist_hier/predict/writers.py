"""Writers for predicted nuclei: QuPath GeoJSON, nucleus tables, label images and overlays (no TensorFlow).

Every writer has the same interface, so the image, folder and slide pipelines
choose them by name from :data:`WRITERS`::

    W = WRITERS["geojson"]
    with W(out / "slide1", label_sets=[tax["pannuke"]], abstain=0.6, tree=tree,
           mpp=0.25, image_shape=(h, w)) as w:
        for chunk in chunks:          # stardist_hier.predict.Nuclei, level-0 pixels
            w.write(chunk)

The output goes to ``W.target(path_stem)``: ``output_path(path_stem, W.suffix)`` (the stem plus the suffix, so dotted stems such as ``sample.1`` stay whole; the overlay in the sub-folder ``overlay/``); it is written under a unique
temporary name beside it and renamed into place when the ``with`` block ends without
an exception. On an exception nothing is left behind (an older file of the same name
is kept as it was). ``W.slide_ok`` tells whether a writer handles whole-slide images
(every writer but ``labels``, whose full-resolution raster would not fit in memory).

Common arguments
----------------
path_stem : Path
    Output path without its suffix.
label_sets : list of LabelSet
    Label sets to report classes at; the first one names the GeoJSON classification
    and the overlay colours. Empty or ``None``: one label per leaf of ``tree``
    (:meth:`LabelSet.leaves_of`).
abstain : float or None
    Abstention threshold: each nucleus also gets the deepest node on its most
    probable path whose (nucleus-conditional) probability reaches it
    (:func:`stardist_hier.classify.abstain_to_ancestor`), and at every label set its
    label, or ``uncertain`` when that label's nucleus-conditional probability is below it
    (:func:`stardist_hier.classify.label_set_decisions`).
tree : ClassTree or None
    The model's tree; ``None`` for a segmentation-only model (no classes written).
mpp : float or None
    Level-0 microns per pixel (default: that of the first chunk, if any); adds the
    micron columns and measurements.
image_shape : tuple or None
    Level-0 (height, width) of the image or slide.
image : ndarray or None
    Only for ``overlay``: the image, or a downsampled thumbnail of the slide (see
    :class:`OverlayWriter`).

Formats
-------
``geojson`` (:class:`GeoJSONWriter`)
    A QuPath-compatible GeoJSON ``FeatureCollection`` of detections, streamed chunk by chunk.
``csv`` / ``parquet`` (:class:`CSVWriter`, :class:`ParquetWriter`)
    One row per nucleus (columns in :func:`table_columns`); CSV is streamed, Parquet
    written one row group per chunk. Parquet needs pyarrow (``pip install 'stardist-hier[parquet]'``).
``labels`` (:class:`LabelsWriter`)
    ``<stem>.tif`` (int32 instance labels) and ``<stem>.json`` (``{"id": [leaf
    probabilities]}``), exactly what ``stardist-hier evaluate --pred`` reads.
``overlay`` (:class:`OverlayWriter`)
    ``overlay/<stem>.png`` (a sub-folder, apart from the label images): the image (or slide
    thumbnail) with nuclei coloured by class and a legend.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import uuid
from pathlib import Path

import numpy as np

from .. import classify
from ..errors import InputError
from ..io import atomic_path
from ..tree import ClassTree, LabelSet
from .nuclei import Nuclei

__all__ = ["WRITERS", "Writer", "GeoJSONWriter", "CSVWriter", "ParquetWriter", "LabelsWriter", "OverlayWriter",
           "table_columns"]

#: Namespace of the deterministic feature ids (UUID 5 of ``"<file stem>/<nucleus id>"``).
_UUID_NAMESPACE = uuid.UUID("5b0c6c1e-3a57-4e7b-9c55-2f1d2b8a7e41")


# ------------------------------------------------------------------------ base class

def output_path(path_stem, suffix: str) -> Path:
    """The file a writer writes for ``path_stem``: the stem's full name plus ``suffix``.

    Unlike ``Path.with_suffix`` this keeps dotted stems whole (``sample.1`` ->
    ``sample.1.csv``, not ``sample.csv``).
    """
    path_stem = Path(path_stem)
    return path_stem.with_name(path_stem.name + suffix)

class Writer:
    """Base class: argument checks, per-chunk class decisions and the atomic file handling.

    Subclasses set :attr:`suffix` and :attr:`slide_ok` and implement ``_open``,
    ``_write`` and ``_close`` (called with the temporary path(s) in ``self._tmp``).
    """

    #: Suffix of the output file.
    suffix = ""
    #: Whether the writer can take a whole-slide image's stream of chunks.
    slide_ok = True
    #: Extra suffixes written beside the main file (each its own atomic file).
    extra_suffixes: tuple = ()

    @classmethod
    def target(cls, path_stem) -> Path:
        """The main file this writer writes for ``path_stem`` (see :func:`output_path`)."""
        return output_path(path_stem, cls.suffix)

    @classmethod
    def targets(cls, path_stem) -> list:
        """Every file this writer may write for ``path_stem``: the main one and the extras."""
        return [cls.target(path_stem)] + [output_path(path_stem, s) for s in cls.extra_suffixes]

    @property
    def paths(self) -> list:
        """The files this writer writes (main file first)."""
        return [self.path] + [output_path(self.path_stem, s) for s in self._extras()]

    def __init__(self, path_stem, *, label_sets=None, abstain=None, tree=None, mpp=None, image_shape=None,
                 image=None):
        self.path_stem = Path(path_stem)
        self.path = self.target(self.path_stem)
        if tree is not None and not isinstance(tree, ClassTree):
            raise TypeError(f"tree must be a ClassTree or None, got {type(tree).__name__}")
        self.tree = tree
        label_sets = list(label_sets or [])
        if tree is None:
            label_sets = []
        elif not label_sets:
            label_sets = [LabelSet.leaves_of(tree)]
        for ls in label_sets:
            if not isinstance(ls, LabelSet):
                raise TypeError(f"label_sets must hold LabelSet objects, got {type(ls).__name__}")
            if ls.tree != tree:
                raise InputError(f"label set {ls.name!r} is not defined on the model's class tree")
        self.label_sets = label_sets
        if abstain is not None:
            abstain = float(abstain)
            if not (0 < abstain <= 1):
                raise InputError(f"abstain threshold must be in (0, 1], got {abstain}")
        self.abstain = abstain if tree is not None else None
        if mpp is not None and not (math.isfinite(float(mpp)) and float(mpp) > 0):
            raise InputError(f"mpp must be a positive number of microns per pixel, got {mpp}")
        self.mpp = None if mpp is None else float(mpp)
        self.image_shape = None if image_shape is None else tuple(int(s) for s in image_shape[:2])
        self.image = image
        self._set_names = _unique_names([ls.name for ls in self.label_sets])
        self._stack = None
        self._tmp = None
        self._mpp_fixed = False
        self.n_written = 0

    # ---- context manager
    def __enter__(self):
        stack = contextlib.ExitStack()
        # a folder made for the outputs (the overlay's sub-folder) goes again when nothing is written
        missing = self.path.parent if not self.path.parent.exists() else None
        if missing is not None:
            stack.callback(_remove_if_empty, missing)
        try:
            tmp = [stack.enter_context(atomic_path(self.path))]
            tmp += [stack.enter_context(atomic_path(output_path(self.path_stem, s))) for s in self._extras()]
            self._tmp = tmp
            self._open()
        except BaseException:
            stack.__exit__(*_exc_info())
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type, exc, tb):
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        if exc_type is None:
            try:
                self._close()
            except BaseException as e:  # nothing is renamed into place
                self._abort()
                if not stack.__exit__(type(e), e, e.__traceback__):
                    raise
                return False
            stack.__exit__(None, None, None)  # renames every temporary file into place
            return False
        self._abort()
        return bool(stack.__exit__(exc_type, exc, tb))

    def write(self, chunk: Nuclei) -> None:
        """Add one chunk of nuclei (level-0 pixel coordinates)."""
        if self._stack is None:
            raise RuntimeError(f"{type(self).__name__}.write called outside its 'with' block")
        if not isinstance(chunk, Nuclei):
            raise TypeError(f"write expects a stardist_hier.predict.Nuclei chunk, got {type(chunk).__name__}")
        self._fix_mpp(chunk.mpp)
        if self.tree is not None:
            if chunk.class_prob is None:
                raise InputError(f"{self.path}: the model has a class tree, but a chunk holds no class probabilities")
            if chunk.class_prob.shape[1] != self.tree.n_classes + 1:
                raise InputError(f"{self.path}: chunk class_prob has {chunk.class_prob.shape[1]} columns, "
                                 f"the tree has {self.tree.n_classes} leaves (+ background)")
        self._write(chunk)
        self.n_written += len(chunk)

    def _fix_mpp(self, chunk_mpp=None):
        if not self._mpp_fixed:
            if self.mpp is None and chunk_mpp is not None and float(chunk_mpp) > 0:
                self.mpp = float(chunk_mpp)
            self._mpp_fixed = True

    # ---- hooks
    def _extras(self) -> tuple:
        return self.extra_suffixes

    def _open(self):
        pass

    def _write(self, chunk: Nuclei):
        raise NotImplementedError

    def _close(self):
        pass

    def _abort(self):
        """Release open handles before the temporary files are removed."""

    # ---- per-chunk values shared by the writers
    def _classes(self, chunk: Nuclei) -> dict:
        """Class decisions and probabilities of a chunk (empty dict for a segmentation-only model)."""
        if self.tree is None:
            return {}
        cp = np.asarray(chunk.class_prob, np.float64)
        out = {"node_prob": self.tree.node_probabilities(cp)}
        leaf_idx, leaves = classify.leaf_decisions(cp, self.tree)
        out["leaf"] = leaves
        out["prob_leaf"] = cp[np.arange(len(cp)), leaf_idx] if len(cp) else np.zeros(0)
        # per label set: the label (or "outside label set"), its probability, the outside mass,
        # and with abstain the label or "uncertain" (classify.label_set_decisions)
        out["sets"] = [classify.label_set_decisions(cp, ls, abstain=self.abstain) for ls in self.label_sets]
        if self.abstain is not None:
            out["abstain"] = classify.abstain_to_ancestor(cp, self.tree, self.abstain)
        return out


def _remove_if_empty(folder) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()  # only an empty folder


def _exc_info():
    import sys

    return sys.exc_info()


def _unique_names(names) -> list:
    """Column-safe, unique versions of label-set names (``consep``, ``consep_2``, ...)."""
    out, seen = [], set()
    for n in names:
        base = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(n)) or "labels"
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


# -------------------------------------------------------------------------- tables
def table_columns(*, tree, label_sets, abstain, mpp) -> list:
    """Column names of the nucleus table, in order.

    ``id``, ``centroid_y``, ``centroid_x`` (level-0 px), ``centroid_y_um``,
    ``centroid_x_um`` (with ``mpp``), ``area_px``, ``area_um2`` (with ``mpp``),
    ``object_prob``; with a tree, for every label set: ``label_<set>`` (the most probable
    label, or ``outside label set`` when the leaves no label covers hold more),
    ``prob_<set>`` (its probability), ``outside_<set>`` (the probability outside the
    label set) and, when ``abstain`` is set, ``abstained_<set>`` (the label, or
    ``uncertain`` when its probability given a nucleus is below ``abstain``); then
    ``leaf``, ``prob_leaf``, ``p_background`` and ``p_<node>`` for every tree node, and
    ``abstain_node`` when ``abstain`` is set.
    """
    cols = ["id", "centroid_y", "centroid_x"]
    if mpp is not None:
        cols += ["centroid_y_um", "centroid_x_um"]
    cols += ["area_px"] + (["area_um2"] if mpp is not None else []) + ["object_prob"]
    if tree is not None:
        for name in _unique_names([ls.name for ls in label_sets]):
            cols += [f"label_{name}", f"prob_{name}", f"outside_{name}"]
            if abstain is not None:
                cols.append(f"abstained_{name}")
        cols += ["leaf", "prob_leaf"] + [f"p_{n}" for n in tree.node_names()]
        if abstain is not None:
            cols.append("abstain_node")
    return cols


class _TableWriter(Writer):
    """Rows of the nucleus table, one dict of columns per chunk."""

    def _columns(self) -> list:
        return table_columns(tree=self.tree, label_sets=self.label_sets, abstain=self.abstain, mpp=self.mpp)

    def _table(self, chunk: Nuclei) -> dict:
        c = chunk.centroid
        area = chunk.area
        t = {"id": chunk.ids.astype(np.int64), "centroid_y": _r(c[:, 0], 3),
             "centroid_x": _r(c[:, 1], 3)}
        if self.mpp is not None:
            t["centroid_y_um"] = _r(c[:, 0] * self.mpp, 4)
            t["centroid_x_um"] = _r(c[:, 1] * self.mpp, 4)
        t["area_px"] = _r(area, 3)
        if self.mpp is not None:
            t["area_um2"] = _r(area * self.mpp ** 2, 4)
        t["object_prob"] = _r(chunk.prob.astype(np.float64), 6)
        cl = self._classes(chunk)
        if cl:
            for name, d in zip(self._set_names, cl["sets"]):
                t[f"label_{name}"] = list(d.names)
                t[f"prob_{name}"] = _r(d.prob, 6)
                t[f"outside_{name}"] = _r(d.outside, 6)
                if self.abstain is not None:
                    t[f"abstained_{name}"] = list(d.abstained)
            t["leaf"] = list(cl["leaf"])
            t["prob_leaf"] = _r(cl["prob_leaf"], 6)
            for j, n in enumerate(self.tree.node_names()):
                t[f"p_{n}"] = _r(cl["node_prob"][:, j], 6)
            if self.abstain is not None:
                t["abstain_node"] = list(cl["abstain"])
        return t


class CSVWriter(_TableWriter):
    """Nucleus table as CSV (UTF-8, header row, one row per nucleus), streamed chunk by chunk."""

    suffix = ".csv"
    slide_ok = True

    def _open(self):
        self._fh = open(self._tmp[0], "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)
        self._header = False

    def _write_header(self):
        if not self._header:
            self._fix_mpp()
            self._cols = self._columns()
            self._csv.writerow(self._cols)
            self._header = True

    def _write(self, chunk):
        self._write_header()
        if len(chunk) == 0:
            return
        t = self._table(chunk)
        cols = [t[c].tolist() if isinstance(t[c], np.ndarray) else t[c] for c in self._cols]
        self._csv.writerows(zip(*cols))

    def _close(self):
        self._write_header()
        self._fh.close()

    def _abort(self):
        with contextlib.suppress(Exception):
            self._fh.close()


class ParquetWriter(_TableWriter):
    """Nucleus table as Parquet, one row group per non-empty chunk (needs pyarrow)."""

    suffix = ".parquet"
    slide_ok = True

    def __init__(self, path_stem, **kwargs):
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise InputError("writing Parquet tables needs pyarrow: pip install 'stardist-hier[parquet]' "
                             "(or choose the csv table)") from None
        super().__init__(path_stem, **kwargs)
        self._pq = None

    def _schema(self):
        import pyarrow as pa

        types = {"id": pa.int64()}
        fields = []
        for c in self._columns():
            if c in types:
                t = types[c]
            elif c.startswith(("label_", "abstained_")) or c in ("leaf", "abstain_node"):
                t = pa.string()
            else:
                t = pa.float64()
            fields.append(pa.field(c, t))
        return pa.schema(fields)

    def _writer(self):
        import pyarrow.parquet as pq

        if self._pq is None:
            self._fix_mpp()
            self._pq = pq.ParquetWriter(str(self._tmp[0]), self._schema())
        return self._pq

    def _write(self, chunk):
        import pyarrow as pa

        w = self._writer()
        if len(chunk) == 0:
            return
        t = self._table(chunk)
        w.write_table(pa.Table.from_pydict({c: t[c] for c in w.schema.names}, schema=w.schema))

    def _close(self):
        import pyarrow as pa

        w = self._writer()
        if self.n_written == 0:
            w.write_table(pa.Table.from_pylist([], schema=w.schema))
        w.close()

    def _abort(self):
        if self._pq is not None:
            with contextlib.suppress(Exception):
                self._pq.close()


# ------------------------------------------------------------------------- GeoJSON
class GeoJSONWriter(Writer):
    """QuPath-compatible GeoJSON: a ``FeatureCollection`` of detection objects, streamed.

    Each nucleus is one ``Feature``::

        {"type": "Feature",
         "id": "<UUID>",
         "geometry": {"type": "Polygon", "coordinates": [[[x, y], ..., [x0, y0]]]},
         "properties": {
             "objectType": "detection",
             "classification": {"name": "<label>", "color": [r, g, b]},
             "name": "<abstention node>",                      # only with abstain
             "measurements": {"Nucleus id": 7, "Object probability": 0.93, ...}}}

    Notes
    -----
    This follows what QuPath (v0.4+) writes and reads (``PathObjectTypeAdapters`` in
    qupath-core; File > Object data > Import/Export as GeoJSON; docs: "Exporting
    annotations", GeoJSON section): coordinates are pixels of the full-resolution image
    with the origin at the top-left, **x (column) first**; ``objectType``
    ``"detection"`` makes detection objects; ``id`` is parsed as a UUID (here a
    deterministic UUID 5 of the file stem and nucleus id, so reruns give the same ids);
    ``classification`` holds ``name`` and ``color``; ``measurements`` is a flat object
    of numbers only (QuPath reads them as doubles, so no strings and no NaN).

    * The classification is the nucleus's label at the first label set (default: its
      most probable leaf), coloured from the tree (:func:`stardist_hier.plotting.label_colors`):
      ``outside label set`` (grey) when the leaves that no label of the set covers hold
      more probability than any label, and with ``abstain`` ``uncertain`` (dark grey)
      when the label's probability given a nucleus is below the threshold
      (:func:`stardist_hier.classify.label_set_decisions`).
    * Measurements: ``Nucleus id`` (the row ``id`` of the nucleus table),
      ``Object probability``, ``Area px^2`` (and ``Area µm^2`` with ``mpp``),
      ``Prob <set>: <label>`` for every label of every requested label set and
      ``Prob <set>: outside label set`` (the probability outside it),
      ``Prob node: <node>`` for background and every tree node, and with ``abstain``
      ``Abstained`` (1 when the decision stopped above the leaf) and ``Abstention depth``.
    * The abstention node is a string, so it cannot be a measurement; it goes in the
      feature's ``name``, which QuPath keeps for every object type (shown in the object
      list and, on request, in the viewer). The ``metadata`` map was not used because
      QuPath only restores it for objects that are a ``MetadataStore`` (not detections
      in the versions checked).
    * Polygons are checked with shapely; a self-intersecting one is repaired with
      ``make_valid`` and its largest polygonal part is kept (a degenerate one becomes a
      half-pixel square at the centroid), so every feature is a valid ``Polygon``.
      Exterior rings are counter-clockwise (RFC 7946).
    """

    suffix = ".geojson"
    slide_ok = True

    def _open(self):
        self._fh = open(self._tmp[0], "w", encoding="utf-8")
        self._fh.write('{"type": "FeatureCollection", "features": [')
        self._first = True
        self._stem = self.path_stem.name
        if self.tree is not None:
            from ..plotting import label_colors

            self._colors = {k: [int(v) for v in c]
                            for k, c in label_colors(self.label_sets[0], decisions=True).items()}

    def _write(self, chunk):
        if len(chunk) == 0:
            return
        polys = _valid_polygons(chunk, bounds=self.image_shape)
        cl = self._classes(chunk)
        area = chunk.area
        parts = []
        for i in range(len(chunk)):
            nid = int(chunk.ids[i])
            m = {"Nucleus id": nid, "Object probability": _num(chunk.prob[i]), "Area px^2": _num(area[i], 3)}
            if self.mpp is not None:
                m["Area µm^2"] = _num(area[i] * self.mpp ** 2, 4)
            props = {"objectType": "detection"}
            if cl:
                first = cl["sets"][0]
                names0 = first.names if self.abstain is None else first.abstained
                props["classification"] = {"name": names0[i], "color": self._colors[names0[i]]}
                if self.abstain is not None:
                    props["name"] = cl["abstain"][i]
                for ls, d in zip(self.label_sets, cl["sets"]):
                    for k, lab in enumerate(ls.labels, start=1):
                        m[f"Prob {ls.name}: {lab}"] = _num(d.label_prob[i, k])
                    m[f"Prob {ls.name}: {classify.OUTSIDE}"] = _num(d.outside[i])
                for j, n in enumerate(self.tree.node_names()):
                    m[f"Prob node: {n}"] = _num(cl["node_prob"][i, j])
                if self.abstain is not None:
                    node = cl["abstain"][i]
                    m["Abstained"] = float(node != cl["leaf"][i])
                    m["Abstention depth"] = float(self.tree.depth(node))
            props["measurements"] = m
            feature = {"type": "Feature", "id": str(uuid.uuid5(_UUID_NAMESPACE, f"{self._stem}/{nid}")),
                       "geometry": polys[i], "properties": props}
            parts.append(json.dumps(feature, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
        sep = "\n" if self._first else ",\n"
        self._fh.write(sep + ",\n".join(parts))
        self._first = False

    def _close(self):
        self._fh.write("\n]}\n")
        self._fh.close()

    def _abort(self):
        with contextlib.suppress(Exception):
            self._fh.close()


def _r(x, digits: int) -> np.ndarray:
    """``x`` as float64 rounded to ``digits`` decimals (no float32 noise in the text formats)."""
    return np.round(np.asarray(x, np.float64), digits)


def _num(v, digits: int = 6) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise InputError(f"non-finite value {v} in a GeoJSON measurement")
    return round(v, digits)


def _valid_polygons(chunk: Nuclei, bounds=None) -> list:
    """GeoJSON Polygon geometries (x, y; closed, CCW exterior), valid by shapely's rules.

    ``bounds``: level-0 ``(height, width)`` of the image or slide; polygons are clipped to
    it (a nucleus at the border does not reach past the image).
    """
    import shapely
    from shapely.geometry import box, mapping

    xy = _r(np.stack([chunk.coord[:, 1], chunk.coord[:, 0]], axis=-1).astype(np.float64), 2)  # (N, R, 2)
    geoms = shapely.polygons(xy)
    bad = ~shapely.is_valid(geoms)
    for i in np.flatnonzero(bad):
        geoms[i] = _repair(geoms[i], chunk.centroid[i])
    if bounds is not None:
        h, w = float(bounds[0]), float(bounds[1])
        frame = box(0.0, 0.0, w, h)
        outside = ~shapely.within(geoms, frame)
        for i in np.flatnonzero(outside):
            cy = min(max(float(chunk.centroid[i][0]), 0.5), h - 0.5)
            cx = min(max(float(chunk.centroid[i][1]), 0.5), w - 0.5)
            geoms[i] = _repair(shapely.set_precision(shapely.intersection(geoms[i], frame), 0.01), (cy, cx))
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    out = []
    for g in geoms:
        d = mapping(g)
        out.append({"type": "Polygon", "coordinates": [[list(p) for p in ring] for ring in d["coordinates"]]})
    return out


def _repair(geom, centroid):
    """Largest valid polygonal part of an invalid polygon, or a small square at ``centroid``."""
    import shapely
    from shapely.geometry import Polygon, box

    fixed = shapely.make_valid(geom)
    parts = [g for g in getattr(fixed, "geoms", [fixed]) if isinstance(g, Polygon) and not g.is_empty]
    for g in getattr(fixed, "geoms", []):  # MultiPolygons inside a GeometryCollection
        parts += [p for p in getattr(g, "geoms", []) if isinstance(p, Polygon) and not p.is_empty]
    parts = [p for p in parts if p.is_valid and p.area > 0]
    if parts:
        return max(parts, key=lambda p: p.area)
    y, x = float(centroid[0]), float(centroid[1])
    return box(x - 0.5, y - 0.5, x + 0.5, y + 0.5)


# ---------------------------------------------------------------------- label images
def _rasterise(coord, prob, shape) -> tuple:
    """Instance raster of polygons (row, col), higher probability on top; returns (labels, order)."""
    from skimage.draw import polygon as draw_polygon

    lab = np.zeros(shape, np.int32)
    order = np.argsort(np.asarray(prob), kind="stable")
    for i in order:
        rr, cc = draw_polygon(coord[i, 0], coord[i, 1], shape)
        lab[rr, cc] = i + 1
    return lab, order


class LabelsWriter(Writer):
    """Instance label TIFF and its class file, as ``stardist-hier evaluate --pred`` reads them (images only).

    ``<stem>.tif``: int32 label image of ``image_shape``; every nucleus polygon is
    rasterised with :func:`skimage.draw.polygon` (StarDist's ``polygons_to_label``
    rule) in order of increasing object probability, so the more probable nucleus
    wins where two overlap. A pixel's value is the nucleus id (the ``id`` of the table
    and GeoJSON), which is ``1..N`` for one image; ids that are not positive int32
    or not unique are renumbered ``1..N`` in arrival order.

    ``<stem>.json``: ``{"<id>": [p_background, p_leaf1, ...]}`` for every id present in
    the raster (with a class tree only; a segmentation-only model writes no class file).
    """

    suffix = ".tif"
    slide_ok = False
    extra_suffixes = (".json",)

    def __init__(self, path_stem, **kwargs):
        super().__init__(path_stem, **kwargs)
        if self.image_shape is None:
            raise InputError("the labels writer needs the image shape (image_shape=(height, width))")
        if self.image_shape[0] * self.image_shape[1] > 2 ** 31:
            raise InputError(f"the labels writer is for images, not slides: image shape {self.image_shape} "
                             "is too large for one label image")
        self._chunks = []

    def _write(self, chunk):
        if len(chunk):
            self._chunks.append(chunk)

    def _close(self):
        import tifffile

        nuclei = Nuclei.concatenate(self._chunks) if self._chunks else None
        lab = np.zeros(self.image_shape, np.int32)
        classes = {}
        if nuclei is not None and len(nuclei):
            ids = nuclei.ids
            if not (ids.min() >= 1 and ids.max() < 2 ** 31 and len(np.unique(ids)) == len(ids)):
                ids = np.arange(1, len(ids) + 1, dtype=np.int64)
            raster, _ = _rasterise(nuclei.coord, nuclei.prob, self.image_shape)
            lut = np.concatenate([[0], ids]).astype(np.int32)
            lab = lut[raster]
            if self.tree is not None:
                present = set(np.unique(raster)[1:].tolist())
                classes = {str(int(ids[i])): [round(float(v), 6) for v in nuclei.class_prob[i]]
                           for i in range(len(ids)) if i + 1 in present}
        with open(self._tmp[0], "wb") as fh:
            tifffile.imwrite(fh, lab, compression="zlib", metadata=None)
        if self.tree is not None:
            Path(self._tmp[1]).write_text(json.dumps(classes), encoding="utf-8")

    def _extras(self) -> tuple:
        # a segmentation-only model writes no class file
        return self.extra_suffixes if self.tree is not None else ()


# -------------------------------------------------------------------------- overlay
class OverlayWriter(Writer):
    """PNG of the image (or a slide thumbnail) with the nuclei coloured by class and a legend.

    Nuclei are rasterised as they arrive into a label image at the resolution of the
    picture, so a slide's stream of chunks never has to be kept in memory.

    * ``image`` given: drawn on ``image``. When ``image_shape`` (level 0) is given too
      and ``image`` is smaller, ``image`` is taken as a **thumbnail** and its downsample
      is ``image_shape[0] / image.shape[0]`` (rows) and ``image_shape[1] / image.shape[1]``
      (columns), e.g. a slide's ``get_thumbnail`` or a pyramid level.
    * no ``image``: drawn on a white canvas of ``image_shape`` downsampled so that the
      longer side is at most :attr:`max_side` pixels.
    * Nuclei are outlined when the picture is at (nearly) full resolution (downsample
      <= 2) and filled (alpha 0.6) on thumbnails, where outlines would be a pixel wide.
    * Colours: the label at the first label set (:func:`stardist_hier.plotting.label_colors`);
      a segmentation-only model draws every nucleus in yellow (legend "nucleus").
    """

    suffix = ".png"
    slide_ok = True
    #: Longest side of the canvas drawn when no image is given.
    max_side = 2048
    #: Overlays go to this sub-folder of the output folder, apart from the label images
    #: (``labels``), so that ``stardist-hier evaluate --pred OUT`` finds one image per stem,
    #: and never onto an input image of the same name.
    subfolder = "overlay"

    @classmethod
    def target(cls, path_stem) -> Path:
        path_stem = Path(path_stem)
        return output_path(path_stem.parent / cls.subfolder / path_stem.name, cls.suffix)

    def __init__(self, path_stem, **kwargs):
        super().__init__(path_stem, **kwargs)
        if self.image is not None:
            img = np.asarray(self.image)
            if img.ndim not in (2, 3):
                raise InputError(f"overlay: image must be 2-D grey or RGB, got shape {img.shape}")
            self._canvas = img
            full = self.image_shape or img.shape[:2]
            self._scale = (img.shape[0] / full[0], img.shape[1] / full[1])
        elif self.image_shape is not None:
            ds = max(1.0, max(self.image_shape) / self.max_side)
            shape = tuple(max(1, int(round(s / ds))) for s in self.image_shape)
            self._canvas = np.full(shape + (3,), 255, np.uint8)
            self._scale = (shape[0] / self.image_shape[0], shape[1] / self.image_shape[1])
        else:
            raise InputError("the overlay writer needs the image (image=) or the image shape (image_shape=)")
        self._labels = np.zeros(self._canvas.shape[:2], np.int32)
        self._instance_class = {}

    def _write(self, chunk):
        from skimage.draw import polygon as draw_polygon

        if len(chunk) == 0:
            return
        sy, sx = self._scale
        cl = self._classes(chunk) if self.tree is not None else {}
        if cl:
            first = cl["sets"][0]
            names = first.names if self.abstain is None else first.abstained
        else:
            names = [None] * len(chunk)
        order = np.argsort(chunk.prob, kind="stable")
        h, w = self._labels.shape
        for i in order:
            k = len(self._instance_class) + 1
            rr, cc = draw_polygon(chunk.coord[i, 0] * sy, chunk.coord[i, 1] * sx, (h, w))
            if len(rr) == 0:  # smaller than a pixel of the thumbnail: its centre pixel
                r, c = int(chunk.points[i, 0] * sy), int(chunk.points[i, 1] * sx)
                if not (0 <= r < h and 0 <= c < w):
                    continue
                rr, cc = np.array([r]), np.array([c])
            self._labels[rr, cc] = k
            self._instance_class[k] = names[i]

    def _close(self):
        from ..plotting import Panel, label_colors, overlay_figure

        ds = 1.0 / min(self._scale)
        colors = label_colors(self.label_sets[0], decisions=True) if self.tree is not None else {}
        h, w = self._labels.shape
        title = self.path_stem.name + (f" (downsample {ds:.3g})" if ds > 1.01 else "")
        panel = Panel(self._canvas, labels=self._labels,
                      classes=self._instance_class if self.tree is not None else None)
        fig = overlay_figure([panel], colors=colors, default_label="nucleus" if self.tree is None else None,
                             fill=ds > 2, alpha=0.6, title=title, panel_size=float(np.clip(w / 100, 4, 20)))
        fig.savefig(str(self._tmp[0]), format="png", dpi=100)


#: Output writers by name.
WRITERS = {
    "geojson": GeoJSONWriter,
    "csv": CSVWriter,
    "parquet": ParquetWriter,
    "labels": LabelsWriter,
    "overlay": OverlayWriter,
}
