"""The dataset-switching Keras callback and :func:`train_episodes`.

One :meth:`StarDist2DHier.train` call covers all episodes: ``epochs`` is the sum of the
episodes' budgets, and the switch happens inside the data source. At the end of every
epoch :class:`EpisodeCallback`

1. computes the *episode validation loss*, ``model.evaluate`` on a fixed validation
   batch of the episode's own datasets (built once per episode like StarDist's, with
   the episode's cuts and class weights), and adds it to the logs as
   ``val_loss_episode`` (next to Keras' ``val_loss`` on the validation images of every
   dataset some episode trains on, never on a dataset kept only for testing);
2. applies the episode's early-stopping rule to it, keeping the best weights in memory;
3. when the episode ends (budget spent or early stop), restores its best weights (after
   an early stop, or always with ``restore_best``) and switches to the next episode:
   the :class:`~stardist_hier.training.DatasetMixer` draws from the new datasets, the
   training images' cuts are re-encoded if the class weights change, the validation
   batch is replaced, and the optimizer state is reset unless the episode keeps it;
   after the last episode it sets ``model.stop_training``;
4. writes the per-episode history (JSON) and, with a checkpoint folder, once
   StarDist's own callbacks have run for the epoch (:attr:`EpisodeCallback.commit_callback`
   goes last in the list), everything needed to resume: weights, Keras' seed-generator
   states (dropout), optimizer variables (step counter, learning rate, moments), best
   weights so far, the callback's, sampler's, augmenter's and NumPy's random states, the
   global batch index, and the state of StarDist's ``ReduceLROnPlateau`` and
   ``ModelCheckpoint`` callbacks;
5. releases the next epoch to the mixer, whose generator thread waited at the epoch
   boundary (see :mod:`stardist_hier.training.sampler`).

At the end of training it writes the final weights to StarDist's ``weights_best.h5``
(when the model has a folder), because StarDist reloads that file after ``fit`` and
its own copy is chosen by ``val_loss`` over all trained datasets.

Resuming reproduces the uninterrupted run
-----------------------------------------
With an integer ``seed``, a run killed after any epoch and resumed from its
checkpoint ends with the same weights, bit for bit, and the same per-epoch losses as
the uninterrupted run (on CPU; with TensorFlow's op determinism switched on, which
the experiment runner does unless ``training.deterministic: false``, see
:func:`~stardist_hier.training.experiment.run_experiment`). What makes it so:

* every batch's patch positions (StarDist draws them from NumPy's *global*
  generator) are drawn from a generator seeded with ``(seed, global batch index)``
  (:meth:`DatasetMixer.batch_seed`), not from a stream carried across the checkpoint;
  before this, resuming re-drew StarDist's Keras validation patches in ``train`` from
  the restored global state, which shifted every later training patch;
* NumPy's global generator is re-seeded with ``seed`` right before ``train``, so the
  validation patches StarDist draws there (Keras' ``val_loss``, which
  ``ReduceLROnPlateau`` watches) are the same in a fresh and a resumed run;
* the augmentation of every batch (an :class:`~stardist_hier.training.Augmenter`) draws
  from a generator seeded by the same entropy (:meth:`Augmenter.for_batch`), so a batch is
  the same whichever input thread builds it: ``input_workers`` threads give the batches of
  one (:mod:`stardist_hier.models.input_pipeline`), and a run may resume with another number;
* the states of Keras' seed generators (dropout, when the config has ``unet_dropout``)
  are saved with the weights;
* the mixer's and the augmenter's generators are saved at the epoch's end while
  the prefetching generator thread is parked at the epoch barrier, i.e. exactly
  after the consumed batches (nothing of the next epoch has been drawn);
* the checkpoint is written after StarDist's ``ReduceLROnPlateau`` has seen the
  epoch (before, it was written first, so a resumed run lost that epoch's plateau
  count and learning-rate reduction), and ``ReduceLROnPlateau``'s
  ``wait``/``best``/``cooldown_counter`` (reset by Keras in ``on_train_begin``) are put
  back at the first ``on_epoch_begin`` of a resumed ``fit``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from csbdeep.utils.tf import keras_import

from ..errors import RunFolderError
from ..io.atomic import atomic_path, atomic_write_text
from ..models import _stardist_compat as compat
from ..models._stardist_compat import NUMPY_GLOBAL_LOCK
from ..tree import LabelSet
from .data import MultiDataset
from .sampler import DatasetMixer
from .schedule import Episode, trained_datasets, validate_schedule

Callback = keras_import("callbacks", "Callback")

__all__ = ["EpisodeCallback", "train_episodes", "reset_optimizer", "CheckpointMismatch"]


class CheckpointMismatch(RunFolderError):
    """The checkpoint folder holds a run of a different schedule or data."""


def reset_optimizer(optimizer, learning_rate=None):
    """Give a built Keras 3 optimizer the state of a fresh one.

    Every optimizer variable (step count, Adam moments, ...) is set to zero; the
    learning rate variable is set to ``learning_rate`` (left as is when ``None``).
    """
    lr = getattr(optimizer, "_learning_rate", None)
    for v in optimizer.variables:
        if v is lr:
            if learning_rate is not None:
                v.assign(float(learning_rate))
        else:
            v.assign(np.zeros(tuple(v.shape), dtype=v.dtype))


def _weighted(ls: LabelSet, weights) -> LabelSet:
    if not weights:
        return ls
    own = {k: v for k, v in weights.items() if k in ls.labels}
    if not own:
        return ls
    d = ls.to_dict()
    d["weights"] = {**d.get("weights", {}), **own}
    return LabelSet.from_dict(ls.tree, d)


#: Attributes of Keras' stateful callbacks saved with the checkpoint (those that exist).
_KERAS_CALLBACK_STATE = ("wait", "best", "cooldown_counter", "stopped_epoch")
_STATEFUL_CALLBACKS = ("ReduceLROnPlateau", "ModelCheckpoint", "EarlyStopping")


def _json_number(v):
    if v is None or isinstance(v, (bool, int, float)):
        return v
    try:
        a = np.asarray(v)
    except Exception:  # noqa: BLE001 - not a number: not saved
        return None
    if a.shape != ():
        return None
    return int(a) if np.issubdtype(a.dtype, np.integer) else float(a)


def _rng_variables(keras_model) -> list:
    """The model's variables that are not weights: the states of Keras' ``SeedGenerator`` s
    (dropout's random stream), which ``get_weights`` leaves out."""
    weights = {id(w) for w in keras_model.weights}
    return [v for v in keras_model.variables if id(v) not in weights]


def _np_random_state():
    s = np.random.get_state()
    return [s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4])]


