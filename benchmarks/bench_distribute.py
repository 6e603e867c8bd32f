"""Training steps/s on one device and under MirroredStrategy, side by side in one run.

On this CPU-only machine the strategy runs on two *logical* CPU devices that share the
same cores, so the figure is the strategy's **overhead** (splitting the batch, two
replica graphs, all-reducing gradients and the loss normalisers), not a speed-up.
The same script on a machine with several GPUs measures the speed-up instead (the
strategy then uses all GPUs).

    python benchmarks/bench_distribute.py [--steps 20] [--rounds 2] [--paper-data]

Also prints the CPU time of StarDist's input pipeline per batch (patch sampling,
star-distance and probability targets, our class target) for the benchmark model and,
with ``--paper-data``, for the paper's settings (64 rays, patch 256, batch 4): on a GPU
this work stays on the CPU and decides how many data workers a GPU needs
(see ``docs/SCALING.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from _common import step_timer  # noqa: E402
from skimage.draw import disk  # noqa: E402


def make_data(rng, n, size, tree):
    X, Y, codes = [], [], []
    for _ in range(n):
        x = rng.normal(0.1, 0.03, (size, size)).astype(np.float32)
        y = np.zeros((size, size), np.int32)
        c = {}
        for i in range(1, int(40 * (size / 256) ** 2) + 1):
            r, cc = rng.integers(6, size - 6, 2)
            k = int(rng.integers(1, tree.n_classes + 1))
            rr, ccc = disk((r, cc), 4 + k % 4, shape=y.shape)
            free = y[rr, ccc] == 0
            if free.sum() < 10:
                continue
            y[rr[free], ccc[free]] = i
            x[rr[free], ccc[free]] = 0.3 + 0.05 * k
            c[i] = k
        X.append(x)
        Y.append(y)
        codes.append(c)
    return X, Y, codes


def data_time(model, X, Y, codes, n=10):
    """Median seconds to produce one training batch (StarDist's targets + class target)."""
    from stardist_hier.models import _stardist_compat as compat

    cuts = model.encode(X, Y, codes, None)
    gen = compat.StarDistData2DHier(X, Y, cuts, batch_size=model.config.train_batch_size, length=n + 1,
                                    **compat.data_kwargs(model.config))
    gen[0]
    times = []
    for i in range(1, n + 1):
        t = time.perf_counter()
        gen[i]
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="training steps per round and model")
    ap.add_argument("--rounds", type=int, default=2, help="alternating measured rounds (after one warm-up round)")
    ap.add_argument("--devices", type=int, default=2, help="logical CPU devices (replicas) when there is no GPU")
    ap.add_argument("--paper-data", action="store_true",
                    help="also time the input pipeline at the paper's settings (64 rays, patch 256, batch 4)")
    args = ap.parse_args(argv)

    from stardist_hier.models import distribute

    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        distribute.split_cpu(args.devices)

    from stardist_hier import Config2DHier, StarDist2DHier, default_taxonomy

    tree = default_taxonomy().tree
    rng = np.random.default_rng(0)
    X, Y, codes = make_data(rng, 12, 256, tree)
    common = dict(tree=tree, n_rays=32, grid=(2, 2), unet_n_depth=3, unet_n_filter_base=16, net_conv_after_unet=64,
                  train_patch_size=(128, 128), train_batch_size=4, train_tensorboard=False, train_reduce_lr=None,
                  train_learning_rate=3e-3)
    import keras

    keras.utils.set_random_seed(0)
    single = StarDist2DHier(Config2DHier(**common), basedir=None)
    mirrored = StarDist2DHier(Config2DHier(hier_distribute="mirrored", **common), basedir=None)
    mirrored.keras_model.set_weights(single.keras_model.get_weights())
    val = (X[:2], Y[:2], codes[:2])

    step = {"single": [], "mirrored": []}
    for r in range(args.rounds + 1):
        pair = (("single", single), ("mirrored", mirrored))
        for name, model in (pair if r % 2 == 0 else pair[::-1]):
            timer = step_timer()
            model.ensure_prepared()
            model.callbacks = [timer]
            model.train(X, Y, validation_data=val, classes=codes, epochs=1, steps_per_epoch=args.steps, verbose=0)
            if r > 0:  # round 0 warms up (graph tracing)
                step[name].extend(timer.times[2:])

    # the same steps on fixed in-memory batches: forward, loss, backward, update only
    from stardist_hier.models import _stardist_compat as compat

    cuts = single.encode(X, Y, codes, None)
    gen = compat.StarDistData2DHier(X, Y, cuts, batch_size=4, length=8, **compat.data_kwargs(single.config))
    batches = [gen[i] for i in range(8)]
    xb = np.concatenate([np.asarray(b[0][0] if isinstance(b[0], (list, tuple)) else b[0]) for b in batches])
    yb = [np.concatenate([np.asarray(b[1][j]) for b in batches]) for j in range(3)]
    compute = {"single": [], "mirrored": []}
    for r in range(args.rounds + 1):
        pair = (("single", single), ("mirrored", mirrored))
        for name, model in (pair if r % 2 == 0 else pair[::-1]):
            timer = step_timer()
            for _ in range(max(1, args.steps // 8)):
                model.keras_model.fit(xb, yb, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
            if r > 0:
                compute[name].extend(timer.times[1:])

    ts, tm = np.median(step["single"]), np.median(step["mirrored"])
    cs, cm = np.median(compute["single"]), np.median(compute["mirrored"])
    print(f"devices: {distribute.describe(mirrored.strategy)}; cores: {os.cpu_count()}; "
          f"TF {tf.__version__}, Keras {keras.__version__}")
    print(f"{'':30}{'one device':>12}{'mirrored':>12}{'ratio':>8}")
    print(f"{'train step (s, median)':30}{ts:12.4f}{tm:12.4f}{tm / ts:8.3f}")
    print(f"{'steps/s':30}{1 / ts:12.2f}{1 / tm:12.2f}{ts / tm:8.3f}")
    print(f"{'patches/s (global batch 4)':30}{4 / ts:12.1f}{4 / tm:12.1f}")
    print(f"{'compute-only step (s, median)':30}{cs:12.4f}{cm:12.4f}{cm / cs:8.3f}")
    print(f"{'compute-only steps/s':30}{1 / cs:12.2f}{1 / cm:12.2f}{cs / cm:8.3f}")
    print(f"({len(step['single'])} steps per model; U-Net depth 3 x 16 filters, 32 rays, grid 2x2, "
          f"patch 128, global batch 4 ({4 // distribute.num_replicas(mirrored.strategy)} per replica), "
          f"{tree.n_classes} classes; 'train step' includes StarDist's data generator (one thread, "
          f"overlapping the step), 'compute-only' runs on fixed in-memory batches)")
    print(f"{'input pipeline (s/batch)':30}{data_time(single, X, Y, codes):12.4f}   "
          f"(this model's settings, one thread)")
    if args.paper_data:
        paper = StarDist2DHier(Config2DHier(tree=tree, n_rays=64, grid=(2, 2), unet_n_depth=4, unet_n_filter_base=64,
                                            train_patch_size=(256, 256), train_batch_size=4,
                                            train_tensorboard=False), basedir=None)
        print(f"{'input pipeline, paper (s/batch)':30}{data_time(paper, X, Y, codes):12.4f}   "
              f"(64 rays, patch 256, batch 4, one thread; {paper.keras_model.count_params():,} weights)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
