"""Generator knobs that let hypotheses fail: uncovered nuclei as background, per-domain leaf shift, label noise."""

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
