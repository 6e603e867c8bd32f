"""Labels at a label set that does not cover the tree: the mass outside it is reported, and
``--abstain`` applies at label sets (issue 17 section 2; no TensorFlow)."""

import csv
import json

import numpy as np
import pytest

from stardist_hier import classify
from stardist_hier.classify import OUTSIDE, UNCERTAIN, label_decisions, label_set_decisions, outside_probability
from stardist_hier.predict import Nuclei
from stardist_hier.predict.writers import WRITERS, table_columns
from stardist_hier.tree import LabelSet, default_taxonomy

N_RAYS = 16


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


def _probs(tree, rows):
    """Class probabilities (background first) from ``[{leaf: p, ...}, ...]`` (rest background)."""
    cp = np.zeros((len(rows), tree.n_classes + 1))
    for i, row in enumerate(rows):
        for leaf, p in row.items():
            cp[i, tree.leaf_index(leaf)] = p
        cp[i, 0] = 1 - cp[i].sum()
    return cp


# what MoNuSAC's labels see of five nuclei (MoNuSAC has no label for fibroblasts, muscle, ...)
ROWS = [
    {"fibroblast": 0.6, "epithelial_tumor": 0.2, "macrophage": 0.15},   # fibroblast: outside wins
    {"epithelial_tumor": 0.5, "epithelial_normal": 0.3, "fibroblast": 0.1},  # Epithelial, sure
    {"macrophage": 0.3, "muscle": 0.25, "endothelial": 0.25, "lymphocyte": 0.1},  # outside 0.5 > 0.3
    {"macrophage": 0.45, "fibroblast": 0.4, "lymphocyte": 0.1},  # Macrophage 0.45, uncertain at 0.6
    {"lymphocyte": 0.4, "fibroblast": 0.05, "necrotic": 0.05},  # half background: 0.4 / 0.5 = 0.8 given a nucleus
]


def test_outside_mass_wins_and_is_reported(tax):
    ls = tax["monusac"]
    cp = _probs(tax.tree, ROWS)
    out = outside_probability(cp, ls)
    uncovered = sorted(set(tax.tree.leaves) - ls.covered_leaves())
    expect = np.array([sum(r.get(leaf, 0) for leaf in uncovered) for r in ROWS])
    np.testing.assert_allclose(out, expect)
    d = label_set_decisions(cp, ls, abstain=0.6)
    assert d.names == [OUTSIDE, "Epithelial", OUTSIDE, "Macrophage", "Lymphocyte"]
    np.testing.assert_allclose(d.prob, [0.6, 0.8, 0.5, 0.45, 0.4])
    np.testing.assert_allclose(d.outside, expect)
    # every row's labels + outside + background = 1
    np.testing.assert_allclose(d.label_prob.sum(1) + d.outside, 1)
    # abstention at the label set: probability given a nucleus (background removed) below 0.6
    np.testing.assert_allclose(d.conditional, d.prob / (1 - cp[:, 0]))
    assert d.abstained == [OUTSIDE, "Epithelial", UNCERTAIN, UNCERTAIN, "Lymphocyte"]
    # the old API gives the same names (the fibroblast is no longer reported as Epithelial)
    assert label_decisions(cp, ls)[0] == d.names
    # a label set that covers every leaf never reports the outside
    full = label_set_decisions(cp, tax["pannuke"])
    assert OUTSIDE not in full.names and np.all(full.outside == 0)
    with pytest.raises(ValueError, match="abstain"):
        label_set_decisions(cp, ls, abstain=0)


def test_most_probable_leaf_outside_is_never_a_label(tax):
    """The issue's symptom: nuclei whose most probable leaf is a fibroblast reported as a MoNuSAC class."""
    rng = np.random.default_rng(0)
    tree, ls = tax.tree, tax["monusac"]
    cp = rng.dirichlet(np.full(tree.n_classes + 1, 0.3), 500)
    names = label_decisions(cp, ls)[0]
    leaves = classify.leaf_decisions(cp, tree)[1]
    uncovered = set(tree.leaves) - ls.covered_leaves()
    for name, leaf, row in zip(names, leaves, cp):
        if leaf in uncovered and row[tree.leaf_index(leaf)] >= 0.5 * (1 - row[0]):
            assert name == OUTSIDE  # more than half of the nucleus's mass is outside the label set
        if name != OUTSIDE:
            assert name in ls.labels


