"""Start a :class:`~stardist_hier.models.model2d.StarDist2DHier` from a StarDist2D model folder.

:func:`from_stardist` copies every layer but the class head. It is reached through
``StarDist2DHier.from_stardist`` and :func:`stardist_hier.models.export.from_stardist`;
the model classes are passed in, so this module imports neither of those modules.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError, ModelFolderError
from ..normalization import KEY, Normalization
from ..tree import ClassTree
from .defaults import HIER_DEFAULTS, NORMALIZATION_FILE, read_config_json

__all__ = ["CLASS_HEAD", "from_stardist"]

#: Layers of StarDist2D's class head: not copied by :func:`from_stardist` (``prob_class``
#: always; ``features_class`` only when its shape differs).
CLASS_HEAD = ("prob_class",)

def _source_normalization(folder: Path, source, model_class) -> dict:
    """``hier_normalize`` of a source model: its config's, its export's ``normalization.json``, or the default."""
    if isinstance(source, model_class):
        return source.normalization.to_config()
    f = folder / NORMALIZATION_FILE
    if not f.is_file():
        return Normalization.from_config(None).to_config()  # StarDist's usual: percentiles 1-99.8 per channel
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
        value = d.get(KEY) if isinstance(d, dict) else None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{f} is truncated or not valid JSON ({e})") from None
    try:
        return Normalization.from_config(value, where=f"{f}: {KEY}").to_config()
    except InputError as e:
        raise ModelFolderError(str(e)) from None


def from_stardist(model_class, config_class, folder, *, tree=None, name=None, basedir=None, **config):
    """A new :class:`StarDist2DHier` whose layers, except the class head, come from a StarDist2D folder.

    Parameters
    ----------
    model_class, config_class : type
        :class:`StarDist2DHier` and its configuration class (passed in, so that this
        module does not import :mod:`.model2d`, which calls it).
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
        layers whose weights then no longer fit are left freshly initialised. The input
        normalisation (``hier_normalize``) is the source's: a stardist-hier model's own,
        the ``normalization.json`` of an export, else StarDist's usual percentiles 1 to
        99.8 per channel.

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
        The source folder cannot be loaded; ``basedir/name`` already holds a model (it is
        never overwritten).
    """
    from stardist.models import StarDist2D

    folder = Path(folder)
    src_conf = read_config_json(folder, what="StarDist model folder")
    config_file = folder / "config.json"
    if basedir is not None and name is not None:
        target = Path(basedir) / str(name)
        if target.resolve() == folder.resolve() or (target.is_dir() and (
                (target / "config.json").exists() or (target / "hier_weights.json").exists()
                or any(p.suffix in (".h5", ".hdf5") for p in target.iterdir()))):
            raise ModelFolderError(f"from_stardist: {target} already holds a model; it is never overwritten: "
                                   f"choose another name or basedir")
    if not any(p.suffix in (".h5", ".hdf5") for p in folder.iterdir()):
        raise ModelFolderError(f"StarDist model folder {folder} has no weights file (*.h5)")
    import io
    from contextlib import redirect_stdout

    with redirect_stdout(io.StringIO()):
        try:
            if any(k in src_conf for k in HIER_DEFAULTS):
                source = model_class(None, name=folder.name, basedir=str(folder.parent))
            else:
                source = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
        except ModelFolderError:
            raise
        except Exception as e:
            raise ModelFolderError(f"StarDist model folder {folder} cannot be loaded: "
                                   f"{' '.join(str(e).split())[:300]}") from None

    conf = {k: v for k, v in vars(source.config).items() if k not in HIER_DEFAULTS}
    conf.update(config)
    if KEY not in config:  # the copied layers expect the source's input normalisation
        conf[KEY] = _source_normalization(folder, source, model_class)
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
    with redirect_stdout(io.StringIO()):  # StarDist's "Using default values": the source's are set below
        model = model_class(config_class(tree=tree, **conf), name=name, basedir=basedir)
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
