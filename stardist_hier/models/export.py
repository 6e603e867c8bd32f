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

Every export also holds the model's input normalisation, which StarDist's tools do not
read from a model folder (``StarDist2D`` refuses keys it does not know in ``config.json``;
``stardist-predict2d`` and napari-stardist take percentiles from their own options):
``normalization.json`` (``{"hier_normalize": {...}, ...}``, the value of the model's
``config.json``, see :mod:`stardist_hier.normalization`) and a ``README.md`` with the exact
settings for Python, ``stardist-predict2d``, napari-stardist or QuPath. :func:`from_stardist`
reads ``normalization.json`` back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import InputError, ModelFolderError
from ..io import atomic_dir, atomic_path
from ..normalization import KEY, Normalization
from ..tree import ClassTree
from .defaults import HIER_DEFAULTS as _HIER_DEFAULTS
from .defaults import NORMALIZATION_FILE
from .model2d import StarDist2DHier, load_model
from .transfer import CLASS_HEAD  # noqa: F401 (importable from here as before)

__all__ = ["FORMATS", "class_names", "export", "export_stardist", "export_savedmodel", "export_qupath_zip",
           "from_stardist", "load_model"]

#: ``--to`` choices of ``stardist-hier export``.
FORMATS = ("stardist", "savedmodel", "qupath")


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


def _is_model_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a stardist-hier model (its ``config.json`` has stardist-hier's keys,
    or it has ``hier_weights.json``)."""
    if (folder / "hier_weights.json").exists():
        return True
    try:
        d = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(d, dict) and any(k in d for k in _HIER_DEFAULTS)


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` is an earlier export (what ``--force`` may replace)."""
    if (folder / "normalization.json").is_file() or (folder / "saved_model.pb").is_file():
        return True
    try:
        d = json.loads((folder / "classes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(d, dict) and {"classes", "paths"} <= set(d)


def _target(out, force: bool, model=None, *, zip_file: bool = False) -> Path:
    """Check the export target before anything is written.

    An export never replaces a model folder: not the exported model's own folder (or a
    folder holding it), not any stardist-hier model folder; ``force`` replaces only an
    earlier export (a folder :func:`_is_export` recognises, an empty folder, or for the
    QuPath export a zip holding a SavedModel).

    Raises
    ------
    InputError
        Naming ``--out`` and why.
    """
    import zipfile

    out = Path(out)
    src = None
    if model is not None and getattr(model, "basedir", None) is not None:
        src = Path(model.logdir).resolve()
    p = out.parent
    try:
        while not p.exists() and p.parent != p:
            p = p.parent
    except OSError as e:  # a name too long, ...
        raise InputError(f"--out {out}: cannot be created ({e.strerror or e})") from None
    if not p.is_dir():
        raise InputError(f"--out {out}: cannot be created: {p} is a file")
    r = out.resolve()
    if src is not None and (r == src or r in src.parents):
        what = "is the model folder" if r == src else "holds the model folder"
        raise InputError(f"--out {out} {what} {src}; an export never replaces a model folder: choose another --out")
    if not out.exists():
        return out
    if not force:
        raise InputError(f"--out {out} exists; pass force=True (--force) to replace it")
    if out.is_dir():
        if zip_file:
            raise InputError(f"--out {out} is a folder; the QuPath export is a .zip file")
        if _is_model_folder(out):
            raise InputError(f"--out {out} holds a stardist-hier model; an export never replaces a model folder "
                             f"(not even with --force): choose another --out")
        if any(out.iterdir()) and not _is_export(out):
            raise InputError(f"--out {out} exists and is not an earlier export (no normalization.json, "
                             f"saved_model.pb or classes.json); --force replaces exports only: choose another --out")
        return out
    if not zip_file or out.suffix != ".zip":
        raise InputError(f"--out {out} exists and is not a folder")
    try:
        with zipfile.ZipFile(out) as z:
            ok = "saved_model.pb" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        ok = False
    if not ok:
        raise InputError(f"--out {out} exists and is not an earlier QuPath export (a zip holding saved_model.pb); "
                         f"--force replaces exports only: choose another --out")
    return out


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False), encoding="utf-8")


