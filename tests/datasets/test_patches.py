import math

import numpy as np
import pytest

from stardist_hier.datasets import Sample, extract_patches, iter_patches, patch_grid
from stardist_hier.datasets.patches import patch_origins


def _sample(rng, h, w, ignore=False):
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    lab = np.zeros((h, w), np.int32)
    classes = {}
    k = 0
    for y in range(5, h - 12, 25):
        for x in range(5, w - 12, 25):
            k += 1
            lab[y:y + 10, x:x + 10] = k
            classes[k] = "Tumor" if k % 2 else None
    ig = np.zeros((h, w), bool) if ignore else None
    if ignore:
        ig[0, 0] = True
    return Sample(image=img, labels=lab, classes=classes, label_set="nucls2", ignore=ig, meta={"name": "s"})


@pytest.mark.parametrize("length,size,overlap", [(300, 256, 64), (500, 256, 64), (256, 256, 0), (100, 256, 0),
                                                 (1000, 256, 0), (1000, 256, 128), (257, 256, 255)])
def test_origins_cover_and_count(length, size, overlap):
    o = patch_origins(length, size=size, overlap=overlap)
    expected = 1 if length <= size else math.ceil((length - size) / (size - overlap)) + 1
    assert len(o) == expected
    assert o[0] == 0 and o[-1] == max(length - size, 0)
    covered = np.zeros(length, bool)
    for s in o:
        covered[s:s + size] = True
    assert covered.all()
    assert all(b - a <= size - overlap for a, b in zip(o, o[1:]))


def test_bad_overlap():
    with pytest.raises(ValueError):
        patch_origins(100, size=32, overlap=32)


def test_grid_count_with_overlap(rng):
    s = _sample(rng, 300, 500)
    patches = list(extract_patches(s, size=256, overlap=64))
    assert len(patches) == 2 * 3 == len(patch_grid((300, 500), size=256, overlap=64))
    for p in patches:
        assert p.image.shape == (256, 256, 3) and p.labels.shape == (256, 256) and p.ignore.shape == (256, 256)
        assert p.labels.dtype == np.int32 and p.image.dtype == np.uint8
        ids = set(np.unique(p.labels)) - {0}
        assert ids == set(p.classes) == set(range(1, len(ids) + 1))  # relabelled 1..n
        y0, x0 = p.meta["patch_origin"]
        np.testing.assert_array_equal(p.image, s.image[y0:y0 + 256, x0:x0 + 256])
        assert p.meta["name"] == "s" and p.label_set == "nucls2"


def test_classes_follow_relabelling(rng):
    s = _sample(rng, 300, 300)
    for p in extract_patches(s, size=128, overlap=0):
        y0, x0 = p.meta["patch_origin"]
        for k, c in p.classes.items():
            old = np.unique(s.labels[y0:y0 + 128, x0:x0 + 128][p.labels == k])
            assert len(old) == 1 and s.classes[int(old[0])] == c


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_padding_small_image(rng, mode):
    s = _sample(rng, 100, 80, ignore=True)
    (p,) = list(extract_patches(s, size=256, pad_mode=mode))
    assert p.image.shape == (256, 256, 3)
    np.testing.assert_array_equal(p.image[:100, :80], s.image)
    assert np.all(p.labels[100:] == 0) and np.all(p.labels[:, 80:] == 0)
    assert p.ignore[100:].all() and p.ignore[:, 80:].all()
    assert p.ignore.sum() == 256 * 256 - 100 * 80 + 1  # padding + the original ignore pixel
    if mode == "constant":
        assert np.all(p.image[100:] == 0)
    else:
        np.testing.assert_array_equal(p.image[100, :80], s.image[98, :])  # reflected
    assert len(p.classes) == len(s.classes)


def test_one_pixel_image_pads():
    s = Sample(image=np.full((1, 1, 3), 7, np.uint8), labels=np.ones((1, 1), np.int32), classes={1: "x"},
               label_set="root")
    (p,) = list(extract_patches(s, size=8))
    assert p.image.shape == (8, 8, 3) and p.ignore.sum() == 63 and p.classes == {1: "x"}


def test_cut_instance_policy():
    lab = np.zeros((64, 64), np.int32)
    lab[28:36, 28:36] = 1  # crosses the border between the patches at x = 32
    lab[4:10, 4:10] = 2    # inside the first patch
    lab[0:6, 58:64] = 3    # touches the image border only
    s = Sample(image=np.zeros((64, 64, 3), np.uint8), labels=lab, classes={1: "a", 2: "b", 3: "c"},
               label_set="x")
    keep = list(extract_patches(s, size=(64, 32), overlap=0))
    assert [p.meta["patch_origin"] for p in keep] == [(0, 0), (0, 32)]
    assert keep[0].classes == {1: "a", 2: "b"} and keep[0].meta["n_cut"] == 1
    assert keep[1].classes == {1: "a", 2: "c"} and not keep[1].ignore.any()
    ign = list(extract_patches(s, size=(64, 32), overlap=0, cut="ignore"))
    assert ign[0].classes == {1: "b"} and ign[1].classes == {1: "c"}
    assert ign[0].ignore[28:36, 28:32].all() and ign[0].ignore.sum() == 8 * 4
    assert np.all(ign[0].labels[28:36, 28:32] == 0)
    assert (ign[0].training_labels() == -1).sum() == 32
    assert ign[1].meta["n_cut"] == 1


def test_iter_patches(rng):
    samples = [_sample(rng, 300, 300), _sample(rng, 50, 50)]
    assert len(list(iter_patches(samples, size=256, overlap=0))) == 4 + 1


def test_bad_options(rng):
    s = _sample(rng, 50, 50)
    with pytest.raises(ValueError):
        list(extract_patches(s, cut="drop"))
    with pytest.raises(ValueError):
        list(extract_patches(s, pad_mode="wrap"))
