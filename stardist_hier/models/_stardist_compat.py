"""Every coupling to StarDist's internals lives here (stardist 0.9.2).

StarDist builds its training data generator and its losses inside ``train`` and
``prepare_for_training`` without hooks. This module provides the three seams that
stardist-hier needs, each tested in ``tests/models/test_stardist_seams.py``:

1. :class:`StarDistData2DHier`: StarDist's own ``StarDistData2D`` run without classes,
   with its ``batch`` hook (index choice: where the dataset switch happens) and its
   augmenter (to see the final label patch), plus our class target.
2. :func:`compile_with_class_loss`: ``prepare_for_training`` with the third loss (the
   class head's) replaced, by intercepting the one ``compile`` call it makes.
3. :func:`fit`: the body of ``StarDist2D.train`` after data preparation, using our
   generator.
4. :func:`with_class_heads`: StarDist's network with its ``prob_class`` layer replaced
   by one softmax head per dataset label set.
5. :class:`FixedNormalizer`: a csbdeep ``Normalizer`` (the ``normalizer=`` of StarDist's
   ``predict``/``predict_instances``) applying fitted normalisation levels, so that
   ``predict_instances_big`` normalises every block with the levels of the whole image.
6. Private state read or set for the rest of the package, behind ``StarDist2DHier``'s
   public members: :func:`is_multiclass`, :func:`is_prepared` / :func:`mark_prepared`,
   :func:`set_logdir`, :func:`normalize_axes`, and :func:`predict_on_one_device` (Keras's
   ``_distribute_strategy`` swapped around ``predict``).

``tests/models/test_seams.py`` fails on a StarDist, csbdeep or Keras private name used
outside this module and ``_stardist_big_compat.py``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from contextlib import contextmanager

import numpy as np
import stardist
from csbdeep.data import Normalizer
from csbdeep.utils.tf import CARETensorBoardImage, IS_KERAS_3_PLUS
from stardist.models.base import StarDistBase, _tf_version_at_least
from stardist.models.model2d import StarDistData2D
from stardist.models.model2d import clear_border, edt_prob, sample_patches, star_dist

from ..targets import class_target

__all__ = ["SUPPORTED_STARDIST", "StarDistData2DHier", "compile_with_class_loss", "fit", "seeded_global_numpy",
           "with_class_heads", "class_head_layers", "set_trunk_trainable", "CLASS_LAYER", "FixedNormalizer", "predict_on_one_device",
           "is_multiclass", "is_prepared", "mark_prepared", "set_logdir",
           "normalize_axes"]

#: Name of StarDist's class-head layer (a 1x1 convolution with a softmax).
CLASS_LAYER = "prob_class"

#: Held while NumPy's global generator is temporarily re-seeded (:func:`seeded_global_numpy`).
NUMPY_GLOBAL_LOCK = threading.RLock()


@contextmanager
def seeded_global_numpy(entropy):
    """Run a block with NumPy's *global* generator seeded from ``entropy``, then put its state back.

    StarDist draws patch positions (``sample_patches``) and the foreground-only choice
    (``get_valid_inds``) with ``np.random``; this makes those draws a pure function of
    ``entropy`` (e.g. ``[seed, global batch index]``). The swap is serialised by
    :data:`NUMPY_GLOBAL_LOCK`; other users of the global generator during training
    should take that lock too.
    """
    key = np.random.SeedSequence(entropy).generate_state(4)
    with NUMPY_GLOBAL_LOCK:
        saved = np.random.get_state()
        np.random.seed(key)
        try:
            yield
        finally:
            np.random.set_state(saved)

@functools.lru_cache(maxsize=1)
def _stardist_openmp():
    """The OpenMP runtime StarDist's C extension uses (its wheel vendors its own ``libgomp``),
    as a :class:`ctypes.CDLL`; ``None`` where it cannot be found (then nothing is changed)."""
    import ctypes
    import os

    import stardist.lib.stardist2d  # noqa: F401 - loads the runtime

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "gomp" in line}
    except OSError:
        return None
    # StarDist's own vendored copy first (another wheel may load a libgomp of its own)
    for path in sorted(paths, key=lambda p: ("stardist" not in p, p)):
        if os.path.basename(path).startswith("libgomp") and os.path.isfile(path):
            try:
                lib = ctypes.CDLL(path)
                lib.omp_get_max_threads.restype = ctypes.c_int
                return lib
            except (OSError, AttributeError):
                continue
    return None


@contextmanager
def stardist_openmp_threads(n: int):
    """Run a block with StarDist's OpenMP regions (``star_dist``, the NMS) on ``n`` threads, *in this thread only*.

    ``omp_set_num_threads`` sets the calling thread's own setting; it is put back at
    the end. On a busy machine StarDist's default (all cores) makes ``star_dist`` of a
    128x128 patch 10 to 35 times slower than one thread (measured: 10.6 to 23.8 ms
    against 0.66 to 1.6 ms at load average 7 on 2 cores), with identical results; the
    training input builds batches in parallel threads instead.
    """
    lib = _stardist_openmp()
    if lib is None:
        yield
        return
    old = int(lib.omp_get_max_threads())
    lib.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        lib.omp_set_num_threads(old)


#: StarDist versions whose internals this module was written against and tested with.
SUPPORTED_STARDIST = ("0.9.2",)


def check_stardist_version():
    if stardist.__version__ not in SUPPORTED_STARDIST:
        raise ImportError(
            f"stardist-hier supports stardist {', '.join(SUPPORTED_STARDIST)}, found {stardist.__version__}; "
            f"install the supported version (pip install 'stardist=={SUPPORTED_STARDIST[-1]}')")


class StarDistData2DHier(StarDistData2D):
    """StarDist's 2D training data with the hierarchical class target.

    Parameters
    ----------
    X, Y : sequences of arrays
        Images and instance label images (negative: ignore regions).
    cuts : sequence of :class:`~stardist_hier.targets.ImageCut`
        One per image.
    sampler : callable, optional
        ``sampler(i) -> indices`` of the images of batch ``i``; default StarDist's rolling
        permutation. The dataset-switching training schedule plugs in here. When the
        sampler also has a method ``batch_seed(i)`` returning seed entropy (not ``None``),
        batch ``i``'s draws from NumPy's global generator (StarDist's patch positions and
        foreground choice) are made with it (:func:`seeded_global_numpy`): a batch's
        patches then depend only on that entropy, not on the generator's history, which
        is what makes a resumed run draw the same patches as an uninterrupted one.
    **kwargs
        Passed to ``StarDistData2D`` (``n_classes`` and ``classes`` are not accepted).
    """

    def __init__(self, X, Y, cuts, *, sampler=None, **kwargs):
        for k in ("n_classes", "classes"):
            kwargs.pop(k, None)
        super().__init__(X, Y, n_classes=None, classes=None, **kwargs)
        if len(cuts) != len(X):
            raise ValueError(f"got {len(cuts)} cuts for {len(X)} images")
        self.cuts = list(cuts)
        self.sampler = sampler
        self._local = threading.local()
        user_augmenter = self.augmenter
        self.user_augmenter = user_augmenter

        def _capturing_augmenter(x, y):
            x, y = user_augmenter(x, y)
            self._local.patches.append(y)
            return x, y

        self.augmenter = _capturing_augmenter

    def batch(self, i):
        pre = getattr(self._local, "pre", None)
        if pre is not None and pre[0] == i:
            idx, self._local.pre = pre[1], None
        else:
            idx = super().batch(i) if self.sampler is None else np.asarray(self.sampler(i))
        self._local.idx = idx
        return idx

    def batch_entropy(self, i):
        """Seed entropy of batch ``i`` from the sampler's ``batch_seed`` (``None`` without one)."""
        batch_seed = getattr(self.sampler, "batch_seed", None)
        return None if batch_seed is None else batch_seed(i)

    def __getitem__(self, i):
        entropy = self.batch_entropy(i)
        if entropy is not None:
            # the sampler may wait at an epoch boundary: ask it before taking any lock
            return self.make_batch(self.batch(i), entropy)
        self._local.patches = []
        inputs, (prob, dist) = super().__getitem__(i)
        idx, patches = self._local.idx, self._local.patches
        sub = self.ss_grid[1:3]
        cls = np.stack([class_target(y[self.b][sub], self.cuts[k]) for y, k in zip(patches, idx)])
        return inputs, type(inputs)((prob, dist, cls))

    def make_batch(self, idx, entropy):
        """The batch of images ``idx``, a pure function of ``(idx, entropy)`` and the data.

        StarDist 0.9.2's ``StarDistData2D.__getitem__`` split in two: the patch positions
        (StarDist draws them from NumPy's global generator) are drawn under
        :func:`seeded_global_numpy` (serialised, cheap); augmentation, StarDist's targets
        (``edt_prob``, ``star_dist``) and the class target run outside the lock, so several
        threads can build batches at once. An augmenter with a ``for_batch(entropy, idx)``
        method (:class:`~stardist_hier.training.Augmenter`) gets a generator seeded by the
        batch's entropy, so the batch does not depend on which thread builds it or when.
        """
        idx = np.asarray(idx)
        with seeded_global_numpy(entropy):
            arrays = [sample_patches((self.Y[k],) + self.channels_as_tuple(self.X[k]), patch_size=self.patch_size,
                                     n_samples=1, valid_inds=self.get_valid_inds(k)) for k in idx]
        if self.n_channel is None:
            X, Y = list(zip(*[(x[0][self.b], y[0]) for y, x in arrays]))
        else:
            X, Y = list(zip(*[(np.stack([_x[0] for _x in x], axis=-1)[self.b], y[0]) for y, *x in arrays]))
        for_batch = getattr(self.user_augmenter, "for_batch", None)
        augment = self.user_augmenter if for_batch is None else for_batch(entropy, idx)
        X, Y = tuple(zip(*tuple(augment(_x, _y) for _x, _y in zip(X, Y))))
        sub = self.ss_grid[1:3]
        cls = np.stack([class_target(y[self.b][sub], self.cuts[k]) for y, k in zip(Y, idx)])
        mask_neg = tuple(y[self.b][sub] < 0 for y in Y)
        has_neg = any(m.any() for m in mask_neg)
        if has_neg:
            mask_neg = np.stack(mask_neg)
            Y = tuple(np.maximum(y, 0) for y in Y)
        prob = np.stack([edt_prob(lbl[self.b][sub]) for lbl in Y])
        with stardist_openmp_threads(1):
            if self.shape_completion:
                Y_cleared = [clear_border(lbl) for lbl in Y]
                dist = np.stack([star_dist(lbl, self.n_rays, mode=self.sd_mode)[self.b + (slice(None),)]
                                 for lbl in Y_cleared])[self.ss_grid]
                dist_mask = np.stack([edt_prob(lbl[self.b][sub]) for lbl in Y_cleared])
            else:
                dist = np.stack([star_dist(lbl, self.n_rays, mode=self.sd_mode, grid=self.grid) for lbl in Y])
                dist_mask = prob
        X = np.stack(X)
        if X.ndim == 3:
            X = np.expand_dims(X, -1)
        prob = np.expand_dims(prob, -1)
        dist_and_mask = np.empty(dist.shape[:-1] + (self.n_rays + 1,), np.float32)
        dist_and_mask[..., :-1] = dist
        dist_and_mask[..., -1:] = np.expand_dims(dist_mask, -1)
        if has_neg:
            prob[mask_neg] = -1
        return (X,), (prob, dist_and_mask, cls)


