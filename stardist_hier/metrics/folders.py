"""Evaluation of a folder of predicted label images against a folder of ground truth (no TensorFlow).

Both folders hold label images (``.tif``/``.tiff``, ``.npy``, ``.png``) paired by file
stem, optionally with a class file ``<stem>.json`` beside each image:
``{"instance id": "label"}`` for the ground truth (labels of the label set; ``null`` or an
ignore label marks an ignore region), and ``{"instance id": [leaf probabilities]}`` or
``{"instance id": "label or tree node"}`` for the prediction.

:func:`evaluate_folders` scores them (PQ in every convention, per class and mPQ, detection
and per-type F1, AJI, AJI+) into the files ``summary.md``, ``summary.csv``,
``detection.csv``, ``per_image.csv`` and ``pq_per_class.png``. Everything is computed
before anything is written, and the files are written under temporary names and then
renamed (:func:`stardist_hier.io.atomic_write_files`), so bad input leaves the output
folder untouched. Bad input is an :class:`~stardist_hier.errors.InputError` naming the file.
:func:`read_label_image` and :func:`read_class_file` read one label image and one class file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "FolderEvaluation", "evaluate_folders", "read_label_image", "read_class_file"]

IMAGE_SUFFIXES = (".tif", ".tiff", ".npy", ".png")
_CLASS_CONVENTIONS = ("conic", "pannuke", "stardist")  # HoVer-Net defines no class PQ


@dataclass
class FolderEvaluation:
    """What :func:`evaluate_folders` computed: ``files`` (``{file name: bytes}``) and ``summary`` (text)."""

    files: dict = field(default_factory=dict)
    summary: str = ""

    def write(self, out) -> None:
        """Write every file into ``out`` under a temporary name, then rename them all."""
        from ..io import atomic_write_files

        atomic_write_files(Path(out), self.files)


def evaluate_folders(pred, gt, out=None, *, conventions=("all",), label_set=None, taxonomy=None,
                     levels: bool = False, threshold: float = 0.5, radius: float = 12.0,
                     tissues=None) -> FolderEvaluation:
    """Score the label images in ``pred`` against those in ``gt``; write the reports to ``out`` if given.

    Parameters
    ----------
    conventions : names of :data:`stardist_hier.metrics.CONVENTIONS`, or ``"all"``.
    label_set : the label set of the ground-truth class files (needed when both folders hold class files).
    taxonomy : a taxonomy file (JSON/YAML) instead of the built-in default.
    levels : also evaluate at every level of the class tree.
    threshold : IoU threshold of the stardist convention.
    radius : centroid distance for detection F1 (pixels).
    tissues : a JSON file ``{"stem": "tissue"}`` for PanNuke's tissue averaging.

    Raises
    ------
    InputError
        Naming the file or folder: unreadable or unpaired images, class files that do not
        match their images, a missing label set; nothing is written then.
    """
    from ..errors import InputError, UserError

    opts = SimpleNamespace(pred=pred, gt=gt, convention=list(conventions), label_set=label_set,
                           taxonomy=taxonomy, levels=levels, threshold=threshold, radius=radius, tissues=tissues)
    try:
        files, summary = _evaluate(opts)
        res = FolderEvaluation(files, summary)
        if out is not None:
            res.write(out)
    except UserError:
        raise
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from None
    return res


# --------------------------------------------------------------------------- reading
def _list_images(folder: Path, role: str) -> dict:
    if not folder.is_dir():
        raise FileNotFoundError(f"{role} folder not found: {folder}")
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in out:
                raise ValueError(f"{role} folder {folder}: {out[p.stem].name} and {p.name} have the same stem")
            out[p.stem] = p
    if not out:
        raise ValueError(f"{role} folder {folder} holds no label images ({', '.join(IMAGE_SUFFIXES)})")
    return out


def read_label_image(path: Path) -> np.ndarray:
    """Read a 2-D label image from ``.tif``/``.tiff``, ``.npy`` or ``.png``; ``ValueError`` naming the file."""
    from ..datasets.images import read_image
    from ..errors import UserError
    from ..io import load_npy
    from .labels import check_label_image

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".tif", ".tiff", ".png"):
        raise ValueError(f"{path}: cannot read label image: unsupported file type {suffix!r}")
    try:
        arr = load_npy(path) if suffix == ".npy" else read_image(path)  # never unpickles
    except UserError as e:  # names the file already
        raise ValueError(str(e)) from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read label image: {e}") from None
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D label image, got shape {arr.shape}")
    return check_label_image(arr, name=str(path))


def read_class_file(path: Path) -> dict:
    """A class file ``{"instance id": ...}`` as ``{int id: value}``; ``ValueError`` naming the file."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read class file: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected an object {{\"instance id\": ...}}, got {type(d).__name__}")
    for k in d:
        if not str(k).isdigit():
            raise ValueError(f"{path}: key {k!r} is not an instance id")
    return {int(k): v for k, v in d.items()}


