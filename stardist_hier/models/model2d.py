"""``Config2DHier`` and ``StarDist2DHier``: StarDist2D with a hierarchy-aware class head."""

from __future__ import annotations

import contextlib
import json
import numbers
from pathlib import Path

import numpy as np
from stardist.models import Config2D, StarDist2D

from .. import classify, normalization
from ..errors import InputError, ModelFolderError, did_you_mean, shorten
from ..losses import REGISTRY, build_class_loss
from ..targets import encode_image
from ..tree import ClassTree, LabelSet, LabelSetError
from . import _stardist_big_compat as big_compat
from . import _stardist_compat as compat
from . import distribute, transfer
from .defaults import HIER_DEFAULTS as _HIER_DEFAULTS
from .input_pipeline import check_input_workers
from .defaults import read_config_json  # noqa: F401 (importable from here as before)

__all__ = ["Config2DHier", "StarDist2DHier", "load_model"]



class Config2DHier(Config2D):
    """Configuration of a :class:`StarDist2DHier` model.

    All of :class:`stardist.models.Config2D`, plus:

    Parameters
    ----------
    tree : ClassTree, dict or None
        The class tree; its leaves are the model's classes (``n_classes`` is derived
        from it). ``None`` with ``n_classes=None``: segmentation only. ``None`` with an
        integer ``n_classes``: a flat tree ``nucleus -> class_1 .. class_n`` (this is how a
        plain StarDist2D model folder loads).
    **kwargs
        Any ``Config2D`` attribute, and the attributes below.

    Attributes
    ----------
    hier_tree : dict
        The tree as nested mappings (plain JSON in ``config.json``).
    train_class_loss : dict
        ``{loss name: positive weight}``; names from :data:`stardist_hier.losses.REGISTRY`.
        Default ``{"ce": 1, "focal_tversky": 1}``: the paper's positive combination of the
        label-set cross entropy and focal Tversky loss.
    train_class_loss_options : dict
        ``{loss name: {option: value}}``. Default focal Tversky ``alpha=0.7, gamma=0.75,
        form="pixel"`` (Eq. 4 as written: additive over pixels, so batches mixing
        datasets combine exactly; use ``"region"`` for the per-image form).
    predict_class_aggregate : {"mean", "center"}
        How an instance's class probabilities are formed: mean over its pixels
        (default) or StarDist's value at the centre pixel.
    hier_mpp : float or None
        Pixel size (microns per pixel) of the training images. Slide prediction
        resamples slides to it; ``None``: unknown (then ``--mpp`` must be given).
    hier_distribute : {None, "none", "mirrored", "multiworker"}
        Train under a ``tf.distribute`` strategy (see
        :mod:`stardist_hier.models.distribute`): ``"mirrored"`` on all GPUs of this
        machine, ``"multiworker"`` on the machines of ``TF_CONFIG``. ``train_batch_size``
        is then the global batch (split evenly over the replicas). Default: none.
    hier_normalize : dict
        How input images are normalised, for training and every prediction path (see
        :mod:`stardist_hier.normalization`). Default
        ``{"kind": "percentile", "pmin": 1.0, "pmax": 99.8, "axis": "per-channel"}``:
        what stardist-hier's training paths (demo, experiment runner, notebooks) apply.
    """

    def __init__(self, tree=None, axes="YX", n_rays=32, n_channel_in=1, grid=(1, 1), n_classes=None,
                 backbone="unet", **kwargs):
        ours = {k: kwargs.pop(k) for k in list(kwargs) if k in _HIER_DEFAULTS}
        if tree is None:
            tree = ours.get("hier_tree")
        if tree is None and n_classes is not None:
            tree = {"nucleus": {f"class_{i}": None for i in range(1, int(n_classes) + 1)}}
        if tree is not None:
            tree = tree if isinstance(tree, ClassTree) else ClassTree.from_dict(tree)
            if n_classes is not None and int(n_classes) != tree.n_classes:
                raise ValueError(f"n_classes={n_classes} does not match the tree's {tree.n_classes} leaves")
            n_classes = tree.n_classes
        super().__init__(axes=axes, n_rays=n_rays, n_channel_in=n_channel_in, grid=grid,
                         n_classes=n_classes, backbone=backbone, **kwargs)
        for k, v in _HIER_DEFAULTS.items():
            setattr(self, k, ours.get(k, _copy(v)))
        self.hier_tree = None if tree is None else tree.to_dict()
        # options of losses that are not used are dropped when they are the defaults
        # (``train_class_loss={"ce": 1}`` alone is valid); non-default ones stay and are refused
        if isinstance(self.train_class_loss, dict) and isinstance(self.train_class_loss_options, dict):
            defaults = _HIER_DEFAULTS["train_class_loss_options"]
            self.train_class_loss_options = {
                k: v for k, v in self.train_class_loss_options.items()
                if k in self.train_class_loss or not (k in defaults and v == defaults[k])}
        with contextlib.suppress(ValueError):  # written out in full; an invalid value is reported by is_valid
            self.hier_normalize = normalization.Normalization.from_config(self.hier_normalize).to_config()

    @property
    def normalization(self) -> normalization.Normalization:
        """The input normalisation (:class:`stardist_hier.normalization.Normalization`) of ``hier_normalize``."""
        return normalization.Normalization.from_config(self.hier_normalize, where=normalization.KEY)

    @property
    def tree(self):
        return None if self.hier_tree is None else ClassTree.from_dict(self.hier_tree)

    def is_valid(self, return_invalid=False):
        ok, invalid = super().is_valid(return_invalid=True)
        invalid = list(invalid) + [k for k in self.invalid_reasons() if k not in invalid]
        return (len(invalid) == 0, tuple(invalid)) if return_invalid else len(invalid) == 0

    def invalid_reasons(self) -> dict:
        """``{attribute: why it is invalid}`` for every invalid attribute (empty when valid)."""
        reasons = {}
        for k in super().is_valid(return_invalid=True)[1]:
            reasons[k] = f"invalid value {getattr(self, k, None)!r}"
        try:
            if self.hier_tree is not None:
                ClassTree.from_dict(self.hier_tree)
        except (ValueError, TypeError) as e:
            reasons["hier_tree"] = str(e)
        loss = self.train_class_loss
        if not (isinstance(loss, dict) and loss):
            reasons["train_class_loss"] = f"must be a non-empty {{loss name: weight}} mapping, got {loss!r}"
        else:
            for k, v in loss.items():
                if k not in REGISTRY:
                    reasons["train_class_loss"] = (f"unknown loss {k!r}{did_you_mean(k, REGISTRY)}; "
                                                   f"known: {', '.join(sorted(REGISTRY))}")
                    break
                if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0):
                    reasons["train_class_loss"] = f"weight of {k!r} must be a positive number, got {v!r}"
                    break
        opts = self.train_class_loss_options
        if not isinstance(opts, dict):
            reasons["train_class_loss_options"] = f"must be a {{loss name: {{option: value}}}} mapping, got {opts!r}"
        elif isinstance(loss, dict):
            extra = [k for k in opts if k not in loss]
            if extra:
                reasons["train_class_loss_options"] = (
                    f"options for {', '.join(map(repr, extra))}, which train_class_loss {loss!r} does not use "
                    f"(add the loss to train_class_loss or remove its options)")
            elif "train_class_loss" not in reasons:
                try:  # option names and values (e.g. an unknown loss variant), before any training
                    build_class_loss(loss, opts)
                except (ValueError, TypeError) as e:
                    reasons["train_class_loss_options"] = str(e)
        if self.predict_class_aggregate not in ("mean", "center"):
            reasons["predict_class_aggregate"] = f"must be 'mean' or 'center', got {self.predict_class_aggregate!r}"
        if self.hier_mpp is not None and not (isinstance(self.hier_mpp, numbers.Real) and 0 < self.hier_mpp < 100):
            reasons["hier_mpp"] = f"must be a pixel size in microns in (0, 100), got {self.hier_mpp!r}"
        try:
            normalization.Normalization.from_config(getattr(self, "hier_normalize", None), where=normalization.KEY)
        except ValueError as e:
            reasons["hier_normalize"] = str(e).split(": ", 1)[-1]
        heads = getattr(self, "hier_class_heads", None)
        if heads is not None and not (isinstance(heads, (list, tuple)) and heads
                                      and all(isinstance(h, str) and h for h in heads)
                                      and len(set(heads)) == len(heads)):
            reasons["hier_class_heads"] = f"must be null or a list of distinct label-set names, got {heads!r}"
        elif heads is not None and self.n_classes is None:
            reasons["hier_class_heads"] = "needs a class tree (a segmentation-only model has no class head)"
        if not distribute.is_valid_name(getattr(self, "hier_distribute", None)):
            reasons["hier_distribute"] = (f"must be one of {', '.join(distribute.STRATEGIES)} or null, "
                                          f"got {self.hier_distribute!r}")
        return reasons

    def describe_invalid(self) -> str:
        """One line naming every invalid attribute and why (``""`` when valid)."""
        return "; ".join(f"{k}: {why}" for k, why in self.invalid_reasons().items())