def compile_with_class_loss(model, class_loss, optimizer=None, *, wrap_losses=None):
    """Run StarDist's ``prepare_for_training`` with ``class_loss`` for the class head.

    StarDist compiles with ``loss=[prob_loss, dist_loss, class_loss]``; the third entry
    is replaced, everything else (loss weights, metrics, callbacks) stays StarDist's.
    ``class_loss=None``: keep StarDist's losses (two for a segmentation-only model).
    ``wrap_losses``: ``f(list of losses) -> list of losses`` applied last (the
    ``tf.distribute`` reductions of :mod:`stardist_hier.models.distribute`).
    """
    keras_model = model.keras_model
    original = keras_model.compile
    seen = {}
    n_losses = 3 if model._is_multiclass() else 2

    def compile(optimizer, loss, **kwargs):
        if not (isinstance(loss, (list, tuple)) and len(loss) == n_losses):
            raise RuntimeError(f"StarDist's prepare_for_training no longer compiles {n_losses} losses: "
                               "stardist_hier._stardist_compat needs updating")
        seen["ok"] = True
        loss = list(loss)
        if class_loss is not None:
            loss[2] = class_loss
        if wrap_losses is not None:
            loss = list(wrap_losses(loss))
        return original(optimizer, loss=loss, **kwargs)

    object.__setattr__(keras_model, "compile", compile)
    try:
        StarDistBase.prepare_for_training(model, optimizer)
    finally:
        object.__delattr__(keras_model, "compile")
    if not seen:
        raise RuntimeError("StarDist's prepare_for_training did not compile the model")


