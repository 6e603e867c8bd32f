"""Predict a list of inputs into an output folder, through the format writers.

The library side of ``stardist-hier predict``: every input, option and the output
folder are validated before anything is written; outputs are streamed chunk by
chunk to the writers of :mod:`stardist_hier.predict.writers`, which write under a
temporary name and rename when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, ParameterError, RunFolderError, did_you_mean, shorten
from ..io.lock import LOCK_INFO_NAME, LOCK_NAME, FolderLock
from .options import PredictOptions
from .pipeline import PixelSizeWarning, PredictStats, list_inputs, load_model, plan_prediction, predict_nuclei

__all__ = ["RunSummary", "predict_to_folder", "resolve_label_sets", "check_out_folder", "output_targets",
           "check_targets", "check_slide_formats", "output_record", "check_output_record", "OutputFolder", "RECORD_NAME"]

#: The record of the options an output folder's files were made with (see :class:`OutputFolder`).
RECORD_NAME = ".stardist-hier-predict.json"
_RESERVED = (RECORD_NAME, LOCK_NAME, LOCK_INFO_NAME)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 tile"``, ``"2 tiles"``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


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
        return (f"predicted {plural(s.n_nuclei, 'nucleus', 'nuclei')} on {plural(done, 'input')} "
                f"({plural(s.n_predicted, 'tile')}, {plural(s.n_skipped, 'blank tile')} skipped{extra}) in "
                f"{s.seconds:.1f} s; wrote {plural(len(self.outputs), 'file')} ({', '.join(self.formats)}) "
                f"to {self.out}")


def check_out_folder(out) -> Path:
    """``out`` must be a writable folder, or not exist yet and be creatable (no file on its path,
    the nearest existing folder writable)."""
    out = Path(out)
    p = out
    while True:
        try:
            exists = p.exists()
        except OSError as e:  # a name too long, a path through a file the OS refuses to look at
            raise RunFolderError(f"--out {shorten(str(out), 200)}: cannot be created ({e.strerror or e})") from None
        if exists:
            if not p.is_dir():
                what = "is a file, not a folder" if p == out else f"cannot be created: {p} is a file"
                raise RunFolderError(f"--out {out}: {what}")
            if not os.access(p, os.W_OK | os.X_OK):
                what = "is not writable" if p == out else f"cannot be created: {p} is not writable"
                raise RunFolderError(f"--out {out}: {what}")
            return out
        if p.parent == p:
            return out
        p = p.parent


def _output_stem(f: Path) -> str:
    """The name outputs of the input ``f`` are given (its stem); refused when it names no file."""
    stem = f.stem
    if stem in ("", ".", "..") or "/" in stem or "\\" in stem or stem in _RESERVED:
        raise InputError(f"{f}: its name gives no usable output name (stem {stem!r}); rename the input")
    return stem


def output_targets(out, f, formats, classes, *, extras: bool = False) -> list:
    """The files written for the input ``f`` in ``out``, one per format (``extras``: every file,
    e.g. the class file beside a label image)."""
    stem_path = Path(out) / _output_stem(Path(f))
    if extras:
        return [t for k in formats for t in classes[k].targets(stem_path)]
    return [classes[k].target(stem_path) for k in formats]


def check_targets(files, out, formats, classes) -> None:
    """Refuse outputs that would overwrite each other, replace an input, or land outside ``out``.

    Also refused: ``labels`` into the folder of an input (label images beside the images
    would be taken for inputs by the next run, and a ``.tif`` input replaced).

    Raises
    ------
    InputError
        Naming the input and the output.
    """
    out = Path(out)
    root = out.resolve()
    inputs = {Path(f).resolve(): f for f in files}
    folders = {Path(f).resolve().parent: f for f in files}
    if "labels" in formats and root in folders:
        raise InputError(f"--out {out} is the folder of the input {folders[root]}: label images written beside "
                         f"the inputs could replace them and would be read as inputs next time; choose another "
                         f"--out")
    seen = {}
    for f in files:
        for t in output_targets(out, f, formats, classes, extras=True):
            rt = t.resolve()
            if root != rt.parent and root not in rt.parents:
                raise InputError(f"{f}: its output {t} would be written outside --out {out}; rename the input")
            if rt in inputs or (t.exists() and any(_same_file(t, g) for g in inputs)):
                raise InputError(f"--out {out}: the output {t} of {f} would replace the input "
                                 f"{inputs.get(rt, t)}; choose another --out")
            if rt in seen and seen[rt] != f:
                raise InputError(f"{f}: its output {t.name} would overwrite that of {seen[rt]}; rename one")
            seen[rt] = f


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _model_fingerprint(model) -> str:
    """SHA-256 of a model's config, thresholds and weights (what its predictions depend on)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    h.update(json.dumps(vars(model.config), sort_keys=True, default=str).encode("utf-8"))
    th = getattr(model, "thresholds", None)
    th = th._asdict() if hasattr(th, "_asdict") else th
    h.update(json.dumps(th, sort_keys=True, default=str).encode("utf-8"))
    for w in model.keras_model.get_weights():
        w = np.ascontiguousarray(w)
        h.update(str((w.dtype.str, w.shape)).encode("utf-8"))
        h.update(w.tobytes())
    return h.hexdigest()