def _class_files(folder: Path, stems, role: str):
    paths = {s: folder / f"{s}.json" for s in stems}
    present = {s for s, p in paths.items() if p.is_file()}
    if not present:
        return None
    missing = [s for s in stems if s not in present]
    if missing:
        raise ValueError(f"{role} folder {folder} has class files for some images but not for {missing[0]} "
                         f"(expected {paths[missing[0]]})")
    return [read_class_file(paths[s]) for s in stems]


def _load(args):
    from .labels import check_same_shape

    gt_files = _list_images(Path(args.gt), "ground-truth")
    pred_files = _list_images(Path(args.pred), "prediction")
    for s, p in pred_files.items():
        if s not in gt_files:
            raise ValueError(f"prediction {p} has no ground-truth partner {s}.* in {args.gt}")
    for s, p in gt_files.items():
        if s not in pred_files:
            raise ValueError(f"ground truth {p} has no prediction partner {s}.* in {args.pred}")
    stems = sorted(gt_files)
    gt, pred = [], []
    for s in stems:
        g, p = read_label_image(gt_files[s]), read_label_image(pred_files[s])
        check_same_shape(g, p, names=(str(gt_files[s]), str(pred_files[s])))
        gt.append(g)
        pred.append(p)
    gcl = _class_files(Path(args.gt), stems, "ground-truth")
    pcl = _class_files(Path(args.pred), stems, "prediction")
    return stems, gt, pred, gcl, pcl


# ------------------------------------------------------------------------- computing
def _evaluate(args):
    """Every report, as ``{file name: bytes}``, and the summary text."""
    from .cut import drop_ignored
    from .table import format_csv, format_markdown

    stems, gt, pred, gcl, pcl = _load(args)
    notes = []
    label_set = None
    if gcl is not None and pcl is not None:
        label_set = _label_set(args)
    elif gcl is not None or pcl is not None:
        notes.append(f"class files only in the {'ground-truth' if gcl is not None else 'prediction'} folder: "
                     "binary metrics only")
    elif args.label_set or args.levels:
        notes.append("no class files: binary metrics only")
    tissues = _tissues(args.tissues, stems) if args.tissues else None

    # ground truth labelled None / ignore: drop it and the predictions mostly inside it
    gt_f, pred_f = gt, pred
    if label_set is not None:
        ignored = _check_class_files(args, stems, gt, pred, gcl, pcl, label_set)
        gt_f, pred_f = zip(*((g2, p2) for g2, p2, _ in map(drop_ignored, gt, pred, ignored)))

    reports, class_reports = _pq_reports(args, gt, pred, gt_f, pred_f, gcl, pcl, label_set, tissues)
    rows = _tidy(reports, class_reports)
    per_image = _per_image_rows(args, stems, gt_f, pred_f, reports, class_reports)
    det_rows = _detection_rows(args, gt_f, pred_f, gcl, pcl, label_set, per_image)

    md = ["# Evaluation", "", f"- ground truth: `{args.gt}`", f"- prediction: `{args.pred}`",
          f"- images: {len(stems)}", f"- label set: {label_set.name if label_set is not None else 'none (binary)'}"]
    md += [f"- note: {n}" for n in notes]
    for name, skipped in dict((r.label_set, r.skipped) for r in class_reports if r.skipped).items():
        md.append(f"- {name}: not scored (the ground-truth labels only partly cover them): {', '.join(skipped)}")
    md += ["", "## Panoptic quality", "",
           "`binary`: class-agnostic PQ; `class`: PQ of one label; `mean`: mPQ+ (conic) / mPQ (pannuke). "
           "hovernet: IoU > 0.5, per image then mean (images empty in both skipped); conic: IoU > 0.5, +1e-6, "
           "classes pooled over images; pannuke: IoU > 0.5, NaN without ground truth, nanmean; "
           f"stardist: IoU >= {args.threshold}, pooled.", "", format_markdown(rows),
           "## Detection and AJI", "", format_markdown(det_rows)]
    files = {
        "summary.md": "\n".join(md).encode(),
        "summary.csv": format_csv(rows).encode(),
        "detection.csv": format_csv(det_rows).encode(),
        "per_image.csv": format_csv(per_image).encode(),
        "pq_per_class.png": _png(reports, [r for r in class_reports if r.depth is None]),
    }
    summary = format_markdown([r for r in rows if r["kind"] in ("binary", "mean")],
                              columns=("convention", "label_set", "depth", "kind", "label", "pq", "dq", "sq"))
    return files, summary


