"""Export a :class:`StarDist2DHier` model to other tools, and start one from a StarDist model.

* :func:`export_stardist`: a plain StarDist2D model folder (``config.json`` without
  stardist-hier's keys, the same weights, ``thresholds.json``) plus ``classes.json``
  naming every class index. ``stardist.models.StarDist2D(None, name, basedir)`` opens
  it, and so do ``stardist-predict2d`` and napari-stardist.
* :func:`export_savedmodel`: a TensorFlow SavedModel written by Keras 3's
  ``Model.export`` (``serving_default``: input ``input``, outputs ``output_0`` prob,
  ``output_1`` dist, ``output_2`` class probabilities, all at the grid's resolution).
* :func:`export_qupath_zip`: the zip layout of StarDist's ``export_TF`` (``saved_model.pb``
  and ``variables/`` at the root of the zip) with one output, ``output_0``, whose channels
  are prob, the rays, then the class probabilities (background first): the single-output
  form QuPath's StarDist extension splits by the number of classifications it is given.
  Not for Fiji: its StarDist plugin runs TensorFlow 1.x and needs full-resolution outputs,
  and a SavedModel written by TensorFlow 2 does not load there (csbdeep says the same of
  its own ``export_TF`` under Keras 3).
* :func:`from_stardist`: a new :class:`StarDist2DHier` on a tree, every layer copied from
  any StarDist2D model folder except the class head.

``classes.json`` (written by every export)::

    {"classes": {"0": "background", "1": leaf, ...},   # class index -> name
     "paths": {"1": [root, ..., leaf], ...},           # each leaf's path in the tree
     "tree": {...}}

``classes`` is the map QuPath's ``StarDist2D.builder(...).classificationNames(...)`` takes.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from ..errors import InputError, ModelFolderError
from ..io import atomic_dir, atomic_path
from ..tree import ClassTree
from .model2d import _HIER_DEFAULTS, Config2DHier, StarDist2DHier

__all__ = ["FORMATS", "class_names", "export", "export_stardist", "export_savedmodel", "export_qupath_zip",
           "from_stardist", "load_model"]

#: ``--to`` choices of ``stardist-hier export``.
FORMATS = ("stardist", "savedmodel", "qupath")

#: Layers of StarDist2D's class head: not copied by :func:`from_stardist` (``prob_class``
#: always; ``features_class`` only when its shape differs).
CLASS_HEAD = ("prob_class",)


def load_model(folder) -> StarDist2DHier:
    """Open a model folder as :class:`StarDist2DHier`.

    Raises
    ------
    ModelFolderError
        The folder, its ``config.json`` or its weights are missing or invalid.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist or is not a folder")
    return StarDist2DHier(None, name=folder.name, basedir=str(folder.parent))


def _model(model) -> StarDist2DHier:
    if isinstance(model, StarDist2DHier):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    raise TypeError(f"model must be a StarDist2DHier or a model folder, got {type(model).__name__}")


def _exportable(model) -> StarDist2DHier:
    """The model, refused when it has one class head per dataset (StarDist's tools expect one)."""
    model = _model(model)
    if len(model.class_heads) > 1:
        raise InputError(f"the model has {len(model.class_heads)} class heads ({', '.join(model.class_heads)}); "
                         "StarDist's tools and QuPath read one: export is only supported for a shared class head")
    return model


def class_names(tree) -> dict:
    """``classes.json`` content of a tree (see the module docstring); ``{}`` for ``None``."""
    if tree is None:
        return {}
    classes = {"0": "background"}
    paths = {}
    for i, leaf in enumerate(tree.leaves, start=1):
        classes[str(i)] = leaf
        paths[str(i)] = list(reversed(tree.ancestors(leaf))) + [leaf]
    return {"classes": classes, "paths": paths, "tree": tree.to_dict()}


def _plain_config(model: StarDist2DHier) -> dict:
    """``config.json`` of a plain StarDist2D: only the keys ``Config2D`` knows."""
    from stardist.models import Config2D

    known = set(vars(Config2D()))
    return {k: v for k, v in vars(model.config).items() if k in known and k not in _HIER_DEFAULTS}


def _target(out, force: bool) -> Path:
    out = Path(out)
    if out.exists() and not force:
        raise InputError(f"--out {out} exists; pass force=True (--force) to replace it")
    if out.exists() and not out.is_dir() and out.suffix != ".zip":
        raise InputError(f"--out {out} exists and is not a folder")
    return out


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False), encoding="utf-8")


def _thresholds(model) -> dict:
    return {"prob": float(model.thresholds.prob), "nms": float(model.thresholds.nms)}