def _nuclei(tax, rows):
    cp = _probs(tax.tree, rows)
    n = len(rows)
    ang = np.linspace(0, 2 * np.pi, N_RAYS, endpoint=False)
    cent = np.array([[20.0, 20.0 + 25 * i] for i in range(n)])
    coord = np.stack([cent[:, :1] + 6 * np.sin(ang), cent[:, 1:] + 6 * np.cos(ang)], 1)
    return Nuclei(np.arange(1, n + 1), coord, cent, np.full(n, 0.9), cp, tax.tree, 0.5)


def _write(name, stem, nuc, **kw):
    W = WRITERS[name]
    with W(stem, **kw) as w:
        w.write(nuc)
    return w.path


@pytest.mark.parametrize("abstain", [None, 0.6])
def test_table_and_geojson_show_the_outside_mass(tmp_path, tax, abstain):
    nuc = _nuclei(tax, ROWS)
    ls = tax["monusac"]
    kw = dict(label_sets=[ls, tax["pannuke"]], abstain=abstain, tree=tax.tree, image_shape=(60, 160))
    d = label_set_decisions(nuc.class_prob, ls, abstain=abstain)

    cols = table_columns(tree=tax.tree, label_sets=kw["label_sets"], abstain=abstain, mpp=0.5)
    assert {"label_monusac", "prob_monusac", "outside_monusac", "outside_pannuke"} <= set(cols)
    assert ("abstained_monusac" in cols) == (abstain is not None)
    with open(_write("csv", tmp_path / "t", nuc, **kw), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == cols
    assert [r["label_monusac"] for r in rows] == d.names
    np.testing.assert_allclose([float(r["prob_monusac"]) for r in rows], d.prob, atol=1e-6)
    np.testing.assert_allclose([float(r["outside_monusac"]) for r in rows], d.outside, atol=1e-6)
    assert all(float(r["outside_pannuke"]) == 0 for r in rows)
    if abstain is not None:
        assert [r["abstained_monusac"] for r in rows] == d.abstained

    doc = json.loads(_write("geojson", tmp_path / "g", nuc, **kw).read_text(encoding="utf-8"))
    shown = [f["properties"]["classification"]["name"] for f in doc["features"]]
    assert shown == (d.names if abstain is None else d.abstained)
    grey = {OUTSIDE: [150, 150, 150], UNCERTAIN: [90, 90, 90]}
    for f, name in zip(doc["features"], shown):
        m = f["properties"]["measurements"]
        if name in grey:
            assert f["properties"]["classification"]["color"] == grey[name]
        assert f"Prob monusac: {OUTSIDE}" in m and f"Prob pannuke: {OUTSIDE}" in m
    np.testing.assert_allclose([f["properties"]["measurements"][f"Prob monusac: {OUTSIDE}"]
                                for f in doc["features"]], d.outside, atol=1e-6)


def test_parquet_types_the_new_columns(tmp_path, tax):
    pq = pytest.importorskip("pyarrow.parquet")
    nuc = _nuclei(tax, ROWS)
    path = _write("parquet", tmp_path / "t", nuc, label_sets=[tax["monusac"]], abstain=0.6, tree=tax.tree)
    t = pq.read_table(path)
    assert str(t.schema.field("abstained_monusac").type) == "string"
    assert str(t.schema.field("outside_monusac").type) == "double"
    assert t.column("label_monusac").to_pylist()[0] == OUTSIDE


def test_overlay_colours_outside_and_uncertain(tmp_path, tax):
    from stardist_hier.plotting import OUTSIDE_COLOR, UNCERTAIN_COLOR, label_colors

    colors = label_colors(tax["monusac"], decisions=True)
    assert colors[OUTSIDE] == OUTSIDE_COLOR and colors[UNCERTAIN] == UNCERTAIN_COLOR
    assert OUTSIDE not in label_colors(tax["monusac"])
    nuc = _nuclei(tax, ROWS)
    path = _write("overlay", tmp_path / "o", nuc, label_sets=[tax["monusac"]], abstain=0.6, tree=tax.tree,
                  image_shape=(60, 160))
    assert path.is_file()


def test_a_label_named_like_a_decision_cannot_hide_it(tax):
    """The two decision names are not label names of the shipped label sets."""
    for name in tax.names():
        assert OUTSIDE not in tax[name].labels and UNCERTAIN not in tax[name].labels
    ls = LabelSet(tax.tree, {"tumour": "epithelial_tumor"}, name="one")
    d = label_set_decisions(_probs(tax.tree, [{"epithelial_tumor": 0.3, "epithelial_normal": 0.6}]), ls)
    assert d.names == [OUTSIDE] and d.prob[0] == pytest.approx(0.6)
