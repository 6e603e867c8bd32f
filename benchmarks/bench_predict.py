"""Benchmark slide prediction: peak memory against slide size, and throughput.

1. **Memory.** For every ``--sizes`` N, writes a synthetic pyramidal tiled TIFF of
   N x N pixels (at the model's pixel size, all tissue) and predicts it through
   :func:`stardist_hier.predict.predict_nuclei` in a **child process** that streams the
   nuclei (counted, then dropped, as a writer would), reporting its peak resident
   memory (``ru_maxrss``). Target: the largest slide within 1.2x of the smallest.
2. **Throughput** on the smallest slide, in one child process, interleaved and the
   best of ``--repeat`` runs each:

   * end to end: the pipeline (read slide via OpenSlide, blocks, network, NMS,
     per-block filtering), tiles/s and nuclei/s;
   * the network alone: ``model.predict`` on the same blocks already in memory
     (target: end to end <= 1.3x this);
   * StarDist's ``predict_instances_big`` on the same pixels held in memory, with
     the same block parameters and ``labels_out=False`` (target: ratio <= 1.0).

The model is a tiny StarDist2DHier trained for a few steps on synthetic tiles
(``--model DIR`` uses a model folder instead).

Usage::

    python benchmarks/bench_predict.py [--sizes 8192 16384] [--block-size 1024] [--repeat 2] [--model DIR]
    python benchmarks/bench_predict.py --sizes 2048 4096        # a few minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import train_tiny

MPP = 0.5


def _train_tiny(basedir: Path, *, steps: int = 120, seed: int = 3):
    return train_tiny(basedir, n_rays=32, unet_n_filter_base=16, net_conv_after_unet=32, learning_rate=5e-3,
                      steps=steps, seed=seed, mpp=MPP)


def _write_slide(path: Path, n: int, seed: int = 0) -> Path:
    from stardist_hier.slides import SyntheticSlide, write_pyramid_tiff

    if not path.exists():
        write_pyramid_tiff(path, SyntheticSlide((n, n), seed=seed), mpp=MPP, downsamples=(1, 4, 16), tile=256)
    return path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _block_kw(args):
    return dict(block_size=args.block_size, min_overlap=args.min_overlap, context=args.context)


# ------------------------------------------------------------------ children
def child_memory(args) -> dict:
    from stardist_hier.predict import PredictStats, load_model, plan_prediction, predict_nuclei

    model = load_model(args.model)
    base = _peak_mb()
    stats = PredictStats()
    t = time.perf_counter()
    plan = plan_prediction(model, args.slide, **_block_kw(args))
    for chunk in predict_nuclei(model, plan, stats=stats):
        del chunk
    plan.close()
    return dict(seconds=time.perf_counter() - t, tiles=stats.n_predicted, nuclei=stats.n_nuclei,
                peak_mb=_peak_mb(), after_load_mb=base)


def child_throughput(args) -> dict:
    from stardist_hier.predict import PredictStats, load_model, plan_prediction, predict_nuclei

    model = load_model(args.model)
    kw = _block_kw(args)
    plan = plan_prediction(model, args.slide, tissue_mask=False, **kw)
    pixels = np.asarray(plan.image)
    blocks = [b.read(pixels, axes="YXC") for b in plan.blocks]
    # warm up (graph tracing) on the first block
    model.predict(blocks[0], axes="YXC")
    res = {"pipeline": [], "network": [], "big": []}
    out = {}
    for _ in range(args.repeat):
        stats = PredictStats()
        t = time.perf_counter()
        for _c in predict_nuclei(model, plan, stats=stats):
            pass
        res["pipeline"].append(time.perf_counter() - t)
        out.update(tiles=stats.n_predicted, nuclei=stats.n_nuclei)

        t = time.perf_counter()
        for x in blocks:
            model.predict(x, axes="YXC")
        res["network"].append(time.perf_counter() - t)

        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            _, r = model.predict_instances_big(pixels, "YXC", labels_out=False, show_progress=False,
                                               block_size=kw["block_size"], min_overlap=kw["min_overlap"],
                                               context=kw["context"])
        res["big"].append(time.perf_counter() - t)
        out["nuclei_big"] = len(r["prob"])
    plan.close()
    out.update({k: min(v) for k, v in res.items()})
    return out


# ------------------------------------------------------------------ parent
def _run_child(kind: str, args, slide: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--slide", str(slide), "--model", str(args.model),
           "--block-size", str(args.block_size), "--min-overlap", str(args.min_overlap),
           "--repeat", str(args.repeat)]
    if args.context is not None:
        cmd += ["--context", str(args.context)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"child {kind} failed with code {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384], help="slide sides in pixels")
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--min-overlap", type=int, default=64)
    ap.add_argument("--context", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="throughput runs (best of)")
    ap.add_argument("--model", type=Path, help="model folder (default: train a tiny one)")
    ap.add_argument("--dir", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--child", choices=("memory", "throughput"), help=argparse.SUPPRESS)
    ap.add_argument("--slide", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        out = child_memory(args) if args.child == "memory" else child_throughput(args)
        print(json.dumps(out))
        return 0

    with contextlib.ExitStack() as stack:
        work = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_predict_")))
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        if args.model is None:
            args.model = _train_tiny(work / "models")
        print(f"model: {args.model} ({time.perf_counter() - t:.0f} s to prepare)", flush=True)
        rows = []
        for n in args.sizes:
            t = time.perf_counter()
            slide = _write_slide(work / f"slide_{n}.tif", n)
            tw = time.perf_counter() - t
            r = _run_child("memory", args, slide)
            rows.append((n, r))
            print(f"size {n:>6}: wrote slide in {tw:.0f} s; {r['tiles']} tiles, {r['nuclei']} nuclei in "
                  f"{r['seconds']:.1f} s ({r['tiles'] / r['seconds']:.2f} tiles/s, "
                  f"{r['nuclei'] / r['seconds']:.0f} nuclei/s); peak RSS {r['peak_mb']:.0f} MB "
                  f"(after model load {r['after_load_mb']:.0f} MB)", flush=True)
        if len(rows) > 1:
            ratio = rows[-1][1]["peak_mb"] / rows[0][1]["peak_mb"]
            print(f"peak RSS {rows[-1][0]} / {rows[0][0]}: {ratio:.3f} (target <= 1.2)")
        n0 = args.sizes[0]
        r = _run_child("throughput", args, work / f"slide_{n0}.tif")
        print(f"throughput on {n0}x{n0} (best of {args.repeat}): {r['tiles']} tiles, {r['nuclei']} nuclei")
        print(f"  end to end       {r['pipeline']:7.2f} s  {r['tiles'] / r['pipeline']:.2f} tiles/s  "
              f"{r['nuclei'] / r['pipeline']:.0f} nuclei/s")
        print(f"  network alone    {r['network']:7.2f} s  -> end to end / network = "
              f"{r['pipeline'] / r['network']:.2f} (target <= 1.3)")
        print(f"  predict_instances_big (in memory, labels_out=False) {r['big']:7.2f} s, {r['nuclei_big']} nuclei "
              f"-> pipeline / big = {r['pipeline'] / r['big']:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
