"""Harmonising datasets (stardist_hier.datasets.harmonise): coarsening, constrained inference, export, NuCLS."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stardist_hier import default_taxonomy
from stardist_hier.datasets import Sample
from stardist_hier.datasets.harmonise import (PROVENANCES, Source, check_overlaps, harmonise, harmonise_sample,
                                              read_harmonised, resolve_label_sets, restricted_argmax, translate)
from stardist_hier.errors import InputError, UserError
from stardist_hier.tree import LabelSet

TAX = default_taxonomy()
TREE = TAX.tree
#: every label set of the registry of the default taxonomy, plus the identity cut and the root
SETS = {name: TAX[name] for name in TAX.names()}
SETS["leaves"] = LabelSet.leaves_of(TREE)
NAMES = sorted(SETS)


def _holder(target: LabelSet, leaves) -> str | None:
    """The target label whose leaves contain all of ``leaves`` (computed independently of translate)."""
    hits = [lab for lab in target.labels if set(leaves).issubset(target.leaf_set(lab))]
    assert len(hits) <= 1
    return hits[0] if hits else None


# --------------------------------------------------------------------------------- coarsening
@pytest.mark.parametrize("source", NAMES)
def test_coarsening_is_exact_and_needs_no_model(source):
    """Every given label maps to the one target label holding all its leaves, at every label set, without a model."""
    src = SETS[source]
    for tname in NAMES:
        tgt = SETS[tname]
        coarser = all(_holder(tgt, src.leaf_set(lab)) is not None for lab in src.labels)
        for lab in src.labels:
            tr = translate(lab, src, tgt)
            holder = _holder(tgt, src.leaf_set(lab))
            if tname == source:
                assert (tr.kind, tr.label) == ("given", lab)
            elif holder is not None:
                assert (tr.kind, tr.label) == ("coarsened", holder), (source, lab, tname)
                assert src.leaf_set(lab) <= tgt.leaf_set(tr.label)
            else:
                assert tr.kind in ("outside", "split", "unknown") and tr.label is None
                if tr.kind == "outside":
                    assert not any(src.leaf_set(lab) & tgt.leaf_set(t) for t in tgt.labels)
        if coarser:  # a coarser (or equal) label set: every nucleus exact, no model
            assert all(translate(lab, src, tgt).kind in ("given", "coarsened") for lab in src.labels)
        for lab in src.ignore_labels:
            assert translate(lab, src, tgt).kind == "unknown"
        assert translate(None, src, tgt).kind == "unknown"


@pytest.mark.parametrize("target", NAMES)
def test_the_leaves_coarsen_to_every_label_set(target):
    """From the identity cut every label set is exact: coarsened or outside, never a model's call."""
    leaves, tgt = SETS["leaves"], SETS[target]
    for leaf in TREE.leaves:
        tr = translate(leaf, leaves, tgt)
        holder = _holder(tgt, {leaf})
        if target == "leaves":
            assert (tr.kind, tr.label) == ("given", leaf)
        else:
            assert (tr.kind, tr.label) == (("coarsened", holder) if holder else ("outside", None))


@pytest.mark.parametrize("source, label, target, kind, expected", [
    ("consep", "fibroblast", "consep4", "coarsened", "spindle"),
    ("consep", "healthy epithelial", "nucls4", "coarsened", "other_nucleus"),
    ("pannuke", "Neoplastic", "nucls2", "coarsened", "Tumor"),
    ("nucls4", "sTIL", "pannuke", "coarsened", "Inflammatory"),
    ("lizard", "plasma", "nucls4", "coarsened", "sTIL"),
    ("monusac", "Macrophage", "nucls4", "coarsened", "nonTIL_stromal"),
    ("conic", "plasma", "lizard", "coarsened", "plasma"),
    ("consep4", "spindle", "pannuke", "coarsened", "Connective"),
    ("pannuke", "Dead", "root", "coarsened", "nucleus"),
    ("consep", "other", "monusac", "outside", None),
    ("pannuke", "Connective", "monusac", "outside", None),
    ("monusac", "Epithelial", "pannuke", "split", ("Neoplastic", "Non-neoplastic epithelial")),
    ("nucls2", "Non-Tumor", "nucls4", "split", ("nonTIL_stromal", "sTIL", "other_nucleus")),
    ("consep4", "inflammatory", "monusac", "split", ("Lymphocyte", "Neutrophil", "Macrophage")),
    ("root", "nucleus", "pannuke", "unknown", None),
    ("monusac", "Ambiguous", "nucls4", "unknown", None),
])
def test_translations_by_hand(source, label, target, kind, expected):
    tr = translate(label, TAX[source], TAX[target])
    assert tr.kind == kind
    if kind == "split":
        assert tr.candidates == expected and tr.label is None
    else:
        assert tr.label == expected


