"""Slides per minute: one process (the serial runner) against N Dask workers, and peak memory per process.

    python benchmarks/bench_distributed.py                  # 6 slides of 1024 x 1024, 2 workers
    python benchmarks/bench_distributed.py --slides 8 --size 2048 --workers 2 --model models/mine

Both modes predict the same synthetic pyramidal TIFF slides into their own output
folder with the same model and options; the tables they write are compared (sorted
rows). The serial runner runs in a fresh process (``stardist_hier.predict.predict_to_folder``,
TensorFlow on all cores). The Dask run starts a ``LocalCluster`` (its start-up is timed
apart) and calls ``stardist_hier.predict.distributed.predict_distributed`` on it;
the peak memory of every worker is asked through ``client.run``. Without ``--model`` a
tiny model is trained first (seconds). The two modes alternate ``--repeats`` times (the
machine may be shared); the table shows the median of each.

Peak memory is reported two ways: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` and
``VmHWM`` of ``/proc/self/status``. On Linux ``ru_maxrss`` survives ``fork`` + ``exec``:
a process spawned by a big parent (here: the benchmark, which trained the model and
runs the LocalCluster's nannies) reports at least the parent's peak, so for the Dask
workers and the serial child it can be the *parent's* figure. ``VmHWM`` belongs to the
process's own address space (reset by ``exec``), and is the figure to trust.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import train_tiny


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _hwm_mib() -> float:
    """Peak resident set of this process's own address space (``VmHWM``), MiB; NaN where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peaks() -> tuple:
    return _maxrss_mib(), _hwm_mib()


def _train_tiny(basedir) -> Path:
    return train_tiny(basedir, n_rays=16, unet_n_filter_base=8, net_conv_after_unet=16, learning_rate=5e-3,
                      steps=120, seed=3, mpp=0.5)


def _serial(args) -> None:
    """Child process: the serial runner on every slide; prints JSON."""
    t0 = time.perf_counter()
    from stardist_hier.predict import predict_to_folder

    s = predict_to_folder([args.inputs], model=args.model, out=args.out, formats=["csv"],
                          block_size=args.block_size, min_overlap=64, prob_thresh=0.3)
    print(json.dumps({"seconds": time.perf_counter() - t0, "nuclei": s.stats.n_nuclei, "maxrss_mib": _maxrss_mib(),
                      "hwm_mib": _hwm_mib(),
                      "inputs": s.n_inputs}))