def _thresholds(model) -> dict:
    return {"prob": float(model.thresholds.prob), "nms": float(model.thresholds.nms)}


#: The file of every export holding the model's input normalisation.


def _write_normalization(model, folder: Path, fmt: str) -> None:
    """Write ``normalization.json`` and ``README.md`` (see :func:`normalization_readme`) into an export."""
    norm = model.normalization
    _write_json(folder / NORMALIZATION_FILE, {
        "hier_normalize": norm.to_config(), "description": norm.describe(),
        "scope": "stardist-hier fits it once per image (the whole image) and once per slide (the tissue of a "
                 "low-resolution level, at most 2048 px a side), never per tile",
        "stated_by_model": bool(getattr(model, "normalization_stated", True))})
    (folder / "README.md").write_text(normalization_readme(model, fmt), encoding="utf-8")


def normalization_readme(model, fmt: str) -> str:
    """The ``README.md`` of an export: what it holds and how to normalise its input images.

    Parameters
    ----------
    model : StarDist2DHier
    fmt : {"stardist", "savedmodel", "qupath"}
    """
    norm = model.normalization
    mpp = getattr(model.config, "hier_mpp", None)
    name = getattr(model, "name", None) or "model"
    tool = {"stardist": "StarDist (StarDist2D, stardist-predict2d, napari-stardist)",
            "savedmodel": "TensorFlow (SavedModel)", "qupath": "QuPath's StarDist extension"}[fmt]
    lines = [f"# {name}: a stardist-hier model exported for {tool}", "",
             f"* Pixel size it was trained at: {f'{mpp:g} µm per pixel' if mpp else 'not recorded (hier_mpp)'}.",
             f"* Thresholds: `thresholds.json` (prob {float(model.thresholds.prob):g}, "
             f"nms {float(model.thresholds.nms):g}).",
             "* Classes: `classes.json` (class index -> name, 0 background)." if model.tree is not None else
             "* Segmentation only (no classes).", "",
             "## Input normalisation (needed for correct results)", "",
             f"The model was trained on images normalised as follows: **{norm.describe()}**",
             f"(`{NORMALIZATION_FILE}`: `{json.dumps(norm.to_config())}`, the `hier_normalize` of the",
             "stardist-hier model's `config.json`)."]
    if not getattr(model, "normalization_stated", True):
        lines += ["The source model folder did not state it (made before stardist-hier recorded it); this is",
                  "what stardist-hier assumes for such folders."]
    if norm.kind == "percentile":
        lines += ["stardist-hier fits the percentiles once per image (over the whole image) and once per slide",
                  "(over the tissue of a low-resolution level, at most 2048 px a side), never per tile.", ""]
    else:
        lines += [""]
    lines += ["Python (csbdeep, channels last):", "", "```python", norm.python(), "```", ""]
    if fmt == "stardist":
        lines += ["```python",
                  "from stardist.models import StarDist2D",
                  f"model = StarDist2D(None, name={name!r}, basedir='.')  # this folder",
                  "labels, res = model.predict_instances(x)",
                  "```", ""]
        if norm.kind == "percentile" and norm.axis == "per-channel":
            lines += [f"* `stardist-predict2d` always normalises all channels together (`--pnorm {norm.pmin:g} "
                      f"{norm.pmax:g}` is csbdeep's `normalize` with `axis=None`), not each channel on its own: "
                      "its results on RGB images differ; use Python as above.",
                      f"* napari-stardist: tick *Normalize Image* with *Percentile low* {norm.pmin:g} and *high* "
                      f"{norm.pmax:g}; it normalises the channels of an RGB layer together, which differs too. "
                      "For the same results, load the image normalised as above and untick *Normalize Image*."]
        elif norm.kind == "percentile":
            lines += [f"* `stardist-predict2d --pnorm {norm.pmin:g} {norm.pmax:g}` normalises the same way.",
                      f"* napari-stardist: tick *Normalize Image* with *Percentile low* {norm.pmin:g} and "
                      f"*high* {norm.pmax:g} (RGB layers are normalised over all channels together, as here)."]
        else:
            lines += ["* `stardist-predict2d` and napari-stardist always apply percentile normalisation of their "
                      "own (napari-stardist: untick *Normalize Image* and load the image normalised as above)."]
    elif fmt == "qupath":
        lines += ["QuPath (StarDist extension v0.4 or later; `StarDist2D.builder(...)` options):", ""]
        for when, groovy in norm.qupath():
            lines += [f"* {when}:", "", "  ```groovy", f"  {groovy}", "  ```", ""]
        if norm.kind == "percentile":
            lines += ["`StarDist2D.imageNormalizationBuilder()` normalises all channels together unless "
                      "`.perChannel(true)` is given; `.useMask(true)` takes the percentiles inside the parent "
                      "annotation only (closest to stardist-hier's tissue mask)."]
        if mpp:
            lines += ["", f"Set `.pixelSize({mpp:g})` (the pixel size the model was trained at)."]
    else:
        lines += ["Feed `x` (float32, batch axis first) to the `serving_default` signature."]
    return "\n".join(lines).rstrip() + "\n"


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
    out = _target(out, force, model)
    with atomic_dir(out, replace=force) as tmp:
        tmp = Path(tmp)
        _write_json(tmp / "config.json", _plain_config(model))
        # csbdeep's Keras 3 patch writes the legacy HDF5 layout StarDist2D loads
        model.keras_model.save_weights(str(tmp / "weights_best.h5"))
        _write_json(tmp / "thresholds.json", _thresholds(model))
        if model.tree is not None:
            _write_json(tmp / "classes.json", class_names(model.tree))
        _write_normalization(model, tmp, "stardist")
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
    out = _target(out, force, model)
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
        _write_normalization(model, tmp, "savedmodel")
    return out


