"""Builders of small label images for the metrics tests (seeded, no global state)."""

import numpy as np


def random_labels(rng, shape=(48, 48), n=8, *, step=1):
    """Up to ``n`` overlapping rectangles with ids ``step, 2*step, ...`` (later ones on top)."""
    y = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        r, c = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        h, w = rng.integers(2, 14, 2)
        y[r:r + h, c:c + w] = i * step
    return y


def perturb(rng, y):
    """A prediction made from ``y``: shifted, some instances removed, ids permuted."""
    p = np.roll(y, tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
    ids = np.unique(p)[1:]
    drop = ids[rng.random(len(ids)) < 0.2]
    p[np.isin(p, drop)] = 0
    lut = np.zeros(int(y.max()) + 1, np.int64)
    lut[ids] = rng.permutation(len(ids)) + 100
    return np.where(p > 0, lut[p], 0).astype(np.int32)  # one dtype: StarDist's numba code compiles per dtype


def naive_strict_pq(gt, pred):
    """HoVer-Net's get_fast_pq, written the slow obvious way: (tp, fp, fn, sum_iou)."""
    g_ids = [i for i in np.unique(gt) if i]
    p_ids = [i for i in np.unique(pred) if i]
    pairs = []
    for g in g_ids:
        gm = gt == g
        for p in p_ids:
            pm = pred == p
            iou = (gm & pm).sum() / (gm | pm).sum()
            if iou > 0.5:
                pairs.append(iou)
    tp = len(pairs)
    return tp, len(p_ids) - tp, len(g_ids) - tp, float(sum(pairs))