def _rows(path):
    lines = Path(path).read_bytes().splitlines()
    return lines[0], sorted(lines[1:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slides", type=int, default=6, help="number of slides (default 6)")
    p.add_argument("--size", type=int, default=1024, help="level-0 side of a slide, pixels at 0.25 um (default 1024)")
    p.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    p.add_argument("--block-size", type=int, default=256, help="block size at the model's pixel size (default 256)")
    p.add_argument("--model", type=Path, help="model folder (default: train a tiny one)")
    p.add_argument("--repeats", type=int, default=2, help="alternate the two modes this many times (default 2)")
    p.add_argument("--_serial", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args._serial:
        _serial(args)
        return 0

    import distributed
    from dask.system import CPU_COUNT

    from stardist_hier.predict.distributed import predict_distributed
    from stardist_hier.slides import SyntheticSlide, write_pyramid_tiff

    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        tmp = Path(tmp)
        if args.model is None:
            t = time.perf_counter()
            args.model = _train_tiny(tmp / "models")
            print(f"trained a tiny model in {time.perf_counter() - t:.1f} s", flush=True)
        slides = tmp / "slides"
        slides.mkdir()
        for i in range(args.slides):
            synth = SyntheticSlide((args.size, args.size), seed=100 + i, cell=48, radius=(8, 13),
                                   tissue=lambda r, c: (r - args.size / 2) ** 2 + (c - args.size / 2) ** 2
                                   < (0.45 * args.size) ** 2)
            write_pyramid_tiff(slides / f"slide{i:03d}.tif", synth, mpp=0.25, downsamples=(1, 4, 16), tile=256)
        print(f"{args.slides} slides of {args.size} x {args.size} px at 0.25 um (model at 0.5 um), "
              f"block {args.block_size}; {CPU_COUNT} cores", flush=True)

        env = {k: str(max(1, CPU_COUNT // args.workers)) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                    "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        runs = []
        for rep in range(args.repeats):
            # 1 process: the serial runner in a fresh interpreter (TF import and model load included)
            t = time.perf_counter()
            r = subprocess.run([sys.executable, __file__, "--_serial", "--inputs", str(slides), "--model",
                                str(args.model), "--out", str(tmp / f"serial{rep}"), "--block-size",
                                str(args.block_size)], capture_output=True, text=True, check=True)
            serial_wall = time.perf_counter() - t
            serial = json.loads(r.stdout.strip().splitlines()[-1])

            # N Dask workers on a fresh LocalCluster set up as predict_distributed(workers=N) does; its
            # start is timed apart, TF import and model load in the workers are in the Dask wall time
            t = time.perf_counter()
            cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None, silence_logs=50, env=env)
            client = distributed.Client(cluster)
            try:
                start = time.perf_counter() - t
                t = time.perf_counter()
                s = predict_distributed([slides], model=args.model, out=tmp / f"dask{rep}",
                                        scheduler=cluster.scheduler_address, formats=["csv"],
                                        block_size=args.block_size, min_overlap=64, prob_thresh=0.3,
                                        tf_threads=max(1, CPU_COUNT // args.workers))
                dask_wall = time.perf_counter() - t
                peaks = client.run(_peaks)
            finally:
                client.close()
                cluster.close()
            assert s.n_failed == 0, s.table()
            same = all(_rows(f) == _rows(tmp / f"dask{rep}" / f.name)
                       for f in sorted((tmp / f"serial{rep}").glob("*.csv")))
            runs.append(dict(serial_wall=serial_wall, serial=serial, dask_wall=dask_wall, start=start,
                             peaks=sorted(peaks.values()), s=s, same=same))
            print(f"repeat {rep + 1}: 1 process {serial_wall:.1f} s, {args.workers} Dask workers {dask_wall:.1f} s "
                  f"(+ cluster start {start:.1f} s); tables identical: {same}", flush=True)

    n = args.slides
    med = statistics.median
    serial_wall = med(r["serial_wall"] for r in runs)
    dask_wall = med(r["dask_wall"] for r in runs)
    start = med(r["start"] for r in runs)
    rate1, rate2, rate2s = n / serial_wall * 60, n / dask_wall * 60, n / (dask_wall + start) * 60
    last = runs[-1]
    s1_rss, s1_hwm = last["serial"]["maxrss_mib"], last["serial"]["hwm_mib"]
    w_rss = [p[0] for p in last["peaks"]]
    w_hwm = [p[1] for p in last["peaks"]]
    print()
    print(f"median of {args.repeats} alternating runs; {CPU_COUNT} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'':38s} {'1 process':>12s} {f'{args.workers} Dask workers':>18s} {'ratio':>8s}")
    print(f"{'wall time, s':38s} {serial_wall:12.1f} {dask_wall:18.1f} {serial_wall / dask_wall:8.2f}")
    print(f"{'slides per minute':38s} {rate1:12.2f} {rate2:18.2f} {rate2 / rate1:8.2f}")
    print(f"{'slides per minute (+ cluster start)':38s} {rate1:12.2f} {rate2s:18.2f} {rate2s / rate1:8.2f}")
    print(f"{'peak memory per process (VmHWM), MiB':38s} {s1_hwm:12.0f} "
          f"{' / '.join(f'{v:.0f}' for v in w_hwm):>18s} {max(w_hwm) / s1_hwm:8.2f}")
    print(f"{'ru_maxrss per process (inherited), MiB':38s} {s1_rss:12.0f} "
          f"{' / '.join(f'{v:.0f}' for v in w_rss):>18s} {max(w_rss) / s1_rss:8.2f}")
    print(f"{'nuclei':38s} {last['serial']['nuclei']:12d} {last['s'].stats.n_nuclei:18d}")
    print(f"cluster start {start:.1f} s (not in the Dask wall time); model loads per worker: "
          f"{sorted({r.model_loads for r in last['s'].results})}; TF threads per worker: "
          f"{sorted({r.tf_threads for r in last['s'].results})}; tables identical (sorted rows) in every run: "
          f"{all(r['same'] for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