def _name(head) -> str:
    return head.name if isinstance(head, LabelSet) else str(head)


def _copy(v):
    return {k: _copy(x) for k, x in v.items()} if isinstance(v, dict) else v


_DEFAULT_CONFIG = object()

#: Written beside the weights of a model with a tree: the leaves its class head was trained on.
WEIGHTS_TREE_FILE = "hier_weights.json"


class MissingWeightsTreeWarning(UserWarning):
    """A stardist-hier model folder without ``hier_weights.json``: its leaves cannot be checked against its weights."""


def _leaves_fingerprint(leaves) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(list(leaves)).encode("utf-8")).hexdigest()


def _check_model_folder(folder: Path, config_class):
    """Raise :class:`ModelFolderError` naming the folder or file when a model folder cannot load."""
    d = read_config_json(folder)
    config = folder / "config.json"
    try:
        conf = config_class(**config_class.update_loaded_config(d))
    except AttributeError as e:  # csbdeep: "Not allowed to add new parameters (...)"
        known = set(vars(config_class()))
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ModelFolderError(f"{config}: unknown key {shorten(unknown[0])}{did_you_mean(unknown[0], known)}"
                                   f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}; it was "
                                   f"edited or written by another program") from None
        raise ModelFolderError(f"{config}: {' '.join(str(e).split())[:300]}") from None
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFolderError(f"{config}: {' '.join(str(e).split())[:300]}") from None
    if not conf.is_valid():
        describe = getattr(conf, "describe_invalid", None)
        why = describe() if describe else ", ".join(conf.is_valid(True)[1])
        raise ModelFolderError(f"{config}: invalid config: {why}")
    return d


def _check_predict_arguments(img, args, kwargs, *, abstain=None) -> None:
    """Ranges of ``predict_instances``' thresholds and tiles (given by keyword or position).

    Raises
    ------
    InputError
        ``prob_thresh`` or ``nms_thresh`` outside (0, 1), ``n_tiles`` not positive whole
        numbers, ``abstain`` outside (0, 1].
    """
    import inspect

    try:
        bound = inspect.signature(StarDist2D.predict_instances).bind_partial(None, img, *args, **kwargs).arguments
    except TypeError as e:
        raise InputError(f"predict_instances: {e}") from None
    for k in ("prob_thresh", "nms_thresh"):
        v = bound.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (0 < float(v) < 1):
            raise InputError(f"{k}={shorten(v)}: must be a number in (0, 1)")
    n_tiles = bound.get("n_tiles")
    if n_tiles is not None:
        vals = list(n_tiles) if isinstance(n_tiles, (list, tuple, np.ndarray)) else [n_tiles]
        if not vals or any(isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 1 for t in vals):
            raise InputError(f"n_tiles={shorten(n_tiles)}: must be positive whole numbers, one per axis")
    if abstain is not None and (isinstance(abstain, bool) or not isinstance(abstain, numbers.Real)
                                or not (0 < float(abstain) <= 1)):
        raise InputError(f"abstain={shorten(abstain)}: must be a number in (0, 1]")