def _set_np_random_state(s):
    np.random.set_state((s[0], np.asarray(s[1], np.uint32), int(s[2]), int(s[3]), float(s[4])))


def fixed_validation_batch(model, part, *, seed: int, label_sets=None, what: str = "validation"):
    """One validation batch ``(x, y)`` of ``part`` (its images' cuts at ``label_sets``, default
    the part's own), ``train_n_val_patches`` patches as StarDist draws them, with NumPy's global
    generator seeded by ``seed`` (its state is put back): the same batch whenever it is built,
    in a fresh or a resumed run."""
    sets = part.label_sets if label_sets is None else label_sets
    cuts = model.encode(part.X, part.Y, part.classes, sets, what=what)
    cfg = model.config
    n = len(part.X) if cfg.train_n_val_patches is None else cfg.train_n_val_patches
    gen = compat.StarDistData2DHier(part.X, part.Y, cuts, batch_size=n, length=1, **compat.data_kwargs(cfg))
    with NUMPY_GLOBAL_LOCK:
        saved = np.random.get_state()
        np.random.seed(int(seed) % 2 ** 32)
        try:
            return gen[0]
        finally:
            np.random.set_state(saved)


class _EpochCommit(Callback):
    """Runs :meth:`EpisodeCallback._commit` at the end of every epoch; goes last among StarDist's callbacks."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def on_train_begin(self, logs=None):
        self.owner._commit_later = True

    def on_epoch_end(self, epoch, logs=None):
        self.owner._commit(epoch)


class EpisodeCallback(Callback):
    """Keras callback running a schedule of :class:`Episode` s in one ``fit``.

    Usually built by :func:`train_episodes`. Used by hand, pass its
    :attr:`mixer` as ``sampler=``, :meth:`initial_label_sets` as ``label_sets=`` and
    :attr:`total_epochs` as ``epochs=`` to :meth:`StarDist2DHier.train`, with the same
    ``steps_per_epoch``; put it first in the model's ``callbacks`` and its
    :attr:`commit_callback` last (it writes the checkpoint after StarDist's callbacks
    have updated their state for the epoch).

    Parameters
    ----------
    model : StarDist2DHier
    episodes : sequence of Episode
    data : MultiDataset
    mixer : DatasetMixer
        Its groups must be ``data.groups``.
    steps_per_epoch : int
    history_path : path, optional
        JSON file rewritten after every epoch with :attr:`history`.
    checkpoint_dir : path, optional
        Folder for the resume state (rewritten atomically after every epoch).
    augmenter : Augmenter, optional
        Its random state is saved with the checkpoint.
    fingerprint : str, optional
        Identifies the run (e.g. a hash of the experiment config); a checkpoint with
        another fingerprint is refused.
    seed : int
        Seeds the patch choice of the episodes' validation batches.
    verbose : int

    Attributes
    ----------
    history : dict
        ``{"episodes": [{name, datasets, max_epochs, first_epoch, epochs_run, loss,
        val_loss, val_loss_episode, best_epoch, best_val_loss, stopped_early,
        restored_best, finished}], "epochs_done", "episode", "finished"}``; epochs
        are counted from 0 over the whole schedule.
    """

    def __init__(self, model, episodes: Sequence[Episode], data: MultiDataset, mixer: DatasetMixer, *,
                 steps_per_epoch: int, history_path=None, checkpoint_dir=None, augmenter=None,
                 fingerprint: str | None = None, seed: int = 0, verbose: int = 1, on_episode_end=None):
        super().__init__()
        self.on_episode_end = on_episode_end
        self.seed = 0 if seed is None else int(seed)
        self.sd_model = model
        self.episodes = validate_schedule(episodes, data.names)
        self.data = data
        self.mixer = mixer
        if {k: list(v) for k, v in mixer.groups.items()} != {k: list(v) for k, v in data.groups.items()}:
            raise ValueError("EpisodeCallback: the mixer's groups are not the data's groups")
        self.steps_per_epoch = int(steps_per_epoch)
        self.history_path = None if history_path is None else Path(history_path)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.augmenter = augmenter
        self.fingerprint = fingerprint or self._default_fingerprint()
        self.verbose = verbose
        self.history = {
            "episodes": [dict(name=ep.name, datasets=ep.mixture, max_epochs=ep.max_epochs, first_epoch=None,
                              epochs_run=0, loss=[], val_loss=[], val_loss_episode=[], best_epoch=None,
                              best_val_loss=None, wait=0, stopped_early=False, restored_best=False,
                              finished=False) for ep in self.episodes],
            "epochs_done": 0, "episode": 0, "finished": False,
        }
        self.best_weights = None
        self._initial_epoch = 0
        self._first_step = 0  # global index of the first batch of this fit
        self._pending_callback_state = None
        self._commit_later = False
        self.commit_callback = _EpochCommit(self)
        self._label_sets_cache = {}
        self._val_cache = {}
        self.mixer.set_datasets(self.episodes[0].mixture)

    # ----------------------------------------------------------------- setup
    def _default_fingerprint(self):
        h = hashlib.sha256()
        h.update(json.dumps([ep.to_dict() for ep in self.episodes], sort_keys=True).encode())
        h.update(json.dumps({k: len(v) for k, v in self.data.groups.items()}).encode())
        return h.hexdigest()[:16]

    @property
    def episode(self) -> Episode:
        return self.episodes[min(self.history["episode"], len(self.episodes) - 1)]

    @property
    def total_epochs(self) -> int:
        """Epochs still possible: the rest of the current episode plus later budgets."""
        h = self.history
        if h["finished"]:
            return 0
        k = h["episode"]
        return (self.episodes[k].max_epochs - h["episodes"][k]["epochs_run"]) + \
            sum(ep.max_epochs for ep in self.episodes[k + 1:])

    def _episode_label_sets(self, k) -> list:
        """Label set of every training image while episode ``k`` runs."""
        if k not in self._label_sets_cache:
            ep = self.episodes[k]
            sets = list(self.data.label_sets)
            if ep.class_weights:
                for d in ep.dataset_names:
                    for i in self.data.groups[d]:
                        sets[i] = _weighted(sets[i], ep.class_weights)
            self._label_sets_cache[k] = sets
        return self._label_sets_cache[k]

    def initial_label_sets(self) -> list:
        """Label sets to pass to ``train`` (those of the episode training starts with)."""
        return self._episode_label_sets(self.history["episode"])

    def _validation_batch(self, k):
        if k not in self._val_cache:
            ep = self.episodes[k]
            part = self.data.validation(ep.dataset_names)
            sets = [_weighted(ls, ep.class_weights) for ls in part.label_sets]
            self._val_cache[k] = fixed_validation_batch(self.sd_model, part, label_sets=sets,
                                                        seed=self.seed + 7919 * (k + 1),
                                                        what=f"episode {ep.name!r} validation")
        return self._val_cache[k]

    def prepare(self):
        """Build the validation batches of all remaining episodes (before training:
        they draw random patches, and doing it here keeps runs reproducible)."""
        for k in range(self.history["episode"], len(self.episodes)):
            self._validation_batch(k)

    # -------------------------------------------------------------- keras hooks
    def on_train_begin(self, logs=None):
        steps = (self.params or {}).get("steps")
        if steps is not None and steps != self.steps_per_epoch:
            raise ValueError(f"EpisodeCallback was built for steps_per_epoch={self.steps_per_epoch}, "
                             f"fit runs {steps}")
        self._first_step = self._global_step()
        self._initial_epoch = self.history["epochs_done"]
        self._commit_later = False  # set by commit_callback's on_train_begin, which runs after this one
        # the episode training starts (or resumes) in: its frozen layers, after fit built its train function
        self.sd_model.set_trunk_trainable(not self.episode.freeze_trunk)

    def on_epoch_begin(self, epoch, logs=None):
        # Keras resets ReduceLROnPlateau & co. in on_train_begin (after this callback's):
        # put the checkpoint's state back before the first epoch of a resumed fit runs
        if self._pending_callback_state is not None:
            self._set_keras_callbacks_state(self._pending_callback_state)
            self._pending_callback_state = None

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        h = self.history
        k = h["episode"]
        ep, eh = self.episodes[k], h["episodes"][k]
        g = self._initial_epoch + epoch
        if eh["first_epoch"] is None:
            eh["first_epoch"] = g
        x, y = self._validation_batch(k)
        res = self.model.evaluate(x, y, batch_size=self.sd_model.config.train_batch_size, verbose=0,
                                  return_dict=True)
        vl = float(res["loss"])
        logs["val_loss_episode"] = vl
        logs["episode"] = k
        eh["loss"].append(float(logs.get("loss", np.nan)))
        eh["val_loss"].append(float(logs.get("val_loss", np.nan)))
        eh["val_loss_episode"].append(vl)
        eh["epochs_run"] += 1
        h["epochs_done"] = g + 1
        if eh["best_val_loss"] is None or vl < eh["best_val_loss"] - ep.min_delta:
            eh["best_val_loss"], eh["best_epoch"], eh["wait"] = vl, g, 0
            self.best_weights = self.model.get_weights()
        else:
            eh["wait"] += 1
        stop = ep.patience is not None and eh["wait"] >= max(ep.patience, 1)
        if self.verbose:
            print(f"[episode {ep.name}] epoch {eh['epochs_run']}/{ep.max_epochs} (global {g + 1}): "
                  f"loss {eh['loss'][-1]:.4f}, val_loss_episode {vl:.4f}"
                  + (" (best)" if eh["wait"] == 0 else f" (no improvement for {eh['wait']})"),
                  file=sys.stderr)
        if stop or eh["epochs_run"] >= ep.max_epochs:
            self._end_episode(k, stopped_early=stop)
        self._write_history()
        if h["finished"]:
            self.model.stop_training = True
        if not self._commit_later:
            self._commit(epoch)

    def _commit(self, epoch):
        """Second half of the epoch's end: checkpoint, then let the generator thread go on.

        Run by :attr:`commit_callback` after StarDist's own callbacks (ReduceLROnPlateau
        may lower the learning rate in this epoch's ``on_epoch_end``, ModelCheckpoint
        updates its best value), so that the checkpoint holds the state *after* the epoch;
        without it in the callback list, at the end of :meth:`on_epoch_end`.
        """
        if self.checkpoint_dir is not None:
            self.save_checkpoint(self.checkpoint_dir)
        if self.history["finished"]:
            self.mixer.close()
        else:
            self.mixer.release(epoch + 1)

    def on_train_end(self, logs=None):
        self.mixer.close()
        self.sd_model.set_trunk_trainable(True)
        self._write_history()
        m = self.sd_model
        if m.basedir is not None and m.config.train_checkpoint is not None:
            # StarDist reloads this file after fit: make it hold the schedule's result
            with atomic_path(m.logdir / m.config.train_checkpoint, keep_suffix=True) as tmp:
                m.keras_model.save_weights(str(tmp))

    # --------------------------------------------------------------- switching
    def _end_episode(self, k, *, stopped_early):
        ep, eh = self.episodes[k], self.history["episodes"][k]
        eh["stopped_early"] = bool(stopped_early)
        if (stopped_early or ep.restore_best) and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            eh["restored_best"] = True
        eh["finished"] = True
        self.best_weights = None
        if self.on_episode_end is not None:
            # e.g. PQ on the episode's validation images; recorded in the history (and the checkpoint)
            scores = self.on_episode_end(k, ep, eh)
            if scores:
                eh["scores"] = {str(a): _json_number(b) for a, b in dict(scores).items()}
        if self.verbose:
            why = "early stop" if stopped_early else "budget spent"
            print(f"[episode {ep.name}] ends after {eh['epochs_run']} epochs ({why}); best epoch "
                  f"{eh['best_epoch'] + 1} (val_loss_episode {eh['best_val_loss']:.4f})"
                  + (", best weights restored" if eh["restored_best"] else ""), file=sys.stderr)
        if k + 1 >= len(self.episodes):
            self.history["finished"] = True
            return
        self.history["episode"] = k + 1
        self._start_episode(k + 1)

    def _start_episode(self, k):
        ep = self.episodes[k]
        self.mixer.set_datasets(ep.mixture)
        data_train = getattr(self.sd_model, "data_train", None)
        if data_train is not None:
            new_sets = self._episode_label_sets(k)
            changed = [i for i, (a, b) in enumerate(zip(new_sets, data_train.cuts)) if a is not b.label_set]
            if changed:
                X = [self.data.X[i] for i in changed]
                Y = [self.data.Y[i] for i in changed]
                C = [self.data.classes[i] for i in changed]
                cuts = self.sd_model.encode(X, Y, C, [new_sets[i] for i in changed],
                                            what=f"episode {ep.name!r} training")
                for i, c in zip(changed, cuts):
                    data_train.cuts[i] = c
        if not ep.keep_optimizer_state:
            reset_optimizer(self.model.optimizer, self.sd_model.config.train_learning_rate)
        if ep.reset_class_head:
            # seeded by (run seed, episode): a resumed run restores the weights from its checkpoint
            self.sd_model.reset_class_head(seed=[self.seed, int(k)])
        self.sd_model.set_trunk_trainable(not ep.freeze_trunk)
        if self.verbose:
            print(f"[episode {ep.name}] starts: datasets {ep.mixture}, up to {ep.max_epochs} epochs"
                  + ("" if ep.keep_optimizer_state else ", fresh optimizer state")
                  + (", class head re-initialised" if ep.reset_class_head else "")
                  + (", only the class head trains" if ep.freeze_trunk else ""), file=sys.stderr)

    # ------------------------------------------------------------ persistence
    def _write_history(self):
        if self.history_path is None:
            return
        self.history_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.history_path, json.dumps(self.history, indent=1))

    def save_checkpoint(self, directory):
        """Write the resume state to ``directory`` (atomically: a new folder is swapped in)."""
        directory = Path(directory)
        tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        km = self.model if self.model is not None else self.sd_model.keras_model
        np.savez(tmp / "weights.npz", *km.get_weights())
        if self.best_weights is not None:
            np.savez(tmp / "best_weights.npz", *self.best_weights)
        rng_vars = _rng_variables(km)
        if rng_vars:
            np.savez(tmp / "rng_variables.npz", *[np.asarray(v) for v in rng_vars])
        opt = km.optimizer
        if opt is not None and opt.built:
            np.savez(tmp / "optimizer.npz", *[np.asarray(v) for v in opt.variables])
        state = {"fingerprint": self.fingerprint, "history": self.history, "mixer": self.mixer.state_dict(),
                 "augmenter": None if self.augmenter is None else self.augmenter.state_dict(),
                 "np_random": _np_random_state(),
                 "global_step": self._global_step(),
                 "steps_per_epoch": self.steps_per_epoch,
                 "keras_callbacks": self._keras_callbacks_state()}
        (tmp / "state.json").write_text(json.dumps(state))
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)

    def _global_step(self) -> int:
        """Batches consumed since the start of the run (over all ``fit`` calls)."""
        return int(self._first_step + (self.history["epochs_done"] - self._initial_epoch) * self.steps_per_epoch)

    def _stateful_keras_callbacks(self):
        cbs = [cb for cb in getattr(self.sd_model, "callbacks", None) or []
               if cb is not self and cb is not self.commit_callback]
        return [(f"{i}:{type(cb).__name__}", cb) for i, cb in enumerate(cbs)
                if type(cb).__name__ in _STATEFUL_CALLBACKS]

    def _keras_callbacks_state(self) -> dict:
        out = {}
        for key, cb in self._stateful_keras_callbacks():
            out[key] = {a: _json_number(getattr(cb, a)) for a in _KERAS_CALLBACK_STATE if hasattr(cb, a)}
        return out

    def _set_keras_callbacks_state(self, state: dict):
        for key, cb in self._stateful_keras_callbacks():
            for a, v in (state.get(key) or {}).items():
                if hasattr(cb, a):
                    setattr(cb, a, v)

    @staticmethod
    def find_checkpoint(directory):
        """The usable checkpoint folder (``directory`` or its ``.old`` twin), or ``None``."""
        directory = Path(directory)
        for d in (directory, directory.with_name(directory.name + ".old")):
            if (d / "state.json").is_file() and (d / "weights.npz").is_file():
                return d
        return None

    def restore_checkpoint(self, directory) -> bool:
        """Load a resume state written by :meth:`save_checkpoint`; ``False`` if none.

        The model must be prepared for training (its optimizer is built here).

        Raises
        ------
        CheckpointMismatch
            The checkpoint belongs to another schedule or data (fingerprint).
        """
        d = self.find_checkpoint(directory)
        if d is None:
            return False
        try:
            state = json.loads((d / "state.json").read_text(encoding="utf-8"))
            if not isinstance(state, dict) or not isinstance(state.get("history"), dict):
                raise ValueError("not a checkpoint state")
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
            raise CheckpointMismatch(f"{d / 'state.json'} is truncated or unreadable ({type(e).__name__}); the run "
                                     f"cannot resume from it: rerun with --restart (the old run is moved aside)") \
                from None
        if state.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatch(
                f"{d} holds a run with another configuration (fingerprint {state.get('fingerprint')} != "
                f"{self.fingerprint}); use another output folder or start afresh")
        if state.get("steps_per_epoch", self.steps_per_epoch) != self.steps_per_epoch:
            raise CheckpointMismatch(f"{d} was written with steps_per_epoch={state['steps_per_epoch']}, "
                                     f"this run has {self.steps_per_epoch}")
        km = self.sd_model.keras_model
        km.set_weights(_load_npz(d / "weights.npz"))
        if (d / "rng_variables.npz").is_file():
            rng_vars = _rng_variables(km)
            vals = _load_npz(d / "rng_variables.npz")
            if len(vals) != len(rng_vars):
                raise CheckpointMismatch(f"{d}: the model has {len(rng_vars)} random-state variables, "
                                         f"the checkpoint {len(vals)}")
            for v, a in zip(rng_vars, vals):
                v.assign(a)
        self.best_weights = None
        if (d / "best_weights.npz").is_file():
            self.best_weights = _load_npz(d / "best_weights.npz")
        if (d / "optimizer.npz").is_file() and km.optimizer is not None:
            opt = km.optimizer
            if not opt.built:
                opt.build(km.trainable_variables)
            vals = _load_npz(d / "optimizer.npz")
            if len(vals) != len(opt.variables):
                raise CheckpointMismatch(f"{d}: optimizer has {len(opt.variables)} variables, "
                                         f"checkpoint {len(vals)}")
            for v, a in zip(opt.variables, vals):
                v.assign(a)
        self.history = state["history"]
        self._initial_epoch = self.history["epochs_done"]
        self._first_step = int(state.get("global_step", self.history["epochs_done"] * self.steps_per_epoch))
        self.mixer.first_step = self._first_step
        self._pending_callback_state = state.get("keras_callbacks") or None
        self.mixer.load_state_dict(state["mixer"])
        if self.augmenter is not None and state.get("augmenter"):
            self.augmenter.load_state_dict(state["augmenter"])
        _set_np_random_state(state["np_random"])
        if not self.history["finished"]:
            self.mixer.set_datasets(self.episode.mixture)
        return True


def _load_npz(path) -> list:
    """The arrays ``arr_0, arr_1, ...`` of a checkpoint ``.npz``; :class:`CheckpointMismatch` naming a bad file."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            return [f[f"arr_{i}"] for i in range(len(f.files))]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointMismatch(f"{path} is truncated or unreadable ({type(e).__name__}); the run cannot resume "
                                 f"from it: rerun with --restart (the old run is moved aside)") from None