def output_record(model, sets, **options) -> dict:
    """What an output folder's files are made with: the model (a digest of its config, thresholds
    and weights), the label sets (names and a digest of their definitions) and the options
    that change the outputs' content (not the formats, which only add files).
    """
    import hashlib

    from ..version import __version__

    defs = json.dumps([ls.to_dict() for ls in sets], sort_keys=True, default=str)
    opts = {"model": _model_fingerprint(model), "label_sets": [ls.name for ls in sets],
            "label_set_definitions": hashlib.sha256(defs.encode("utf-8")).hexdigest()}
    opts.update(options)
    opts = json.loads(json.dumps(opts, default=str))  # tuples -> lists, as read back
    folder = getattr(model, "logdir", None) if getattr(model, "basedir", None) is not None else None
    return {"made_by": f"stardist-hier {__version__}", "model_folder": None if folder is None else str(folder),
            "options": opts}


def _record_difference(old: dict, new: dict) -> list:
    a, b = old.get("options") or {}, new.get("options") or {}
    out = []
    for k in sorted(set(a) | set(b), key=lambda k: (k != "model", k)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            if k == "model":
                out.append(f"model: another model or weights ({old.get('model_folder') or 'in memory'} -> "
                           f"{new.get('model_folder') or 'in memory'})")
            elif k == "label_set_definitions":
                if a.get("label_sets") == b.get("label_sets"):
                    out.append("label sets: same names, other definitions (taxonomy)")
            else:
                out.append(f"{k}: {shorten(a.get(k, '<absent>'), 40)} -> {shorten(b.get(k, '<absent>'), 40)}")
    return out


def check_output_record(out, record: dict) -> None:
    """Refuse an output folder whose files were made with other options (read only).

    Raises
    ------
    RunFolderError
        Naming the folder and every option that differs (old -> new).
    """
    out = Path(out)
    f = out / RECORD_NAME
    if not f.is_file():
        return
    try:
        old = json.loads(f.read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise RunFolderError(f"output folder {out}: its record {f} cannot be read ({type(e).__name__}); "
                             f"choose another --out") from None
    diff = _record_difference(old, record)
    if diff:
        raise RunFolderError(f"output folder {out} holds outputs made with other options ({'; '.join(diff)}); "
                             f"they are left untouched: choose another --out")


class OutputFolder:
    """The guards of a prediction output folder: one ``predict`` at a time, and no mixing of options.

    Like an experiment's run folder (:mod:`stardist_hier.training.experiment.runfolder`):
    while predictions are written the folder is locked (``OUT/.lock``, refused at once
    naming the holder's PID, host and start time), and ``OUT/.stardist-hier-predict.json``
    records the options the outputs are made with (:func:`output_record`). A later run
    into the folder with other options, with or without ``--resume``, is refused naming
    every option that differs (:func:`check_output_record`).

    Parameters
    ----------
    out : path
    record : dict
        From :func:`output_record`.
    """

    def __init__(self, out, record: dict):
        self.out = Path(out)
        self.record = record
        self._lock = FolderLock(self.out, what="output folder", user="another stardist-hier predict")

    def check(self) -> None:
        """Read-only checks before anything is written: not locked, same options."""
        self._lock.probe()
        check_output_record(self.out, self.record)

    def __enter__(self):
        from ..io import atomic_write_text

        self._lock.acquire()  # creates OUT
        try:
            check_output_record(self.out, self.record)  # again, under the lock
            if not (self.out / RECORD_NAME).is_file():
                atomic_write_text(self.out / RECORD_NAME, json.dumps(self.record, indent=2) + "\n")
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc):
        self._lock.release()


def resolve_label_sets(model, names, *, taxonomy=None) -> list:
    """The :class:`~stardist_hier.tree.LabelSet` objects named by ``names`` (default: the tree's leaves).

    ``"leaves"`` and ``"root"`` name the identity cut and the root; other names come
    from ``taxonomy`` (a path, a :class:`~stardist_hier.tree.Taxonomy`, or the default).

    Raises
    ------
    ParameterError
        Naming ``label_sets``: unknown name, or a set on another tree than the model's.
    """
    from ..tree import LabelSet, Taxonomy, default_taxonomy

    tree = model.tree if model.is_multiclass else None
    if tree is None:
        if names:
            raise ParameterError("label_sets", f" {names[0]}: the model predicts no classes (segmentation only)")
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
            raise ParameterError("label_sets", f" {name}: unknown label set{did_you_mean(name, tax.names())}; "
                                               f"known: {', '.join(dict.fromkeys([*tax.names(), 'leaves', 'root']))}")
        ls = tax[name]
        if ls.tree != tree:
            raise ParameterError("label_sets", f" {name}: not on the model's class tree (the taxonomy's tree differs)")
        out.append(ls)
    return out


def _writer_classes(formats, writers):
    if writers is None:
        from .writers import WRITERS as writers
    formats = list(dict.fromkeys(formats or []))
    if not formats:
        raise ParameterError("formats", ": give at least one output format")
    for f in formats:
        if f not in writers:
            raise ParameterError("formats", f" {f}: unknown format{did_you_mean(f, writers)}; known: {', '.join(writers)}")
    return formats, {f: writers[f] for f in formats}


def check_slide_formats(f, formats, classes) -> None:
    """Refuse, for the slide ``f``, a format that needs the whole image in memory (``labels``).

    Raises
    ------
    ParameterError
        Naming ``formats``, the format and the slide.
    """
    for k in formats:
        if not getattr(classes[k], "slide_ok", True):
            raise ParameterError("formats", f" {k}: not available for the slide {f} "
                                            f"(it needs the whole image in memory); use it for images only")


def _plan_saying_once(model, f, options, said: set):
    """:func:`plan_prediction`, its pixel-size warning said once per run (not once per input)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PixelSizeWarning)
        plan = plan_prediction(model, f, options=options)
    for w in caught:
        if issubclass(w.category, PixelSizeWarning):
            if str(w.message) in said:
                continue
            said.add(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return plan


def predict_to_folder(inputs, *, model, out, options: PredictOptions | None = None, resume: bool = False,
                      progress: bool = False, writers=None, guard: bool = True, **keywords) -> RunSummary:
    """Predict every input and write ``out/<stem><suffix>`` for every format (overlays in ``out/overlay/``).

    Outputs never replace an input and never land outside ``out``; while they are
    written ``out`` is locked, and the options they are made with are recorded in it
    (:class:`OutputFolder`): a later run into ``out`` with other options is refused.

    Parameters
    ----------
    inputs : sequence of path
        Images, slides and folders of them.
    model : path or StarDist2DHier
        A model folder or a loaded model.
    out : path
        Output folder (created when everything is valid).
    options : PredictOptions, optional
        What to predict and write (:class:`~stardist_hier.predict.options.PredictOptions`):
        ``formats`` (names in ``writers``), ``label_sets`` (see :func:`resolve_label_sets`),
        ``taxonomy``, ``abstain``, the planning options of
        :func:`~stardist_hier.predict.pipeline.plan_prediction` and the pipeline's
        ``read_ahead`` and ``nms_threads``. Default: built from ``keywords``.
    **keywords
        Fields of :class:`~stardist_hier.predict.options.PredictOptions` as keywords
        (``formats=["csv"], abstain=0.6``), instead of ``options`` or replacing its fields;
        either way one validated object.
    resume : bool
        Skip inputs whose outputs all exist.
    progress : bool
        Progress: a bar over inputs and one over each input's tiles on a terminal, plain
        lines (at most one every 30 s, and one when done) otherwise.
    writers : dict, optional
        ``{format: writer class}``; default the package's writers.
    guard : bool
        Lock ``out`` and record the options (default). ``False``: the caller does (the
        Dask client of :func:`stardist_hier.predict.distributed.predict_distributed`).

    Raises
    ------
    InputError, ModelFolderError, RunFolderError
        Before anything is written, naming the file or option (an option's
        :class:`~stardist_hier.errors.ParameterError` names its parameter).
    """
    from ..console import progress as progress_bar
    from ..slides import thumbnail

    options = PredictOptions.of(options, **keywords)
    formats, classes = _writer_classes(options.formats, writers)
    out = check_out_folder(out)
    files = list_inputs(inputs)
    check_targets(files, out, formats, classes)
    if not hasattr(model, "predict_instances"):
        model = load_model(model)
    sets = resolve_label_sets(model, options.label_sets, taxonomy=options.taxonomy)
    options.check_model(model)
    folder = None
    if guard:
        folder = OutputFolder(out, output_record(model, sets, **options.recorded()))
        folder.check()

    def targets(f):  # as the writers name them
        return output_targets(out, f, formats, classes)

    pending = [f for f in files if not (resume and all(t.is_file() for t in targets(f)))]
    # validate every pending input before writing anything (plans are re-made when predicting,
    # so that images are not all held in memory at once)
    for f in pending:
        with warnings.catch_warnings():  # said once when predicting, not before a possible error
            warnings.simplefilter("ignore", PixelSizeWarning)
            plan = plan_prediction(model, f, options=options)
        try:
            if plan.is_slide:
                check_slide_formats(f, formats, classes)
        finally:
            plan.close()

    summary = RunSummary(out, formats, n_inputs=len(files), n_resumed=len(files) - len(pending))
    t0 = time.perf_counter()
    tree = model.tree if model.is_multiclass else None
    if not pending:
        return summary
    with contextlib.ExitStack() as guard_stack:
        if folder is not None:
            guard_stack.enter_context(folder)  # locks (and creates) OUT, records the options
        else:
            out.mkdir(parents=True, exist_ok=True)
        bar = guard_stack.enter_context(contextlib.closing(progress_bar(
            total=len(pending), verbose=int(bool(progress)) if len(pending) > 1 else 0, unit="input",
            desc="inputs")))
        said = set()
        for f in pending:
            plan = _plan_saying_once(model, f, options, said)
            try:
                with contextlib.ExitStack() as stack:
                    ws = []
                    for k in formats:
                        extra = {"image": thumbnail(plan.reader)[0]} if k == "overlay" else {}
                        ws.append(stack.enter_context(classes[k](out / _output_stem(f), label_sets=sets,
                                                                 abstain=options.abstain, tree=tree,
                                                                 mpp=plan.input_mpp,
                                                                 image_shape=plan.shape, **extra)))
                    for chunk in predict_nuclei(model, plan, progress=progress, stats=summary.stats,
                                                read_ahead=options.read_ahead, nms_threads=options.nms_threads):
                        for w in ws:
                            w.write(chunk)
            finally:
                plan.close()
            summary.outputs.extend(p for w in ws for p in w.paths)
            bar.update(1)
    summary.stats.seconds = time.perf_counter() - t0
    return summary
