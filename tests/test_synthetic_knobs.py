"""Generator knobs that let hypotheses fail: uncovered nuclei as background, per-domain leaf shift, label noise, lookalike leaves."""

import numpy as np
import pytest

from stardist_hier.synthetic import default_leaf_styles, domain_params, generate_dataset
from stardist_hier.synthetic.datasets import shifted_styles


def _gen(**domain):
    return generate_dataset("monusac", 3, seed=5, size=96, domain=domain or None)


def test_defaults_unchanged():
    a, b = _gen(), _gen(uncovered="ignore", leaf_shift=0.0, label_noise=0.0)
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.labels, y.labels) and x.classes == y.classes
    assert "noisy" not in a[0].meta


def test_uncovered_as_background():
    ign, bg = _gen(), _gen(uncovered="background")
    n_ignored = 0
    for a, b in zip(ign, bg):
        assert np.array_equal(a.image, b.image)  # the same nuclei are drawn
        covered = [i for i, c in a.classes.items() if c is not None]
        n_ignored += len(a.classes) - len(covered)
        # uncovered nuclei are background (label 0), nothing is ignored, ids are 1..n with a class each
        assert not b.ignore.any()
        assert sorted(b.classes) == list(range(1, len(covered) + 1))
        assert all(c is not None for c in b.classes.values())
        assert set(np.unique(b.labels)) <= set(range(len(covered) + 1))
        assert np.array_equal(b.labels > 0, (a.labels > 0) & ~a.ignore)
        assert [a.classes[i] for i in covered] == [b.classes[j] for j in sorted(b.classes)]
        assert [a.meta["leaves"][i] for i in covered] == [b.meta["leaves"][j] for j in sorted(b.classes)]
    assert n_ignored > 0  # MoNuSAC-like tiles do hold uncovered nuclei


def test_leaf_shift_is_per_domain_and_per_leaf():
    st = default_leaf_styles()
    a = shifted_styles(st, "pannuke", 0.3)
    a2 = shifted_styles(st, "pannuke", 0.3)
    b = shifted_styles(st, "consep", 0.3)
    assert a == a2  # a property of the domain: the same for every tile and seed
    ratios = [a[l].radius / st[l].radius for l in st]
    assert len(set(np.round(ratios, 6))) == len(st)  # every leaf its own shift
    assert any(a[l].radius != b[l].radius for l in st)  # different between domains
    assert shifted_styles(st, "pannuke", 0.0) == dict(st)
    assert _gen(leaf_shift=0.3)[0].image.tobytes() != _gen()[0].image.tobytes()


def test_label_noise_fraction():
    n = 12
    clean = generate_dataset("pannuke", n, seed=1, size=128)
    noisy = generate_dataset("pannuke", n, seed=1, size=128, domain={"label_noise": 0.3})
    changed = total = 0
    for a, b in zip(clean, noisy):
        assert np.array_equal(a.labels, b.labels) and np.array_equal(a.image, b.image)
        diff = [i for i in a.classes if a.classes[i] != b.classes[i]]
        assert sorted(diff) == sorted(b.meta["noisy"])  # every flip changes the label
        assert all(a.classes[i] is not None for i in diff)
        changed += len(diff)
        total += sum(c is not None for c in a.classes.values())
    assert 0.2 < changed / total < 0.4
    everything = generate_dataset("pannuke", 2, seed=1, size=128, domain={"label_noise": 1.0})
    assert all(everything[0].classes[i] != c for i, c in generate_dataset("pannuke", 2, seed=1, size=128)[0].classes.items()
               if c is not None)


@pytest.mark.parametrize("kw, match", [({"uncovered": "drop"}, "uncovered"), ({"leaf_shift": -1}, "leaf_shift"),
                                        ({"label_noise": 1.5}, "label_noise")])
def test_knob_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        domain_params("pannuke", **kw)