def train_episodes(model, data: MultiDataset, episodes: Sequence[Episode], *, steps_per_epoch: int,
                   seed=None, augmenter=None, image_weights=None, history_path=None, checkpoint_dir=None,
                   resume: bool = True, fingerprint=None, callbacks=(), verbose: int = 1, on_episode_end=None,
                   input_workers: int = 1):
    """Train ``model`` through a schedule of episodes in one ``train`` call.

    Parameters
    ----------
    model : StarDist2DHier
    data : MultiDataset
    episodes : sequence of Episode
    steps_per_epoch : int
        Batches per epoch (>= 2).
    seed : int, optional
        Seeds the mixer, every batch's patch positions (from ``(seed, global batch
        index)``) and NumPy's global generator right before ``train`` (StarDist's
        validation patches). With a seed, a resumed run reproduces the uninterrupted
        one (see the module docs).
    augmenter : Augmenter or callable, optional
        StarDist augmenter; an :class:`~stardist_hier.training.Augmenter` whose
        ``source`` is unset is connected to the mixer.
    image_weights : array_like, optional
        Sampling weight of every training image (class-aware oversampling).
    history_path, checkpoint_dir, fingerprint
        See :class:`EpisodeCallback`.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir`` when there is one.
    callbacks : sequence
        More Keras callbacks (after StarDist's and the episode callback).
    verbose : int
    on_episode_end : callable, optional
        ``on_episode_end(k, episode, episode_history) -> {name: number}`` is called when
        episode ``k`` ends, with the episode's final (restored) weights in the model; the
        returned scores are kept in ``history["episodes"][k]["scores"]``.
    input_workers : int
        Threads building training batches (:meth:`StarDist2DHier.train`); with a
        ``seed`` the batches, and so the run, are the same for any number.

    Returns
    -------
    EpisodeCallback
        Its :attr:`~EpisodeCallback.history` holds the per-episode histories.
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1:
        from ..errors import InputError, shorten

        raise InputError(f"steps_per_epoch={shorten(steps_per_epoch)}: must be a positive whole number")
    from ..models.input_pipeline import check_input_workers

    input_workers = check_input_workers(input_workers)
    episodes = validate_schedule(episodes, data.names)
    mixer = DatasetMixer(data.groups, model.config.train_batch_size, seed=seed, image_weights=image_weights)
    if augmenter is not None and getattr(augmenter, "source", "n/a") is None:
        augmenter.source = mixer
    cb = EpisodeCallback(model, episodes, data, mixer, steps_per_epoch=steps_per_epoch,
                         history_path=history_path, checkpoint_dir=checkpoint_dir, augmenter=augmenter,
                         fingerprint=fingerprint, seed=seed, verbose=verbose, on_episode_end=on_episode_end)
    if seed is not None:
        np.random.seed(seed)
    model.ensure_prepared()
    resumed = bool(resume and checkpoint_dir is not None and cb.restore_checkpoint(checkpoint_dir))
    if resumed and verbose:
        print(f"resuming after epoch {cb.history['epochs_done']} (episode {cb.episode.name!r})", file=sys.stderr)
    if cb.history["finished"]:
        return cb
    cb.prepare()
    # Keras' val_loss (ReduceLROnPlateau, StarDist's own weights_best) sees only the datasets
    # some episode trains on: a dataset kept only for testing stays unseen
    val = data.validation(trained_datasets(episodes))
    mixer.arm(steps_per_epoch)
    if seed is not None:
        # the same global state whether fresh or resumed: StarDist's ``train`` draws its
        # validation patches (Keras' val_loss) from it; training patches are seeded per batch
        with NUMPY_GLOBAL_LOCK:
            np.random.seed(seed)
    # first in StarDist's list so that TensorBoard and History see val_loss_episode; the
    # checkpoint is written after StarDist's callbacks (ReduceLROnPlateau, ModelCheckpoint)
    model.callbacks.insert(0, cb)
    model.callbacks.append(cb.commit_callback)
    try:
        model.train(data.X, data.Y, (val.X, val.Y, val.classes, val.label_sets), classes=data.classes,
                    label_sets=cb.initial_label_sets(), augmenter=augmenter, epochs=cb.total_epochs,
                    steps_per_epoch=steps_per_epoch, sampler=mixer, callbacks=list(callbacks),
                    verbose=verbose, input_workers=input_workers)
    finally:
        mixer.close()
        for c in (cb, cb.commit_callback):
            if c in model.callbacks:
                model.callbacks.remove(c)
    return cb

