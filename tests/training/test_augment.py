"""Augmentation: integer labels, image/label alignment, class-aware probabilities."""

import numpy as np
import pytest
from scipy import stats

from stardist_hier.training import Augmenter, DatasetMixer, rare_images, rare_labels
from stardist_hier.training.augment import elastic_deform, random_rot_flip


def _patch(rng, size=64):
    y = np.zeros((size, size), np.int32)
    for i in range(1, 7):
        r, c = rng.integers(8, size - 8, 2)
        y[r - 5:r + 5, c - 3:c + 4] = i
    y[:4, :4] = -1  # an ignore region
    return y


def test_flip_rotate_moves_image_and_labels_together(rng):
    aug = Augmenter(seed=0, p_color=0, p_geometric=1, p_elastic=0)
    for _ in range(20):
        y = _patch(rng)
        x = np.stack([y == 1, y > 1, y < 0], -1).astype(np.float32)  # image = one-hot of the labels
        x2, y2 = aug(x, y)
        assert y2.dtype == y.dtype and y2.shape == y.shape and x2.shape == x.shape
        np.testing.assert_array_equal(x2[..., 0] > 0.5, y2 == 1)
        np.testing.assert_array_equal(x2[..., 1] > 0.5, y2 > 1)
        np.testing.assert_array_equal(x2[..., 2] > 0.5, y2 < 0)
        assert y2.flags.c_contiguous and x2.flags.c_contiguous
    assert aug.counts["geometric"][0] == 20


def test_flip_is_a_real_flip(rng):
    y = _patch(rng)
    x = y.astype(np.float32)
    seen = set()
    r = np.random.default_rng(1)
    for _ in range(30):
        x2, y2 = random_rot_flip(x, y, r)
        np.testing.assert_array_equal(x2, y2.astype(np.float32))
        seen.add(y2.tobytes())
    assert len(seen) == 8  # the 8 symmetries of the square


def test_elastic_keeps_integer_labels_aligned(rng):
    y = _patch(rng)
    x = (y > 0).astype(np.float32)
    x2, y2 = elastic_deform(x, y, np.random.default_rng(0), alpha=6, sigma=8)
    assert y2.dtype == np.int32
    assert set(np.unique(y2)) <= set(np.unique(y))
    assert not np.array_equal(y2, y)
    agree = ((x2 > 0.5) == (y2 > 0)).mean()
    assert agree > 0.97


def test_color_jitter_changes_image_not_labels(rng):
    aug = Augmenter(seed=0, p_color=1, p_geometric=0, p_elastic=0)
    y = _patch(rng)
    x = rng.random((64, 64, 3)).astype(np.float32)
    x2, y2 = aug(x, y)
    np.testing.assert_array_equal(y2, y)
    assert x2.dtype == np.float32 and not np.allclose(x2, x)
    g2, _ = aug(x[..., 0], y)  # one channel: brightness only
    assert g2.shape == (64, 64)


def test_rare_class_patches_are_augmented_more_often(rng, taxonomy):
    ls = taxonomy["consep"]
    # 10 images; images 0-1 hold the rare label 'muscle'
    classes = [{1: "fibroblast", 2: "inflammatory", 3: "other"} for _ in range(10)]
    for c in classes[:2]:
        c[4] = "muscle"
    assert rare_labels(classes, [ls] * 10, threshold=0.1) == {"consep": frozenset({"muscle"})}
    rare = rare_images(classes, [ls] * 10, threshold=0.1)
    assert rare.tolist() == [True, True] + [False] * 8

    mixer = DatasetMixer({"D": np.arange(10)}, 5, seed=0)
    aug = Augmenter(seed=1, p_color=0, p_geometric=0.3, rare_p_geometric=0.9, p_elastic=0.1, rare_p_elastic=0.6,
                    rare=rare, source=mixer)
    y = _patch(rng, 32)
    x = y.astype(np.float32)
    for i in range(200):
        for _ in mixer(i):  # StarDist augments the batch's patches in the sampler's order
            aug(x, y)
    n_common, n_rare = aug.counts["patches"]
    assert n_common + n_rare == 1000 and n_rare > 100
    for kind in ("geometric", "elastic"):
        common, rare_n = aug.counts[kind]
        # two-proportion test: rare-class patches are transformed more often
        table = [[rare_n, n_rare - rare_n], [common, n_common - common]]
        assert rare_n / n_rare > common / n_common
        assert stats.fisher_exact(table, alternative="greater").pvalue < 1e-6
    assert abs(aug.counts["geometric"][1] / n_rare - 0.9) < 0.08
    assert abs(aug.counts["geometric"][0] / n_common - 0.3) < 0.06


def test_augmenter_rejects_bad_options():
    with pytest.raises(ValueError, match="p_elastic"):
        Augmenter(p_elastic=1.5)
    with pytest.raises(ValueError, match="backend"):
        Augmenter(backend="cv2")