def test_knobs_in_experiment_config():
    from stardist_hier.training.experiment import load_config

    cfg = load_config({"datasets": {"A": {"generator": "monusac", "n_tiles": 4, "size": 64,
                                          "domain": {"uncovered": "background", "leaf_shift": 0.2, "label_noise": 0.1}}},
                       "model": {"train_patch_size": [64, 64], "unet_n_depth": 2, "grid": [2, 2]},
                       "episodes": [{"name": "a", "datasets": "A", "epochs": 1}]})
    assert cfg.datasets["A"].label_set.name == "monusac"


def test_lookalike_draws_a_leaf_with_another_leafs_appearance():
    """``lookalike``: the hidden leaf takes the other leaf's look (nuclear size and darkness),
    while its label and true leaf stay its own; other leaves are untouched."""
    from skimage.color import rgb2gray

    def stats(samples, leaf):
        areas, darkness = [], []
        for s in samples:
            g = rgb2gray(s.image)
            for i, l in s.meta["leaves"].items():
                if l == leaf:
                    m = s.labels == int(i)
                    if m.sum() > 5:
                        areas.append(m.sum())
                        darkness.append(1 - g[m].mean())
        return np.median(areas), np.median(darkness), len(areas)

    mix = {"plasma_cell": 1.0, "epithelial_tumor": 1.0, "fibroblast": 1.0}
    plain = generate_dataset("consep", 6, seed=2, size=128, domain={"class_mix": mix})
    look = generate_dataset("consep", 6, seed=2, size=128,
                            domain={"class_mix": mix, "lookalike": {"plasma_cell": "epithelial_tumor"}})
    a_pl, d_pl, n1 = stats(plain, "plasma_cell")
    a_tu, d_tu, _ = stats(plain, "epithelial_tumor")
    a_lk, d_lk, n2 = stats(look, "plasma_cell")
    assert n1 > 10 and n2 > 10
    assert abs(a_lk - a_tu) < abs(a_pl - a_tu)  # now sized like tumour nuclei
    assert abs(a_lk - a_tu) < 0.25 * a_tu and abs(a_pl - a_tu) > 0.25 * a_tu
    # labels: plasma cells keep CoNSeP's coarse "inflammatory" label, tumour nuclei their own
    for s in look:
        for i, l in s.meta["leaves"].items():
            if l == "plasma_cell" and s.classes.get(int(i)) is not None:
                assert s.classes[int(i)] == "inflammatory"
    assert look[0].meta["domain"]["lookalike"] == [["plasma_cell", "epithelial_tumor"]] or \
        tuple(map(tuple, look[0].meta["domain"]["lookalike"])) == (("plasma_cell", "epithelial_tumor"),)


@pytest.mark.parametrize("look, match", [({"plasma_cell": "plasma_cell"}, "lookalike"),
                                         ({"plasma_cell": 3}, "lookalike")])
def test_lookalike_validation(look, match):
    with pytest.raises(ValueError, match=match):
        domain_params("consep", lookalike=look)


def test_lookalike_unknown_leaf_is_named():
    with pytest.raises(ValueError, match="unknown leaves \\['not_a_leaf'\\]"):
        generate_dataset("consep", 1, seed=0, size=64, domain={"lookalike": {"not_a_leaf": "fibroblast"}})


def test_lookalike_errors_in_experiment_config():
    from stardist_hier.training.experiment import ConfigError, load_config

    def cfg(look):
        return {"datasets": {"A": {"generator": "consep", "n_tiles": 4, "size": 64,
                                   "split": {"train": 2, "val": 1, "test": 1}, "domain": {"lookalike": look}}},
                "episodes": [{"datasets": "A", "epochs": 1}]}

    assert load_config(cfg({"plasma_cell": "epithelial_tumor"})).datasets["A"].options["domain"]
    with pytest.raises(ConfigError, match="dataset 'A': domain: DomainParams.lookalike"):
        load_config(cfg({"plasma_cell": "plasma_cell"}))
    with pytest.raises(ConfigError, match=r"dataset 'A': domain: lookalike names unknown leaves \['plasmacell'\]"):
        load_config(cfg({"plasmacell": "fibroblast"}))
