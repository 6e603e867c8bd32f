import json

import numpy as np
import pytest

from stardist_hier import ClassTree, LabelSet, LabelSetError, Taxonomy, TreeError, default_taxonomy


@pytest.fixture
def tree():
    return default_taxonomy().tree


def test_default_tree_shape(tree):
    assert tree.root == "nucleus"
    assert tree.n_classes == 13
    assert tree.leaves[0] == "epithelial_normal" and tree.leaf_index("epithelial_normal") == 1
    assert tree.leaf_set("inflammatory") == {"lymphocyte", "plasma_cell", "neutrophil", "eosinophil", "macrophage"}
    assert tree.ancestors("muscle") == ("connective", "nucleus")
    assert tree.leaf_set("nucleus") == set(tree.leaves)


def test_round_trip_json_yaml_dict(tree, tmp_path):
    assert ClassTree.from_json(tree.to_json()) == tree
    assert ClassTree.from_dict(json.loads(json.dumps(tree.to_dict()))).leaves == tree.leaves
    p = tmp_path / "t.yaml"
    p.write_text("nucleus:\n  a: [a1, a2]\n  b:\n")
    t = ClassTree.from_file(p)
    assert t.leaves == ("a1", "a2", "b") and t.parent("a1") == "a"
    p2 = tmp_path / "t.json"
    p2.write_text(t.to_json())
    assert ClassTree.from_file(p2) == t


def test_node_matrix_and_probabilities(tree, rng):
    p = rng.dirichlet(np.ones(14), size=5)
    nodes = tree.node_probabilities(p)
    names = tree.node_names()
    assert nodes.shape == (5, len(tree.nodes) + 1)
    np.testing.assert_allclose(nodes[:, names.index("nucleus")], 1 - p[:, 0], rtol=1e-5)
    idx = list(tree.leaf_indices("connective"))
    np.testing.assert_allclose(nodes[:, names.index("connective")], p[:, idx].sum(1), rtol=1e-5)


@pytest.mark.parametrize("spec, match", [
    ({}, "empty"),
    ({"a": None, "b": None}, "single root"),
    ({"a": {"b": None, "c": {"b": None}}}, "duplicate node name 'b'"),
    ({"a": None}, "at least one leaf"),
    ({"a": {"background": None}}, "reserved"),
])
def test_tree_errors(spec, match):
    with pytest.raises(TreeError, match=match):
        ClassTree.from_dict(spec)


def test_tree_cycle():
    with pytest.raises(TreeError, match="cycle|root"):
        ClassTree({"r": None, "a": "b", "b": "a"})
    with pytest.raises(TreeError, match="unknown parent"):
        ClassTree({"r": None, "a": "zzz"})


def test_unknown_node(tree):
    with pytest.raises(TreeError, match="unknown tree node 'tumour'"):
        tree.leaf_set("tumour")


def test_label_set_union_and_codes(tree):
    ls = default_taxonomy()["nucls2"]
    assert ls.leaf_set("Non-Tumor") == set(tree.leaves) - {"epithelial_tumor"}
    assert ls.resolve(2) == "Tumor" and ls.resolve("Tumor") == "Tumor"
    a = ls.leaf_assignment()
    assert a[0] == 0 and a[tree.leaf_index("epithelial_tumor")] == ls.index("Tumor")
    assert (a[1:] > 0).all()


def test_ignore_and_uncovered(tree):
    ls = default_taxonomy()["monusac"]
    assert ls.resolve("Ambiguous") is None and ls.resolve(5) is None
    a = ls.leaf_assignment()
    assert a[tree.leaf_index("fibroblast")] == -1
    m = ls.membership_matrix()
    assert m.shape == (5, 14) and m[ls.index("Epithelial"), list(tree.leaf_indices("epithelial"))].all()


@pytest.mark.parametrize("labels, match", [
    ({}, "is empty"),
    ({"x": "tumour"}, "unknown tree node 'tumour'"),
    ({"a": "epithelial", "b": "epithelial_tumor"}, "label 'b' overlaps label 'a'"),
    ({"a": "epithelial", "A": "muscle"}, "duplicate label name 'A'"),
    ({"a": []}, "names no tree node"),
    ({"amb": "ignore"}, "only ignore labels"),
])
def test_label_set_errors(tree, labels, match):
    with pytest.raises(LabelSetError, match=match):
        LabelSet(tree, labels, name="test")


def test_label_set_unknown_label_and_code(tree):
    ls = default_taxonomy()["pannuke"]
    with pytest.raises(LabelSetError, match="unknown label 'Tumour'.*Neoplastic"):
        ls.resolve("Tumour")
    with pytest.raises(LabelSetError, match="unknown label code 9"):
        ls.resolve(9)
    with pytest.raises(LabelSetError, match="code 3 names unknown label 'zz'"):
        LabelSet(tree, {"a": "epithelial"}, codes={3: "zz"})
    with pytest.raises(LabelSetError, match="must be positive"):
        LabelSet(tree, {"a": "epithelial"}, weights={"a": 0})


def test_label_weights(tree):
    ls = LabelSet(tree, {"epi": "epithelial", "lym": "lymphocyte"}, weights={"lym": 2.0})
    leaf_w = np.ones(14, np.float32)
    leaf_w[tree.leaf_index("epithelial_tumor")] = 3.0
    w = ls.label_weights(leaf_w)
    np.testing.assert_allclose(w, [1.0, 2.0, 2.0])


def test_label_set_round_trip(tree):
    for name in default_taxonomy().names():
        ls = default_taxonomy()[name]
        assert LabelSet.from_dict(tree, ls.to_dict()) == ls


def test_taxonomy_file_and_same_as(tmp_path):
    p = tmp_path / "tax.yaml"
    p.write_text("tree: {r: {a: [a1, a2], b: null}}\nlabel_sets:\n  one: {labels: {A: a, B: b}}\n"
                 "  two: {same_as: one}\n  bad: {same_as: nope}\n")
    with pytest.raises(LabelSetError, match="bad.*unknown label set 'nope'"):
        Taxonomy.from_file(p)
    p.write_text("tree: {r: {a: [a1, a2], b: null}}\nlabel_sets:\n  one: {labels: {A: a, B: zz}}\n")
    with pytest.raises(LabelSetError, match="tax.yaml.*unknown tree node 'zz'"):
        Taxonomy.from_file(p)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        Taxonomy.from_file(tmp_path / "missing.yaml")


def test_cover(tree):
    ls = default_taxonomy()["nucls4"]
    assert set(tree.cover(ls.leaf_set("sTIL"))) == {"lymphocyte", "plasma_cell"}
    assert tree.cover(tree.leaf_set("connective")) == ("connective",)


def test_tree_module_imports_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, stardist_hier, stardist_hier.tree, stardist_hier.targets, stardist_hier.classify; " \
           "assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