def _pq_reports(args, gt, pred, gt_f, pred_f, gcl, pcl, label_set, tissues):
    """Binary reports (ignore regions dropped) and, with classes, reports at the label set (and levels)."""
    from .conventions import CONVENTIONS, evaluate_pq
    from .cut import evaluate_cut, evaluate_levels

    conventions = list(CONVENTIONS) if "all" in args.convention else list(dict.fromkeys(args.convention))
    reports, class_reports = [], []
    for c in conventions:
        opts = {"hovernet": dict(both_empty="skip"), "stardist": dict(threshold=args.threshold),
                "pannuke": dict(tissues=tissues)}.get(c, {})
        reports.append(evaluate_pq(list(gt_f), list(pred_f), convention=c, **opts))
        if label_set is not None and c in _CLASS_CONVENTIONS:
            kw = dict(label_set=label_set, convention=c, threshold=args.threshold if c == "stardist" else 0.5,
                      tissues=tissues if c == "pannuke" else None)
            class_reports.append(evaluate_cut(gt, pred, gcl, pcl, **kw))
            if args.levels:
                class_reports.extend(evaluate_levels(gt, pred, gcl, pcl, **kw).values())
    return reports, class_reports


def _tidy(reports, class_reports) -> list:
    from .table import tidy_rows

    # the binary rows of the class reports repeat those of the binary reports
    return tidy_rows(reports) + [r for r in tidy_rows(class_reports) if r["kind"] != "binary"]


def _per_image_rows(args, stems, gt_f, pred_f, reports, class_reports) -> list:
    """HoVer-Net's per-image PQ with its counts, AJI, AJI+, detection F1 (and PanNuke's mPQ)."""
    from .aji import aji, aji_plus
    from .conventions import evaluate_pq
    from .detection import detection_f1

    hov = next((r for r in reports if r.convention == "hovernet"), None) or \
        evaluate_pq(list(gt_f), list(pred_f), convention="hovernet", both_empty="skip")
    pann = next((r for r in class_reports if r.convention == "pannuke" and r.depth is None), None)
    rows = []
    for i, s in enumerate(stems):
        r, d = hov.per_image[i], detection_f1(gt_f[i], pred_f[i], radius=args.radius)
        row = dict(image=s, n_gt=r.n_gt, n_pred=r.n_pred, tp=r.tp, fp=r.fp, fn=r.fn, sum_iou=r.sum_iou,
                   pq=r.pq, dq=r.dq, sq=r.sq, aji=aji(gt_f[i], pred_f[i]), aji_plus=aji_plus(gt_f[i], pred_f[i]),
                   f1_detection=d.f1, detection_tp=d.tp, detection_fp=d.fp, detection_fn=d.fn)
        if pann is not None:
            row["mpq_pannuke"] = pann.per_image_mpq[i]
        rows.append(row)
    return rows