def test_rows_without_a_model_never_guess():
    """harmonise_sample: exact provenances carry the label (prob 1); split labels are unknown without a model."""
    labels = np.zeros((20, 20), np.int32)
    labels[1:5, 1:5], labels[8:12, 8:12], labels[14:18, 2:6], labels[14:18, 14:18] = 1, 2, 3, 4
    s = Sample(image=np.zeros((20, 20, 3), np.uint8), labels=labels, label_set="monusac",
               classes={1: "Epithelial", 2: "Lymphocyte", 3: None, 4: "Macrophage"},
               meta={"dataset": "monusac", "name": "a", "split": "train"})
    targets = resolve_label_sets(["monusac", "pannuke", "nucls4", "root"], taxonomy=TAX)
    rows = harmonise_sample(s, targets, source=TAX["monusac"])
    by = {r["id"]: r for r in rows}
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert by[1]["area_px"] == 16 and by[1]["centroid_y"] == pytest.approx(2.5)
    assert (by[1]["label_pannuke"], by[1]["provenance_pannuke"], by[1]["prob_pannuke"]) == (None, "unknown", None)
    assert (by[1]["label_monusac"], by[1]["provenance_monusac"]) == ("Epithelial", "given")
    assert (by[2]["label_pannuke"], by[2]["provenance_pannuke"], by[2]["prob_pannuke"]) == \
        ("Inflammatory", "coarsened", 1.0)
    assert (by[2]["label_nucls4"], by[2]["provenance_nucls4"]) == ("sTIL", "coarsened")
    assert (by[4]["label_nucls4"], by[4]["provenance_nucls4"]) == ("nonTIL_stromal", "coarsened")
    assert all(by[3][f"provenance_{t}"] == "unknown" and by[3][f"label_{t}"] is None
               for t in ("monusac", "pannuke", "nucls4", "root"))
    assert by[1]["label_root"] == "nucleus" and by[1]["provenance_root"] == "coarsened"
    assert {r[f"provenance_{t.name}"] for r in rows for t in targets} <= set(PROVENANCES)


# --------------------------------------------------------------------------------- constrained inference
def _p(**leaf_probs) -> np.ndarray:
    p = np.zeros(TREE.n_classes + 1)
    for leaf, v in leaf_probs.items():
        p[0 if leaf == "background" else TREE.leaf_index(leaf)] = v
    return p


# (given label set, given label, target, leaf probabilities, hand-computed label, hand-computed probability)
HAND = [
    # Non-Tumor leaves: sTIL 0.1 + 0.1, nonTIL 0.15, other 0.05 (tumour 0.5 is not Non-Tumor): sTIL, 0.2 / 0.4
    ("nucls2", "Non-Tumor", "nucls4",
     _p(background=0.1, epithelial_tumor=0.5, lymphocyte=0.1, plasma_cell=0.1, fibroblast=0.15, necrotic=0.05),
     "sTIL", 0.5),
    # nonTIL 0.3 (macrophage) beats sTIL 0.25: 0.3 / 0.55
    ("nucls2", "Non-Tumor", "nucls4", _p(background=0.45, macrophage=0.3, lymphocyte=0.25), "nonTIL_stromal",
     0.3 / 0.55),
    # other_nucleus 0.2 + 0.2 beats sTIL 0.3: 0.4 / 0.7
    ("nucls2", "Non-Tumor", "nucls4", _p(background=0.3, eosinophil=0.2, neutrophil=0.2, lymphocyte=0.3),
     "other_nucleus", 0.4 / 0.7),
    # Epithelial: normal 0.2 against tumour 0.1 (lymphocyte 0.6 is no epithelium): 0.2 / 0.3
    ("monusac", "Epithelial", "pannuke", _p(background=0.1, epithelial_normal=0.2, epithelial_tumor=0.1,
                                            lymphocyte=0.6), "Non-neoplastic epithelial", 2 / 3),
    # inflammatory at MoNuSAC: plasma 0.5 has no MoNuSAC label; lymphocyte 0.2 > macrophage 0.1: 0.2 / 0.8
    ("consep4", "inflammatory", "monusac", _p(plasma_cell=0.5, lymphocyte=0.2, macrophage=0.1, epithelial_normal=0.2),
     "Lymphocyte", 0.25),
    # a tie: the first label of the target set
    ("nucls2", "Non-Tumor", "nucls4", _p(background=0.2, fibroblast=0.4, lymphocyte=0.4), "nonTIL_stromal", 0.5),
]