def single_output_model(model, *, upsample_grid: bool = True):
    """Keras model with one output: prob, dist and (if any) class probabilities concatenated.

    ``upsample_grid``: outputs at the input's full resolution, as StarDist's own
    ``export_TF(upsample_grid=True)`` makes them: prob through a 1x1 transposed convolution
    with unit kernel and stride ``grid`` (the network's values on the grid's points, 0
    between them, so candidates stay where StarDist has them), the distances and class
    probabilities repeated over each grid cell (``UpSampling2D``; distances are in input
    pixels already). ``False``: at ``1 / grid`` of the input size.
    """
    import keras

    sd = _model(model)
    km = sd.keras_model
    outputs = list(km.outputs)
    grid = tuple(int(g) for g in sd.config.grid)
    if upsample_grid and any(g > 1 for g in grid):
        prob = keras.layers.Conv2DTranspose(1, (1, 1), strides=grid, padding="same", kernel_initializer="ones",
                                            use_bias=False, trainable=False, name="upsample_prob")(outputs[0])
        outputs = [prob] + [keras.layers.UpSampling2D(grid, name=f"upsample_{i}")(o)
                            for i, o in enumerate(outputs[1:], start=1)]
    cat = keras.layers.Concatenate(axis=-1, name="output")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(km.inputs, cat, name="stardist_single_output")


