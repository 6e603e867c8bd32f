"""Tidy rows from PQ reports, and their Markdown and CSV text: the package's one table writer."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping

from .aggregation import PQReport

__all__ = ["REPORT_COLUMNS", "format_csv", "format_markdown", "tidy_rows"]

#: Columns of :func:`tidy_rows`.
REPORT_COLUMNS = ("convention", "label_set", "depth", "kind", "label", "pq", "dq", "sq", "tp", "fp", "fn",
                  "sum_iou")

_MEAN_NAME = {"conic": "mPQ+", "pannuke": "mPQ"}


def tidy_rows(reports) -> list:
    """One dict per (report, row kind, label), with the keys of :data:`REPORT_COLUMNS`.

    Parameters
    ----------
    reports : PQReport, sequence of PQReport, or mapping whose values are PQReport
        E.g. the result of :func:`~stardist_hier.metrics.cut.evaluate_levels`.

    Returns
    -------
    list of dict
        ``kind`` is ``"binary"`` (class-agnostic PQ), ``"class"`` (one label),
        ``"mean"`` (mPQ / mPQ+ over the labels; only ``pq`` is set), ``"tissue mPQ"``
        or ``"tissue bPQ"`` (PanNuke's per-tissue values; only ``pq`` is set).
    """
    if isinstance(reports, PQReport):
        reports = [reports]
    elif isinstance(reports, Mapping):
        reports = list(reports.values())
    rows = []
    for r in reports:
        base = dict(convention=r.convention, label_set=r.label_set or "", depth="" if r.depth is None else r.depth)
        rows.append(dict(base, kind="binary", label="", **_scores(r.binary)))
        for label, res in r.per_class.items():
            rows.append(dict(base, kind="class", label=str(label), **_scores(res)))
        if r.per_class:
            rows.append(dict(base, kind="mean", label=_MEAN_NAME.get(r.convention, "mean PQ"), **_only_pq(r.mpq)))
        for tissue, v in r.per_group.items():
            rows.append(dict(base, kind="tissue mPQ", label=str(tissue), **_only_pq(v["mpq"])))
            rows.append(dict(base, kind="tissue bPQ", label=str(tissue), **_only_pq(v["bpq"])))
    return rows


def _scores(res) -> dict:
    return dict(pq=res.pq, dq=res.dq, sq=res.sq, tp=res.tp, fp=res.fp, fn=res.fn, sum_iou=res.sum_iou)


def _only_pq(value) -> dict:
    return dict(pq=value, dq="", sq="", tp="", fp="", fn="", sum_iou="")


def _cell(v, digits: int) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return "" if v is None else str(v)


def format_markdown(rows, *, columns=None, digits: int = 4) -> str:
    """Markdown table of ``rows`` (floats with ``digits`` decimals, NaN as ``nan``)."""
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else REPORT_COLUMNS))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, ""), digits).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def format_csv(rows, *, columns=None, lineterminator: str = "\n") -> str:
    """CSV text of ``rows`` (full float precision, NaN as ``nan``; lines end with ``lineterminator``)."""
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else REPORT_COLUMNS))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=lineterminator)
    w.writerow(columns)
    for row in rows:
        w.writerow([repr(float(v)) if isinstance(v, float) and not math.isnan(v) else _cell(v, 0)
                    for v in (row.get(c, "") for c in columns)])
    return buf.getvalue()