@pytest.mark.parametrize("source, label, target, p, expected, prob", HAND)
def test_restricted_argmax_by_hand(source, label, target, p, expected, prob):
    lab, pr = restricted_argmax(p, TAX[source].leaf_set(label), TAX[target])
    assert lab == expected and pr == pytest.approx(prob)
    # the same through harmonise_sample, one nucleus
    labels = np.zeros((6, 6), np.int32)
    labels[1:4, 1:4] = 1
    s = Sample(image=np.zeros((6, 6, 3), np.uint8), labels=labels, classes={1: label}, label_set=source,
               meta={"dataset": "x", "name": "a"})
    row, = harmonise_sample(s, [TAX[target]], source=TAX[source], leaf_prob=p[None])
    assert (row[f"label_{target}"], row[f"provenance_{target}"]) == (expected, "inferred")
    assert row[f"prob_{target}"] == pytest.approx(prob)


def test_restricted_argmax_differs_from_the_unconstrained_one():
    """The first hand row: the model's overall favourite (tumour) is incompatible with Non-Tumor."""
    from stardist_hier.classify import label_decisions

    p = HAND[0][3]
    assert label_decisions(p[None], TAX["nucls4"])[0] == ["tumor_any"]
    labels, probs = restricted_argmax(np.stack([h[3] for h in HAND[:3]]), TAX["nucls2"].leaf_set("Non-Tumor"),
                                      TAX["nucls4"])
    assert labels == ["sTIL", "nonTIL_stromal", "other_nucleus"]
    assert probs == pytest.approx([0.5, 0.3 / 0.55, 0.4 / 0.7])
    lab, pr = restricted_argmax(np.zeros(TREE.n_classes + 1), TAX["nucls2"].leaf_set("Non-Tumor"), TAX["nucls4"])
    assert lab is None and np.isnan(pr)  # no probability on the given leaves: no label


_pairs = st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)).flatmap(
    lambda ab: st.tuples(st.just(ab[0]), st.sampled_from(SETS[ab[0]].labels), st.just(ab[1])))
_probs = st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_nan=False)), min_size=TREE.n_classes + 1,
                  max_size=TREE.n_classes + 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pairs, _probs)
def test_constrained_inference_is_always_compatible(case, raw):
    """Property: an inferred label always shares a leaf with the given label; exact readings agree with it."""
    source, label, target = case
    src, tgt = SETS[source], SETS[target]
    p = np.asarray(raw)
    if p.sum() > 0:
        p = p / p.sum()
    leaves = src.leaf_set(label)
    lab, prob = restricted_argmax(p, leaves, tgt)
    compatible = [t for t in tgt.labels if tgt.leaf_set(t) & leaves]
    if lab is None:
        assert not compatible or p[[TREE.leaf_index(x) for x in leaves]].sum() == 0
    else:
        assert lab in compatible and tgt.leaf_set(lab) & leaves
        assert 0.0 <= prob <= 1.0 + 1e-9
    tr = translate(label, src, tgt)
    if tr.kind in ("given", "coarsened") and lab is not None:
        assert lab == tr.label and prob == pytest.approx(1.0)  # the model cannot overrule an exact label
    if tr.kind == "split":
        assert set(tr.candidates) == set(compatible)
        labels = np.zeros((4, 4), np.int32)
        labels[1:3, 1:3] = 1
        s = Sample(image=np.zeros((4, 4, 3), np.uint8), labels=labels, classes={1: label}, label_set=source,
                   meta={"dataset": "x", "name": "a"})
        row, = harmonise_sample(s, [tgt], source=src, leaf_prob=p[None])
        assert row[f"label_{target}"] == lab
        assert row[f"provenance_{target}"] == ("inferred" if lab is not None else "unknown")


