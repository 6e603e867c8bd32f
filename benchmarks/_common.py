"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``).

* :func:`train_tiny`: the tiny RGB model trained in seconds on synthetic H&E-like tiles
  (the same recipe as ``tests/predict/conftest.py``), saved as the model folder
  ``basedir/tiny``; each script passes its own network size and learning rate.
* :func:`step_timer`: a Keras callback timing consecutive training batches.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np

__all__ = ["train_tiny", "step_timer"]


def train_tiny(basedir, *, n_rays: int = 16, unet_n_filter_base: int = 16, net_conv_after_unet: int = 32,
               learning_rate: float = 5e-3, steps: int = 120, seed: int = 3, mpp: float = 0.5) -> Path:
    """Train the tiny model on four 128x128 tiles of a synthetic slide; returns ``basedir/tiny``.

    Parameters
    ----------
    basedir : path
        Where the model folder ``tiny`` is written.
    n_rays, unet_n_filter_base, net_conv_after_unet, learning_rate
        The network and optimiser settings (``Config2DHier``).
    steps : int
        Training steps, over two epochs.
    seed : int
        Seed of the synthetic slide and of the training.
    mpp : float
        The model's ``hier_mpp``.
    """
    from stardist_hier import Config2DHier, StarDist2DHier, default_taxonomy
    from stardist_hier.slides import SyntheticSlide

    tax = default_taxonomy()
    slide = SyntheticSlide((512, 512), seed=seed)
    X, Y = [], []
    for top in (0, 256):
        for left in (0, 256):
            img, lab = slide.region(top, left, 128, 128, labels=True)
            X.append(img.astype(np.float32) / 255)
            Y.append(lab)
    cfg = Config2DHier(tree=tax.tree, n_channel_in=3, n_rays=n_rays, grid=(2, 2), unet_n_depth=2,
                       unet_n_filter_base=unet_n_filter_base, net_conv_after_unet=net_conv_after_unet,
                       train_patch_size=(64, 64), train_batch_size=4, train_tensorboard=False,
                       train_learning_rate=learning_rate, hier_mpp=mpp)
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2DHier(cfg, name="tiny", basedir=str(basedir))
        model.train(X, Y, validation_data=(X[:1], Y[:1]), epochs=2, steps_per_epoch=steps // 2, seed=seed,
                    verbose=0)
    return Path(basedir) / "tiny"


def step_timer():
    """A new Keras callback whose ``times`` lists the seconds between consecutive batch ends.

    The time between batch ends covers data generation, forward, loss and backward; the
    first batch of every epoch is not timed. Keras is imported here, on demand.
    """
    from csbdeep.utils.tf import keras_import

    Callback = keras_import("callbacks", "Callback")

    class StepTimer(Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = None

        def on_train_batch_end(self, batch, logs=None):
            t = time.perf_counter()
            if self._t is not None:
                self.times.append(t - self._t)
            self._t = t

    return StepTimer()
