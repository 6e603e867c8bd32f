"""Predict a list of inputs into an output folder, through the format writers.

The library side of ``stardist-hier predict``: every input, option and the output
folder are validated before anything is written; outputs are streamed chunk by
chunk to the writers of :mod:`stardist_hier.predict.writers`, which write under a
temporary name and rename when complete.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, RunFolderError, did_you_mean
from .writers import output_path
from .pipeline import (DEFAULT_BLOCK_SIZE, DEFAULT_MIN_OVERLAP, PredictStats, list_inputs, load_model,
                       plan_prediction, predict_nuclei)

__all__ = ["RunSummary", "predict_to_folder", "resolve_label_sets", "check_out_folder"]


@dataclass
class RunSummary:
    """What :func:`predict_to_folder` did.

    Attributes
    ----------
    out : Path
    formats : list of str
    outputs : list of Path
        Files written.
    n_inputs, n_resumed : int
        Inputs given; inputs skipped because their outputs were complete (``resume``).
    stats : PredictStats
    """

    out: Path
    formats: list
    outputs: list = field(default_factory=list)
    n_inputs: int = 0
    n_resumed: int = 0
    stats: PredictStats = field(default_factory=PredictStats)

    def line(self) -> str:
        """One-line summary for the command line."""
        s = self.stats
        done = self.n_inputs - self.n_resumed
        extra = f", {self.n_resumed} already complete" if self.n_resumed else ""
        return (f"predicted {s.n_nuclei} nuclei on {done} input(s) ({s.n_predicted} tiles, {s.n_skipped} blank "
                f"tiles skipped{extra}) in {s.seconds:.1f} s; wrote {len(self.outputs)} file(s) "
                f"({', '.join(self.formats)}) to {self.out}")


def check_out_folder(out) -> Path:
    """``out`` must be a folder or not exist yet (with no file on its path)."""
    out = Path(out)
    p = out
    while True:
        if p.exists():
            if not p.is_dir():
                what = "is a file, not a folder" if p == out else f"cannot be created: {p} is a file"
                raise RunFolderError(f"--out {out}: {what}")
            return out
        if p.parent == p:
            return out
        p = p.parent


def resolve_label_sets(model, names, *, taxonomy=None) -> list:
    """The :class:`~stardist_hier.tree.LabelSet` objects named by ``--label-set`` (default: the tree's leaves).

    ``"leaves"`` and ``"root"`` name the identity cut and the root; other names come
    from ``taxonomy`` (a path, a :class:`~stardist_hier.tree.Taxonomy`, or the default).

    Raises
    ------
    InputError
        Naming ``--label-set``: unknown name, or a set on another tree than the model's.
    """
    from ..tree import LabelSet, Taxonomy, default_taxonomy

    tree = model.tree if model._is_multiclass() else None
    if tree is None:
        if names:
            raise InputError(f"--label-set {names[0]}: the model predicts no classes (segmentation only)")
        return []
    if not names:
        return [LabelSet.leaves_of(tree)]
    tax = None
    out = []
    for name in names:
        if name == "leaves":
            out.append(LabelSet.leaves_of(tree))
            continue
        if name == "root":
            out.append(LabelSet.root(tree))
            continue
        if tax is None:
            if isinstance(taxonomy, Taxonomy):
                tax = taxonomy
            elif taxonomy is not None:
                tax = Taxonomy.from_file(taxonomy)
            else:
                tax = default_taxonomy()
        if name not in tax:
            raise InputError(f"--label-set {name}: unknown label set{did_you_mean(name, tax.names())}; "
                             f"known: {', '.join(dict.fromkeys([*tax.names(), 'leaves', 'root']))}")
        ls = tax[name]
        if ls.tree != tree:
            raise InputError(f"--label-set {name}: not on the model's class tree (the taxonomy's tree differs)")
        out.append(ls)
    return out


def _writer_classes(formats, writers):
    if writers is None:
        from .writers import WRITERS as writers
    formats = list(dict.fromkeys(formats or []))
    if not formats:
        raise InputError("--format: give at least one output format")
    for f in formats:
        if f not in writers:
            raise InputError(f"--format {f}: unknown format{did_you_mean(f, writers)}; known: {', '.join(writers)}")
    return formats, {f: writers[f] for f in formats}


def predict_to_folder(inputs, *, model, out, formats=("geojson",), label_sets=None, taxonomy=None,
                      abstain: float | None = None, mpp: float | None = None, input_mpp: float | None = None,
                      tissue_mask: bool = True, block_size=DEFAULT_BLOCK_SIZE, min_overlap=DEFAULT_MIN_OVERLAP,
                      context=None, n_tiles=None, prob_thresh=None, nms_thresh=None, backend=None,
                      resume: bool = False, progress: bool = False, writers=None) -> RunSummary:
    """Predict every input and write ``out/<stem><suffix>`` for every format.

    Parameters
    ----------
    inputs : sequence of path
        Images, slides and folders of them.
    model : path or StarDist2DHier
        A model folder or a loaded model.
    out : path
        Output folder (created when everything is valid).
    formats : sequence of str
        Names in ``writers`` (default the registry :data:`stardist_hier.predict.writers.WRITERS`).
    label_sets : sequence of str, optional
        Label-set names (see :func:`resolve_label_sets`).
    taxonomy : path or Taxonomy, optional
    abstain : float, optional
        Abstention threshold in (0, 1].
    mpp, input_mpp, tissue_mask, block_size, min_overlap, context, n_tiles, prob_thresh, nms_thresh, backend
        See :func:`stardist_hier.predict.pipeline.plan_prediction`.
    resume : bool
        Skip inputs whose outputs all exist.
    progress : bool
        Progress bar over tiles.
    writers : dict, optional
        ``{format: writer class}``; default the package's writers.

    Raises
    ------
    InputError, ModelFolderError, RunFolderError
        Before anything is written, naming the file or option.
    """
    from ..slides import thumbnail

    formats, classes = _writer_classes(formats, writers)
    out = check_out_folder(out)
    if abstain is not None and not (0 < abstain <= 1):
        raise InputError(f"--abstain {abstain}: must be in (0, 1]")
    files = list_inputs(inputs)
    if not hasattr(model, "predict_instances"):
        model = load_model(model)
    sets = resolve_label_sets(model, label_sets, taxonomy=taxonomy)
    if abstain is not None and not model._is_multiclass():
        raise InputError("--abstain: the model predicts no classes (segmentation only)")
    plan_kw = dict(mpp=mpp, input_mpp=input_mpp, block_size=block_size, min_overlap=min_overlap, context=context,
                   tissue_mask=tissue_mask, backend=backend, prob_thresh=prob_thresh, nms_thresh=nms_thresh,
                   n_tiles=n_tiles)

    def targets(f):  # as the writers name them
        return [output_path(out / f.stem, classes[k].suffix) for k in formats]

    seen = {}
    for f in files:
        for t in targets(f):
            if t in seen:
                raise InputError(f"{f}: its output {t.name} would overwrite that of {seen[t]}; rename one")
            seen[t] = f

    pending = [f for f in files if not (resume and all(t.is_file() for t in targets(f)))]
    # validate every pending input before writing anything (plans are re-made when predicting,
    # so that images are not all held in memory at once)
    for f in pending:
        plan = plan_prediction(model, f, **plan_kw)
        try:
            if plan.is_slide:
                for k in formats:
                    if not getattr(classes[k], "slide_ok", True):
                        raise InputError(f"--format {k}: not available for the slide {f} "
                                         f"(it needs the whole image in memory); use it for images only")
        finally:
            plan.close()

    summary = RunSummary(out, formats, n_inputs=len(files), n_resumed=len(files) - len(pending))
    t0 = time.perf_counter()
    tree = model.tree if model._is_multiclass() else None
    for f in pending:
        out.mkdir(parents=True, exist_ok=True)
        plan = plan_prediction(model, f, **plan_kw)
        try:
            with contextlib.ExitStack() as stack:
                ws = []
                for k in formats:
                    extra = {"image": thumbnail(plan.reader)[0]} if k == "overlay" else {}
                    ws.append(stack.enter_context(classes[k](out / f.stem, label_sets=sets, abstain=abstain,
                                                             tree=tree, mpp=plan.input_mpp, image_shape=plan.shape,
                                                             **extra)))
                for chunk in predict_nuclei(model, plan, progress=progress, stats=summary.stats):
                    for w in ws:
                        w.write(chunk)
        finally:
            plan.close()
        summary.outputs.extend(targets(f))
    summary.stats.seconds = time.perf_counter() - t0
    return summary