# --------------------------------------------------------------------------------- inputs
def test_label_sets_must_be_on_the_tree():
    with pytest.raises(InputError, match="'nope' is not a label set on the class tree"):
        resolve_label_sets(["pannuke", "nope"], taxonomy=TAX)
    from stardist_hier.tree import ClassTree

    other = LabelSet.leaves_of(ClassTree.from_dict({"n": ["a", "b"]}))
    with pytest.raises(InputError, match="not on the taxonomy's class tree"):
        resolve_label_sets([other], taxonomy=TAX)
    assert [ls.name for ls in resolve_label_sets(["root", "leaves", "conic", "root"], taxonomy=TAX)] == \
        ["root", "leaves", "conic"]


def _sample(dataset, name):
    return Sample(image=np.zeros((4, 4, 3), np.uint8), labels=np.zeros((4, 4), np.int32), classes={},
                  label_set="root", meta={"dataset": dataset, "name": name})


def test_overlapping_datasets_are_refused():
    a = Source("consep", [_sample("consep", "test_9"), _sample("consep", "test_1")], TAX["consep"])
    b = Source("lizard", [_sample("lizard", "consep_3")], TAX["lizard"])
    check_overlaps([a, b])  # without Lizard's info.csv nothing says they share an image
    info = {"consep_3": __import__("stardist_hier.datasets.leakage", fromlist=["x"]).LizardSource(
        "consep_3", "consep", "test_9", "1")}
    with pytest.raises(InputError, match="consep/test_9"):
        check_overlaps([a, b], info=info)
    with pytest.raises(InputError, match="datasets overlap"):
        check_overlaps([a, Source("consep", [_sample("consep", "test_1")], TAX["consep4"])])


def test_model_on_another_tree_is_refused(tmp_path):
    from stardist_hier.datasets.harmonise import check_model
    from stardist_hier.errors import ModelFolderError

    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text(json.dumps({"hier_tree": {"nucleus": {"a": None, "b": None}}}))
    with pytest.raises(ModelFolderError, match="class tree differs from the taxonomy's"):
        check_model(m, TAX)
    (m / "config.json").write_text(json.dumps({"hier_tree": TREE.to_dict()}))
    assert check_model(m, TAX) == m


# --------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def synthetic_sources():
    from stardist_hier.synthetic import generate_dataset

    return [Source("consep_like", generate_dataset("consep", 2, seed=3, size=96), TAX["consep"]),
            Source("monusac_like", generate_dataset("monusac", 2, seed=4, size=96), TAX["monusac"])]


@pytest.mark.parametrize("unknown", ["class", "drop"])
def test_export_reads_back_exactly(tmp_path, synthetic_sources, unknown):
    """The folder reader reads the harmonised copy back: the same instances, labels and ignore regions."""
    from skimage.segmentation import relabel_sequential

    from stardist_hier.datasets import open_dataset
    from stardist_hier.tree import Taxonomy

    out = tmp_path / "out"
    res = harmonise(synthetic_sources, ["pannuke"], out=out, export="consep4", unknown=unknown)
    assert [ls.name for ls in res.label_sets] == ["pannuke", "consep4"]
    folder = out / "harmonised"
    back = read_harmonised(folder)
    manifest = json.loads((folder / "harmonised.json").read_text())
    assert len(back) == 4 and manifest["label_set"] == "consep4" and manifest["unknown"] == unknown
    # the registry's folder reader, told the same things, reads the same
    same = open_dataset("folder", folder, label_set="consep4", taxonomy=Taxonomy.from_file(folder / "taxonomy.yaml"),
                        ignore="ignore")
    assert same.names() == back.names()
    rows = {}
    for r in res.rows:
        rows.setdefault((r["dataset"], r["image"]), {})[r["id"]] = r
    originals = [(src.name, i, s) for src in synthetic_sources for i, s in enumerate(src.samples)]
    n_unknown = 0
    for (dataset, i, s), b in zip(originals, back):
        table = rows[(dataset, f"synthetic-{s.meta['seed']}-{s.meta['index']}")]
        assert b.meta["name"] == f"{dataset}__synthetic-{s.meta['seed']}-{s.meta['index']}"
        np.testing.assert_array_equal(b.image, s.image)
        want = {k: r["label_consep4"] for k, r in table.items()}
        if unknown == "class":
            np.testing.assert_array_equal(b.labels, s.labels)
            assert b.classes == want  # "unknown" reads back as None (an ignore label)
            ignore = np.zeros(s.labels.shape, bool) if s.ignore is None else s.ignore
        else:
            drop = [k for k, v in want.items() if v is None]
            kept = np.where(np.isin(s.labels, drop), 0, s.labels)
            expected, fw, _ = relabel_sequential(kept)
            np.testing.assert_array_equal(b.labels, expected)
            assert b.classes == {int(fw[k]): v for k, v in want.items() if v is not None}
            ignore = (np.zeros(s.labels.shape, bool) if s.ignore is None else s.ignore) | np.isin(s.labels, drop)
        np.testing.assert_array_equal(b.ignore if b.ignore is not None else np.zeros_like(ignore), ignore)
        n_unknown += sum(v is None for v in want.values())
    assert n_unknown > 0  # the case the option is about occurs (MoNuSAC has no spindle or other label)
    counts = manifest["counts"]
    assert counts["nuclei"] == len(res.rows)
    assert counts["unknown" if unknown == "class" else "dropped"] == n_unknown


