"""Harmonise datasets: every ground-truth nucleus at every label set of the tree, with provenance.

Each dataset labels its nuclei with its own label set, a cut of the class tree. For every
ground-truth nucleus of every dataset (through the registry readers, any split) this
module reads its label at any other label set of the same tree and says how it knows:

``given``
    The target is the dataset's own label set: the label as annotated.
``coarsened``
    Exact, no model: the given label's leaves lie inside one label of the target set
    (e.g. CoNSeP ``fibroblast`` -> ``consep4`` ``spindle``, PanNuke ``Neoplastic`` ->
    ``nucls2`` ``Tumor``).
``outside``
    Exact, no model: the given label's leaves lie outside every label of the target set,
    which therefore has no label for this nucleus (e.g. CoNSeP ``other`` at MoNuSAC's
    label set). The label is empty.
``inferred``
    The target set splits the given label (``nucls2`` ``Non-Tumor`` at ``nucls4``;
    MoNuSAC ``Epithelial`` at PanNuke's set). With a model, the label is the target label
    with the largest probability mass *on the given label's leaves*: for the instance's
    mean leaf probabilities ``p`` (see below), given leaves ``G`` and target labels
    ``T_k``, ``argmax_k sum_{j in G & T_k} p_j`` over the labels with ``G & T_k`` non-empty
    (:func:`restricted_argmax`); its probability is that mass divided by
    ``sum_{j in G} p_j``, i.e. the model's probability of the target label *given* the
    annotated one. The result is always compatible with the annotation.
``unknown``
    No label and no guess: the target splits the given label and no model was given;
    or the given label is the root (a segmentation-only nucleus: no annotation to
    restrict to), an ignore label, or missing (``Sample.classes`` value ``None``).

Mean leaf probabilities of a ground-truth instance (:func:`instance_leaf_probabilities`):
the image is normalised as the model was trained (its input normalisation, through
:func:`stardist_hier.training.data.normalize_image`),
rescaled to the model's pixel size when both the model (``hier_mpp``) and the sample
(``meta["mpp"]``) state one, and run through the network once; the class output (one
softmax over background and the leaves per grid pixel) is resized bilinearly to the
image's own pixels and averaged over the instance's pixels of the ground-truth label
image. The detections of the model play no part: every ground-truth nucleus gets
probabilities, matched or not.

Outputs (:func:`harmonise`):

* the table, one row per ground-truth nucleus (:func:`table_columns`): ``dataset``,
  ``split``, ``image``, ``id`` (instance id in the reader's label image), ``centroid_y``,
  ``centroid_x``, ``area_px``, ``given_label_set``, ``given_label`` and, per requested
  label set ``S``, ``label_S``, ``provenance_S`` and ``prob_S`` (1 for the exact
  provenances ``given``, ``coarsened`` and ``outside``; the conditional probability
  above for ``inferred``; empty for ``unknown``). CSV, and Parquet with pyarrow.
* optionally a harmonised copy of all datasets at one label set, in the layout of the
  :class:`~stardist_hier.datasets.folder.Folder` reader (:func:`read_harmonised` opens
  it): ``images/<stem>.png``, ``labels/<stem>.tif`` (int32 instances 1..n),
  ``labels/<stem>.json`` (``{"id": label}``), ``ignore/<stem>.png`` (the datasets'
  ignore regions), ``taxonomy.yaml`` and ``harmonised.json`` (sources, counts, how to read
  it). A nucleus without a label at that set (``unknown`` or ``outside``) becomes the
  explicit class ``"unknown"`` (``unknown="class"``; ``taxonomy.yaml`` maps it to
  ``ignore``, so the folder reader returns ``None``: a nucleus whose class is not scored)
  or is dropped (``unknown="drop"``: removed from the label image and class file; its
  pixels join the ignore mask, so that a visible nucleus is never taught as background).

Nothing is written before every input is checked (label sets on the taxonomy's tree, a
model with the same tree, datasets that share no image according to
:mod:`~stardist_hier.datasets.leakage`, an output folder that does not exist); the output
folder is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, ModelFolderError, UserError
from ..tree import ClassTree, LabelSet, Taxonomy

__all__ = ["PROVENANCES", "Translation", "Source", "HarmoniseResult", "translate", "restricted_argmax",
           "instance_measurements", "instance_leaf_probabilities", "harmonise_sample", "sample_name",
           "table_columns", "resolve_label_sets", "open_source", "check_overlaps", "check_model", "harmonise",
           "write_table", "read_harmonised", "UNKNOWN_CLASS", "UNKNOWN_OPTIONS", "TABLE_FORMATS"]

#: Provenance values of the table, in the order of the module docstring.
PROVENANCES = ("given", "coarsened", "outside", "inferred", "unknown")
#: The explicit class of nuclei without a label in a harmonised export (``unknown="class"``).
UNKNOWN_CLASS = "unknown"
#: What a harmonised export does with nuclei that have no label at its label set.
UNKNOWN_OPTIONS = ("class", "drop")
#: Table formats.
TABLE_FORMATS = ("csv", "parquet")
#: File stem of the table in the output folder, and the name of the harmonised copy's folder.
TABLE_STEM = "nuclei"
EXPORT_FOLDER = "harmonised"

_SPLIT = "split"  # a translation whose target splits the given label (needs a model)


# ------------------------------------------------------------------ translation on the tree
@dataclass(frozen=True)
class Translation:
    """How one given label reads at one target label set, before any model is asked.

    Attributes
    ----------
    kind : str
        ``"given"``, ``"coarsened"``, ``"outside"``, ``"unknown"`` (final) or ``"split"``
        (the target splits the given label: a model decides among ``candidates``).
    label : str or None
        The target label (``given`` and ``coarsened`` only).
    candidates : tuple of str
        Target labels that share a leaf with the given label (``split``), in target order.
    leaves : frozenset of str
        The given label's leaves.
    """

    kind: str
    label: str | None = None
    candidates: tuple = ()
    leaves: frozenset = frozenset()


def translate(label, source: LabelSet, target: LabelSet) -> Translation:
    """The model-free reading of ``label`` (of ``source``) at ``target``.

    Parameters
    ----------
    label : str, int or None
        A label name or code of ``source``; ``None`` (class missing or ignored) gives
        ``unknown``.
    source, target : LabelSet
        On the same tree.

    Returns
    -------
    Translation
        ``given`` when ``target`` is ``source`` (same name and labels); ``coarsened`` when
        the label's leaves lie inside one target label; ``outside`` when they share no leaf
        with any target label; ``unknown`` for an ignore label and for a label that covers
        every leaf (the root) unless the target coarsens it; else ``split``.

    Raises
    ------
    LabelSetError
        ``label`` is not a label of ``source``; the sets are on different trees.
    """
    if source.tree != target.tree:
        from ..tree import LabelSetError

        raise LabelSetError(f"label sets {source.name!r} and {target.name!r} are on different class trees")
    if label is None:
        return Translation("unknown")
    name = source.resolve(label)
    if name is None:  # an ignore label
        return Translation("unknown")
    leaves = source.leaf_set(name)
    if target.name == source.name and target == source:
        return Translation("given", name, leaves=leaves)
    inside = [t for t in target.labels if leaves <= target.leaf_set(t)]
    if inside:  # labels of a set share no leaf: at most one holds them all
        return Translation("coarsened", inside[0], leaves=leaves)
    candidates = tuple(t for t in target.labels if leaves & target.leaf_set(t))
    if not candidates:
        return Translation("outside", leaves=leaves)
    if leaves == frozenset(source.tree.leaves):  # the root: nothing to restrict to
        return Translation("unknown", candidates=candidates, leaves=leaves)
    return Translation(_SPLIT, candidates=candidates, leaves=leaves)


def restricted_argmax(leaf_prob, leaves, target: LabelSet):
    """The target label with the largest probability mass on ``leaves``, and its conditional probability.

    Parameters
    ----------
    leaf_prob : array_like, (n_classes + 1,) or (n, n_classes + 1)
        Leaf probabilities (column 0 background), e.g. an instance's mean softmax.
    leaves : iterable of str
        The given label's leaves (``LabelSet.leaf_set``).
    target : LabelSet

    Returns
    -------
    labels : str or None, or list of them
        ``argmax_k sum_{j in leaves & T_k} p_j`` over the target labels ``T_k`` that share a
        leaf with ``leaves`` (first in target order on a tie); ``None`` when no target label
        shares a leaf or the probability on ``leaves`` is zero.
    prob : float or ndarray
        That mass divided by ``sum_{j in leaves} p_j`` (NaN where the label is ``None``).
    """
    tree = target.tree
    p = np.asarray(leaf_prob, np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.shape[-1] != tree.n_classes + 1:
        raise ValueError(f"leaf_prob has {p.shape[-1]} channels, expected n_classes + 1 = {tree.n_classes + 1}")
    g = np.zeros(tree.n_classes + 1, np.float64)
    g[[tree.leaf_index(x) for x in leaves]] = 1.0
    member = target.membership_matrix()[1:].astype(np.float64)  # (labels, n_classes + 1)
    compatible = (member @ g) > 0
    mass = (p * g) @ member.T  # (n, labels): probability on given leaves & each target label
    total = p @ g
    labels, prob = [None] * len(p), np.full(len(p), np.nan)
    if compatible.any():
        k = np.argmax(np.where(compatible, mass, -np.inf), axis=1)
        ok = total > 0
        for i in np.flatnonzero(ok):
            labels[i] = target.labels[k[i]]
            prob[i] = mass[i, k[i]] / total[i]
    if single:
        return labels[0], float(prob[0])
    return labels, prob


# ------------------------------------------------------------------ per instance
def instance_measurements(labels) -> dict:
    """``{"id", "centroid_y", "centroid_x", "area_px"}`` arrays of every instance of a label image (id order)."""
    from skimage.measure import regionprops_table

    lab = np.asarray(labels)
    if lab.max(initial=0) <= 0:
        return {"id": np.zeros(0, np.int64), "centroid_y": np.zeros(0), "centroid_x": np.zeros(0),
                "area_px": np.zeros(0, np.int64)}
    t = regionprops_table(np.where(lab > 0, lab, 0).astype(np.int64), properties=("label", "centroid", "area"))
    return {"id": t["label"].astype(np.int64), "centroid_y": t["centroid-0"], "centroid_x": t["centroid-1"],
            "area_px": t["area"].astype(np.int64)}


def instance_leaf_probabilities(model, image, labels, *, mpp=None) -> np.ndarray:
    """Mean leaf probabilities of every ground-truth instance, from the model's per-pixel class output.

    Parameters
    ----------
    model : StarDist2DHier
    image : ndarray, (H, W, C)
        The image as read (normalised here like training images).
    labels : ndarray, (H, W) int
        Ground-truth instances.
    mpp : float, optional
        The image's pixel size; with the model's ``hier_mpp`` the image is rescaled to it.

    Returns
    -------
    ndarray, (n, n_classes + 1)
        Row ``i``: instance ``instance_measurements(labels)["id"][i]``; column 0 background.
    """
    from skimage.measure import regionprops_table
    from skimage.transform import rescale, resize

    from ..console import quiet_stardist
    from ..training.data import normalize_image

    lab = np.where(np.asarray(labels) > 0, labels, 0).astype(np.int64)
    C = model.config.n_classes + 1
    if lab.max(initial=0) == 0:
        return np.zeros((0, C), np.float32)
    # the model's own input normalisation where it states one (model or config), else the default
    norm = getattr(model, "normalization", None) or getattr(model.config, "normalization", None)
    x = normalize_image(image) if norm is None else normalize_image(image, normalization=norm)
    target_mpp = getattr(model.config, "hier_mpp", None)
    if mpp and target_mpp and not math.isclose(float(mpp), float(target_mpp), rel_tol=1e-3):
        s = float(mpp) / float(target_mpp)
        x = rescale(x, s, order=1, channel_axis=-1, anti_aliasing=s < 1, preserve_range=True).astype(np.float32)
    with quiet_stardist():
        out = model.predict(x)
    prob_class = np.asarray(out[2], np.float32)
    up = resize(prob_class, lab.shape + (C,), order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    t = regionprops_table(lab, intensity_image=up, properties=("label", "intensity_mean"))
    return np.stack([t[f"intensity_mean-{c}"] for c in range(C)], axis=1).astype(np.float32)


def sample_name(sample, index: int = 0) -> str:
    """``meta["name"]``, else ``synthetic-<seed>-<index>`` for generated tiles, else the position."""
    meta = sample.meta or {}
    if meta.get("name") is not None:
        return str(meta["name"])
    if meta.get("seed") is not None and meta.get("index") is not None:
        return f"{meta.get('source') or 'sample'}-{meta['seed']}-{meta['index']}"
    return str(index)


def table_columns(label_sets) -> list:
    """Column names of the table for these label sets (names or :class:`LabelSet` objects)."""
    cols = ["dataset", "split", "image", "id", "centroid_y", "centroid_x", "area_px", "given_label_set",
            "given_label"]
    for ls in label_sets:
        n = ls.name if isinstance(ls, LabelSet) else str(ls)
        cols += [f"label_{n}", f"provenance_{n}", f"prob_{n}"]
    return cols


def harmonise_sample(sample, label_sets, *, source: LabelSet, leaf_prob=None, dataset: str | None = None,
                     image: str | None = None, measurements: dict | None = None) -> list:
    """One table row (a dict, columns of :func:`table_columns`) per ground-truth nucleus of a sample.

    Parameters
    ----------
    sample : Sample
    label_sets : sequence of LabelSet
        Target label sets.
    source : LabelSet
        The sample's own label set (its ``classes`` are labels of it).
    leaf_prob : ndarray, (n, n_classes + 1), optional
        Mean leaf probabilities of the instances in id order (:func:`instance_leaf_probabilities`);
        without them a split label is ``unknown``.
    dataset : str, optional
        The ``dataset`` column (default ``sample.meta["dataset"]``).
    image : str, optional
        The ``image`` column (default :func:`sample_name`).
    measurements : dict, optional
        :func:`instance_measurements` of ``sample.labels`` (computed when absent).
    """
    m = measurements if measurements is not None else instance_measurements(sample.labels)
    meta = sample.meta or {}
    dataset = dataset if dataset is not None else str(meta.get("dataset", ""))
    image = image if image is not None else sample_name(sample)
    cache: dict = {}
    rows = []
    for i, iid in enumerate(m["id"].tolist()):
        given = sample.classes.get(int(iid))
        row = {"dataset": dataset, "split": meta.get("split"), "image": image, "id": int(iid),
               "centroid_y": float(m["centroid_y"][i]), "centroid_x": float(m["centroid_x"][i]),
               "area_px": int(m["area_px"][i]), "given_label_set": source.name,
               "given_label": None if given is None else source.resolve(given)}
        for ls in label_sets:
            key = (given, ls.name)
            if key not in cache:
                cache[key] = translate(given, source, ls)
            tr = cache[key]
            label, prov, prob = None, tr.kind, None
            if tr.kind in ("given", "coarsened"):
                label, prob = tr.label, 1.0
            elif tr.kind == "outside":
                prob = 1.0
            elif tr.kind == _SPLIT:
                prov = "unknown"
                if leaf_prob is not None:
                    lab, p = restricted_argmax(leaf_prob[i], tr.leaves, ls)
                    if lab is not None:
                        label, prov, prob = lab, "inferred", float(p)
            row[f"label_{ls.name}"], row[f"provenance_{ls.name}"], row[f"prob_{ls.name}"] = label, prov, prob
        rows.append(row)
    return rows


# ------------------------------------------------------------------ inputs
@dataclass
class Source:
    """One dataset to harmonise.

    Attributes
    ----------
    name : str
        The ``dataset`` column (a registry name, or any name for samples in memory).
    samples : sequence of Sample
        A registry reader (lazy) or a list.
    label_set : LabelSet
        The samples' own label set.
    info : dict, optional
        Lizard's ``info.csv`` (:func:`~stardist_hier.datasets.leakage.read_lizard_info`), for the overlap check.
    """

    name: str
    samples: Sequence
    label_set: LabelSet
    info: dict | None = None

    def keys(self) -> list:
        """``(dataset, image name)`` of every sample (without reading pixels for a reader)."""
        from .leakage import reader_keys

        if hasattr(self.samples, "names"):
            return reader_keys(self.samples)
        return [(str((s.meta or {}).get("dataset") or self.name), sample_name(s, i))
                for i, s in enumerate(self.samples)]


def _label_set(name_or_set, taxonomy: Taxonomy, *, what: str) -> LabelSet:
    if isinstance(name_or_set, LabelSet):
        if name_or_set.tree != taxonomy.tree:
            raise InputError(f"{what} {name_or_set.name!r} is not on the taxonomy's class tree")
        return name_or_set
    name = str(name_or_set)
    if name == "leaves" and "leaves" not in taxonomy:
        return LabelSet.leaves_of(taxonomy.tree)
    if name == "root" or name in taxonomy:
        return taxonomy[name]
    from ..errors import did_you_mean

    known = dict.fromkeys([*taxonomy.names(), "root", "leaves"])
    raise InputError(f"{what} {name!r} is not a label set on the class tree{did_you_mean(name, known)}; "
                     f"known: {', '.join(known)}")


def resolve_label_sets(names, *, taxonomy: Taxonomy) -> list:
    """:class:`LabelSet` objects for names (``"leaves"`` and ``"root"`` always exist) or sets; duplicates dropped.

    Raises
    ------
    InputError
        A name that is no label set of ``taxonomy``, or a set on another tree.
    """
    out = {}
    for n in names:
        ls = _label_set(n, taxonomy, what="label set")
        out.setdefault(ls.name, ls)
    return list(out.values())


def open_source(name: str, path, *, label_set: str | None = None, split=None, taxonomy: Taxonomy | None = None,
                **options) -> Source:
    """Open a registry dataset (:func:`~stardist_hier.datasets.registry.open_dataset`) as a :class:`Source`.

    Raises
    ------
    InputError
        Unknown dataset, label set or split, a missing folder or file (naming the dataset and path).
    """
    from ..tree import default_taxonomy
    from .registry import get_dataset

    tax = taxonomy if taxonomy is not None else default_taxonomy()
    where = f"dataset {name!r} at {path}"
    try:
        info = get_dataset(name)
        if info.any_label_set:
            options.setdefault("taxonomy", tax)
        reader = info.open(path, label_set=label_set, split=split, **options)
        ls = _label_set(reader.label_set, tax, what=f"{where}: label set")
    except UserError as e:
        if where in str(e):
            raise
        raise InputError(f"{where}: {e}") from None
    except KeyError as e:
        raise InputError(str(e.args[0] if e.args else e)) from None
    except (OSError, ValueError, TypeError, NotImplementedError) as e:
        raise InputError(f"{where}: {e}") from None
    return Source(name=reader.dataset or name, samples=reader, label_set=ls, info=getattr(reader, "info", None) or None)


def check_overlaps(sources, *, info=None) -> None:
    """Refuse datasets that share an image (:func:`~stardist_hier.datasets.leakage.find_leaks`, every pair).

    ``info`` (Lizard's ``info.csv``, a path or dict) adds the origins of Lizard and CoNIC
    images; a source's own ``info`` is used too.

    Raises
    ------
    InputError
        Naming the first shared image of each overlapping pair.
    """
    from .leakage import find_leaks, read_lizard_info

    merged = {}
    if info is not None:
        try:
            merged.update(info if isinstance(info, dict) else read_lizard_info(info))
        except (OSError, ValueError) as e:
            raise InputError(f"Lizard info.csv: {e}") from None
    for s in sources:
        merged.update(s.info or {})
    keys = [s.keys() for s in sources]
    problems = []
    for i in range(len(sources)):
        for j in range(i + 1, len(sources)):
            leaks = find_leaks(keys[i], keys[j], info=merged or None)
            if leaks:
                lk = leaks[0]
                problems.append(f"{sources[i].name} ({sources[i].label_set.name}) and {sources[j].name} "
                                f"({sources[j].label_set.name}) share {len(leaks)} image(s), e.g. {lk.train} and "
                                f"{lk.test} (origin {lk.origin})")
    if problems:
        raise InputError("datasets overlap: " + "; ".join(problems) + "; each nucleus must come from one dataset")


def _config_tree(folder: Path) -> ClassTree | None:
    """The class tree in a model folder's ``config.json`` (read as JSON: no TensorFlow)."""
    from ..tree import TreeError

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model {folder}: not a model folder")
    cfile = folder / "config.json"
    try:
        d = json.loads(cfile.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFolderError(f"model {folder}: no config.json") from None
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"{cfile}: cannot read ({e})") from None
    t = d.get("hier_tree") if isinstance(d, dict) else None
    if t is None:
        return None
    try:
        return ClassTree.from_dict(t)
    except TreeError as e:
        raise ModelFolderError(f"{cfile}: hier_tree: {e}") from None


def _tree_difference(a: ClassTree, b: ClassTree) -> str:
    la, lb = set(a.leaves), set(b.leaves)
    if la != lb:
        parts = []
        if la - lb:
            parts.append(f"leaves only in the model: {', '.join(sorted(la - lb)[:5])}")
        if lb - la:
            parts.append(f"leaves only in the taxonomy: {', '.join(sorted(lb - la)[:5])}")
        return "; ".join(parts)
    if a.leaves != b.leaves:
        return "the same leaves in another order"
    moved = [n for n in a.nodes if n not in b or a.parent(n) != b.parent(n)]
    return f"nodes placed differently: {', '.join(moved[:5])}" if moved else "different structure"


def check_model(model, taxonomy: Taxonomy):
    """Check that a model (folder or ``StarDist2DHier``) predicts the leaves of the taxonomy's tree.

    A folder is checked from its ``config.json`` (no TensorFlow). Returns the model as given.

    Raises
    ------
    ModelFolderError
        Not a model folder, no class tree (segmentation only), or a tree that differs.
    """
    if isinstance(model, (str, Path)):
        tree, what = _config_tree(Path(model)), f"model {model}"
        if tree is None:
            raise ModelFolderError(f"{what}: config.json has no class tree (hier_tree): harmonise needs a "
                                   f"StarDist2DHier model that predicts the taxonomy's leaves")
    else:
        tree, what = getattr(model, "tree", None), "model"
        if tree is None:
            raise ModelFolderError("model: segmentation only (no class tree)")
    if tree != taxonomy.tree:
        raise ModelFolderError(f"{what}: its class tree differs from the taxonomy's "
                               f"({_tree_difference(tree, taxonomy.tree)})")
    return model


# ------------------------------------------------------------------ the run
@dataclass
class HarmoniseResult:
    """What :func:`harmonise` did.

    Attributes
    ----------
    rows : list of dict
        The table (columns :attr:`columns`).
    columns : list of str
    label_sets : list of LabelSet
    counts : dict
        ``{label set: {provenance: number of nuclei}}``.
    files : list of Path
        Written files and folders (empty without ``out``).
    out : Path or None
    export : str or None
        Label set of the harmonised copy.
    """

    rows: list
    columns: list
    label_sets: list
    counts: dict
    files: list = field(default_factory=list)
    out: Path | None = None
    export: str | None = None

    def summary(self) -> str:
        """A Markdown table: nuclei per label set and provenance."""
        lines = ["| label set | " + " | ".join(PROVENANCES) + " |", "|---" * (len(PROVENANCES) + 1) + "|"]
        for ls in self.label_sets:
            c = self.counts.get(ls.name, {})
            lines.append(f"| {ls.name} | " + " | ".join(str(c.get(p, 0)) for p in PROVENANCES) + " |")
        return "\n".join(lines)


def _check_out(out) -> Path:
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise InputError(f"output folder {out} exists; harmonise writes a new folder (choose another --out)")
    p = out.parent
    while not p.exists() and p != p.parent:
        p = p.parent
    if p.exists() and not p.is_dir():
        raise InputError(f"output folder {out} cannot be created: {p} is a file")
    return out


def _check_formats(formats) -> tuple:
    formats = tuple(dict.fromkeys(formats or ()))
    for f in formats:
        if f not in TABLE_FORMATS:
            raise InputError(f"table format {f!r}: use one of {', '.join(TABLE_FORMATS)}")
    if "parquet" in formats:
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise InputError("table format 'parquet' needs pyarrow: pip install pyarrow (or choose csv)") from None
    return formats


def harmonise(sources, label_sets=None, *, model=None, taxonomy: Taxonomy | None = None, out=None,
              formats=("csv",), export: str | LabelSet | None = None, unknown: str = "class", info=None,
              verbose: int = 0) -> HarmoniseResult:
    """Every ground-truth nucleus of ``sources`` at every label set in ``label_sets``, with provenance.

    Parameters
    ----------
    sources : sequence of Source
        The datasets (:func:`open_source` opens registry datasets).
    label_sets : sequence of str or LabelSet, optional
        Target label sets (default: every label set of the taxonomy).
    model : path or StarDist2DHier, optional
        For ``inferred`` labels; its tree must be the taxonomy's. A folder is loaded
        (TensorFlow imported) only after every other check passed.
    taxonomy : Taxonomy, optional
        Default :func:`~stardist_hier.tree.default_taxonomy`.
    out : path, optional
        A new folder for the table (``nuclei.csv`` / ``nuclei.parquet``) and the export;
        it must not exist. Without it nothing is written.
    formats : sequence of {"csv", "parquet"}
    export : str or LabelSet, optional
        Also write a harmonised copy of all datasets at this label set to ``out/harmonised``
        (added to ``label_sets`` if absent); needs ``out``.
    unknown : {"class", "drop"}
        In the export: nuclei without a label there become the class ``"unknown"`` or are dropped.
    info : path or dict, optional
        Lizard's ``info.csv`` for the overlap check.
    verbose : int
        1: a progress bar over the images.

    Returns
    -------
    HarmoniseResult

    Raises
    ------
    InputError, ModelFolderError, DatasetError
        Before anything is written: a label set not on the tree, a model on another tree,
        overlapping datasets, an existing output folder, bad options. A bad file met
        while reading leaves nothing behind either.
    """
    from ..console import progress
    from ..tree import default_taxonomy

    tax = taxonomy if taxonomy is not None else default_taxonomy()
    sources = list(sources)
    if not sources:
        raise InputError("no dataset to harmonise")
    for s in sources:
        if s.label_set.tree != tax.tree:
            raise InputError(f"dataset {s.name!r}: its label set {s.label_set.name!r} is not on the taxonomy's tree")
    targets = resolve_label_sets(list(label_sets) if label_sets is not None else tax.names(), taxonomy=tax)
    export_ls = None
    if export is not None:
        export_ls = _label_set(export, tax, what="export label set")
        if export_ls.name not in {t.name for t in targets}:
            targets.append(export_ls)
        if out is None:
            raise InputError("export needs an output folder")
        if unknown == "class" and UNKNOWN_CLASS.lower() in {x.lower() for x in
                                                            export_ls.labels + export_ls.ignore_labels}:
            raise InputError(f"export label set {export_ls.name!r} already has a label {UNKNOWN_CLASS!r}; "
                             f"use unknown='drop'")
    if unknown not in UNKNOWN_OPTIONS:
        raise InputError(f"unknown={unknown!r}: use one of {', '.join(UNKNOWN_OPTIONS)}")
    formats = _check_formats(formats) if out is not None else ()
    if out is not None:
        out = _check_out(out)
    check_overlaps(sources, info=info)
    if model is not None:
        check_model(model, tax)

    # which sources need the network at all (a split label somewhere)?
    def needs_model(src):
        return any(translate(lab, src.label_set, t).kind == _SPLIT
                   for lab in src.label_set.labels for t in targets)

    net = None
    if model is not None and any(needs_model(s) for s in sources):
        if isinstance(model, (str, Path)):
            from ..console import import_tensorflow, quiet_stardist
            from ..predict.pipeline import load_model

            import_tensorflow()
            with quiet_stardist():
                net = load_model(model)
            check_model(net, tax)
        else:
            net = model

    columns = table_columns(targets)
    total = sum(len(s.samples) for s in sources)

    def run(folder: Path | None):
        rows, stems = [], {}
        exporter = _Exporter(folder / EXPORT_FOLDER, export_ls, unknown, tax) if folder is not None and \
            export_ls is not None else None
        bar = progress(total=total, desc="harmonise", verbose=verbose, unit="image")
        try:
            for src in sources:
                use_net = net is not None and needs_model(src)
                for index, sample in enumerate(src.samples):
                    m = instance_measurements(sample.labels)
                    lp = None
                    if use_net and len(m["id"]):
                        lp = instance_leaf_probabilities(net, sample.image, sample.labels,
                                                         mpp=(sample.meta or {}).get("mpp"))
                    name = sample_name(sample, index)
                    r = harmonise_sample(sample, targets, source=src.label_set, leaf_prob=lp, dataset=src.name,
                                         image=name, measurements=m)
                    rows.extend(r)
                    if exporter is not None:
                        exporter.add(src, sample, name, r, stems)
                    bar.update(1)
        finally:
            bar.close()
        written = []
        if folder is not None:
            for f in formats:
                p = folder / f"{TABLE_STEM}.{f}"
                write_table(rows, columns, p)
                written.append(p)
            if exporter is not None:
                exporter.finish(sources)
                written.append(folder / EXPORT_FOLDER)
        return rows, written

    if out is None:
        rows, files = run(None)
    else:
        from ..io.atomic import atomic_dir

        created = [q for q in out.absolute().parents if not q.exists()]  # made by atomic_dir: undone on failure
        try:
            with atomic_dir(out, replace=False) as tmp:
                rows, files = run(Path(tmp))
        except BaseException:
            for q in created:  # deepest first
                try:
                    q.rmdir()
                except OSError:
                    break
            raise
        files = [out / f.relative_to(tmp) for f in files]
    counts = {t.name: {} for t in targets}
    for r in rows:
        for t in targets:
            c = counts[t.name]
            c[r[f"provenance_{t.name}"]] = c.get(r[f"provenance_{t.name}"], 0) + 1
    return HarmoniseResult(rows=rows, columns=columns, label_sets=targets, counts=counts, files=files, out=out,
                           export=None if export_ls is None else export_ls.name)


# ------------------------------------------------------------------ writing
def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(round(v, 6))
    return v


def write_table(rows, columns, path) -> Path:
    """Write the table as CSV or Parquet (by the suffix of ``path``); atomic."""
    from ..io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            def kind(c):
                if c in ("id", "area_px"):
                    return pa.int64()
                if c in ("centroid_y", "centroid_x") or c.startswith("prob_"):
                    return pa.float64()
                return pa.string()

            schema = pa.schema([pa.field(c, kind(c)) for c in columns])
            data = {c: [r.get(c) for r in rows] for c in columns}
            pq.write_table(pa.Table.from_pydict(data, schema=schema), str(tmp))
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(columns)
                for r in rows:
                    w.writerow([_csv_value(r.get(c)) for c in columns])
    return path


def _stem(dataset: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}__{name}").strip("._") or "image"


class _Exporter:
    """Writes the harmonised copy (folder-reader layout) sample by sample into a (temporary) folder."""

    def __init__(self, folder: Path, label_set: LabelSet, unknown: str, taxonomy: Taxonomy):
        self.folder, self.ls, self.unknown, self.tax = Path(folder), label_set, unknown, taxonomy
        for sub in ("images", "labels", "ignore"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.images, self.counts = {}, {"nuclei": 0, "labelled": 0, "unknown": 0, "dropped": 0}

    def add(self, src: Source, sample, name: str, rows: list, stems: dict) -> None:
        import imageio.v3 as iio
        import tifffile
        from skimage.segmentation import relabel_sequential

        stem = base = _stem(src.name, name)
        k = 1
        while stem in stems:
            k += 1
            stem = f"{base}-{k}"
        stems[stem] = (src.name, name)
        col = f"label_{self.ls.name}"
        labels = np.asarray(sample.labels).astype(np.int32, copy=True)
        ignore = np.zeros(labels.shape, bool) if sample.ignore is None else np.asarray(sample.ignore, bool).copy()
        classes = {}
        for r in rows:
            lab = r[col]
            self.counts["nuclei"] += 1
            if lab is not None:
                classes[r["id"]] = lab
                self.counts["labelled"] += 1
            elif self.unknown == "class":
                classes[r["id"]] = UNKNOWN_CLASS
                self.counts["unknown"] += 1
            else:
                drop = labels == r["id"]
                ignore |= drop
                labels[drop] = 0
                self.counts["dropped"] += 1
        labels, fw, _ = relabel_sequential(labels)
        classes = {int(fw[i]): v for i, v in classes.items()}
        iio.imwrite(self.folder / "images" / f"{stem}.png", np.asarray(sample.image, np.uint8))
        tifffile.imwrite(self.folder / "labels" / f"{stem}.tif", labels.astype(np.int32))
        (self.folder / "labels" / f"{stem}.json").write_text(
            json.dumps({str(k): v for k, v in sorted(classes.items())}, indent=0))
        if ignore.any():
            iio.imwrite(self.folder / "ignore" / f"{stem}.png", (ignore * 255).astype(np.uint8))
        self.images[stem] = {"dataset": src.name, "split": (sample.meta or {}).get("split"), "image": name,
                             "given_label_set": src.label_set.name}

    def taxonomy_dict(self) -> dict:
        d = self.ls.to_dict()
        d.pop("name", None)
        if self.unknown == "class":
            d["labels"] = {**d["labels"], UNKNOWN_CLASS: "ignore"}
        return {"tree": self.tax.tree.to_dict(), "label_sets": {self.ls.name: d}}

    def finish(self, sources) -> None:
        import yaml

        (self.folder / "taxonomy.yaml").write_text(yaml.safe_dump(self.taxonomy_dict(), sort_keys=False))
        manifest = {
            "label_set": self.ls.name, "unknown": self.unknown, "counts": self.counts,
            "sources": [{"dataset": s.name, "label_set": s.label_set.name, "n_images": len(s.samples)}
                        for s in sources],
            "read_with": (f"stardist_hier.datasets.harmonise.read_harmonised(PATH), i.e. Folder(PATH, "
                          f"label_set={self.ls.name!r}, taxonomy=Taxonomy.from_file(PATH/'taxonomy.yaml'), "
                          f"ignore='ignore')"),
            "images": self.images,
        }
        (self.folder / "harmonised.json").write_text(json.dumps(manifest, indent=1))


def read_harmonised(path, **kwargs):
    """Open a harmonised copy with the ``folder`` reader (its ``taxonomy.yaml``, label set and ignore masks)."""
    from .folder import Folder

    path = Path(path)
    manifest = json.loads((path / "harmonised.json").read_text())
    tax = Taxonomy.from_file(path / "taxonomy.yaml")
    return Folder(path, label_set=manifest["label_set"], taxonomy=tax, ignore="ignore",
                  dataset=kwargs.pop("dataset", "harmonised"), **kwargs)