def _check_big_blocks(model, img, axes, block_size, min_overlap, context) -> None:
    """The block geometry ``predict_instances_big`` asserts, as one message naming the values.

    Raises
    ------
    InputError
        A block size not larger than ``min_overlap + 2 * context`` (after rounding to the
        grid), or larger than the image along a spatial axis.
    """
    from csbdeep.utils import axes_check_and_normalize

    try:
        ax = axes_check_and_normalize(axes, length=np.ndim(img))
    except (ValueError, AssertionError) as e:
        raise InputError(f"predict_instances_big: axes {shorten(axes)} do not fit an image of shape "
                         f"{np.shape(img)} ({e})") from None
    spatial = [a for a in ax if a != "C"]
    if context is None:
        context = big_compat.axes_tile_overlap(model, ax)
        context = [c for a, c in zip(ax, context) if a != "C"]

    def per_axis(v, what):
        vals = [v] * len(spatial) if np.isscalar(v) else list(v)
        if "C" in ax and len(vals) == len(ax):
            vals = [x for a, x in zip(ax, vals) if a != "C"]
        if len(vals) != len(spatial) or any(isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 0
                                            for x in vals):
            raise InputError(f"predict_instances_big: {what}={shorten(v)}: give one non-negative whole number per "
                             f"spatial axis ({''.join(spatial)})")
        return [int(x) for x in vals]

    bs, mo, ct = per_axis(block_size, "block_size"), per_axis(min_overlap, "min_overlap"), per_axis(context,
                                                                                                     "context")
    grid = big_compat.axes_div_by(model, "".join(spatial))
    shape = dict(zip(ax, np.shape(img)))
    for a, b, o, c, g in zip(spatial, bs, mo, ct, grid):
        if b > shape[a]:
            raise InputError(f"predict_instances_big: block_size {b} along {a} is larger than the image "
                             f"({shape[a]} px); use predict_instances for an image this small")
        for b, o, c in ((b, o, c), tuple(big_compat.grid_divisible(g, v) for v in (b, o, c))):
            if not o + 2 * c < b:
                raise InputError(f"predict_instances_big: block_size {b} along {a} must exceed min_overlap + "
                                 f"2 * context = {o} + 2 * {c} = {o + 2 * c} (also once rounded up to the grid "
                                 f"{g}); give a larger block_size")


