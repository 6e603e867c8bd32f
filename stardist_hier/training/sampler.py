"""Which training images make up each batch: :class:`DatasetMixer` (no TensorFlow).

All datasets' training images are concatenated into one ``X``/``Y``/``classes``/
``label_sets`` list; a :class:`DatasetMixer` knows which indices belong to which
dataset and is passed as ``sampler=`` to :meth:`StarDist2DHier.train`. StarDist's data
generator asks it for the image indices of batch ``i``; the mixer draws them from the
datasets of the current episode with the episode's mixing weights. Each image keeps
its own cut, so a mixed batch carries the right label set for every sample.

Switching at an epoch boundary
------------------------------
Keras prefetches training batches in a background thread, so batches of epoch
``e + 1`` would normally be drawn before ``on_epoch_end(e)`` has decided whether the
episode ends. When *armed* (``arm(steps_per_epoch)``, done by
:class:`~stardist_hier.training.EpisodeCallback`), the mixer makes the generator
thread wait at the first batch of every epoch until the callback has released that
epoch (:meth:`release`), i.e. until the switch (datasets, weights, cuts) is in place.
The random state saved at ``on_epoch_end`` is therefore exactly the state after the
epoch, which makes resuming exact for the sampler.

Keras draws the first two batches in the main thread before training starts (to
learn the tensor shapes), so an armed mixer needs ``steps_per_epoch >= 2``.

Randomness of a batch and resuming
----------------------------------
The mixer's own generator (dataset choice, shuffled walk through each dataset) is
state carried from batch to batch; thanks to the epoch barrier its state saved at
``on_epoch_end`` is exactly the state after the consumed batches (the prefetching
thread is parked *before* drawing anything of the next epoch), and the checkpoint
saves it (:meth:`state_dict`). StarDist's patch positions are drawn from NumPy's
*global* generator, which is shared with everything else in the process (StarDist
itself draws the validation patches of ``train`` with it after a resume): with an
integer ``seed`` the mixer provides :meth:`batch_seed`, and
:class:`~stardist_hier.models._stardist_compat.StarDistData2DHier` seeds those draws
with ``(seed, global batch index)``, so they are a pure function of the step.
``first_step`` (set when resuming) is the global index of the first batch of the
current ``fit``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Mapping, Sequence

import numpy as np

__all__ = ["DatasetMixer", "MixerClosed"]

#: Keras draws this many batches in the main thread before training
#: (``keras.src.trainers.data_adapters.data_adapter_utils.NUM_BATCHES_FOR_TENSOR_SPEC``).
PEEKED_BATCHES = 2


#: Separates the per-batch seeds from other uses of the run's seed.
_BATCH_SEED_TAG = 0x5D1B


class MixerClosed(RuntimeError):
    """Raised in the generator thread when a waiting mixer is closed."""


class DatasetMixer:
    """Draw batch image indices from one or several datasets with mixing weights.

    Parameters
    ----------
    groups : mapping of str to sequence of int
        ``{dataset name: indices of its images}`` in the concatenated training lists.
    batch_size : int
        Images per batch.
    seed : int or None
        Seed of the mixer's :class:`numpy.random.Generator`; an integer also seeds every
        batch's patch positions (:meth:`batch_seed`).
    image_weights : array_like, optional
        Sampling weight of every image (length ``max index + 1``), e.g. from
        :func:`~stardist_hier.training.oversampling_weights`. Images of one dataset
        are drawn with probability proportional to their weight; with equal weights
        (the default) each dataset is walked through in shuffled order, so every
        image appears equally often.

    Notes
    -----
    Call :meth:`set_datasets` to choose the active datasets (and mixing weights);
    each slot of a batch picks a dataset with those probabilities, then the next
    image of that dataset. The mixer also remembers the images of the batch it just
    returned (per thread) so that a class-aware augmenter can pair each patch with
    its image (:meth:`pop_image`).
    """

    def __init__(self, groups: Mapping[str, Sequence[int]], batch_size: int, *, seed=None,
                 image_weights=None):
        if not groups:
            raise ValueError("DatasetMixer needs at least one dataset")
        self.groups = {}
        for name, idx in groups.items():
            idx = np.asarray(idx, dtype=np.int64).ravel()
            if idx.size == 0:
                raise ValueError(f"DatasetMixer: dataset {name!r} has no training images")
            self.groups[str(name)] = idx
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = 1 + max(int(v.max()) for v in self.groups.values())
        if image_weights is None:
            w = np.ones(n)
        else:
            w = np.asarray(image_weights, float).ravel()
            if w.size < n or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(f"image_weights must be {n} finite non-negative numbers")
        self._p = {}
        for name, idx in self.groups.items():
            wi = w[idx]
            if wi.sum() <= 0:
                raise ValueError(f"DatasetMixer: all images of dataset {name!r} have weight 0")
            self._p[name] = None if np.allclose(wi, wi[0]) else wi / wi.sum()
        self.rng = np.random.default_rng(seed)
        self.seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None
        self.first_step = 0  # global index of batch 0 of the current fit (set when resuming)
        self._queues = {name: [] for name in self.groups}
        self.active: tuple = tuple(self.groups)[:1]
        self.mix = np.ones(1)
        self._lock = threading.Condition()
        self._local = threading.local()
        self._steps = None  # armed: steps per epoch
        self._released = 0  # highest epoch whose batches may be drawn
        self._closed = False
        self.wait_timeout = 24 * 3600.0
        self.set_datasets(self.active)

    # ------------------------------------------------------------- episodes
    def set_datasets(self, datasets, weights=None):
        """Make ``datasets`` (a name, a list, or ``{name: weight}``) the active mixture."""
        names, w = _parse_mixture(datasets, weights)
        for d in names:
            if d not in self.groups:
                raise KeyError(f"DatasetMixer: unknown dataset {d!r}; known: {', '.join(self.groups)}")
        with self._lock:
            self.active = tuple(names)
            self.mix = w / w.sum()

    # ------------------------------------------------------------- sampling
    def __call__(self, i) -> np.ndarray:
        """Image indices of batch ``i`` (``i`` counts batches from the start of ``fit``)."""
        self._wait_for(int(i))
        with self._lock:
            if len(self.active) == 1:
                which = np.zeros(self.batch_size, np.int64)
            else:
                which = self.rng.choice(len(self.active), size=self.batch_size, p=self.mix)
            idx = np.empty(self.batch_size, np.int64)
            for s, j in enumerate(which):
                idx[s] = self._next(self.active[j])
        self._local.pending = deque(int(k) for k in idx)
        return idx

    def batch_seed(self, i):
        """Seed entropy of batch ``i`` of the current ``fit`` (``None`` without an integer seed).

        ``[seed, tag, first_step + i]``: a pure function of the run's seed and the global
        batch index, the same in an uninterrupted and a resumed run.
        """
        if self.seed is None:
            return None
        return [self.seed, _BATCH_SEED_TAG, int(self.first_step) + int(i)]

    def _next(self, name) -> int:
        p = self._p[name]
        if p is not None:
            return int(self.rng.choice(self.groups[name], p=p))
        q = self._queues[name]
        if not q:
            q.extend(int(k) for k in self.rng.permutation(self.groups[name])[::-1])
        return q.pop()

    def pop_image(self):
        """Index of the image of the next patch of the current batch (``None`` if unknown).

        StarDist augments a batch's patches in the order of the indices the sampler
        returned (stardist 0.9.2 ``StarDistData2D.__getitem__``); the augmenter calls
        this once per patch, in the same thread.
        """
        q = getattr(self._local, "pending", None)
        return q.popleft() if q else None

    # ---------------------------------------------------- epoch synchronisation
    def arm(self, steps_per_epoch: int):
        """Wait at every epoch boundary for :meth:`release` (see the module docs)."""
        steps_per_epoch = int(steps_per_epoch)
        if steps_per_epoch < PEEKED_BATCHES:
            raise ValueError(f"steps_per_epoch must be >= {PEEKED_BATCHES} when switching datasets between "
                             f"epochs (Keras draws the first {PEEKED_BATCHES} batches before training starts)")
        with self._lock:
            self._steps = steps_per_epoch
            self._released = 0
            self._closed = False

    def release(self, epoch: int):
        """Allow batches of epochs up to ``epoch`` (counted from the start of ``fit``)."""
        with self._lock:
            self._released = max(self._released, int(epoch))
            self._lock.notify_all()

    def close(self):
        """Stop waiting: release every epoch (also wakes a waiting generator thread)."""
        with self._lock:
            self._closed = True
            self._steps = None
            self._lock.notify_all()

    def _wait_for(self, i):
        with self._lock:
            if self._steps is None:
                return
            epoch = i // self._steps
            if epoch <= self._released:
                return
            if threading.current_thread() is threading.main_thread():
                raise RuntimeError(
                    f"DatasetMixer: batch {i} (epoch {epoch}) requested in the main thread before epoch "
                    f"{epoch} was released; steps_per_epoch={self._steps} is too small")
            t0 = time.monotonic()
            while epoch > self._released and self._steps is not None:
                if time.monotonic() - t0 > self.wait_timeout:
                    raise MixerClosed(f"DatasetMixer: epoch {epoch} was never released")
                self._lock.wait(0.5)

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """JSON-serialisable state (random generator, queues, active mixture)."""
        with self._lock:
            return {"rng": self.rng.bit_generator.state,
                    "queues": {k: list(map(int, v)) for k, v in self._queues.items()},
                    "active": list(self.active), "mix": [float(x) for x in self.mix]}

    def load_state_dict(self, state: dict):
        with self._lock:
            self.rng.bit_generator.state = state["rng"]
            self._queues = {k: list(map(int, state["queues"].get(k, []))) for k in self.groups}
            self.active = tuple(state["active"])
            self.mix = np.asarray(state["mix"], float)

    def __repr__(self):
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.groups.items())
        return f"DatasetMixer({{{sizes}}}, batch_size={self.batch_size}, active={self.active})"


def _parse_mixture(datasets, weights=None):
    if isinstance(datasets, str):
        names, w = [datasets], [1.0]
    elif isinstance(datasets, Mapping):
        names, w = list(datasets), [float(v) for v in datasets.values()]
    else:
        names = list(datasets)
        w = [1.0] * len(names) if weights is None else [float(v) for v in weights]
    if not names:
        raise ValueError("a mixture needs at least one dataset")
    if len(set(names)) != len(names):
        raise ValueError(f"a mixture names a dataset twice: {names}")
    w = np.asarray(w, float)
    if w.shape != (len(names),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"mixing weights must be non-negative with a positive sum, one per dataset; got {list(w)}")
    return names, w