def qupath_usage(model) -> str:
    """How QuPath runs the QuPath export: versions, engine, and a script (appended to its ``README.md``)."""
    import tensorflow as tf

    n = 0 if model.tree is None else model.tree.n_classes
    lines = ["", "## Running it in QuPath", "",
             "Meant for QuPath 0.4, 0.5 and 0.6 with the StarDist extension (0.4 or later) and TensorFlow",
             "through the Deep Java Library extension (QuPath's TensorFlow engine since 0.4, which ships",
             "TensorFlow 2.16 at most), not for QuPath 0.3's TensorFlow extension, and not for Fiji. Not",
             f"verified inside QuPath: this SavedModel was written by TensorFlow {tf.__version__}; if QuPath's",
             "engine cannot load it, export again from an environment with `tensorflow==2.16.*`.",
             "", "Unzip this file, then in QuPath's script editor:", "", "```groovy",
             "import qupath.ext.stardist.StarDist2D", "import groovy.json.JsonSlurper", "",
             "def pathModel = '/path/to/the/unzipped/folder'"]
    if n:
        lines += ["// classes.json keys are strings (JSON); QuPath's classificationNames needs Integer keys",
                  "def classes = new JsonSlurper().parse(new File(pathModel, 'classes.json')).classes",
                  "def names = classes.collectEntries { k, v -> [(k as Integer): v] }"]
    lines += ["def stardist = StarDist2D.builder(pathModel)",
              f"        .threshold({float(model.thresholds.prob):g})  // thresholds.json prob"]
    mpp = getattr(model.config, "hier_mpp", None)
    if mpp:
        lines += [f"        .pixelSize({mpp:g})  // the pixel size the model was trained at"]
    if n:
        lines += [f"        .classificationNames(names)  // {n} classes + background; the output's last {n + 1} "
                  f"channels"]
    lines += ["        // the input normalisation above", "        .build()", "```", "",
              "The output is at the input's full resolution (as StarDist's own export), one tensor with",
              "the channels prob, the rays" + (", then the class probabilities (background first)." if n else "."),
              "QuPath splits it by the number of classification names it is given."]
    return "\n".join(lines) + "\n"


def export_qupath_zip(model, out, *, force: bool = False) -> Path:
    """Write a zip in the layout of StarDist's ``export_TF`` for QuPath's StarDist extension.

    The zip holds ``saved_model.pb`` and ``variables/`` at its root (as csbdeep's
    ``export_SavedModel`` writes it), plus ``classes.json`` and ``thresholds.json``.
    Its ``serving_default`` signature has the input ``input`` and one output whose channels
    are ``[prob, dist_1 .. dist_n_rays, class_0 .. class_n]`` at the input's full
    resolution (upsampled from the grid as StarDist's ``export_TF`` does; see
    :func:`single_output_model`). QuPath's StarDist extension (QuPath 0.4 to 0.6, TensorFlow
    through the Deep Java Library engine, TF <= 2.16) loads the unzipped folder; pass
    ``classes.json``'s ``classes`` with their keys turned into integers (``README.md`` in
    the zip has the script) to ``classificationNames`` so that it splits the
    ``n_classes + 1`` class channels off (``n_rays = channels - 1 - len(classifications)``).

    Parameters
    ----------
    model : StarDist2DHier or path
    out : path
        The ``.zip`` file; written atomically.
    force : bool
        Replace an existing ``out`` that is an earlier QuPath export.
    """
    import tempfile
    import zipfile

    model = _exportable(model)
    out = Path(out)
    if out.suffix != ".zip":
        raise InputError(f"--out {out}: the QuPath export is a .zip file")
    out = _target(out, force, model, zip_file=True)
    km = single_output_model(model, upsample_grid=True)
    _require_tf_export(km)
    with tempfile.TemporaryDirectory(prefix=".export.", dir=out.parent if out.parent.exists() else None) as td:
        sm = Path(td) / "model"
        km.export(str(sm), verbose=False)
        _write_json(sm / "thresholds.json", _thresholds(model))
        if model.tree is not None:
            _write_json(sm / "classes.json", class_names(model.tree))
        _write_normalization(model, sm, "qupath")
        with open(sm / "README.md", "a", encoding="utf-8") as fh:
            fh.write(qupath_usage(model))
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

    The same as ``StarDist2DHier.from_stardist``; see
    :func:`stardist_hier.models.transfer.from_stardist` for the parameters.
    """
    return StarDist2DHier.from_stardist(folder, tree=tree, name=name, basedir=basedir, **config)