class StarDist2DHier(StarDist2D):
    """StarDist2D whose class head is trained with label sets on a class tree.

    A drop-in replacement for :class:`stardist.models.StarDist2D` (same constructor,
    ``train``, ``predict_instances``, ``optimize_thresholds``, model folder). Differences:

    * ``train`` accepts, per image, a :class:`~stardist_hier.LabelSet` and instance
      classes given as that set's label names or codes; one batch may mix datasets.
    * ``predict_instances`` decides classes from probabilities averaged over each
      instance's pixels and adds the probability of every tree node, the class at
      any label set, and optional abstention to an ancestor node.
    """

    def __init__(self, config=_DEFAULT_CONFIG, name=None, basedir=".", *, distribute=None):
        # None: config.hier_distribute; else a name or a tf.distribute.Strategy (not saved)
        self._distribute = distribute
        self.strategy = None
        if config is _DEFAULT_CONFIG:
            config = Config2DHier()
        if isinstance(config, Config2DHier) and not config.is_valid():
            raise InputError(f"invalid model config: {config.describe_invalid()}")
        self._loading_folder = config is None and basedir is not None and name is not None
        stated = True
        if self._loading_folder:
            stated = _check_model_folder(Path(basedir) / name, self._config_class).get(normalization.KEY) is not None
        super().__init__(config, name=name, basedir=basedir)
        self._loading_folder = False
        #: Whether the model's config states its input normalisation (False: a folder made before the key).
        self.normalization_stated = stated
        if not stated:
            import warnings

            self.config.hier_normalize = dict(normalization.LEGACY)
            warnings.warn(normalization.legacy_message(Path(basedir) / name / "config.json"),
                          normalization.LegacyNormalizationWarning, stacklevel=2)
        compat.check_stardist_version()
        self._record_weights_tree()

    # -------------------------------------------------------------- model folder
    def _find_and_load_weights(self, prefer="best"):
        """Load the newest weights file of the model folder (``*best*`` preferred).

        Raises
        ------
        ModelFolderError
            When loading a model folder (``config=None``): the folder holds no weights
            file, a weights file is truncated or invalid, or its class head does not
            match the tree in ``config.json``.
        """
        if self.basedir is None:
            return
        files = sorted((f for ext in ("*.h5", "*.hdf5") for f in self.logdir.glob(ext)),
                       key=lambda f: f.stat().st_mtime, reverse=True)
        if not files:
            if getattr(self, "_loading_folder", False):
                raise ModelFolderError(
                    f"model folder {self.logdir} has no weights file (*.h5): it was never trained or its "
                    f"weights were removed; predicting with it would use random weights")
            return super()._find_and_load_weights(prefer)
        preferred = [f for f in files if prefer in f.name]
        chosen = (preferred or files)[0]
        self._check_weights_tree(chosen)
        print(f"Loading network weights from '{chosen.name}'.")
        self.load_weights(chosen.name)

    def load_weights(self, name="weights_best.h5"):
        """Load weights from the model folder; a truncated, invalid or mismatched file raises
        :class:`~stardist_hier.errors.ModelFolderError` naming it."""
        if self.basedir is None:
            import warnings

            warnings.warn("load_weights: the model has no folder (basedir=None); nothing loaded")
            return
        path = self.logdir / name
        if not path.is_file():
            raise ModelFolderError(f"weights file {path} does not exist")
        try:
            import h5py

            with h5py.File(str(path), "r"):
                pass
        except Exception as e:  # h5py raises OSError subclasses with internal messages
            raise ModelFolderError(f"weights file {path} is truncated or not an HDF5 file ({e})") from None
        try:
            self.keras_model.load_weights(str(path))
        except Exception as e:
            head = self.config.n_classes
            raise ModelFolderError(
                f"weights file {path} does not fit the network built from {self.logdir / 'config.json'}"
                f"{'' if head is None else f' ({head} classes)'}: {' '.join(str(e).split())[:300]}") from None

    def _weights_tree_file(self):
        return None if self.basedir is None else self.logdir / WEIGHTS_TREE_FILE

    def _record_weights_tree(self):
        """Write ``hier_weights.json`` (the leaves the class head was trained on) whenever
        weights are saved into the model folder (also a folder given later, as the
        experiment runner does by setting ``basedir`` after validation)."""
        if self.tree is None or getattr(self.keras_model, "_hier_records_tree", False):
            return
        save = self.keras_model.save_weights
        model = self

        def save_weights(filepath, *args, **kwargs):
            out = save(filepath, *args, **kwargs)
            if model.basedir is not None and Path(filepath).resolve().parent == Path(model.logdir).resolve():
                model.write_weights_tree()
            return out

        self.keras_model.save_weights = save_weights
        self.keras_model._hier_records_tree = True

    def write_weights_tree(self):
        """Write ``hier_weights.json`` into the model folder: the class head's leaves and tree."""
        from ..io import atomic_write_text

        tree = self.tree
        if self.basedir is None or tree is None:
            return
        atomic_write_text(self._weights_tree_file(), json.dumps(
            {"leaves": list(tree.leaves), "leaves_sha256": _leaves_fingerprint(tree.leaves),
             "tree": tree.to_dict()}, indent=2))

    def _check_weights_tree(self, weights_file):
        """Refuse weights whose recorded leaves differ from the tree in ``config.json``."""
        f = self._weights_tree_file()
        if f is None or not f.exists():
            if f is not None and self.tree is not None and getattr(self, "_loading_folder", False) \
                    and self._folder_states_tree():
                import warnings

                warnings.warn(f"model folder {self.logdir} has no {WEIGHTS_TREE_FILE} (made by an older version "
                              f"or by hand): the class names in its config.json cannot be checked against the "
                              f"weights; if its leaves were renamed or reordered, the classes are wrong",
                              MissingWeightsTreeWarning, stacklevel=4)
            return
        try:
            rec = json.loads(f.read_text())
            leaves = tuple(rec["leaves"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise ModelFolderError(f"{f} is truncated or invalid ({type(e).__name__}: {e})") from None
        ours = () if self.tree is None else tuple(self.tree.leaves)
        if leaves == ours:
            return
        config = self.logdir / "config.json"
        if len(leaves) == len(ours):
            diff = [f"{a!r} -> {b!r}" for a, b in zip(leaves, ours) if a != b]
            raise ModelFolderError(
                f"{config}: the tree's leaves were renamed or reordered after training "
                f"({', '.join(diff[:5])}{' ...' if len(diff) > 5 else ''}); the class head of "
                f"{weights_file.name} was trained on the leaves recorded in {f}")
        raise ModelFolderError(
            f"{config}: the tree has {len(ours)} leaves but the class head of {weights_file.name} was trained "
            f"on {len(leaves)} (recorded in {f}); use StarDist2DHier.from_stardist to start a new class head")

    def _folder_states_tree(self) -> bool:
        """Whether the folder's ``config.json`` names a class tree (a stardist-hier model, not a plain StarDist one)."""
        try:
            return json.loads((self.logdir / "config.json").read_text(encoding="utf-8")).get("hier_tree") is not None
        except (OSError, ValueError, AttributeError, RecursionError):
            return False

    def _predict_setup(self, img, axes, *args, **kwargs):
        if img is not getattr(self, "_checked_image", None):
            self.check_image(img, axes=axes)
        setup = super()._predict_setup(img, axes, *args, **kwargs)
        if len(self.class_heads) <= 1:
            return setup
        # K class heads side by side: StarDist sees the chosen head's C channels only
        k = getattr(self, "_predict_head", None)
        k = len(self.class_heads) - 1 if k is None else k
        C = self.config.n_classes + 1
        predict_direct = setup[10]

        def predict_one_head(x):
            ys = predict_direct(x)
            return tuple(ys[:2]) + (ys[2][..., k * C:(k + 1) * C],) + tuple(ys[3:])

        return tuple(setup[:10]) + (predict_one_head,) + tuple(setup[11:])

    @contextlib.contextmanager
    def _using_head(self, head, label_sets):
        saved = getattr(self, "_predict_head", None)
        nested = head is None and label_sets is None and saved is not None  # blocks of predict_instances_big
        self._predict_head = saved if nested else self.head_index(head, label_sets=label_sets)
        try:
            yield self._predict_head
        finally:
            self._predict_head = saved

    def check_image(self, img, *, axes=None):
        """Raise :class:`~stardist_hier.errors.InputError` for an image the model cannot predict on.

        Parameters
        ----------
        img : ndarray
            The image as given to ``predict`` / ``predict_instances``.
        axes : str, optional
            Its axes (default: the model's, without ``C`` for a one-channel model).
        """
        cin = self.config.n_channel_in
        want = f"{cin} channel{'s' if cin != 1 else ''}"
        shape = tuple(getattr(img, "shape", ()))
        try:
            norm = compat.normalize_axes(self, img, axes)
        except (ValueError, AssertionError) as e:
            raise InputError(f"image of shape {shape} does not fit axes {axes or self.config.axes!r}: the model "
                             f"expects {want} (axes {self.config.axes!r}, e.g. shape (H, W"
                             f"{', %d' % cin if cin > 1 else ''})) ({e})") from None
        got = shape[norm.index("C")] if "C" in norm else 1
        if got != cin:
            raise InputError(f"image of shape {shape} (axes {norm!r}) has {got} channel{'s' if got != 1 else ''} "
                             f"but the model expects {want} (n_channel_in={cin})")
        dtype = getattr(img, "dtype", None)
        if dtype is not None and np.issubdtype(dtype, np.inexact):
            finite = np.isfinite(img)
            if not finite.all():
                raise InputError(f"image of shape {shape} contains {int(finite.size - finite.sum())} NaN or "
                                 f"infinite values; replace them (e.g. np.nan_to_num) before predicting")

    @property
    def _config_class(self):
        return Config2DHier

    @classmethod
    def from_stardist(cls, folder, *, tree=None, name=None, basedir=None, **config):
        """A new model on ``tree`` with every layer but the class head copied from a StarDist2D
        model folder; see :func:`stardist_hier.models.transfer.from_stardist`."""
        return transfer.from_stardist(cls, Config2DHier, folder, tree=tree, name=name, basedir=basedir, **config)

    @classmethod
    def from_pretrained(cls, name_or_alias=None, *, cache_dir=None):
        """A registered pretrained model, loaded read-only (``basedir=None``), as StarDist's.

        Parameters
        ----------
        name_or_alias : str, optional
            Registered name (``stardist-hier models list``). ``None`` prints the registered
            models and returns ``None``, like ``StarDist2D.from_pretrained()``.
        cache_dir : path, optional
            Where a model registered by URL is downloaded (default ``$STARDIST_HIER_MODEL_CACHE``,
            else Keras's cache folder); see :mod:`stardist_hier.models.pretrained`.

        Raises
        ------
        InputError
            Unknown name (the message offers the closest registered one).
        ModelFolderError
            A shipped folder missing from the installation, or a download that fails or
            whose SHA-256 differs from the registered one (nothing is kept).
        """
        from . import pretrained

        if name_or_alias is None:
            print(pretrained.describe_models(cache_dir=cache_dir))
            return None
        return pretrained.get_model_instance(cls, name_or_alias, cache_dir=cache_dir)

    @property
    def tree(self) -> ClassTree | None:
        """The model's class tree (``None`` for a segmentation-only model)."""
        cached = getattr(self, "_tree_cache", None)
        if cached is None or cached[0] is not self.config.hier_tree:
            cached = (self.config.hier_tree, self.config.tree)
            self._tree_cache = cached
        return cached[1]

    @property
    def is_multiclass(self) -> bool:
        """Whether the model has a class head (``n_classes`` set), as StarDist's ``_is_multiclass()``."""
        return compat.is_multiclass(self)

    @property
    def is_prepared(self) -> bool:
        """Whether :meth:`prepare_for_training` has compiled the model (StarDist's ``_model_prepared``)."""
        return compat.is_prepared(self)

    def ensure_prepared(self, optimizer=None) -> None:
        """Call :meth:`prepare_for_training` unless the model is already prepared."""
        if not self.is_prepared:
            self.prepare_for_training(optimizer)

    def set_logdir(self) -> None:
        """Make ``basedir / name`` the model folder (``self.logdir``): created, ``config.json`` written.

        StarDist's ``_set_logdir``; call it after changing ``basedir`` (it warns when the
        folder exists already).
        """
        compat.set_logdir(self)

    @property
    def class_heads(self) -> tuple:
        """Names of the class heads (label sets); ``()`` for one shared head."""
        heads = getattr(self.config, "hier_class_heads", None)
        return tuple(heads) if heads else ()

    def head_index(self, head=None, *, label_sets=None) -> int | None:
        """Index of the class head to predict with (``None``: the model has one shared head).

        ``head``: a head name (label-set name) or a :class:`LabelSet`. Default: the head
        named like ``label_sets`` when that is one label set (or a list whose label sets
        name exactly one head), else the last head.
        """
        heads = self.class_heads
        if len(heads) <= 1:
            if head is not None and heads and _name(head) != heads[0]:
                raise InputError(f"head={_name(head)!r}: the model's only class head is {heads[0]!r}")
            return None
        if head is None and label_sets is not None:
            sets = [label_sets] if isinstance(label_sets, LabelSet) else list(label_sets)
            named = [ls.name for ls in sets if isinstance(ls, LabelSet) and ls.name in heads]
            if len(set(named)) == 1:
                head = named[0]
        if head is None:
            return len(heads) - 1
        if _name(head) not in heads:
            raise InputError(f"head={_name(head)!r}: not a class head of this model; heads (hier_class_heads): "
                             f"{list(heads)}{did_you_mean(_name(head), heads)}")
        return heads.index(_name(head))

    def set_trunk_trainable(self, trainable: bool) -> None:
        """Freeze (``False``) or unfreeze (``True``) every layer but the last class layer(s).

        Used by episodes with ``freeze_trunk`` (a warm-up of a new class head); the
        optimizer keeps one state slot per variable either way (the model is prepared for
        training first, so that its optimizer is built on every variable).
        """
        if not trainable:
            self.ensure_prepared()
        compat.set_trunk_trainable(self.keras_model, trainable)

    def reset_class_head(self, seed=None):
        """Re-initialise the last class layer(s) (kernel and bias) with their initialisers.

        ``seed``: an integer (or sequence of integers) for the new weights; ``None``: unseeded.
        """
        from csbdeep.utils.tf import keras_import

        initializers = keras_import("initializers")
        key = None if seed is None else np.random.SeedSequence(seed).generate_state(1)[0]
        for i, layer in enumerate(compat.class_head_layers(self.keras_model)):
            for var, init in ((layer.kernel, layer.kernel_initializer), (layer.bias, layer.bias_initializer)):
                init = initializers.get(init)
                cfg = init.get_config()
                if "seed" in cfg:
                    cfg["seed"] = None if key is None else int((int(key) + 7919 * i + (var is layer.bias)) % 2**31)
                    init = type(init).from_config(cfg)
                var.assign(np.asarray(init(tuple(var.shape), dtype=var.dtype)))

    # ------------------------------------------------------------------ training
    def _build(self):
        # the Keras model is built inside the tf.distribute strategy's scope (if any);
        # the config is known here also when it was loaded from the model folder
        spec = self._distribute if self._distribute is not None else getattr(self.config, "hier_distribute", None)
        self.strategy = distribute.resolve(spec)
        with distribute.strategy_scope(self.strategy):
            keras_model = super()._build()
            if len(self.class_heads) > 1:
                keras_model = compat.with_class_heads(keras_model, len(self.class_heads))
        # StarDist predicts batches of one image: on one device (training stays distributed)
        return compat.predict_on_one_device(keras_model)

    def prepare_for_training(self, optimizer=None):
        """StarDist's preparation, with the hierarchical class loss (see ``Config2DHier``).

        Under a ``tf.distribute`` strategy (``self.strategy``) the model is compiled in
        its scope, with losses that reduce over the global batch; an ``optimizer``
        given here must have been created in ``self.strategy.scope()``.
        """
        strategy = self.strategy
        distribute.check_optimizer(optimizer, strategy)
        wrap = None
        if strategy is not None:
            wrap = lambda losses: distribute.global_batch_losses(  # noqa: E731
                losses, n_rays=self.config.n_rays, reg_weight=self.config.train_background_reg)
        with distribute.strategy_scope(strategy):
            if not self.is_multiclass:
                if wrap is None:
                    return super().prepare_for_training(optimizer)
                compat.compile_with_class_loss(self, None, optimizer, wrap_losses=wrap)
                self._build_optimizer()
                compat.mark_prepared(self)
                return
            loss = build_class_loss(self.config.train_class_loss, self.config.train_class_loss_options)
            if len(self.class_heads) > 1:
                from ..losses.heads import per_head

                loss = per_head(loss, self.config.n_classes + 1, len(self.class_heads))
            compat.compile_with_class_loss(self, loss, optimizer, wrap_losses=wrap)
            if strategy is not None:
                # build the optimizer's (mirrored) variables here, in the scope: code that
                # builds it later outside the scope (a checkpoint restore) would fail
                self._build_optimizer()
        compat.mark_prepared(self)

    def _build_optimizer(self):
        opt = self.keras_model.optimizer
        if opt is not None and not opt.built:
            opt.build(self.keras_model.trainable_variables)

    def train(self, X, Y, validation_data, classes="auto", augmenter=None, seed=None, epochs=None,
              steps_per_epoch=None, workers=1, *, label_sets=None, callbacks=(), sampler=None, verbose=1,
              input_workers=1):
        """Train on images whose nuclei are labelled with (possibly different) label sets.

        Parameters
        ----------
        X, Y : sequences of arrays
            Images ``(H, W)`` or ``(H, W, C)`` and instance label images ``(H, W)``
            (0 background, negative values: ignore regions).
        validation_data : tuple
            ``(X, Y)``, ``(X, Y, classes)`` or ``(X, Y, classes, label_sets)``.
        classes : sequence of dict or "auto"
            Per image ``{instance id: label}``, the label a name or integer code of the
            image's label set, ``None`` to ignore the nucleus. ``"auto"``: every nucleus
            gets the root label (segmentation-only data).
        label_sets : LabelSet or sequence of LabelSet, optional
            The label set of every image (or one for all). Default: the identity cut,
            whose codes are the class indices 1..n_classes (StarDist's convention).
        augmenter, seed, epochs, steps_per_epoch, workers
            As in :meth:`stardist.models.StarDist2D.train`.
        callbacks : sequence of Keras callbacks
            Added to StarDist's own callbacks.
        sampler : callable, optional
            ``sampler(i) -> image indices of batch i`` (see :mod:`stardist_hier.training`).
        input_workers : int
            Threads building training batches ahead of the network (default 1: StarDist's
            single input thread). With a sampler giving per-batch seeds (a seeded
            :class:`~stardist_hier.training.DatasetMixer`) the batches are identical for
            any number (:mod:`stardist_hier.models.input_pipeline`). A model without a
            class head trains through StarDist's own ``train`` (``workers``) instead.

        Raises
        ------
        ValueError, LabelSetError
            Before any training: inconsistent lengths or shapes, NaN or infinite
            images, non-integer label images, labels missing from the label set.
        """
        distribute.check_batch_size(self.config.train_batch_size, self.strategy)
        input_workers = check_input_workers(input_workers)
        for what, v, default in (("epochs", epochs, self.config.train_epochs),
                                 ("steps_per_epoch", steps_per_epoch, self.config.train_steps_per_epoch)):
            v = default if v is None else v
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise InputError(f"{what}={shorten(v)}: must be a positive whole number")
        if not self.is_multiclass:
            return super().train(X, Y, validation_data, classes=classes, augmenter=augmenter, seed=seed,
                                 epochs=epochs, steps_per_epoch=steps_per_epoch, workers=workers)
        if seed is not None:
            np.random.seed(seed)
        epochs = self.config.train_epochs if epochs is None else epochs
        steps_per_epoch = self.config.train_steps_per_epoch if steps_per_epoch is None else steps_per_epoch

        if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3, 4):
            raise ValueError("validation_data must be (X, Y), (X, Y, classes) or (X, Y, classes, label_sets)")
        vX, vY = validation_data[0], validation_data[1]
        vclasses = validation_data[2] if len(validation_data) > 2 else "auto"
        vsets = validation_data[3] if len(validation_data) > 3 else label_sets
        cuts = self.encode(X, Y, classes, label_sets, what="training")
        vcuts = self.encode(vX, vY, vclasses, vsets, what="validation")
        self._check_patch_size()

        if not self.is_prepared:
            self.prepare_for_training()
        kw = compat.data_kwargs(self.config, workers)
        n_take = self.config.train_n_val_patches if self.config.train_n_val_patches is not None else len(vX)
        data_val = compat.StarDistData2DHier(vX, vY, vcuts, batch_size=n_take, length=1, **kw)[0]
        self.data_train = compat.StarDistData2DHier(X, Y, cuts, sampler=sampler,
                                                    batch_size=self.config.train_batch_size,
                                                    augmenter=augmenter, length=epochs * steps_per_epoch, **kw)
        return compat.fit(self, self.data_train, data_val, epochs=epochs, steps_per_epoch=steps_per_epoch,
                          callbacks=callbacks, verbose=verbose, input_workers=input_workers)

    def encode(self, X, Y, classes, label_sets, *, what="training", heads=True):
        """Validate images, label images and classes; return one cut per image.

        See :meth:`train` for the arguments. Raises before any training starts.
        ``heads=False``: do not route images to class heads (for data that is only
        scored, e.g. test splits at a label set no head has).
        """
        tree = self.tree
        n = len(X)
        if n == 0:
            raise ValueError(f"{what} data is empty")
        if len(Y) != n:
            raise ValueError(f"{what} data: {n} images but {len(Y)} label images")
        if isinstance(label_sets, LabelSet) or label_sets is None:
            sets = [label_sets] * n
        else:
            sets = list(label_sets)
            if len(sets) != n:
                raise ValueError(f"{what} data: {n} images but {len(sets)} label sets")
        if isinstance(classes, str):
            if classes != "auto":
                raise ValueError(f"classes={classes!r}: only 'auto' is supported as a string")
            classes = [None] * n
        elif len(classes) != n:
            raise ValueError(f"{what} data: {n} images but {len(classes)} class dicts")
        identity = LabelSet.leaves_of(tree, name="leaves")
        root = LabelSet.root(tree)
        cin = self.config.n_channel_in
        leaf_w = np.asarray(self.config.train_class_weights, np.float32)
        heads = self.class_heads if heads and len(self.class_heads) > 1 else None
        cuts = []
        for i in range(n):
            where = f"{what} image {i}"
            x, y = np.asarray(X[i]), np.asarray(Y[i])
            if y.ndim != 2:
                raise ValueError(f"{where}: label image must be 2D (H, W), got shape {y.shape}")
            if not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"{where}: label image must have an integer dtype, got {y.dtype}")
            if x.shape[:2] != y.shape or x.ndim not in (2, 3) or (x.ndim == 2 and cin != 1) or \
                    (x.ndim == 3 and x.shape[-1] != cin):
                raise ValueError(f"{where}: image shape {x.shape} does not fit label shape {y.shape} "
                                 f"with n_channel_in={cin}")
            if not np.all(np.isfinite(x)):
                raise ValueError(f"{where}: image contains NaN or infinite values")
            ls = sets[i]
            cls = classes[i]
            if cls is None:
                ls, cls = root, {int(j): tree.root for j in np.unique(y[y > 0])}
            elif ls is None:
                ls = identity
            if not isinstance(ls, LabelSet):
                raise TypeError(f"{where}: label set must be a LabelSet, got {type(ls).__name__}")
            if ls.tree != tree:
                raise LabelSetError(f"{where}: label set {ls.name!r} is defined on another class tree")
            cuts.append(encode_image(y, cls, ls, leaf_weights=leaf_w, where=where, heads=heads))
        return cuts

    def _check_patch_size(self):
        axes = self.config.axes.replace("C", "")
        b = self.config.train_completion_crop if self.config.train_shape_completion else 0
        for p, d, a in zip(self.config.train_patch_size, big_compat.axes_div_by(self, axes), axes):
            if (p - 2 * b) % d != 0:
                raise ValueError(f"'train_patch_size' must be divisible by {d} along axis '{a}'")

    # ---------------------------------------------------------------- prediction
    def _instances_from_prediction(self, img_shape, prob, dist, points=None, prob_class=None, prob_thresh=None,
                                   nms_thresh=None, overlap_label=None, return_labels=True, scale=None,
                                   **nms_kwargs):
        aggregate = prob_class is not None and self.config.predict_class_aggregate == "mean"
        labels, res = super()._instances_from_prediction(
            img_shape, prob, dist, points=points, prob_class=prob_class, prob_thresh=prob_thresh,
            nms_thresh=nms_thresh, overlap_label=overlap_label, return_labels=return_labels or aggregate,
            scale=scale, **nms_kwargs)
        if prob_class is None:
            return labels, res
        center = np.asarray(res["class_prob"])
        if aggregate:
            if points is None:  # dense: every grid pixel
                grid = np.indices(prob_class.shape[:2]).reshape(2, -1).T
                coords = grid * np.asarray(self.config.grid)
                values = np.asarray(prob_class).reshape(-1, prob_class.shape[-1])
            else:  # sparse: the candidate pixels above prob_thresh
                coords, values = np.asarray(points), np.asarray(prob_class)
            if scale is not None:
                coords = coords / np.array([scale["Y"], scale["X"]])
            coords = np.round(coords).astype(np.int64)
            res["class_prob"] = classify.aggregate_instance_probabilities(
                labels, coords, values, len(center), fallback=center)
        self._add_tree_outputs(res)
        return (labels if return_labels else None), res

    def _add_tree_outputs(self, res):
        tree = self.tree
        p = np.asarray(res["class_prob"])
        res["class_id"], res["class_name"] = classify.leaf_decisions(p, tree)
        res["node_prob"] = tree.node_probabilities(p) if len(p) else np.zeros((0, len(tree.nodes) + 1), np.float32)
        res["node_names"] = tree.node_names()

    def predict_instances(self, img, *args, label_sets=None, abstain=None, head=None, normalize=False, **kwargs):
        """StarDist's ``predict_instances``, plus class decisions on the tree.

        Parameters
        ----------
        img, *args, **kwargs
            As in :meth:`stardist.models.StarDist2D.predict_instances`: by default ``img``
            must be normalised already (StarDist's contract), e.g. with :meth:`normalize`.
        label_sets : LabelSet or sequence of LabelSet, optional
            Also decide every instance's label at these label sets (cuts), by summed
            leaf probabilities: ``res["labels"][name]`` (names; ``"outside label set"``
            when the leaves no label covers hold more than any label),
            ``res["label_probs"][name]`` (background + one column per label) and
            ``res["label_outside"][name]`` (the probability outside the label set).
        abstain : float, optional
            Threshold in (0, 1]: ``res["class_node"]`` holds the deepest node on the
            most probable leaf's path whose probability (given a nucleus) reaches it,
            and ``res["labels_abstained"][name]`` the label at every label set, or
            ``"uncertain"`` where its probability given a nucleus is below it.
        head : str or LabelSet, optional
            For a model with one class head per dataset (``hier_class_heads``): the head
            to predict with. Default: the head of the label set in ``label_sets`` (when
            exactly one head is named there), else the last head. ``res["class_head"]``
            names it.
        normalize : bool or Levels, optional
            ``True``: apply the model's own input normalisation (``hier_normalize`` in its
            config, :attr:`normalization`) to the raw image ``img`` first, with parameters
            fitted on the whole image: the same as ``predict_instances(model.normalize(img))``.
            Fitted :class:`~stardist_hier.normalization.Levels` (e.g. a slide's,
            ``plan.levels`` of :func:`stardist_hier.predict.plan_prediction`): apply those.
            Default ``False``: ``img`` is used as given.

        Returns
        -------
        labels, res
            As StarDist, with ``res`` also holding ``class_prob`` (mean over the
            instance's pixels), ``class_id`` and ``class_name`` (most probable leaf),
            ``node_prob`` and ``node_names`` (every tree node; column 0 background).
        """
        self.check_image(img, axes=args[0] if args else kwargs.get("axes"))
        _check_predict_arguments(img, args, kwargs, abstain=abstain)
        args, kwargs = self._with_normalizer(img, normalize, args, kwargs)
        self._checked_image = img  # _predict_setup need not scan it again
        try:
            with self._using_head(head, label_sets) as k:
                out = super().predict_instances(img, *args, **kwargs)
        finally:
            self._checked_image = None
        if not self.is_multiclass:
            return out
        labels, res = out[0] if kwargs.get("return_predict") else out
        if k is not None:
            res["class_head"] = self.class_heads[k]
        self.decide(res, label_sets=label_sets, abstain=abstain)
        return out

    def predict_instances_big(self, img, axes, block_size, min_overlap, *args, label_sets=None, abstain=None,
                              normalize=False, **kwargs):
        """StarDist's block-wise prediction for large images, with the tree outputs of
        :meth:`predict_instances` recomputed over the merged instances.

        ``normalize=True`` fits the model's normalisation once on the whole ``img`` (which
        reads all of it) and applies it to every block; fitted ``Levels`` are applied as
        they are (see :meth:`predict_instances`). For slides use :mod:`stardist_hier.predict`,
        which fits on a low-resolution level.
        """
        _check_predict_arguments(img, (), {k: kwargs[k] for k in ("prob_thresh", "nms_thresh", "n_tiles")
                                           if k in kwargs}, abstain=abstain)
        _check_big_blocks(self, img, axes, block_size, min_overlap, args[0] if args else kwargs.get("context"))
        if normalize is not False and normalize is not None:
            _, kwargs = self._with_normalizer(img, normalize, (axes,), kwargs)
        with self._using_head(kwargs.pop("head", None), label_sets) as k:
            labels, res = super().predict_instances_big(img, axes, block_size, min_overlap, *args, **kwargs)
        if k is not None:
            res["class_head"] = self.class_heads[k]
        if self.is_multiclass:
            self._add_tree_outputs(res)
            self.decide(res, label_sets=label_sets, abstain=abstain)
        return labels, res

    # ------------------------------------------------------------- normalisation
    @property
    def normalization(self) -> normalization.Normalization:
        """The model's input normalisation (``hier_normalize`` in ``config.json``).

        See :mod:`stardist_hier.normalization`; apply it with :meth:`normalize` or
        ``predict_instances(img, normalize=True)``.
        """
        return normalization.Normalization.from_config(getattr(self.config, normalization.KEY, None))

    def _channels_last(self, img, axes):
        """``(view of img with channels last, function putting the channels back)``."""
        norm = compat.normalize_axes(self, img, axes)
        if "C" not in norm or norm.index("C") == len(norm) - 1:
            return img, lambda y: y
        c = norm.index("C")
        return np.moveaxis(img, c, -1), lambda y: np.moveaxis(y, -1, c)

    def normalization_levels(self, img, *, axes=None) -> normalization.Levels:
        """The model's normalisation fitted on a raw image (e.g. its percentiles per channel).

        Parameters
        ----------
        img : array_like
            The raw image (all of it is read).
        axes : str, optional
            Its axes (default: the model's).
        """
        self.check_image(img, axes=axes)
        x, _ = self._channels_last(np.asarray(img), axes)
        return self.normalization.fit(x)

    def normalize(self, img, *, axes=None, levels=None) -> np.ndarray:
        """A raw image normalised as the model was trained (float32, same axes).

        Parameters
        ----------
        img : array_like
            The raw image, e.g. uint8 RGB ``(H, W, 3)``.
        axes : str, optional
            Its axes (default: the model's).
        levels : Levels, optional
            Fitted parameters to apply (default: fitted on ``img``, see
            :meth:`normalization_levels`).

        Returns
        -------
        ndarray of float32
            What ``predict_instances(img, normalize=True)`` feeds the network.
        """
        levels = self.normalization_levels(img, axes=axes) if levels is None else levels
        x, back = self._channels_last(np.asarray(img), axes)
        return back(levels.apply(x))

    def _with_normalizer(self, img, normalize, args, kwargs):
        """``(args, kwargs)`` of StarDist's predict with ``normalizer`` set for ``normalize``."""
        if normalize is False or normalize is None:
            return args, kwargs
        if not (normalize is True or isinstance(normalize, normalization.Levels)):
            raise InputError(f"normalize={normalize!r:.60}: give True (the model's normalisation, fitted on the "
                             f"image) or fitted stardist_hier.normalization.Levels")
        given = kwargs.get("normalizer") if len(args) < 2 else args[1]
        if given is not None:
            raise InputError("normalize and normalizer: give one of them (normalize=True applies the model's own "
                             "normalisation)")
        axes = args[0] if args else kwargs.get("axes")
        levels = self.normalization_levels(img, axes=axes) if normalize is True else normalize
        kwargs = dict(kwargs)
        if len(args) >= 2:
            args = (args[0], compat.FixedNormalizer(levels)) + tuple(args[2:])
        else:
            kwargs["normalizer"] = compat.FixedNormalizer(levels)
        return args, kwargs

    def decide(self, res, *, label_sets=None, abstain=None):
        """Add label-set decisions and abstention to a ``predict_instances`` result dict."""
        if label_sets is not None:
            sets = [label_sets] if isinstance(label_sets, LabelSet) else list(label_sets)
            res["labels"], res["label_probs"], res["label_outside"] = {}, {}, {}
            if abstain is not None:
                res["labels_abstained"] = {}
            for ls in sets:
                if not isinstance(ls, LabelSet) or ls.tree != self.tree:
                    raise LabelSetError(f"label_sets: {ls!r} is not a LabelSet on the model's tree")
                d = classify.label_set_decisions(res["class_prob"], ls, abstain=abstain)
                res["labels"][ls.name], res["label_probs"][ls.name] = d.names, d.label_prob
                res["label_outside"][ls.name] = d.outside
                if abstain is not None:
                    res["labels_abstained"][ls.name] = d.abstained
        if abstain is not None:
            res["class_node"] = classify.abstain_to_ancestor(res["class_prob"], self.tree, abstain)
        return res


def load_model(folder, *, quiet: bool = False) -> StarDist2DHier:
    """Open a model folder as :class:`StarDist2DHier`: the package's one model loader.

    Parameters
    ----------
    folder : path
        The model folder (``config.json`` and weights).
    quiet : bool
        Silence StarDist's informational prints ("Loading network weights ...").

    Raises
    ------
    ModelFolderError
        The folder, its ``config.json`` or its weights are missing or invalid.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist or is not a folder")
    if not quiet:
        return StarDist2DHier(None, name=folder.name, basedir=str(folder.parent))
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return StarDist2DHier(None, name=folder.name, basedir=str(folder.parent))
