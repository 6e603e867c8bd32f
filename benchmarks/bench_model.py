"""StarDist2DHier against a plain multi-class StarDist2D of the same size, side by side.

Prints the median training-step time (data generation, forward, loss, backward) and
the median ``predict_instances`` time of both models on the same data, and their
ratios (hierarchical / plain). Targets on a 2-core CPU: training <= 1.05, prediction <= 1.02.

    python benchmarks/bench_model.py [--steps 30] [--rounds 3]

Measurements alternate between the two models (A, B, A, B, ...) so that drifts of the
machine affect both alike.
"""

from __future__ import annotations

import argparse
import os
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
        for i in range(1, 40):
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="training steps per round and model")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    ap.add_argument("--predict-images", type=int, default=4)
    ap.add_argument("--prob-thresh", type=float, default=0.3,
                    help="object threshold for prediction (low enough for the briefly trained models to find nuclei)")
    args = ap.parse_args(argv)

    from stardist.models import Config2D, StarDist2D

    from stardist_hier import Config2DHier, LabelSet, StarDist2DHier, default_taxonomy

    tax = default_taxonomy()
    tree = tax.tree
    rng = np.random.default_rng(0)
    X, Y, codes = make_data(rng, 12, 256, tree)
    # half the images labelled at PanNuke's coarser label set, half at the leaves
    pannuke = tax["pannuke"]
    leaves = LabelSet.leaves_of(tree)
    hier_classes, hier_sets = [], []
    for i, c in enumerate(codes):
        if i % 2 == 0:
            hier_sets.append(leaves)
            hier_classes.append(c)
        else:
            hier_sets.append(pannuke)
            hier_classes.append({k: next((lab for lab in pannuke.labels
                                          if tree.leaves[v - 1] in pannuke.leaf_set(lab)), None)
                                 for k, v in c.items()})
    common = dict(n_rays=32, grid=(2, 2), unet_n_depth=3, unet_n_filter_base=16, net_conv_after_unet=64,
                  train_patch_size=(128, 128), train_batch_size=4, train_tensorboard=False,
                  train_reduce_lr=None, train_learning_rate=3e-3)
    plain = StarDist2D(Config2D(n_classes=tree.n_classes, **common), name=None, basedir=None)
    hier = StarDist2DHier(Config2DHier(tree=tree, **common), name=None, basedir=None)
    hier.keras_model.set_weights(plain.keras_model.get_weights())
    val = (X[:2], Y[:2])

    def train_plain(timer):
        plain.train(X, Y, validation_data=val + (codes[:2],), classes=codes, epochs=1,
                    steps_per_epoch=args.steps)

    def train_hier(timer):
        hier.train(X, Y, validation_data=val + (hier_classes[:2], hier_sets[:2]), classes=hier_classes,
                   label_sets=hier_sets, epochs=1, steps_per_epoch=args.steps, verbose=0)

    step = {"plain": [], "hier": []}
    for r in range(args.rounds + 1):
        for name, fn, model in (("plain", train_plain, plain), ("hier", train_hier, hier)):
            timer = step_timer()
            model.callbacks = [timer] if model._model_prepared else []
            if not model._model_prepared:
                model.prepare_for_training()
                model.callbacks = [timer]
            fn(timer)
            if r > 0:  # round 0 warms up (graph tracing)
                step[name].extend(timer.times[2:])

    pred = {"plain": [], "hier": []}
    imgs = X[: args.predict_images]
    kw = dict(show_tile_progress=False, prob_thresh=args.prob_thresh)
    n_inst = [len(hier.predict_instances(x, **kw)[1]["points"]) for x in imgs]  # also warms up
    for m in (plain, hier):
        m.predict_instances(imgs[0], **kw)
    for r in range(3 * args.rounds):
        for i, x in enumerate(imgs):  # interleaved call by call, the order alternating
            pair = (("plain", plain), ("hier", hier)) if (r + i) % 2 == 0 else (("hier", hier), ("plain", plain))
            for name, model in pair:
                t = time.perf_counter()
                model.predict_instances(x, **kw)
                pred[name].append(time.perf_counter() - t)

    tp, th = np.median(step["plain"]), np.median(step["hier"])
    pp, ph = np.median(pred["plain"]), np.median(pred["hier"])
    print(f"{'':24}{'StarDist2D':>12}{'StarDist2DHier':>16}{'ratio':>8}")
    print(f"{'train step (s, median)':24}{tp:12.4f}{th:16.4f}{th / tp:8.3f}")
    print(f"{'predict_instances (s)':24}{pp:12.4f}{ph:16.4f}{ph / pp:8.3f}")
    print(f"({len(step['plain'])} steps and {len(pred['plain'])} predictions per model; "
          f"batch 4 of 128x128, n_classes {tree.n_classes}, images 256x256 with "
          f"{np.mean(n_inst):.0f} predicted nuclei on average)")


if __name__ == "__main__":
    main()
