"""``stardist-hier evaluate``: score a folder of predicted label images against ground truth.

Both folders hold label images (``.tif``/``.tiff``, ``.npy``, ``.png``) paired by file
stem, optionally with a class file ``<stem>.json`` beside each image:
``{"instance id": "label"}`` for the ground truth (labels of ``--label-set``; ``null``
or an ignore label marks an ignore region), and ``{"instance id": [leaf
probabilities]}`` or ``{"instance id": "label or tree node"}`` for the prediction.

Writes to ``--out``: ``summary.md`` and ``summary.csv`` (PQ per convention, per class,
mPQ), ``detection.csv`` (detection / per-type F1, AJI, AJI+), ``per_image.csv`` and
``pq_per_class.png``. Everything is computed before anything is written, and each
file is written under a temporary name and then renamed, so bad input leaves
``--out`` untouched. A thin layer over :func:`stardist_hier.metrics.folders.evaluate_folders`.
"""

from __future__ import annotations

from pathlib import Path

HELP = "Score predicted label images against ground truth: PQ in every convention, F1, AJI, per-class PQ."


def add_arguments(parser) -> None:
    from ..metrics import CONVENTIONS

    parser.add_argument("--pred", required=True, type=Path, metavar="DIR", help="folder of predicted label images")
    parser.add_argument("--gt", required=True, type=Path, metavar="DIR", help="folder of ground-truth label images")
    from ._args import out_folder

    parser.add_argument("--out", required=True, type=out_folder, metavar="DIR", help="folder for the reports")
    parser.add_argument("--convention", nargs="+", default=["all"], choices=CONVENTIONS + ("all",),
                        help="PQ conventions to report (default: all)")
    parser.add_argument("--label-set", metavar="NAME",
                        help="label set of the ground-truth class files (e.g. pannuke, consep); needed for class PQ")
    parser.add_argument("--taxonomy", type=Path, metavar="FILE",
                        help="taxonomy file (JSON/YAML) instead of the built-in default")
    parser.add_argument("--levels", action="store_true",
                        help="also evaluate at every level of the class tree")
    from ._args import positive_float, unit_interval

    parser.add_argument("--threshold", type=unit_interval, default=0.5,
                        help="IoU threshold of the stardist convention, in (0, 1]")
    parser.add_argument("--radius", type=positive_float, default=12.0,
                        help="centroid distance for detection F1 (px, positive)")
    parser.add_argument("--tissues", type=Path, metavar="FILE",
                        help='JSON {"stem": "tissue"} for PanNuke\'s tissue averaging')
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="accepted by every command; evaluate runs no library with output of its own")


def run(args) -> int:
    """Bad input ends as a :class:`~stardist_hier.errors.UserError` (one line, exit code 2, by the CLI)."""
    from ..metrics.folders import evaluate_folders

    res = evaluate_folders(args.pred, args.gt, args.out, conventions=args.convention, label_set=args.label_set,
                           taxonomy=args.taxonomy, levels=args.levels, threshold=args.threshold,
                           radius=args.radius, tissues=args.tissues)
    print(res.summary)
    print(f"wrote {', '.join(sorted(res.files))} to {args.out}")
    return 0
