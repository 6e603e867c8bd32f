"""Tiny generated data from two label sets, and a tiny model config."""

import numpy as np
import pytest
from skimage.draw import disk

from stardist_hier import default_taxonomy

TAX = default_taxonomy()
# leaf -> intensity: the class is learnable from the image
LEAVES = {"epithelial_tumor": 0.9, "lymphocyte": 0.55, "fibroblast": 0.3}


def _make_images(rng, n, label_set, *, size=96, n_nuclei=10):
    X, Y, C, L = [], [], [], []
    for _ in range(n):
        x = rng.normal(0.05, 0.02, (size, size)).astype(np.float32)
        y = np.zeros((size, size), np.int32)
        classes, leaves = {}, {}
        for i in range(1, n_nuclei + 1):
            r, c = rng.integers(8, size - 8, 2)
            leaf = list(LEAVES)[rng.integers(len(LEAVES))]
            rr, cc = disk((r, c), 5, shape=y.shape)
            free = y[rr, cc] == 0
            if free.sum() < 20:
                continue
            y[rr[free], cc[free]] = i
            x[rr[free], cc[free]] = LEAVES[leaf]
            classes[i] = next((lab for lab in label_set.labels if leaf in label_set.leaf_set(lab)), None)
            leaves[i] = leaf
        X.append(x)
        Y.append(y)
        C.append(classes)
        L.append(leaves)
    return X, Y, C, L


def _tiny_config(**kw):
    from stardist_hier import Config2DHier

    opts = dict(tree=TAX.tree, n_rays=16, grid=(2, 2), unet_n_depth=2, unet_n_filter_base=8,
                net_conv_after_unet=16, train_patch_size=(64, 64), train_batch_size=4,
                train_tensorboard=False, train_learning_rate=1e-2)
    opts.update(kw)
    return Config2DHier(**opts)


@pytest.fixture(scope="module")
def two_sets():
    rng = np.random.default_rng(7)
    a = _make_images(rng, 8, TAX["pannuke"])
    b = _make_images(rng, 8, TAX["consep4"])
    return a, b


@pytest.fixture
def make_images():
    """``make_images(rng, n, label_set) -> (X, Y, classes, leaves)``."""
    return _make_images


@pytest.fixture(scope="module")
def tiny_config():
    """``tiny_config(**overrides) -> Config2DHier`` of a model that trains in seconds."""
    return _tiny_config