def _detection_rows(args, gt_f, pred_f, gcl, pcl, label_set, per_image) -> list:
    """Dataset detection F1 (pairs pooled over images), type F1 with classes, mean AJI / AJI+."""
    from .detection import detection_f1

    tp, fp, fn = (sum(r[f"detection_{k}"] for r in per_image) for k in ("tp", "fp", "fn"))
    rows = [dict(metric="detection F1", label="", value=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan),
            dict(metric="detection precision", label="", value=tp / (tp + fp) if tp + fp else math.nan),
            dict(metric="detection recall", label="", value=tp / (tp + fn) if tp + fn else math.nan)]
    if label_set is not None:
        typed = detection_f1(list(gt_f), list(pred_f), *_instance_labels(gcl, pcl, label_set),
                             radius=args.radius, classes=label_set.labels)
        rows.append(dict(metric="type accuracy", label="", value=typed.accuracy))
        rows += [dict(metric="type F1", label=c, value=v) for c, v in typed.per_type.items()]
    rows += [dict(metric="AJI (mean over images)", label="", value=_nanmean([r["aji"] for r in per_image])),
             dict(metric="AJI+ (mean over images)", label="", value=_nanmean([r["aji_plus"] for r in per_image]))]
    return rows


def _label_set(args):
    from ..tree import Taxonomy, default_taxonomy

    if not args.label_set:
        raise ValueError(f"class files found in {args.gt} and {args.pred}: pass --label-set NAME "
                         "(the label set of the ground-truth classes)")
    tax = Taxonomy.from_file(args.taxonomy) if args.taxonomy else default_taxonomy()
    return tax[args.label_set]


def _check_class_files(args, stems, gt, pred, gcl, pcl, label_set) -> list:
    """Validate every class file against its image, naming the file; return the ignored GT ids per image."""
    from .cut import collapse_predictions
    from .overlap import index_instances

    ignored = []
    for s, g, p, gc, pc in zip(stems, gt, pred, gcl, pcl):
        gpath, ppath = Path(args.gt) / f"{s}.json", Path(args.pred) / f"{s}.json"
        ig = []
        for k, v in gc.items():
            try:
                if v is None or label_set.resolve(v) is None:
                    ig.append(k)
            except ValueError as e:
                raise ValueError(f"{gpath}: instance {k}: {e}") from None
        ignored.append(ig)
        for path, img, c in ((gpath, g, gc), (ppath, p, pc)):
            ids = index_instances(img)[1]
            missing = [int(i) for i in ids if int(i) not in c]
            if missing:
                raise ValueError(f"{path}: no class for instance(s) {missing[:5]} of the label image")
        try:
            collapse_predictions(pc, label_set, too_coarse="none")
        except ValueError as e:
            raise ValueError(f"{ppath}: {e}") from None
    return ignored


def _tissues(path: Path, stems) -> list:
    d = _read_json_object(path)
    missing = [s for s in stems if s not in d]
    if missing:
        raise ValueError(f"{path}: no tissue for image {missing[0]}")
    return [str(d[s]) for s in stems]


def _read_json_object(path: Path) -> dict:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return d


def _instance_labels(gcl, pcl, label_set):
    """Per-image ``{id: label}`` for ground truth and (collapsed) predictions, for type F1."""
    from .cut import collapse_predictions

    g_out = [{k: (None if v is None else label_set.resolve(v)) for k, v in c.items()} for c in gcl]
    p_out = [collapse_predictions(c, label_set, too_coarse="none") for c in pcl]
    return g_out, p_out


def _nanmean(values) -> float:
    v = [x for x in values if not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else math.nan


def _png(reports, class_reports) -> bytes:
    """The per-class PQ bar plot (:func:`stardist_hier.plotting.pq_per_class_figure`) as PNG bytes."""
    import io

    from ..plotting import pq_per_class_figure

    buf = io.BytesIO()
    pq_per_class_figure(reports, class_reports).savefig(buf, format="png", dpi=100)
    return buf.getvalue()
