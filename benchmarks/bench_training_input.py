"""Training input pipeline alone (1 and N workers) against what the model consumes, side by side.

For two networks, the demo's (16 base filters, depth 3, 128x128 patches, batch 4) and a
StarDist-default-sized one (32 base filters, depth 3, 256x256 patches, batch 4; both 32
rays, grid 2x2), prints, interleaved round by round, each with the 1-minute load average:

* ``input x1``: patches/s of the training input alone, built serially as Keras' input
  thread builds them today (``StarDistData2DHier[i]``: patch sampling, paper
  augmentation incl. elastic deformation, ``edt_prob``/``star_dist``, class target);
* ``input xN``: the same batches (bit-identical) from
  :class:`~stardist_hier.models.input_pipeline.ParallelBatches` with N threads;
* ``model``: steps/s and patches/s of ``train_on_batch`` (forward, loss, backward,
  update) on ready batches: what the network consumes on this CPU.

Then the ratios input / model (target: >= 4) and an estimate for a GPU whose step is
``--gpu-speedup`` (default 50) times faster than this CPU's: the patches/s it would
consume and how many input workers that needs (assuming the per-worker rate measured
here scales with cores, which is an estimate). Finally, where a serial batch's time goes
(cProfile, one thread).

    python benchmarks/bench_training_input.py [--workers 2] [--rounds 2] [--batches 8]

Training data: synthetic PanNuke-like RGB tiles (``--size`` px) with their classes.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import os
import pstats
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

NETWORKS = {
    "demo": dict(unet_n_filter_base=16, unet_n_depth=3, net_conv_after_unet=64, train_patch_size=(128, 128)),
    "default": dict(unet_n_filter_base=32, unet_n_depth=3, net_conv_after_unet=128, train_patch_size=(256, 256)),
}


def load():
    return os.getloadavg()[0]


def build(name, data, taxonomy, seed):
    from stardist_hier import Config2DHier, StarDist2DHier
    from stardist_hier.models import _stardist_compat as compat
    from stardist_hier.training import Augmenter, DatasetMixer, oversampling_weights, rare_images

    cfg = Config2DHier(tree=taxonomy.tree, n_channel_in=3, n_rays=32, grid=(2, 2), train_batch_size=4,
                       train_tensorboard=False, **NETWORKS[name])
    model = StarDist2DHier(cfg, name=name, basedir=None)
    model.prepare_for_training()
    rare = rare_images(data.classes, data.label_sets)
    mixer = DatasetMixer(data.groups, 4, seed=seed, image_weights=oversampling_weights(rare))
    aug = Augmenter(seed=seed, rare=rare, source=mixer)  # the paper's probabilities (the defaults)
    cuts = model.encode(data.X, data.Y, data.classes, data.label_sets)
    src = compat.StarDistData2DHier(data.X, data.Y, cuts, sampler=mixer, batch_size=4, augmenter=aug,
                                    length=10 ** 6, **compat.data_kwargs(cfg))
    return model, src


def input_serial(src, start, n):
    t = time.perf_counter()
    for i in range(start, start + n):
        src.make_batch(src.batch(i), src.batch_entropy(i))
    return n * src.batch_size / (time.perf_counter() - t)


def input_parallel(src, start, n, workers):
    from stardist_hier.models.input_pipeline import ParallelBatches

    class Window:  # batches start .. start + n of src
        batch_size = src.batch_size

        def __len__(self):
            return n

        def batch(self, i):
            return src.batch(start + i)

        def batch_entropy(self, i):
            return src.batch_entropy(start + i)

        def make_batch(self, idx, entropy):
            return src.make_batch(idx, entropy)

    t = time.perf_counter()
    for _ in ParallelBatches(Window(), workers=workers):
        pass
    return n * src.batch_size / (time.perf_counter() - t)


def model_rate(model, batches, n):
    km = model.keras_model
    km.train_on_batch(*batches[0])  # traced once before
    t = time.perf_counter()
    for k in range(n):
        km.train_on_batch(*batches[k % len(batches)])
    steps = n / (time.perf_counter() - t)
    return steps, steps * 4


def stage_profile(src, n):
    pr = cProfile.Profile()
    pr.enable()
    for i in range(n):
        src.make_batch(src.batch(10_000 + i), src.batch_entropy(10_000 + i))
    pr.disable()
    st = pstats.Stats(pr)
    total = sum(v[3] for k, v in st.stats.items() if k[2] == "make_batch")
    out = {}
    for k, v in st.stats.items():
        fn = k[2]
        if fn in ("sample_patches", "get_valid_inds", "_apply", "color_jitter", "random_rot_flip", "elastic_deform",
                  "edt_prob", "star_dist", "class_target"):
            out[fn] = out.get(fn, 0.0) + v[3]
    return total, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="N, the input threads of the parallel pipeline")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", type=int, default=8, help="batches per input measurement")
    ap.add_argument("--steps", type=int, default=5, help="training steps per model measurement")
    ap.add_argument("--size", type=int, default=512, help="tile size of the synthetic training images")
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--gpu-speedup", type=float, default=50.0)
    ap.add_argument("--networks", default="demo,default")
    args = ap.parse_args(argv)

    from stardist_hier import default_taxonomy
    from stardist_hier.synthetic.datasets import generate_dataset
    from stardist_hier.training import MultiDataset, Part

    tax = default_taxonomy()
    part = Part.from_samples(generate_dataset("pannuke", args.tiles, seed=0, size=args.size), tax)
    data = MultiDataset({"pannuke": part}, {"pannuke": part})
    nets = [n.strip() for n in args.networks.split(",")]
    built = {n: build(n, data, tax, seed=1) for n in nets}
    ready = {n: [src[i] for i in range(2)] for n, (_, src) in built.items()}
    # warm-up (index caches, tracing)
    for n, (model, src) in built.items():
        input_serial(src, 0, 1)
        model_rate(model, ready[n], 1)

    print(f"cpu cores: {os.cpu_count()}, N = {args.workers} input workers, {args.batches} batches of 4 per input "
          f"measurement, {args.steps} steps per model measurement; load = 1-min load average before each")
    res = {n: {"x1": [], "xN": [], "model": []} for n in nets}
    start = 100
    for r in range(args.rounds):
        for n in nets:
            model, src = built[n]
            l1 = load()
            a = input_serial(src, start, args.batches)
            l2 = load()
            b = input_parallel(src, start + args.batches, args.batches, args.workers)
            l3 = load()
            s, p = model_rate(model, ready[n], args.steps)
            start += 2 * args.batches
            res[n]["x1"].append(a)
            res[n]["xN"].append(b)
            res[n]["model"].append(p)
            print(f"round {r} {n:8s} input x1 {a:7.2f} patches/s (load {l1:.2f}) | input x{args.workers} "
                  f"{b:7.2f} patches/s (load {l2:.2f}) | model {s:6.3f} steps/s = {p:7.2f} patches/s "
                  f"(load {l3:.2f}) | input/model x1 {a / p:5.2f}, x{args.workers} {b / p:5.2f}", flush=True)

    print("\nmedians over rounds:")
    for n in nets:
        a, b, p = (float(np.median(res[n][k])) for k in ("x1", "xN", "model"))
        gpu = p * args.gpu_speedup
        per_worker = a
        print(f"{n:8s} input x1 {a:.2f}, x{args.workers} {b:.2f} patches/s (speed-up {b / a:.2f}); model "
              f"{p:.2f} patches/s ({p / 4:.3f} steps/s); input/model x1 {a / p:.2f}, x{args.workers} {b / p:.2f} "
              f"(target >= 4)")
        print(f"{'':8s} GPU estimate (step {args.gpu_speedup:g}x faster): consumes {gpu:.1f} patches/s; at "
              f"{per_worker:.2f} patches/s per worker that needs {math.ceil(gpu / per_worker)} workers "
              f"({math.ceil(4 * gpu / per_worker)} for 4x headroom), with linear scaling over cores (estimated)")

    print(f"\nwhere a serial batch's time goes (cProfile, one thread, {args.batches} batches, load {load():.2f}):")
    for n in nets:
        total, parts = stage_profile(built[n][1], args.batches)
        shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
        print(f"{n:8s} {1000 * total / args.batches:.0f} ms/batch: {shares}")


if __name__ == "__main__":
    main()
