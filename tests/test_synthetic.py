"""Tests of the synthetic H&E multi-dataset generator (stardist_hier.synthetic)."""

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from stardist_hier.synthetic import (DATASET_NAMES, LEAVES, DomainParams, default_leaf_styles,
                                     domain_params, generate_benchmark, generate_dataset,
                                     make_tile)
from stardist_hier.tree import default_taxonomy


@pytest.fixture(scope="module")
def taxonomy():
    return default_taxonomy()


@pytest.fixture(scope="module")
def bench(taxonomy):
    return generate_benchmark(4, seed=7, taxonomy=taxonomy)


@pytest.fixture(scope="module")
def leaf_stats():
    """Per-leaf area, elongation and darkness of nuclei on neutral-domain tiles with all leaves."""
    rng = np.random.default_rng(2024)
    probs = {leaf: 1.0 for leaf in LEAVES}
    stats = {leaf: {"area": [], "elong": [], "dark": [], "solidity": []} for leaf in LEAVES}
    for _ in range(8):
        image, labels, leaf_of = make_tile(probs, rng=rng, size=256)
        # red-channel optical density: mostly hematoxylin (eosin absorbs little red)
        od = -np.log10(np.maximum(image[..., 0].astype(np.float64), 1) / 255)
        for rp in regionprops(labels, intensity_image=od):
            y0, x0, y1, x1 = rp.bbox
            if y0 == 0 or x0 == 0 or y1 == labels.shape[0] or x1 == labels.shape[1]:
                continue  # cut by the tile border
            s = stats[leaf_of[rp.label]]
            s["area"].append(rp.area)
            s["elong"].append(rp.axis_major_length / max(rp.axis_minor_length, 1e-6))
            s["dark"].append(rp.intensity_mean)
            s["solidity"].append(rp.solidity)
    return {leaf: {k: np.array(v) for k, v in d.items()} for leaf, d in stats.items()}


def test_tile_leaves_are_all_known():
    image, labels, leaf_of = make_tile({leaf: 1 for leaf in LEAVES}, rng=np.random.default_rng(0),
                                       size=(128, 160))
    assert image.shape == (128, 160, 3) and image.dtype == np.uint8
    assert labels.shape == (128, 160) and labels.dtype == np.int32
    assert set(leaf_of) == set(range(1, labels.max() + 1))
    assert set(leaf_of.values()) <= set(LEAVES)


def test_determinism_per_seed():
    a = generate_dataset("consep", 2, seed=11, size=128)
    b = generate_dataset("consep", 2, seed=11, size=128)
    c = generate_dataset("consep", 2, seed=12, size=128)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.labels, y.labels)
        np.testing.assert_array_equal(x.ignore, y.ignore)
        assert x.classes == y.classes and x.meta["leaves"] == y.meta["leaves"]
    assert not np.array_equal(a[0].image, c[0].image)
    assert not np.array_equal(a[0].labels, c[0].labels)
    # tile i does not depend on how many tiles are generated
    d = generate_dataset("consep", 1, seed=11, size=128)
    np.testing.assert_array_equal(d[0].image, a[0].image)


def test_datasets_differ_for_same_seed():
    a = generate_dataset("pannuke", 1, seed=3, size=96)
    b = generate_dataset("monusac", 1, seed=3, size=96)
    assert not np.array_equal(a[0].labels, b[0].labels)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_sample_structure(bench, taxonomy, name):
    ls = taxonomy[name]
    covered = ls.covered_leaves()
    samples = bench[name]
    assert len(samples) == 4
    for s in samples:
        assert s.label_set == name
        assert s.image.dtype == np.uint8 and s.image.shape == s.labels.shape + (3,)
        assert s.labels.dtype == np.int32
        n = int(s.labels.max())
        assert n > 5
        # ids 1..n contiguous and none empty
        np.testing.assert_array_equal(np.unique(s.labels), np.arange(n + 1))
        assert set(s.classes) == set(range(1, n + 1)) == set(s.meta["leaves"])
        for i, lab in s.classes.items():
            leaf = s.meta["leaves"][i]
            assert leaf in LEAVES
            if leaf in covered:
                assert lab in ls.labels and leaf in ls.leaf_set(lab)
            else:
                assert lab is None
        ignored = [i for i, lab in s.classes.items() if lab is None]
        np.testing.assert_array_equal(s.ignore, np.isin(s.labels, ignored))
        np.testing.assert_array_equal(s.training_labels()[s.ignore], -1)
        assert s.meta["dataset"] == name and s.meta["mpp"] > 0
        # each nucleus is one connected piece
        for i, sl in enumerate(ndi.find_objects(s.labels), start=1):
            assert ndi.label(s.labels[sl] == i)[1] == 1


def test_monusac_labels_and_ignore(bench, taxonomy):
    pannuke_only = set(taxonomy["pannuke"].labels) - set(taxonomy["monusac"].labels)
    assert pannuke_only
    labels, leaves_ignored = set(), set()
    for s in bench["monusac"]:
        labels |= {c for c in s.classes.values() if c is not None}
        leaves_ignored |= {s.meta["leaves"][i] for i, c in s.classes.items() if c is None}
    assert labels <= set(taxonomy["monusac"].labels)
    assert not labels & pannuke_only
    # uncovered nuclei (connective, plasma cells, ...) are present but ignored
    assert leaves_ignored and not leaves_ignored & taxonomy["monusac"].covered_leaves()
    assert any(s.ignore.any() for s in bench["monusac"])