def fit(model, data_train, data_val, *, epochs, steps_per_epoch, callbacks=(), verbose=1, input_workers=1):
    """``StarDist2D.train`` after its data preparation, with our generators.

    ``input_workers > 1``: the training batches are built by that many threads
    (:class:`~stardist_hier.models.input_pipeline.ParallelBatches`), the same batches.
    """
    config = model.config
    if config.train_tensorboard and model.basedir is not None and \
            not any(isinstance(cb, CARETensorBoardImage) for cb in model.callbacks):
        from csbdeep.utils import axes_dict

        _n = min(3, config.n_rays)
        channel = axes_dict(config.axes)["C"]
        output_slices = [[slice(None)] * 4, [slice(None)] * 4, [slice(None)] * 4]
        output_slices[1][1 + channel] = slice(0, (config.n_rays // _n) * _n, config.n_rays // _n)
        _n = min(3, config.n_classes)
        output_slices[2][1 + channel] = slice(1, 1 + (config.n_classes // _n) * _n, config.n_classes // _n)
        model.callbacks.append(CARETensorBoardImage(
            model=model.keras_model, data=data_val, log_dir=str(model.logdir / "logs" / "images"),
            n_images=3, prob_out=False, output_slices=output_slices))
    fit_kwargs = {}
    if _tf_version_at_least("2.2.0"):
        fit_kwargs["validation_batch_size"] = config.train_batch_size
    if input_workers > 1:
        from .input_pipeline import ParallelBatches

        batches = ParallelBatches(data_train, workers=input_workers)
        train_iter = (b for b in batches)
    else:
        batches, train_iter = None, iter(data_train)
    try:
        with _symbolic_build_from(model.keras_model, data_val):
            history = model.keras_model.fit(train_iter, validation_data=data_val, epochs=epochs,
                                            steps_per_epoch=steps_per_epoch,
                                            callbacks=list(model.callbacks) + list(callbacks), verbose=verbose,
                                            **fit_kwargs)
    finally:
        if batches is not None:
            batches.close()
    model._training_finished()
    return history


@contextlib.contextmanager
def _symbolic_build_from(keras_model, data_batch):
    """Under a ``tf.distribute`` strategy, make Keras build the model from ``data_batch``.

    Keras 3 (TF backend, ``TensorFlowTrainer._maybe_symbolic_build``) builds a model that
    has a strategy by drawing one batch from a fresh iterator over the training data
    and then discarding that iterator. With our Python generator the discarded
    iterator's prefetch thread has taken batches off the shared generator (lost, and
    the batch sequence shifts), and when a :class:`~stardist_hier.training.DatasetMixer`
    holds it at an epoch barrier, discarding it blocks forever. Only shapes are needed:
    build from the validation batch (same patch size and targets) instead.
    """
    original = getattr(keras_model, "_maybe_symbolic_build", None)
    if original is None or getattr(keras_model, "_distribute_strategy", None) is None or data_batch is None:
        yield
        return

    def _maybe_symbolic_build(iterator=None, data_batch_=None, **kwargs):
        return original(data_batch=data_batch if data_batch_ is None else data_batch_)

    def patched(iterator=None, data_batch=None):
        return _maybe_symbolic_build(iterator, data_batch)

    object.__setattr__(keras_model, "_maybe_symbolic_build", patched)
    try:
        yield
    finally:
        object.__delattr__(keras_model, "_maybe_symbolic_build")


def data_kwargs(config, workers=1):
    """The keyword arguments StarDist passes to its data generator."""
    kw = dict(
        n_rays=config.n_rays,
        patch_size=config.train_patch_size,
        grid=config.grid,
        shape_completion=config.train_shape_completion,
        b=config.train_completion_crop,
        use_gpu=config.use_gpu,
        foreground_prob=config.train_foreground_only,
        sample_ind_cache=config.train_sample_cache,
    )
    if IS_KERAS_3_PLUS:
        kw["keras_kwargs"] = dict(workers=workers, use_multiprocessing=workers > 1)
    return kw


def with_class_heads(keras_model, n_heads: int):
    """StarDist's network with ``n_heads`` class heads side by side in its ``prob_class`` output.

    StarDist's last class layer (1x1 convolution + softmax over ``C`` channels, named
    ``prob_class``) is replaced by ``n_heads`` such layers (``prob_class_0``, ...) on the
    same features, concatenated into an output of ``n_heads * C`` channels named
    ``prob_class``. Everything else (trunk, ``prob`` and ``dist`` heads) is unchanged.
    """
    if n_heads <= 1:
        return keras_model
    from csbdeep.utils.tf import keras_import

    Conv2D, Concatenate = keras_import("layers", "Conv2D", "Concatenate")
    Model = keras_import("models", "Model")
    layer = keras_model.get_layer(CLASS_LAYER)
    features = layer.input
    C = int(layer.filters)
    heads = [Conv2D(C, (1, 1), name=f"{CLASS_LAYER}_{k}", padding="same", activation="softmax")(features)
             for k in range(int(n_heads))]
    out = Concatenate(axis=-1, name=CLASS_LAYER)(heads)
    prob, dist = keras_model.outputs[:2]
    return Model(keras_model.inputs, [prob, dist, out])


def set_trunk_trainable(keras_model, trainable: bool) -> None:
    """Freeze (``trainable=False``) or unfreeze every layer but the last class layer(s).

    The optimizer is built on all variables first (so its state keeps one slot per
    variable whatever is frozen), and a compiled model's train function is rebuilt:
    Keras 3 traces the trainable variables into it, and ``fit`` calls the attribute
    anew at every step, so the change takes effect from the next batch.
    """
    head = {id(l) for l in class_head_layers(keras_model)}
    opt = getattr(keras_model, "optimizer", None)
    if opt is not None and not opt.built:
        opt.build(keras_model.trainable_variables)
    changed = False
    for layer in keras_model.layers:
        if id(layer) in head or not layer.weights or layer.trainable == bool(trainable):
            continue
        layer.trainable = bool(trainable)
        changed = True
    if changed and getattr(keras_model, "compiled", False):
        keras_model.make_train_function(force=True)


def class_head_layers(keras_model) -> list:
    """The last class layer(s): ``prob_class``, or ``prob_class_0 .. prob_class_{K-1}``."""
    layers = [l for l in keras_model.layers if l.name.startswith(CLASS_LAYER + "_") and l.name[len(CLASS_LAYER) + 1:].isdigit()]
    if layers:
        return sorted(layers, key=lambda l: int(l.name[len(CLASS_LAYER) + 1:]))
    return [keras_model.get_layer(CLASS_LAYER)]


class FixedNormalizer(Normalizer):
    """A csbdeep ``Normalizer`` applying fitted :class:`~stardist_hier.normalization.Levels`.

    StarDist calls ``normalizer.before(x, axes)`` with ``x`` in the network's axes
    (``YXC``: channels last) once per image it predicts, before tiling; the levels are
    fixed, so every block of ``predict_instances_big`` is normalised alike.

    Parameters
    ----------
    levels : stardist_hier.normalization.Levels
    """

    def __init__(self, levels):
        self.levels = levels

    def before(self, x, axes):
        if axes and axes[-1] != "C":
            raise ValueError(f"FixedNormalizer expects channels last, got axes {axes!r}")
        return self.levels.apply(x)

    def after(self, mean, scale, axes):
        raise NotImplementedError("FixedNormalizer does not undo the normalisation")

    @property
    def do_after(self):
        return False


def predict_on_one_device(keras_model):
    """Make ``keras_model.predict`` run on one device, without the model's strategy.

    StarDist predicts one image (or tile) at a time, ``keras_model.predict(x[None])``;
    under a strategy that batch of 1 would be split over the replicas, which fails for
    the empty shards. Training, ``evaluate`` and the validation stay distributed. The
    single-device predict function is traced once and kept. Swaps Keras's private
    ``_distribute_strategy`` for the duration of each ``predict``.
    """
    if getattr(keras_model, "_distribute_strategy", None) is None or "predict" in vars(keras_model):
        return keras_model
    original = keras_model.predict
    cache = {}

    def predict(*args, **kwargs):
        saved = (keras_model._distribute_strategy, keras_model.predict_function)
        keras_model._distribute_strategy, keras_model.predict_function = None, cache.get("fn")
        try:
            out = original(*args, **kwargs)
            cache["fn"] = keras_model.predict_function
            return out
        finally:
            keras_model._distribute_strategy, keras_model.predict_function = saved

    object.__setattr__(keras_model, "predict", predict)
    return keras_model


def is_multiclass(model) -> bool:
    """StarDist's ``_is_multiclass()``: whether the model has a class head."""
    return bool(model._is_multiclass())


def is_prepared(model) -> bool:
    """StarDist's ``_model_prepared``: whether ``prepare_for_training`` has compiled the model."""
    return bool(model._model_prepared)


def mark_prepared(model) -> None:
    """Set StarDist's ``_model_prepared`` (after compiling the model ourselves)."""
    model._model_prepared = True


def set_logdir(model) -> None:
    """StarDist's ``_set_logdir()``: ``model.logdir = basedir / name``, created, with ``config.json``."""
    model._set_logdir()


def normalize_axes(model, img, axes):
    """StarDist's ``_normalize_axes``: ``axes`` checked against ``img`` (the model's default when ``None``)."""
    return model._normalize_axes(img, axes)