def export_stardist(model, out, *, force: bool = False) -> Path:
    """Write a plain StarDist2D model folder.

    Parameters
    ----------
    model : StarDist2DHier or path
        The model, or its model folder.
    out : path
        The new model folder (its name is the StarDist model name). Written atomically.
    force : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``. ``StarDist2D(None, name=out.name, basedir=out.parent)`` opens it and
        predicts the same instances (with centre-pixel class probabilities, StarDist's
        rule; see ``predict_class_aggregate``).
    """
    model = _exportable(model)
    out = _target(out, force)
    with atomic_dir(out, replace=force) as tmp:
        tmp = Path(tmp)
        _write_json(tmp / "config.json", _plain_config(model))
        # csbdeep's Keras 3 patch writes the legacy HDF5 layout StarDist2D loads
        model.keras_model.save_weights(str(tmp / "weights_best.h5"))
        _write_json(tmp / "thresholds.json", _thresholds(model))
        if model.tree is not None:
            _write_json(tmp / "classes.json", class_names(model.tree))
    return out


def _require_tf_export(keras_model):
    if not hasattr(keras_model, "export"):
        raise InputError("this Keras version has no Model.export; SavedModel export needs Keras 3")


def export_savedmodel(model, out, *, force: bool = False) -> Path:
    """Write a TensorFlow SavedModel folder through Keras 3's ``Model.export``.

    Parameters
    ----------
    model : StarDist2DHier or path
    out : path
        The SavedModel folder (``saved_model.pb``, ``variables/``), plus ``classes.json``
        and ``thresholds.json``. Written atomically.
    force : bool
        Replace an existing ``out``.

    Notes
    -----
    ``tf.saved_model.load(out).signatures["serving_default"](input=x)`` returns
    ``output_0`` (prob), ``output_1`` (dist) and, for a model with classes, ``output_2``
    (class probabilities), each at ``1 / grid`` of the input size, equal to
    ``keras_model.predict(x)``.
    """
    model = _exportable(model)
    out = _target(out, force)
    _require_tf_export(model.keras_model)
    with atomic_dir(out, replace=force) as tmp:
        tmp = Path(tmp)
        sm = tmp / "_savedmodel"
        model.keras_model.export(str(sm), verbose=False)
        for p in sm.iterdir():
            shutil.move(str(p), str(tmp / p.name))
        sm.rmdir()
        _write_json(tmp / "thresholds.json", _thresholds(model))
        if model.tree is not None:
            _write_json(tmp / "classes.json", class_names(model.tree))
    return out


def single_output_model(model):
    """Keras model with one output: prob, dist and (if any) class probabilities concatenated."""
    import keras

    km = _model(model).keras_model
    outputs = list(km.outputs)
    cat = keras.layers.Concatenate(axis=-1, name="output")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(km.inputs, cat, name="stardist_single_output")


def export_qupath_zip(model, out, *, force: bool = False) -> Path:
    """Write a zip in the layout of StarDist's ``export_TF`` for QuPath's StarDist extension.

    The zip holds ``saved_model.pb`` and ``variables/`` at its root (as csbdeep's
    ``export_SavedModel`` writes it), plus ``classes.json`` and ``thresholds.json``.
    Its ``serving_default`` signature has the input ``input`` and one output whose channels
    are ``[prob, dist_1 .. dist_n_rays, class_0 .. class_n]`` at ``1 / grid`` of the input
    size. QuPath's StarDist extension (with its TensorFlow extension) loads the unzipped
    folder; pass ``classes.json``'s ``classes`` (with ``"0": "background"``) to
    ``classificationNames`` so that it splits the ``n_classes + 1`` class channels off
    (``n_rays = channels - 1 - len(classifications)``); it expects the output at full or
    half resolution: ``grid`` (1, 1) or (2, 2).

    Parameters
    ----------
    model : StarDist2DHier or path
    out : path
        The ``.zip`` file; written atomically.
    force : bool
        Replace an existing ``out``.
    """
    import tempfile
    import zipfile

    model = _exportable(model)
    out = Path(out)
    if out.suffix != ".zip":
        raise InputError(f"--out {out}: the QuPath export is a .zip file")
    if out.exists() and not force:
        raise InputError(f"--out {out} exists; pass force=True (--force) to replace it")
    if any(g not in (1, 2) for g in model.config.grid):
        warnings.warn(f"grid {tuple(model.config.grid)}: QuPath's StarDist extension expects outputs at full "
                      f"or half resolution (grid 1 or 2)")
    km = single_output_model(model)
    _require_tf_export(km)
    with tempfile.TemporaryDirectory(prefix=".export.", dir=out.parent if out.parent.exists() else None) as td:
        sm = Path(td) / "model"
        km.export(str(sm), verbose=False)
        _write_json(sm / "thresholds.json", _thresholds(model))
        if model.tree is not None:
            _write_json(sm / "classes.json", class_names(model.tree))
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(sm.rglob("*")):
                    z.write(p, p.relative_to(sm).as_posix())
    return out


def export(model, out, *, to: str = "stardist", force: bool = False) -> Path:
    """Export in one of :data:`FORMATS` (``"stardist"``, ``"savedmodel"``, ``"qupath"``)."""
    funcs = {"stardist": export_stardist, "savedmodel": export_savedmodel, "qupath": export_qupath_zip}
    if to not in funcs:
        raise InputError(f"--to {to!r}: choose one of {', '.join(FORMATS)}")
    return funcs[to](model, out, force=force)


