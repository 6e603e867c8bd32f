"""Time stardist_hier.metrics against StarDist's ``matching_dataset`` on synthetic nuclei.

    python benchmarks/bench_metrics.py [--images 1000] [--size 256] [--nuclei 50] [--seed 0]

Ground truth: ``--images`` label images of ``--size``² pixels with about ``--nuclei``
disks each (radius 4-10 px, later disks over earlier ones), every nucleus with one of
6 classes. Prediction: each disk shifted by up to 3 px, its radius changed by up to
2 px, 10 % of nuclei missed, 5 extra disks per image, 10 % of classes changed.

Times, on the same data: our evaluation under the hovernet, conic (binary and mPQ+)
and stardist conventions together, and StarDist's ``matching_dataset`` (IoU >= 0.5,
pooled). Both are warmed up once first (StarDist's overlap is numba-compiled).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_data(n_images: int, size: int, n_nuclei: int, seed: int):
    """Ground truth and prediction label images with per-instance classes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    gts, preds, gcls, pcls = [], [], [], []

    def draw(img, cy, cx, r, label):
        y0, y1 = max(0, int(cy - r)), min(size, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(size, int(cx + r) + 1)
        m = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        img[y0:y1, x0:x1][m] = label

    for _ in range(n_images):
        g = np.zeros((size, size), np.int32)
        p = np.zeros((size, size), np.int32)
        centres = rng.uniform(0, size, (n_nuclei, 2))
        radii = rng.uniform(4, 10, n_nuclei)
        classes = rng.integers(1, 7, n_nuclei)
        gc, pc = {}, {}
        for i, ((cy, cx), r, c) in enumerate(zip(centres, radii, classes), start=1):
            draw(g, cy, cx, r, i)
            gc[i] = int(c)
            if rng.random() < 0.9:
                dy, dx = rng.uniform(-3, 3, 2)
                draw(p, cy + dy, cx + dx, max(2.0, r + rng.uniform(-2, 2)), i)
                pc[i] = int(c) if rng.random() < 0.9 else int(rng.integers(1, 7))
        for j in range(n_nuclei + 1, n_nuclei + 6):
            cy, cx = rng.uniform(0, size, 2)
            draw(p, cy, cx, rng.uniform(4, 10), j)
            pc[j] = int(rng.integers(1, 7))
        gts.append(g)
        preds.append(p)
        gcls.append(gc)
        pcls.append(pc)
    return gts, preds, gcls, pcls


def ours(gts, preds, gcls, pcls):
    """The three conventions, each with its time in seconds."""
    from stardist_hier.metrics import pq_conic, pq_hovernet, pq_stardist

    out = {}
    for name, fn in (("hovernet", lambda: pq_hovernet(gts, preds, both_empty="skip")),
                     ("conic", lambda: pq_conic(gts, preds, gcls, pcls, classes=range(1, 7))),
                     ("stardist", lambda: pq_stardist(gts, preds, threshold=0.5))):
        t = time.perf_counter()
        out[name] = (fn(), time.perf_counter() - t)
    return out


def theirs(gts, preds):
    from stardist.matching import matching_dataset

    return matching_dataset(gts, preds, thresh=0.5, show_progress=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--nuclei", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t = time.perf_counter()
    gts, preds, gcls, pcls = make_data(args.images, args.size, args.nuclei, args.seed)
    n_gt = sum(len(np.unique(g)) - 1 for g in gts)
    print(f"data: {args.images} images of {args.size}x{args.size}, {n_gt / args.images:.1f} nuclei/image "
          f"(made in {time.perf_counter() - t:.1f} s)")

    ours(gts[:1], preds[:1], gcls[:1], pcls[:1])  # warm-up (imports, numba compilation)
    theirs(gts[:1], preds[:1])

    t = time.perf_counter()
    res = ours(gts, preds, gcls, pcls)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = theirs(gts, preds)
    t_theirs = time.perf_counter() - t
    (hov, _), (conic, _), (sd, _) = res["hovernet"], res["conic"], res["stardist"]

    print(f"stardist_hier.metrics (hovernet + conic + stardist): {t_ours:7.2f} s  ("
          + ", ".join(f"{k} {v[1]:.2f} s" for k, v in res.items()) + ")")
    print(f"stardist.matching.matching_dataset (thresh 0.5):     {t_theirs:7.2f} s")
    print(f"ratio ours / matching_dataset:                       {t_ours / t_theirs:7.2f}")
    print(f"hovernet PQ {hov.pq:.4f} | conic PQ {conic.pq:.4f} mPQ+ {conic.mpq:.4f} | "
          f"stardist PQ {sd.pq:.4f} (matching_dataset {ref.panoptic_quality:.4f}; "
          f"TP {sd.binary.tp} vs {ref.tp}, FP {sd.binary.fp} vs {ref.fp}, FN {sd.binary.fn} vs {ref.fn})")

if __name__ == "__main__":
    main()