def test_uncovered_omit():
    samples = generate_dataset("monusac", 2, seed=1, size=128, domain={"uncovered": "omit"})
    for s in samples:
        assert all(c is not None for c in s.classes.values())
        assert not s.ignore.any()


def test_domain_shift_mean_colour(bench):
    means = {n: np.mean([s.image.reshape(-1, 3).mean(0) for s in v], axis=0) for n, v in bench.items()}
    names = list(means)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.abs(means[names[i]] - means[names[j]]).max() > 4, (names[i], names[j], means)


def test_he_like_colour(bench):
    for samples in bench.values():
        for s in samples:
            img = s.image.astype(np.float64)
            nuc = img[s.labels > 0].mean(0)
            bg = img[s.labels == 0].mean(0)
            assert nuc.sum() < bg.sum() - 150           # nuclei much darker
            assert nuc[2] > nuc[1] and bg[0] > bg[1]    # purple-blue nuclei, pink background


def test_size_and_shape_are_learnable(leaf_stats):
    st = leaf_stats
    for leaf in LEAVES:
        assert len(st[leaf]["area"]) >= 5, leaf
    area = {k: v["area"].mean() for k, v in st.items()}
    elong = {k: np.median(v["elong"]) for k, v in st.items()}
    dark = {k: v["dark"].mean() for k, v in st.items()}
    assert area["lymphocyte"] < area["epithelial_tumor"] / 2
    assert area["epithelial_normal"] < area["epithelial_tumor"]
    assert elong["fibroblast"] > 2 * elong["lymphocyte"]
    assert elong["muscle"] > 2 and elong["endothelial"] > 2
    # siblings differ in darkness: lymphocytes darker than macrophages, fibroblasts than muscle
    assert dark["lymphocyte"] > dark["macrophage"] + 0.1
    assert dark["fibroblast"] > dark["muscle"] + 0.05
    assert dark["necrotic"] > dark["other_cell"]


def test_domain_params_overrides():
    d = domain_params("pannuke", scale=1.3, noise=0.0)
    assert isinstance(d, DomainParams) and d.scale == 1.3 and d.noise == 0
    assert abs(np.linalg.norm(d.stain_matrix, axis=1) - 1).max() < 1e-9
    with pytest.raises(TypeError):
        domain_params("pannuke", colour=1)
    with pytest.raises(ValueError):
        domain_params("nope")
    with pytest.raises(ValueError):
        domain_params("pannuke", uncovered="maybe")
    with pytest.raises(Exception):
        d.scale = 2.0  # frozen
    big = generate_dataset("pannuke", 1, seed=0, size=128, domain={"scale": 1.6, "density": 0.5})
    small = generate_dataset("pannuke", 1, seed=0, size=128)
    assert big[0].meta["mpp"] < small[0].meta["mpp"]


def test_custom_styles():
    styles = {**default_leaf_styles(),
              "lymphocyte": replace(default_leaf_styles()["lymphocyte"], radius=9.0)}
    _, labels, leaf_of = make_tile({"lymphocyte": 1.0}, rng=np.random.default_rng(0), size=128,
                                   styles=styles)
    assert set(leaf_of.values()) == {"lymphocyte"}
    with pytest.raises(ValueError):
        make_tile({"unicorn": 1.0}, rng=np.random.default_rng(0), size=64)
    with pytest.raises(TypeError):
        make_tile(None, rng=0, size=64)


def test_no_tensorflow_import():
    code = ("import sys; from stardist_hier.synthetic import generate_dataset; "
            "generate_dataset('pannuke', 1, seed=0, size=64); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_leaves_separable_but_siblings_harder(leaf_stats, taxonomy):
    """Nearest-centroid on 4 shape/colour features: leaves well above chance, super-classes easier."""
    tree = taxonomy.tree
    feats, leaves = [], []
    for leaf, d in leaf_stats.items():
        f = np.column_stack([np.log(d["area"]), np.log(d["elong"]), d["dark"], d["solidity"]])
        feats.append(f)
        leaves += [leaf] * len(f)
    x = np.concatenate(feats)
    x = (x - x.mean(0)) / x.std(0)
    leaves = np.array(leaves)
    cent = {leaf: x[leaves == leaf].mean(0) for leaf in LEAVES}
    names = list(cent)
    pred = np.array(names)[np.argmin([((x - cent[n]) ** 2).sum(1) for n in names], axis=0)]
    leaf_acc = (pred == leaves).mean()
    parent = {leaf: tree.parent(leaf) for leaf in LEAVES}
    super_acc = np.mean([parent[p] == parent[t] for p, t in zip(pred, leaves)])
    print(f"nearest-centroid accuracy: leaf {leaf_acc:.2f}, super-class {super_acc:.2f}")
    assert leaf_acc > 3 / len(LEAVES)          # far above chance (1/13) with 4 crude features
    assert super_acc > leaf_acc + 0.05          # confusions are mostly between siblings
