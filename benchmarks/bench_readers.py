"""Benchmark the dataset readers: PanNuke memory bound and patch-preparation throughput.

1. Writes a synthetic PanNuke fold in the official layout (float64 ``images.npy`` and
   ``masks.npy``, ``types.npy``) to a temporary folder, then reads every patch with
   :class:`stardist_hier.datasets.PanNuke` and :func:`extract_patches` in a **child
   process that only reads**, and reports its peak resident memory (``VmHWM`` from
   ``/proc/self/status``, falling back to ``resource.getrusage``). Target: < 1 GB.
   For contrast the child can also read through one long-lived ``np.load(mmap_mode='r')``
   map (``naive``): mapped pages count towards RSS, which is why the reader maps one
   patch at a time.
2. Writes a CoNSeP-layout set of 1000x1000 images and measures reading + 256x256
   patch extraction.

Throughput is compared with training consumption: ``TRAINING_PATCHES_PER_S = 25``
comes from the issue brief (one training step of batch 4 takes ~0.15-0.2 s on the
development machine, i.e. ~20-25 patches/s). A ratio above 1 means data preparation
keeps up with training in a single process.

Pages written are still in the page cache when read (warm cache); a cold read is
bounded by disk speed.

Usage::

    python benchmarks/bench_readers.py [--patches 2000] [--consep-images 12] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Patches per second consumed by training (issue brief: ~0.15-0.2 s per step of batch 4).
TRAINING_PATCHES_PER_S = 25.0
RSS_LIMIT_BYTES = 1 << 30


def peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


# ------------------------------------------------------------------------------ writing
def _templates(rng, n_templates, size=256, n_nuclei=40):
    """Mask templates (size, size, 6) with disks in the 5 class channels and ids offset per patch later."""
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n_templates):
        m = np.zeros((size, size, 6), np.float64)
        for k in range(n_nuclei):
            cy, cx = rng.integers(8, size - 8, 2)
            r = rng.integers(4, 9)
            ch = rng.integers(0, 5)
            disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            m[..., ch][disk & (m[..., :5].sum(-1) == 0)] = 3 * k + 7  # non-contiguous ids
        m[..., 5] = m[..., :5].sum(-1) == 0
        out.append(m)
    return out


def write_pannuke(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "Fold 1"
    (base / "images" / "fold1").mkdir(parents=True, exist_ok=True)
    (base / "masks" / "fold1").mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(base / "images" / "fold1" / "images.npy", mode="w+",
                                       dtype=np.float64, shape=(n, 256, 256, 3))
    masks = np.lib.format.open_memmap(base / "masks" / "fold1" / "masks.npy", mode="w+",
                                      dtype=np.float64, shape=(n, 256, 256, 6))
    templates = _templates(rng, 8)
    noise = rng.integers(0, 256, (8, 256, 256, 3)).astype(np.float64)
    chunk = 64
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        for i in range(s, e):
            images[i] = noise[i % 8]
            masks[i] = templates[i % 8]
        images.flush()
        masks.flush()
    del images, masks
    tissues = np.array(["Breast", "Colon", "Liver", "Skin"])[np.arange(n) % 4]
    np.save(base / "images" / "fold1" / "types.npy", tissues)
    return root


def write_consep(root: Path, n: int, seed: int = 1) -> Path:
    from scipy.io import savemat
    from skimage.io import imsave

    rng = np.random.default_rng(seed)
    d = root / "Train"
    (d / "Images").mkdir(parents=True, exist_ok=True)
    (d / "Labels").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:1000, :1000]
    for i in range(n):
        img = rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
        inst = np.zeros((1000, 1000), np.int32)
        types = []
        for k in range(1, 601):
            cy, cx = rng.integers(10, 990, 2)
            r = rng.integers(4, 9)
            sl = (slice(cy - r, cy + r + 1), slice(cx - r, cx + r + 1))
            disk = ((yy[sl] - cy) ** 2 + (xx[sl] - cx) ** 2 <= r * r) & (inst[sl] == 0)
            inst[sl][disk] = k
            types.append(rng.integers(1, 8))
        imsave(d / "Images" / f"train_{i + 1}.png", img, check_contrast=False)
        savemat(d / "Labels" / f"train_{i + 1}.mat", {"inst_map": inst, "inst_type": np.array(types)[:, None]})
    return root


# ------------------------------------------------------------------------------ child (reads only)
def child(mode: str, path: str) -> None:
    from stardist_hier.datasets import CoNSeP, PanNuke, extract_patches

    t0 = time.perf_counter()
    n_samples = n_patches = n_nuclei = 0
    if mode == "pannuke":
        for s in PanNuke(path):
            n_samples += 1
            for p in extract_patches(s, size=256):
                n_patches += 1
                n_nuclei += len(p.classes)
    elif mode == "naive":  # one long-lived map: every touched page stays mapped
        m = np.load(Path(path) / "Fold 1" / "masks" / "fold1" / "masks.npy", mmap_mode="r")
        im = np.load(Path(path) / "Fold 1" / "images" / "fold1" / "images.npy", mmap_mode="r")
        for i in range(len(m)):
            _ = np.rint(im[i]).astype(np.uint8)
            n_nuclei += int(np.unique(m[i][..., :5]).size)
            n_samples += 1
            n_patches += 1
    elif mode == "consep":
        for s in CoNSeP(path):
            n_samples += 1
            for p in extract_patches(s, size=256, overlap=0):
                n_patches += 1
                n_nuclei += len(p.classes)
    dt = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "samples": n_samples, "patches": n_patches, "nuclei": n_nuclei,
                      "seconds": dt, "peak_rss": peak_rss_bytes()}))


def run_child(mode: str, path: Path) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", type=int, default=2000, help="PanNuke patches to write (default 2000)")
    ap.add_argument("--consep-images", type=int, default=12, help="1000x1000 CoNSeP images (default 12)")
    ap.add_argument("--dir", help="folder for the synthetic data (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic data")
    ap.add_argument("--naive", action="store_true", help="also measure one long-lived mmap (contrast)")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_readers_"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    try:
        t = time.perf_counter()
        write_pannuke(work / "pannuke", args.patches)
        size = sum(f.stat().st_size for f in (work / "pannuke").rglob("*.npy"))
        print(f"wrote PanNuke fold: {args.patches} patches, {size / 2**30:.2f} GiB float64 "
              f"in {time.perf_counter() - t:.1f} s ({work / 'pannuke'})")
        r = run_child("pannuke", work / "pannuke")
        rate = r["patches"] / r["seconds"]
        ok &= r["peak_rss"] < RSS_LIMIT_BYTES
        print(f"PanNuke read + patch ({r['patches']} patches, {r['nuclei']} nuclei): {r['seconds']:.1f} s, "
              f"{rate:.1f} patches/s, ratio vs training {TRAINING_PATCHES_PER_S:g} patches/s = "
              f"{rate / TRAINING_PATCHES_PER_S:.1f}x")
        print(f"PanNuke reader peak RSS (VmHWM, reading child): {r['peak_rss'] / 2**20:.0f} MiB "
              f"-> {'PASS' if r['peak_rss'] < RSS_LIMIT_BYTES else 'FAIL'} (< 1024 MiB)")
        if args.naive:
            r = run_child("naive", work / "pannuke")
            print(f"contrast, one long-lived np.load(mmap_mode='r') map: peak RSS {r['peak_rss'] / 2**20:.0f} MiB "
                  f"({r['seconds']:.1f} s, conversion of images only)")
        if args.consep_images > 0:
            t = time.perf_counter()
            write_consep(work / "consep", args.consep_images)
            print(f"wrote CoNSeP layout: {args.consep_images} images 1000x1000 in {time.perf_counter() - t:.1f} s")
            r = run_child("consep", work / "consep")
            rate = r["patches"] / r["seconds"]
            print(f"CoNSeP read + patch 256 ({r['samples']} images -> {r['patches']} patches): {r['seconds']:.1f} s, "
                  f"{rate:.1f} patches/s, ratio vs training {TRAINING_PATCHES_PER_S:g} patches/s = "
                  f"{rate / TRAINING_PATCHES_PER_S:.1f}x; peak RSS {r['peak_rss'] / 2**20:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"cpu count: {os.cpu_count()}, single reading process")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
