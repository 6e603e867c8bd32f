"""Benchmark slide prediction: peak memory against slide size, and throughput against StarDist.

1. **Memory.** For every ``--sizes`` N, writes a synthetic pyramidal tiled TIFF of
   N x N pixels (at the model's pixel size; the right 30 % is glass) and predicts it
   through :func:`stardist_hier.predict.predict_nuclei` (the overlapped pipeline, tissue
   mask on) in a **child process** that streams the nuclei (counted, then dropped, as a
   writer would), reporting its peak resident memory (``ru_maxrss``) and the blocks the
   tissue mask skipped. Target: the largest slide within 1.2x of the one before.
2. **Throughput** on ``--throughput-size`` (default the smallest size), in one child
   process, every variant once per round, ``--repeat`` rounds interleaved, each
   measurement printed with the load average when it started, wall time and CPU time
   of the process (all threads):

   * ``pipeline``: the overlapped pipeline end to end (read slide via OpenSlide, blocks,
     network, NMS, per-block filtering), tissue mask off, and ``pipeline+mask`` with it on;
   * ``serial``: the serial loop (``read_ahead=0``: ``predict_instances`` per block);
   * ``big``: StarDist's ``predict_instances_big`` on the same pixels held in memory,
     the same block parameters, ``labels_out=False``, StarDist's default threads;
   * ``forward``: the network alone (compiled, with StarDist's candidate selection) on
     the same blocks already in memory, one after the other;
   * ``forward+nms``: the same plus NMS, polygons, classes and the block filter (one
     OpenMP thread), one after the other.

   Targets: CPU(pipeline) <= 0.8 x CPU(big) with the same nuclei (checked: counts,
   probabilities, polygons), wall(pipeline) <= 1.1 x wall(forward+nms).
3. ``--memory-estimate``: for each block size, the estimate of
   :func:`stardist_hier.predict.blocks.block_memory` against the growth of peak resident
   memory of one ``predict_instances`` on one block (a child process per size).

The model is a tiny StarDist2DHier trained for a few steps on synthetic tiles
(``--model DIR`` uses a model folder instead).

Usage::

    python benchmarks/bench_predict.py                        # 4k, 8k, 16k; long on 2 busy cores
    python benchmarks/bench_predict.py --quick                # 2k, 4k, 8k
    python benchmarks/bench_predict.py --memory-estimate --block-sizes 1024 2048
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


GLASS = 0.3  # fraction of each synthetic slide's width that is blank glass (on the right)


def _write_slide(path: Path, n: int, seed: int = 0) -> Path:
    from stardist_hier.slides import SyntheticSlide, write_pyramid_tiff

    if not path.exists():
        edge = (1 - GLASS) * n
        write_pyramid_tiff(path, SyntheticSlide((n, n), seed=seed, tissue=lambda r, c: c < edge), mpp=MPP,
                           downsamples=(1, 4, 16), tile=256)
    return path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _block_kw(args):
    bs = args.block_size if args.block_size == "auto" else int(args.block_size)
    return dict(block_size=bs, min_overlap=args.min_overlap, context=args.context)


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


# ------------------------------------------------------------------ children
def child_memory(args) -> dict:
    from stardist_hier.predict import PredictStats, load_model, plan_prediction, predict_nuclei

    model = load_model(args.model)
    base = _peak_mb()
    stats = PredictStats()
    t, c = time.perf_counter(), time.process_time()
    plan = plan_prediction(model, args.slide, **_block_kw(args))
    for chunk in predict_nuclei(model, plan, stats=stats):
        del chunk
    plan.close()
    return dict(seconds=time.perf_counter() - t, cpu=time.process_time() - c, tiles=stats.n_predicted,
                skipped=stats.n_skipped, blocks=stats.n_blocks, nuclei=stats.n_nuclei, peak_mb=_peak_mb(),
                after_load_mb=base, block_size=int(plan.blocks[0].blocks[0].size) if plan.blocks else 0)


def child_throughput(args) -> dict:
    from stardist_hier.models import _stardist_big_compat as big
    from stardist_hier.predict import PredictStats, load_model, plan_prediction, predict_nuclei

    model = load_model(args.model)
    kw = _block_kw(args)
    plan = plan_prediction(model, args.slide, tissue_mask=False, **kw)
    masked = plan_prediction(model, args.slide, tissue_mask=True, **kw)
    block_size = int(plan.blocks[0].blocks[0].size)  # "auto" resolved (the first block is never cut)
    pk = plan.predict_kwargs
    pixels = np.asarray(plan.image)
    blocks = [(b, b.read(pixels, axes="YXC")) for b in plan.blocks]
    # warm up: Keras's predict function, and the compiled forward on every block shape
    model.predict(blocks[0][1], axes="YXC")
    with big.compiled_predict(model):
        for shape in {x.shape for _, x in blocks}:
            big.forward_block(model, next(x for _, x in blocks if x.shape == shape), predict_kwargs=pk)
    from stardist_hier.models._stardist_compat import stardist_openmp_threads

    found = {}

    def pipeline(p, **k):
        stats = PredictStats()
        chunks = list(predict_nuclei(model, p, stats=stats, **k))
        return stats, chunks

    def run_big():
        with contextlib.redirect_stdout(io.StringIO()):
            return model.predict_instances_big(pixels, "YXC", labels_out=False, show_progress=False,
                                               block_size=block_size, min_overlap=args.min_overlap,
                                               context=args.context, **pk)[1]

    def forward():
        with big.compiled_predict(model):
            for _, x in blocks:
                big.forward_block(model, x, predict_kwargs=pk)

    def forward_nms():
        n = 0
        with big.compiled_predict(model), stardist_openmp_threads(1):
            for b, x in blocks:
                shape, sparse = big.forward_block(model, x, predict_kwargs=pk)
                labels, polys = big.instances_block(model, shape, sparse, predict_kwargs=pk)
                n += len(big.filter_block(b, labels, polys)["prob"])
        return n

    variants = {
        "pipeline": lambda: found.__setitem__("pipeline", pipeline(plan)),
        "pipeline+mask": lambda: found.__setitem__("masked", pipeline(masked)),
        "serial": lambda: found.__setitem__("serial", pipeline(plan, read_ahead=0)),
        "big": lambda: found.__setitem__("big", run_big()),
        "forward": forward,
        "forward+nms": lambda: found.__setitem__("fn", forward_nms()),
    }
    rows = []
    for r in range(args.repeat):
        for name, fn in variants.items():
            load = _load()
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            rows.append(dict(round=r, variant=name, load=load, wall=wall, cpu=cpu))
            sys.stderr.write(f"  round {r} {name:<14} load {load:>5}  wall {wall:7.2f} s  cpu {cpu:7.2f} s\n")
            sys.stderr.flush()
    from stardist_hier.predict import Nuclei

    got = Nuclei.concatenate(found["pipeline"][1])
    ref = found["big"]
    s, o = plan.image.scale, plan.image.offset
    same = (len(got) == len(ref["prob"]) and np.array_equal(got.prob, np.asarray(ref["prob"], np.float32))
            and np.allclose(got.coord, np.asarray(ref["coord"]) * s + o, atol=1e-3))
    serial = Nuclei.concatenate(found["serial"][1])
    same_serial = all(np.array_equal(getattr(got, k), getattr(serial, k)) for k in ("coord", "prob", "class_prob"))
    st, sm = found["pipeline"][0], found["masked"][0]
    return dict(rows=rows, tiles=st.n_predicted, nuclei=st.n_nuclei, nuclei_big=len(ref["prob"]),
                nuclei_fn=found["fn"], same_as_big=bool(same), same_as_serial=bool(same_serial),
                block_size=block_size, n_blocks=len(plan.blocks), read_s=st.read_seconds,
                forward_s=st.forward_seconds, nms_s=st.nms_seconds, nms_threads=st.nms_threads,
                masked_skipped=sm.n_skipped, masked_nuclei=sm.n_nuclei, pixels=int(pixels.shape[0] * pixels.shape[1]),
                read_pixels=int(sum(x.shape[0] * x.shape[1] for _, x in blocks)))


def child_estimate(args) -> dict:
    from stardist_hier.models import _stardist_big_compat as big
    from stardist_hier.predict import load_model
    from stardist_hier.predict.blocks import _context, block_memory

    model = load_model(args.model)
    b = int(args.block_size)
    n = b + 2 * _context(model, args.context)
    x = np.random.default_rng(0).random((n, n, int(model.config.n_channel_in)), dtype=np.float32)
    before = _peak_mb()
    with big.compiled_predict(model):
        model.predict_instances(x, axes="YXC")
    return dict(block_size=b, n=n, estimate_mb=block_memory(model, b, context=args.context) / 2**20,
                grew_mb=_peak_mb() - before)


# ------------------------------------------------------------------ parent
def _run_child(kind: str, args, slide: Path | None, block_size=None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--model", str(args.model),
           "--block-size", str(block_size or args.block_size), "--min-overlap", str(args.min_overlap),
           "--repeat", str(args.repeat)]
    if slide is not None:
        cmd += ["--slide", str(slide)]
    if args.context is not None:
        cmd += ["--context", str(args.context)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"child {kind} failed with code {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _best(rows, variant, key):
    return min(r[key] for r in rows if r["variant"] == variant)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384], help="slide sides in pixels")
    ap.add_argument("--quick", action="store_true", help="sizes 2048 4096 8192 (when 16k does not fit the time)")
    ap.add_argument("--throughput-size", type=int, help="slide side of the throughput runs (default the smallest)")
    ap.add_argument("--block-size", default="auto", help="block size, or 'auto' (the library's choice)")
    ap.add_argument("--min-overlap", type=int, default=128)
    ap.add_argument("--context", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2, help="throughput rounds (interleaved)")
    ap.add_argument("--model", type=Path, help="model folder (default: train a tiny one)")
    ap.add_argument("--dir", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--memory-estimate", action="store_true", help="only compare block_memory with measured memory")
    ap.add_argument("--block-sizes", type=int, nargs="+", default=[1024, 2048], help="for --memory-estimate")
    ap.add_argument("--child", choices=("memory", "throughput", "estimate"), help=argparse.SUPPRESS)
    ap.add_argument("--slide", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = [2048, 4096, 8192]

    if args.child:
        fn = {"memory": child_memory, "throughput": child_throughput, "estimate": child_estimate}[args.child]
        print(json.dumps(fn(args)))
        return 0

    with contextlib.ExitStack() as stack:
        work = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_predict_")))
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        if args.model is None:
            args.model = _train_tiny(work / "models")
        print(f"model: {args.model} ({time.perf_counter() - t:.0f} s to prepare); {os.cpu_count()} CPUs, "
              f"load average {_load()}", flush=True)
        if args.memory_estimate:
            print(f"{'block':>6} {'side read':>9} {'estimate MB':>12} {'peak RSS grew MB':>17}  load")
            for b in args.block_sizes:
                r = _run_child("estimate", args, None, block_size=b)
                print(f"{b:>6} {r['n']:>9} {r['estimate_mb']:>12.0f} {r['grew_mb']:>17.0f}  {_load()}", flush=True)
            return 0
        rows = []
        for n in args.sizes:
            t = time.perf_counter()
            slide = _write_slide(work / f"slide_{n}.tif", n)
            tw = time.perf_counter() - t
            r = _run_child("memory", args, slide)
            rows.append((n, r))
            print(f"size {n:>6}: wrote slide in {tw:.0f} s; block {r['block_size']}, {r['tiles']} of {r['blocks']} "
                  f"blocks predicted ({r['skipped']} skipped by the tissue mask), {r['nuclei']} nuclei in "
                  f"{r['seconds']:.1f} s wall, {r['cpu']:.1f} s CPU; peak RSS {r['peak_mb']:.0f} MB "
                  f"(after model load {r['after_load_mb']:.0f} MB); load average {_load()}", flush=True)
        for (n0, r0), (n1, r1) in zip(rows, rows[1:]):
            print(f"peak RSS {n1} / {n0}: {r1['peak_mb'] / r0['peak_mb']:.3f} (target <= 1.2)")
        n0 = args.throughput_size or min(args.sizes)
        slide = _write_slide(work / f"slide_{n0}.tif", n0)
        print(f"throughput on {n0}x{n0}, {args.repeat} interleaved rounds (each measurement: load average at its "
              f"start, wall, CPU of all threads):", flush=True)
        r = _run_child("throughput", args, slide)
        rs = r["rows"]
        print(f"block {r['block_size']}: {r['n_blocks']} blocks read {r['read_pixels'] / r['pixels']:.2f}x the "
              f"slide's pixels; {r['nuclei']} nuclei (pipeline), {r['nuclei_big']} (predict_instances_big), "
              f"{r['nuclei_fn']} (forward+nms)")
        print(f"{'variant':<14} {'best wall s':>11} {'best CPU s':>10} {'wall/big':>8} {'CPU/big':>8}   loads")
        wb, cb = _best(rs, "big", "wall"), _best(rs, "big", "cpu")
        for v in ("pipeline", "pipeline+mask", "serial", "big", "forward", "forward+nms"):
            w, c = _best(rs, v, "wall"), _best(rs, v, "cpu")
            loads = " ".join(x["load"] for x in rs if x["variant"] == v)
            print(f"{v:<14} {w:>11.2f} {c:>10.2f} {w / wb:>8.2f} {c / cb:>8.2f}   {loads}")
        print(f"pipeline stages (last round, summed over blocks, overlapping in time): read {r['read_s']:.2f} s, "
              f"forward {r['forward_s']:.2f} s, nms+polygons+classes {r['nms_s']:.2f} s; NMS OpenMP threads read "
              f"back: {r['nms_threads']}")
        print(f"tissue mask: {r['masked_skipped']} of {r['n_blocks']} blocks skipped ({GLASS:.0%} of the slide is "
              f"glass), {r['masked_nuclei']} nuclei")
        print(f"same nuclei as predict_instances_big: {r['same_as_big']}; as the serial loop: {r['same_as_serial']}")
        print(f"CPU pipeline / big = {_best(rs, 'pipeline', 'cpu') / cb:.2f} (target <= 0.8); wall pipeline / "
              f"(forward+nms) = {_best(rs, 'pipeline', 'wall') / _best(rs, 'forward+nms', 'wall'):.2f} "
              f"(target <= 1.1); load average now {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