def test_table_files(tmp_path, synthetic_sources):
    import csv

    res = harmonise(synthetic_sources, ["consep4", "nucls4"], out=tmp_path / "o", formats=["csv", "parquet"])
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["nuclei.csv", "nuclei.parquet"]
    with open(tmp_path / "o" / "nuclei.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(res.rows) and list(table[0]) == res.columns
    for r, t in zip(res.rows, table):
        assert t["provenance_consep4"] == r["provenance_consep4"]
        assert t["label_consep4"] == (r["label_consep4"] or "")
    pq = pytest.importorskip("pyarrow.parquet")
    pt = pq.read_table(tmp_path / "o" / "nuclei.parquet").to_pylist()
    assert pt == [{c: r[c] for c in res.columns} for r in res.rows]
    from collections import Counter

    assert res.counts["consep4"] == dict(Counter(r["provenance_consep4"] for r in res.rows))
    assert res.counts["consep4"]["coarsened"] > 0 and "given" not in res.counts["consep4"]


def test_nothing_is_written_on_bad_input(tmp_path, synthetic_sources):
    out = tmp_path / "o"
    out.mkdir()
    with pytest.raises(InputError, match="exists"):
        harmonise(synthetic_sources, ["pannuke"], out=out)
    assert list(tmp_path.iterdir()) == [out] and not list(out.iterdir())
    for kwargs, msg in [({"export": "nope"}, "not a label set"), ({"unknown": "keep", "export": "pannuke"}, "unknown"),
                        ({"formats": ["xlsx"]}, "xlsx"), ({"model": tmp_path / "absent"}, "not a model folder")]:
        with pytest.raises(UserError, match=msg):
            harmonise(synthetic_sources, ["pannuke"], out=tmp_path / "new", **kwargs)
        assert not (tmp_path / "new").exists()
    # a bad label met while reading (after the output folder was started): nothing left, not even its parents
    bad = _sample("consep", "b")
    bad.labels[1:3, 1:3] = 1
    bad.classes = {1: "no such label"}
    src = Source("consep", [_sample("consep", "a"), bad], TAX["consep"])
    with pytest.raises(UserError, match="no such label"):
        harmonise([src], ["pannuke"], out=tmp_path / "a" / "b" / "o", export="pannuke")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


# --------------------------------------------------------------------------------- NuCLS at two granularities
def test_nucls_two_granularities(shared_data, tmp_path):
    """The same NuCLS tiles at nucls4 and nucls2: the fine labels coarsen exactly to nucls2; the coarse ones
    coarsen where the tree allows (Tumor) and stay unknown without a model where nucls4 splits them (Non-Tumor)."""
    from stardist_hier.datasets.harmonise import open_source

    root = shared_data / "nucls"
    if not (root / "detection").is_dir():
        pytest.skip(f"NuCLS tiles not found under {root}")
    fine = open_source("nucls", root, label_set="nucls4", split="test")
    coarse = open_source("nucls", root, label_set="nucls2", split="test")
    with pytest.raises(InputError, match="share 5 image"):  # the same tiles twice
        harmonise([fine, coarse], ["nucls2"])
    up = harmonise([fine], ["nucls4", "nucls2"]).rows
    down = harmonise([coarse], ["nucls2", "nucls4"]).rows
    assert len(up) == len(down) == 182  # the same instances, read twice
    to_nucls2 = {"tumor_any": "Tumor", "nonTIL_stromal": "Non-Tumor", "sTIL": "Non-Tumor",
                 "other_nucleus": "Non-Tumor"}
    for u, d in zip(up, down):
        assert (u["image"], u["id"], u["area_px"], u["centroid_y"]) == (d["image"], d["id"], d["area_px"],
                                                                         d["centroid_y"])
        if u["given_label"] is None:
            assert u["provenance_nucls2"] == "unknown"
        else:
            assert u["provenance_nucls4"] == "given"
            assert (u["label_nucls2"], u["provenance_nucls2"]) == (to_nucls2[u["given_label"]], "coarsened")
        if d["given_label"] == "Tumor":
            assert (d["label_nucls4"], d["provenance_nucls4"]) == ("tumor_any", "coarsened")
        elif d["given_label"] == "Non-Tumor":
            assert (d["label_nucls4"], d["provenance_nucls4"]) == (None, "unknown")


# --------------------------------------------------------------------------------- with a model
def test_inferred_labels_come_from_the_model(tmp_path, synthetic_sources):
    """With a (tiny, untrained) model every split label is inferred: the restricted argmax of the instance's
    mean leaf probabilities; exact labels stay exact. The same through a saved model folder."""
    pytest.importorskip("tensorflow")
    from stardist_hier import Config2DHier, StarDist2DHier
    from stardist_hier.datasets.harmonise import instance_leaf_probabilities, instance_measurements

    conf = Config2DHier(tree=TREE, n_channel_in=3, n_rays=8, grid=(2, 2), unet_n_depth=1, unet_n_filter_base=4,
                        net_conv_after_unet=8, train_patch_size=(64, 64))
    model = StarDist2DHier(conf, name="m", basedir=str(tmp_path))
    res = harmonise(synthetic_sources, ["pannuke", "nucls4", "consep"], model=model)
    rows = iter(res.rows)
    n_inferred = 0
    for src in synthetic_sources:
        for s in src.samples:
            lp = instance_leaf_probabilities(model, s.image, s.labels, mpp=s.meta["mpp"])
            ids = instance_measurements(s.labels)["id"]
            assert lp.shape == (len(ids), TREE.n_classes + 1)
            np.testing.assert_allclose(lp.sum(axis=1), 1.0, atol=1e-4)
            for i, iid in enumerate(ids):
                r = next(rows)
                assert r["id"] == iid
                for t in res.label_sets:
                    tr = translate(s.classes.get(int(iid)), src.label_set, t)
                    if tr.kind == "split":
                        lab, p = restricted_argmax(lp[i], tr.leaves, t)
                        assert (r[f"label_{t.name}"], r[f"provenance_{t.name}"]) == (lab, "inferred")
                        assert r[f"prob_{t.name}"] == pytest.approx(p, abs=1e-6)
                        n_inferred += 1
                    else:
                        assert r[f"provenance_{t.name}"] == tr.kind
    assert n_inferred > 0 and next(rows, None) is None
    # the model folder: checked from config.json, loaded, the same labels
    model.keras_model.save_weights(str(tmp_path / "m" / "weights_best.h5"))
    again = harmonise(synthetic_sources, ["pannuke", "nucls4", "consep"], model=tmp_path / "m")
    assert [r["label_nucls4"] for r in again.rows] == [r["label_nucls4"] for r in res.rows]


def test_no_tensorflow_without_a_model():
    """The library module and the command import neither TensorFlow nor scikit-image (only a model loads TF)."""
    import subprocess
    import sys

    code = ("import sys, stardist_hier.datasets.harmonise, stardist_hier.commands.harmonise; "
            "assert 'tensorflow' not in sys.modules and 'skimage' not in sys.modules, sorted(sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
