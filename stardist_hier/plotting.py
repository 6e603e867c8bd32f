"""The package's one plotting module: class colours, nucleus overlays and loss curves (no TensorFlow).

Every figure is a :class:`matplotlib.figure.Figure` drawn on its own Agg canvas, so
nothing here touches pyplot's global state or the session's backend, and importing
this module imports no matplotlib at all.

* :func:`label_colors` gives each label of a label set a distinct colour taken from
  the class tree (:meth:`stardist_hier.tree.ClassTree.color`).
* :func:`render_overlay` draws nucleus outlines (or fills) coloured by class into an
  RGB array, from a label image or from StarDist polygons; :func:`overlay_figure`
  lays out one or more such panels with a legend of the classes present, and
  :func:`save_figure` writes a figure atomically.
* :func:`loss_curves_figure` plots training and validation loss over episodes, with
  markers and a vertical line at every episode switch.
* :func:`validation_curve_figure` plots validation loss and PQ of named datasets after
  every epoch across episodes (``evaluation: curve``; the paper's Figure 3), also as
  means over seeds.
* :func:`pq_per_class_figure` plots PQ per class by convention (``stardist-hier evaluate``).
* :func:`paired_curve_figure` plots two rows' scores against a design variable (a
  target-size curve) beside their paired difference with its interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .colors import OUTSIDE_COLOR, UNCERTAIN_COLOR, distinct_label_colors, node_colors
from .colors import PALETTE as _DISTINCT

__all__ = ["Panel", "label_colors", "node_colors", "render_overlay", "overlay_figure", "save_figure",
           "loss_curves_figure", "validation_curve_figure", "pq_per_class_figure", "paired_curve_figure", "UNCLASSIFIED_COLOR"]

#: Colour of nuclei without a class (segmentation-only models, unknown labels).
UNCLASSIFIED_COLOR = (255, 255, 0)
# OUTSIDE_COLOR: nuclei labelled "outside label set"; UNCERTAIN_COLOR: nuclei labelled "uncertain"
# (defined, with the palette, in the colour module :mod:`stardist_hier.colors`)


# ------------------------------------------------------------------------- colours
def label_colors(label_set, *, decisions: bool = False) -> dict:
    """A distinct ``(r, g, b)`` colour (0-255) for every label of a label set.

    A label naming one tree node takes that node's colour; a union of nodes takes the
    colour of their lowest common ancestor. Labels whose colour is already taken by an
    earlier label get the next unused colour of a fixed palette, so every label of
    the set stays distinguishable.

    Parameters
    ----------
    label_set : LabelSet
    decisions : bool
        Also colour the two decisions that are not labels of the set,
        :data:`stardist_hier.classify.OUTSIDE` and :data:`~stardist_hier.classify.UNCERTAIN`
        (two greys, last).

    Returns
    -------
    dict of str to tuple of int
        In the order of ``label_set.labels``.
    """
    out = distinct_label_colors(label_set)
    if decisions:
        from .classify import OUTSIDE, UNCERTAIN

        out.setdefault(OUTSIDE, OUTSIDE_COLOR)
        out.setdefault(UNCERTAIN, UNCERTAIN_COLOR)
    return out


def _rgb01(c) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return c / 255.0 if c.max(initial=0) > 1 else c


# ------------------------------------------------------------------------ overlays
def _polygons_to_labels(polygons, shape, *, scale: float = 1.0, order=None) -> np.ndarray:
    """Rasterise ``(N, 2, n_rays)`` (row, column) polygons into an int32 label image (ids 1..N).

    Later polygons (in ``order``, default as given) overwrite earlier ones.
    """
    from skimage.draw import polygon as draw_polygon

    lab = np.zeros(tuple(shape[:2]), np.int32)
    polygons = np.asarray(polygons, np.float64)
    for i in (range(len(polygons)) if order is None else order):
        rr, cc = draw_polygon(polygons[i, 0] * scale, polygons[i, 1] * scale, lab.shape)
        lab[rr, cc] = i + 1
    return lab


def _as_rgb(image) -> np.ndarray:
    """Float RGB in [0, 1] from a grey, RGB or RGBA image of any numeric range."""
    x = np.asarray(image)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 3 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"overlay: expected a 2-D grey or RGB(A) image, got shape {x.shape}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    x = x[..., :3].astype(np.float64)
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        hi = 255.0 if np.asarray(image).dtype == np.uint8 or x.max(initial=0) <= 255 else float(x.max())
        return np.clip(x / hi, 0, 1)
    lo, hi = float(np.nanmin(x)) if x.size else 0.0, float(np.nanmax(x)) if x.size else 1.0
    if lo >= 0 and hi <= 1:
        return np.nan_to_num(x)
    return np.nan_to_num(np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1))


def render_overlay(image, *, labels=None, polygons=None, classes=None, colors: Mapping | None = None,
                   default_color=UNCLASSIFIED_COLOR, fill: bool = False, alpha: float = 0.35,
                   scale: float = 1.0, order=None) -> np.ndarray:
    """Draw nuclei coloured by class into an RGB image.

    Parameters
    ----------
    image : ndarray
        Grey or RGB(A) image (uint8, or floats in any range; rescaled to [0, 1]).
    labels : ndarray of int, optional
        Instance label image of the same height and width (0 background).
    polygons : ndarray, (N, 2, n_rays), optional
        StarDist polygons (row, column) instead of ``labels``; instance ``i`` is
        polygon ``i`` (id ``i + 1``).
    classes : mapping or sequence, optional
        Class of every instance: ``{instance id: name}`` with ``labels``, or a sequence
        of N names aligned with ``polygons``. ``None`` entries and names missing from
        ``colors`` are drawn in ``default_color``.
    colors : mapping of str to (r, g, b), optional
        Colour of each class name (0-255 integers or 0-1 floats).
    default_color : (r, g, b)
        Colour of unclassified nuclei.
    fill : bool
        Fill nuclei with ``alpha`` blending as well as drawing their outlines.
    alpha : float
        Opacity of the fill.
    scale : float
        Factor applied to ``polygons`` coordinates (``1 / downsample`` for a thumbnail).
    order : sequence of int, optional
        Drawing order of ``polygons`` (later ones on top), e.g. by increasing probability.

    Returns
    -------
    ndarray of float64, (H, W, 3) in [0, 1]
    """
    return _render(image, labels=labels, polygons=polygons, classes=classes, colors=colors,
                   default_color=default_color, fill=fill, alpha=alpha, scale=scale, order=order)[0]


def _render(image, *, labels, polygons, classes, colors, default_color, fill, alpha, scale, order):
    """:func:`render_overlay`, and whether any nucleus was drawn in ``default_color``."""
    from skimage.segmentation import find_boundaries

    rgb = _as_rgb(image).copy()
    if (labels is None) == (polygons is None):
        raise ValueError("render_overlay: pass exactly one of labels= and polygons=")
    if polygons is not None:
        lab = _polygons_to_labels(polygons, rgb.shape, scale=scale, order=order)
        if classes is not None:
            classes = {i + 1: c for i, c in enumerate(classes)}
    else:
        lab = np.asarray(labels)
        if lab.shape[:2] != rgb.shape[:2]:
            raise ValueError(f"render_overlay: labels have shape {lab.shape}, image {rgb.shape[:2]}")
        lab = np.clip(lab, 0, None).astype(np.int64)
    colors = dict(colors or {})
    ids = np.unique(lab)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return rgb, False
    # colour of every instance id, through a lookup table
    table = np.zeros((int(ids.max()) + 1, 3))
    table[:] = _rgb01(default_color)
    n_classified = 0
    if classes is not None:
        for k in ids:
            name = classes.get(int(k))
            if name is not None and name in colors:
                table[int(k)] = _rgb01(colors[name])
                n_classified += 1
    inside = lab > 0
    if fill:
        rgb[inside] = (1 - alpha) * rgb[inside] + alpha * table[lab[inside]]
    edge = find_boundaries(lab, mode="inner") & inside
    rgb[edge] = table[lab[edge]]
    return rgb, n_classified < len(ids)


@dataclass(frozen=True)
class Panel:
    """One image of an overlay figure.

    Attributes
    ----------
    image : ndarray
        The image (or thumbnail) to draw on.
    labels, polygons, classes, scale, order
        As in :func:`render_overlay`.
    title : str
        Panel title.
    """

    image: np.ndarray
    labels: np.ndarray | None = None
    polygons: np.ndarray | None = None
    classes: object = None
    title: str = ""
    scale: float = 1.0
    order: Sequence | None = None

    def present(self) -> set:
        """Class names of the instances drawn."""
        if self.classes is None:
            return set()
        vals = self.classes.values() if isinstance(self.classes, Mapping) else self.classes
        return {c for c in vals if c is not None}


def overlay_figure(panels: Sequence[Panel], *, colors: Mapping | None = None,
                   default_color=UNCLASSIFIED_COLOR, default_label: str | None = None,
                   fill: bool = False, alpha: float = 0.35, title: str | None = None,
                   panel_size: float = 4.0, legend: bool = True):
    """A figure of overlay panels side by side, with one legend of the classes present.

    Parameters
    ----------
    panels : sequence of Panel
    colors : mapping of str to (r, g, b), optional
        Colour of every class name; its order is the legend's order.
    default_color : (r, g, b)
        Colour of unclassified nuclei.
    default_label : str, optional
        Legend entry for ``default_color`` (e.g. ``"nucleus"``); omitted when ``None``.
    fill, alpha
        As in :func:`render_overlay`.
    title : str, optional
        Figure title.
    panel_size : float
        Width of one panel in inches.
    legend : bool
        Draw the legend (classes present in any panel, in the order of ``colors``).

    Returns
    -------
    matplotlib.figure.Figure
        Drawn on an Agg canvas; write it with :func:`save_figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colors = dict(colors or {})
    n = max(1, len(panels))
    aspect = max(p.image.shape[0] / max(p.image.shape[1], 1) for p in panels) if panels else 1.0
    present = set().union(*(p.present() for p in panels)) if panels else set()
    entries = [(name, colors[name]) for name in colors if name in present]
    rendered = [_render(p.image, labels=p.labels, polygons=p.polygons, classes=p.classes, colors=colors,
                        default_color=default_color, fill=fill, alpha=alpha, scale=p.scale, order=p.order)
                for p in panels]
    if default_label is not None and any(used for _, used in rendered):
        entries.append((default_label, default_color))
    entry_w = max((0.5 + 0.075 * len(str(name)) for name, _ in entries), default=1.0)  # inches at fontsize 8
    ncol = max(1, min(len(entries), int(panel_size * n // entry_w)))
    legend_h = 0.25 * -(-len(entries) // ncol) + 0.15 if (legend and entries) else 0.0
    title_h = 0.35 if title else 0.0
    fig = Figure(figsize=(panel_size * n, panel_size * aspect + 0.3 + legend_h + title_h), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, p, (rgb, _) in zip(axes, panels, rendered):
        ax.imshow(rgb, interpolation="nearest")
        if p.title:
            ax.set_title(p.title, fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    if legend and entries:
        fig.legend(handles=[Patch(facecolor=_rgb01(c), edgecolor="k", linewidth=0.5, label=str(name))
                            for name, c in entries],
                   loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    return fig


def save_figure(fig, path, *, dpi: int = 100) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary name, then rename)."""
    from .io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), format="png", dpi=dpi)
    return path


# --------------------------------------------------------------------- loss curves
def loss_curves_figure(runs, *, titles: Sequence[str] | None = None, title: str | None = None,
                       ylabel: str = "loss", panel_size: tuple = (5.0, 3.4), ncols: int | None = None):
    """Training and validation loss over episodes; one panel per run.

    Parameters
    ----------
    runs : sequence of sequence of mapping
        Per run, its episodes in order. An episode is a mapping with ``name``,
        ``loss`` (per epoch), optionally ``val_loss`` (per epoch, NaN/None allowed),
        ``first_epoch`` (0-based epoch at which it starts; default right after the
        previous episode), ``best_epoch`` (0-based, absolute) and ``best_val_loss``.
        A single run may be passed as a plain sequence of episodes.
    titles : sequence of str, optional
        Panel titles.
    title : str, optional
        Figure title.
    ncols : int, optional
        Panels per line (default: all on one line).

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Training loss is drawn with filled circles and a solid line, validation loss with
    open squares and a dashed line, in one colour per dataset name (the same across
    panels). A dotted vertical line marks every switch from one episode to the next,
    labelled with the new episode's name; an open star marks each episode's best epoch.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    runs = list(runs)
    if runs and isinstance(runs[0], Mapping):
        runs = [runs]
    n = max(1, len(runs))
    nc = n if ncols is None else max(1, min(int(ncols), n))
    nr = -(-n // nc)
    fig = Figure(figsize=(panel_size[0] * nc, panel_size[1] * nr + (0.3 if title else 0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nr, nc, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    names = list(dict.fromkeys(str(e.get("name", "")) for run in runs for e in run))
    cycle = [tuple(c / 255 for c in rgb) for rgb in _DISTINCT]
    color_of = {nm: cycle[i % len(cycle)] for i, nm in enumerate(names)}
    for j, (ax, run) in enumerate(zip(axes, runs)):
        start = 0
        switches = []
        for k, e in enumerate(run):
            loss = np.asarray([np.nan if v is None else v for v in e.get("loss") or []], np.float64)
            first = int(e.get("first_epoch", start)) if e.get("first_epoch") is not None else start
            if len(loss) == 0:
                continue
            xs = np.arange(first + 1, first + 1 + len(loss))
            c = color_of[str(e.get("name", ""))]
            ms = 3.5 if len(loss) <= 60 else 0
            ax.plot(xs, loss, "-o", color=c, ms=ms, lw=1.3)
            val = e.get("val_loss")
            if val is not None and len(val):
                val = np.asarray([np.nan if v is None else v for v in val], np.float64)
                ax.plot(xs[:len(val)], val[:len(xs)], "--s", color=c, ms=ms, mfc="white", lw=1.3)
            if e.get("best_epoch") is not None and e.get("best_val_loss") is not None:
                ax.plot([int(e["best_epoch"]) + 1], [float(e["best_val_loss"])], "*", color=c, ms=11,
                        mfc="none", mew=1.3)
            if k > 0:
                switches.append((first + 0.5, str(e.get("name", ""))))
            start = first + len(loss)
        for x, nm in switches:
            ax.axvline(x, color="0.3", ls=":", lw=1.2)
            ax.annotate(f"switch to {nm}", xy=(x, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(3, -3), textcoords="offset points", va="top", ha="left", fontsize=7,
                        color="0.25", rotation=90)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.25)
        if titles is not None and j < len(titles):
            ax.set_title(str(titles[j]), fontsize=8)
    handles = [Line2D([], [], color=color_of[nm], lw=3, label=nm) for nm in names]
    handles += [Line2D([], [], color="0.3", marker="o", ms=4, label="train"),
                Line2D([], [], color="0.3", ls="--", marker="s", ms=4, mfc="white", label="validation"),
                Line2D([], [], color="0.3", ls="", marker="*", ms=9, mfc="none", label="best epoch"),
                Line2D([], [], color="0.3", ls=":", label="episode switch")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------- validation curve
def _curve_number(v) -> float:
    try:
        return float(v) if v not in (None, "") else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def validation_curve_figure(curves, *, title: str | None = None, datasets: Sequence[str] | None = None,
                            panel_size: tuple = (5.0, 3.4)):
    """Validation loss and PQ against the global epoch, one line per dataset (paper's Figure 3).

    Parameters
    ----------
    curves : sequence of mapping, or mapping of str to sequence of runs
        One run's curve rows (mappings with ``episode``, ``global_epoch``, ``dataset``,
        ``val_loss``, ``pq`` and optionally ``mpq``; e.g. the rows of ``OUT/curve.csv``),
        or ``{label: [run, run, ...]}``: then every line is the mean over the label's
        runs (e.g. seeds), with a band of +- one standard deviation.
    title : str, optional
    datasets : sequence of str, optional
        Datasets to draw (default all).

    Returns
    -------
    matplotlib.figure.Figure
        Left panel validation loss, right panel binary PQ (solid) and mPQ+ (dashed,
        thin); a dotted vertical line at every episode switch (first run of each label).
    """
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if isinstance(curves, Mapping):
        groups = {str(k): [list(r) for r in v] for k, v in curves.items()}
    else:
        groups = {"": [list(curves)]}
    keys = []
    for lab, runs in groups.items():
        for d in dict.fromkeys(str(r["dataset"]) for run in runs for r in run):
            if datasets is None or d in datasets:
                keys.append((lab, d))
    cycle = [tuple(c / 255 for c in rgb) for rgb in _DISTINCT]
    color_of = {k: cycle[i % len(cycle)] for i, k in enumerate(keys)}
    fig = Figure(figsize=(panel_size[0] * 2, panel_size[1] + (0.3 if title else 0)), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_pq = fig.subplots(1, 2)
    for lab, d in keys:
        runs = groups[lab]
        c = color_of[(lab, d)]
        for ax, col, style in ((ax_loss, "val_loss", "-o"), (ax_pq, "pq", "-o"), (ax_pq, "mpq", "--")):
            per_run = [{int(r["global_epoch"]): _curve_number(r.get(col)) for r in run if str(r["dataset"]) == d}
                       for run in runs]
            xs = sorted(set().union(*per_run)) if per_run else []
            if not xs:
                continue
            vals = np.array([[pr.get(x, np.nan) for x in xs] for pr in per_run], np.float64)
            if np.isnan(vals).all():
                continue
            with warnings.catch_warnings():  # an epoch without a value in any run: NaN, no warning
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, sd = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
            ms = 3.5 if len(xs) <= 60 and style != "--" else 0
            ax.plot(xs, mean, style, color=c, ms=ms, lw=1.3 if style != "--" else 0.9)
            if len(runs) > 1 and style != "--":
                ax.fill_between(xs, mean - sd, mean + sd, color=c, alpha=0.15, lw=0)
    for lab, runs in groups.items():
        if not runs or not runs[0]:
            continue
        seq = sorted(((int(r["global_epoch"]), str(r.get("episode", ""))) for r in runs[0]))
        prev = None
        for g, ep in seq:
            if prev is not None and ep != prev:
                for ax in (ax_loss, ax_pq):
                    ax.axvline(g - 0.5, color="0.3", ls=":", lw=1.2)
                ax_loss.annotate(f"{lab + ': ' if lab else ''}switch to {ep}", xy=(g - 0.5, 1.0),
                                 xycoords=("data", "axes fraction"), xytext=(3, -3), textcoords="offset points",
                                 va="top", ha="left", fontsize=7, color="0.25", rotation=90)
            prev = ep
    for ax, yl in ((ax_loss, "validation loss"), (ax_pq, "PQ (validation)")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (over all episodes)")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.25)
    ax_pq.set_ylim(-0.02, 1.02)
    handles = [Line2D([], [], color=color_of[k], lw=3, label=(f"{k[0]}: {k[1]}" if k[0] else k[1])) for k in keys]
    handles += [Line2D([], [], color="0.3", marker="o", ms=4, label="PQ"),
                Line2D([], [], color="0.3", ls="--", lw=0.9, label="mPQ+"),
                Line2D([], [], color="0.3", ls=":", label="episode switch")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ------------------------------------------------------------------- PQ per class
def pq_per_class_figure(reports, class_reports):
    """Bar plot of per-class PQ by convention; binary PQ by convention when ``class_reports`` is empty.

    ``reports``: binary :class:`~stardist_hier.metrics.PQReport` objects; ``class_reports``: reports
    at one label set (:func:`~stardist_hier.metrics.evaluate_cut`), all over the same labels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if class_reports:
        labels = list(class_reports[0].per_class)
        series = [(r.convention, [r.per_class[lab].pq for lab in labels]) for r in class_reports]
        title = f"PQ per class ({class_reports[0].label_set})"
    else:
        labels = ["binary PQ"]
        series = [(r.convention, [r.pq]) for r in reports]
        title = "binary PQ"
    fig = Figure(figsize=(max(4.0, 1.2 * len(labels) + 2), 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for k, (name, values) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, np.nan_to_num(values), width, label=name)
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel("PQ")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


# ------------------------------------------------------------------ paired curves
def paired_curve_figure(x, a, b, *, labels: Sequence[str] = ("a", "b"), xlabel: str = "", ylabel: str = "",
                        level: float = 0.95, title: str | None = None):
    """Two rows' scores against a design variable, and their paired difference.

    Parameters
    ----------
    x : sequence of float
        The design variable of every point (for example the number of target tiles).
    a, b : sequence of array_like
        Per point, the per-seed scores of the two rows, paired by position (seed).
    labels : (str, str)
        Names of ``a`` and ``b``.
    level : float
        Level of the paired *t* interval drawn around the mean difference.

    Returns
    -------
    matplotlib.figure.Figure
        Left: mean ± sd over seeds of ``a`` and ``b`` (every seed as a faint dot).
        Right: the mean of ``a - b`` with its paired *t* interval
        (:func:`stardist_hier.metrics.paired.t_interval`) and a line at 0.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .metrics.paired import t_interval

    x = [float(v) for v in x]
    a = [np.asarray(v, np.float64) for v in a]
    b = [np.asarray(v, np.float64) for v in b]
    if not (len(x) == len(a) == len(b)) or any(u.shape != v.shape for u, v in zip(a, b)):
        raise ValueError("x, a and b must have one entry per point, and a and b the same seeds at each point")
    fig = Figure(figsize=(9.0, 3.4 + (0.3 if title else 0)), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    cycle = [tuple(c / 255 for c in rgb) for rgb in _DISTINCT]
    for k, (vals, name) in enumerate(((a, labels[0]), (b, labels[1]))):
        c = cycle[k % len(cycle)]
        for xi, v in zip(x, vals):
            left.plot(np.full(len(v), xi) + (k - 0.5) * 0.6, v, ".", color=c, alpha=0.35, ms=4)
        m = [float(v.mean()) for v in vals]
        sd = [float(v.std(ddof=1)) if len(v) > 1 else 0.0 for v in vals]
        left.errorbar(x, m, yerr=sd, fmt="-o", color=c, capsize=3, lw=1.4, label=name)
    left.set_xlabel(xlabel)
    left.set_ylabel(ylabel)
    left.legend(fontsize=7, frameon=False)
    left.grid(alpha=0.25)
    d = [u - v for u, v in zip(a, b)]
    mean = [float(v.mean()) for v in d]
    ci = [t_interval(v, level=level) if len(v) > 1 else (np.nan, np.nan) for v in d]
    lo = [m - c[0] for m, c in zip(mean, ci)]
    hi = [c[1] - m for m, c in zip(mean, ci)]
    right.axhline(0, color="0.3", lw=1, ls=":")
    right.errorbar(x, mean, yerr=[lo, hi], fmt="-o", color="0.15", capsize=3, lw=1.4)
    for xi, v in zip(x, d):
        right.plot(np.full(len(v), xi), v, ".", color="0.4", alpha=0.35, ms=4)
    right.set_xlabel(xlabel)
    right.set_ylabel(f"{labels[0]} - {labels[1]}")
    right.set_title(f"paired difference, mean and {int(round(level * 100))}% t interval", fontsize=9)
    right.grid(alpha=0.25)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
