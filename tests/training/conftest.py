"""Small generated datasets and a tiny model for the training tests."""

import numpy as np
import pytest
from skimage.draw import disk

from stardist_hier import default_taxonomy
from stardist_hier.training import MultiDataset, Part

LEAVES = ("epithelial_tumor", "lymphocyte", "fibroblast")


def make_part(label_set, n, seed, *, size=64, leaves=LEAVES, leaf_p=None, n_nuclei=8):
    """``n`` images of discs whose leaf decides size and brightness, labelled with ``label_set``."""
    rng = np.random.default_rng(seed)
    X, Y, C = [], [], []
    for _ in range(n):
        x = rng.normal(0.1, 0.05, (size, size)).astype(np.float32)
        y = np.zeros((size, size), np.int32)
        c = {}
        for i in range(1, n_nuclei + 1):
            r, cc = rng.integers(6, size - 6, 2)
            leaf = leaves[rng.choice(len(leaves), p=leaf_p)]
            rad = 3 + 2 * (leaf == "epithelial_tumor")
            rr, ccc = disk((r, cc), rad, shape=y.shape)
            m = y[rr, ccc] == 0
            if not m.any():
                continue
            y[rr[m], ccc[m]] = i
            x[rr[m], ccc[m]] = 0.5 + 0.4 * (leaf == "lymphocyte")
            c[i] = next(lab for lab in label_set.labels if leaf in label_set.leaf_set(lab))
        C.append({k: v for k, v in c.items() if (y == k).any()})
        X.append(x)
        Y.append(y)
    return Part(X, Y, C, [label_set] * n)


@pytest.fixture(scope="session")
def taxonomy():
    return default_taxonomy()


@pytest.fixture(scope="session")
def two_datasets(taxonomy):
    """Dataset A labelled with PanNuke's set, B with CoNSeP's; 4 train + 2 val images each."""
    train = {"A": make_part(taxonomy["pannuke"], 4, 1), "B": make_part(taxonomy["consep"], 4, 2)}
    val = {"A": make_part(taxonomy["pannuke"], 2, 3), "B": make_part(taxonomy["consep"], 2, 4)}
    return MultiDataset(train, val)


def tiny_config(tree, **kw):
    from stardist_hier import Config2DHier

    base = dict(tree=tree, n_rays=8, grid=(2, 2), unet_n_depth=2, unet_n_filter_base=8, net_conv_after_unet=16,
                train_patch_size=(64, 64), train_batch_size=2, train_tensorboard=False)
    base.update(kw)
    return Config2DHier(**base)


@pytest.fixture
def tiny_model(taxonomy, tmp_path):
    from stardist_hier import StarDist2DHier

    return StarDist2DHier(tiny_config(taxonomy.tree), name="tiny", basedir=str(tmp_path))


@pytest.fixture
def make_tiny_model(taxonomy):
    """``make_tiny_model(basedir)``: a fresh tiny model (``basedir=None``: no folder)."""
    from stardist_hier import StarDist2DHier

    def make(basedir, name="m"):
        return StarDist2DHier(tiny_config(taxonomy.tree), name=name, basedir=None if basedir is None else str(basedir))

    return make