# ------------------------------------------------------------------ from StarDist
def from_stardist(folder, *, tree=None, name=None, basedir=None, **config) -> StarDist2DHier:
    """A new :class:`StarDist2DHier` whose layers, except the class head, come from a StarDist2D folder.

    Parameters
    ----------
    folder : path
        Any StarDist2D model folder (``config.json`` and weights), e.g. StarDist's
        ``2D_versatile_he`` after download, with or without a class head.
    tree : ClassTree or dict, optional
        The new model's class tree (its leaves are the new class head). ``None``: keep
        the source's number of classes as a flat tree (or none).
    name, basedir : optional
        Where the new model folder goes (``basedir=None``: no folder).
    **config
        Overrides of the source configuration (``train_*``, ``train_class_loss``, ...).
        Network-shape keys (``n_rays``, ``grid``, ``unet_*``, ...) may be overridden too;
        layers whose weights then no longer fit are left freshly initialised.

    Returns
    -------
    StarDist2DHier
        Its ``transferred`` attribute is ``{"copied": [...], "initialised": [...]}``: the
        layers whose weights were copied, and those left freshly initialised (the class
        head, and any layer missing from the source or of another shape). With a
        ``basedir`` the copied weights are saved as ``weights_best.h5``.

    Raises
    ------
    ModelFolderError
        The source folder cannot be loaded.
    """
    from stardist.models import StarDist2D

    from .model2d import read_config_json

    folder = Path(folder)
    src_conf = read_config_json(folder, what="StarDist model folder")
    config_file = folder / "config.json"
    if not any(p.suffix in (".h5", ".hdf5") for p in folder.iterdir()):
        raise ModelFolderError(f"StarDist model folder {folder} has no weights file (*.h5)")
    import io
    from contextlib import redirect_stdout

    with redirect_stdout(io.StringIO()):
        try:
            if any(k in src_conf for k in _HIER_DEFAULTS):
                source = StarDist2DHier(None, name=folder.name, basedir=str(folder.parent))
            else:
                source = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
        except ModelFolderError:
            raise
        except Exception as e:
            raise ModelFolderError(f"StarDist model folder {folder} cannot be loaded: "
                                   f"{' '.join(str(e).split())[:300]}") from None

    conf = {k: v for k, v in vars(source.config).items() if k not in _HIER_DEFAULTS}
    conf.update(config)
    if tree is not None:
        tree = tree if isinstance(tree, ClassTree) else ClassTree.from_dict(tree)
        conf["n_classes"] = tree.n_classes
    n_classes = conf.setdefault("n_classes", None)
    # derived from the number of classes (unless given): StarDist refuses stale ones
    if "train_class_weights" not in config:
        conf["train_class_weights"] = (1,) * (n_classes + 1) if n_classes else (1, 1)
    if "train_loss_weights" not in config:
        lw = tuple(conf.get("train_loss_weights", (1, 0.2)))
        conf["train_loss_weights"] = lw[:2] + ((lw[2] if len(lw) > 2 else 1,) if n_classes else ())
    model = StarDist2DHier(Config2DHier(tree=tree, **conf), name=name, basedir=basedir)
    model.thresholds = {"prob": float(source.thresholds.prob), "nms": float(source.thresholds.nms)}

    # StarDist names most layers, but not all (the grid's first convolutions are auto-named
    # ``conv2d_N``): pair the trunk's layers in network order, the class layers by name
    def weighted(km):
        return [layer for layer in km.layers if layer.weights]

    head = ("features_class",) + CLASS_HEAD
    src_all, new_all = weighted(source.keras_model), weighted(model.keras_model)
    src_trunk = [layer for layer in src_all if layer.name not in head]
    new_trunk = [layer for layer in new_all if layer.name not in head]
    if len(src_trunk) == len(new_trunk) and all(type(a) is type(b) for a, b in zip(src_trunk, new_trunk)):
        pairs = dict(zip((layer.name for layer in new_trunk), src_trunk))
    else:
        by_name = {layer.name: layer for layer in src_trunk}
        pairs = {layer.name: by_name[layer.name] for layer in new_trunk if layer.name in by_name}
    pairs.update({layer.name: layer for layer in src_all if layer.name == "features_class"})
    copied, initialised = [], []
    for layer in new_all:
        weights = layer.get_weights()
        src = pairs.get(layer.name)
        src_w = None if src is None else src.get_weights()
        if layer.name in CLASS_HEAD or src_w is None or len(src_w) != len(weights) or \
                any(a.shape != b.shape for a, b in zip(src_w, weights)):
            initialised.append(layer.name)
            continue
        layer.set_weights(src_w)
        copied.append(layer.name)
    if not copied:
        raise ModelFolderError(f"StarDist model folder {folder}: no layer fits the new network "
                               f"(were network-shape keys overridden?)")
    if model.basedir is not None:
        model.keras_model.save_weights(str(model.logdir / "weights_best.h5"))
    model.transferred = {"copied": copied, "initialised": initialised}
    return model
