"""Evaluation of nucleus instance segmentation and classification (no TensorFlow).

Panoptic quality in every published convention (:func:`pq_hovernet`,
:func:`pq_conic`, :func:`pq_pannuke`, :func:`pq_stardist`, or :func:`evaluate_pq`
by name), detection and per-type F1 (:func:`detection_f1`), AJI and AJI+, and
evaluation of fine-level predictions at a cut of the class tree or at every level
of it (:func:`evaluate_cut`, :func:`evaluate_levels`).
"""

from .aji import aji, aji_plus
from .conventions import CONVENTIONS, PQReport, evaluate_pq, pq_conic, pq_hovernet, pq_pannuke, pq_stardist
from .cut import collapse_predictions, drop_ignored, evaluate_cut, evaluate_levels, level_cuts
from .detection import DetectionResult, centroids, detection_f1
from .labels import check_label_image
from .overlap import Overlap, label_overlap
from .pq import PQResult, panoptic_quality
from .table import format_csv, format_markdown, tidy_rows

__all__ = [
    "CONVENTIONS",
    "DetectionResult",
    "Overlap",
    "PQReport",
    "PQResult",
    "aji",
    "aji_plus",
    "centroids",
    "check_label_image",
    "collapse_predictions",
    "detection_f1",
    "drop_ignored",
    "evaluate_cut",
    "evaluate_levels",
    "evaluate_pq",
    "format_csv",
    "format_markdown",
    "label_overlap",
    "level_cuts",
    "panoptic_quality",
    "pq_conic",
    "pq_hovernet",
    "pq_pannuke",
    "pq_stardist",
    "tidy_rows",
]
