"""Bounded input and honest structures (issue 17; YAML bounds: tests/io/test_safe.py): deep trees, reserved labels, huge
instance ids, a truncated checkpoint, bounded error messages and plain progress lines (no TensorFlow
except where a test says so)."""

import io
import json

import numpy as np
import pytest

from stardist_hier import ClassTree, LabelSet, LabelSetError, TreeError, default_taxonomy
from stardist_hier.errors import shorten


def test_shorten_bounds_any_value():
    assert shorten("abc") == "'abc'"
    assert len(shorten(list(range(10 ** 5)))) <= 80
    nested = {}
    for _ in range(1000):
        nested = {"a": nested}
    assert len(shorten(nested)) <= 80


# ------------------------------------------------------------------------ trees, label sets
def test_deep_tree_is_refused_without_recursion_error():
    d = None
    for i in range(5000):
        d = {f"n{i}": d}
    with pytest.raises(TreeError, match="more than 50 levels deep"):
        ClassTree.from_dict(d)
    parents = {"r": None, **{f"n{i}": ("r" if i == 0 else f"n{i - 1}") for i in range(5000)}}
    with pytest.raises(TreeError, match="more than 50 levels deep"):
        ClassTree(parents)


def test_a_tree_of_fifty_levels_works_and_keeps_its_order():
    d = None
    for i in reversed(range(49)):
        d = {f"n{i}": d if d is not None else {"a": None, "b": None}}
    t = ClassTree.from_dict({"root": d})
    assert t.depth("a") == 50 and t.leaves == ("a", "b")
    assert ClassTree.from_dict(t.to_dict()) == t
    # pre-order as before: children in the order given
    t2 = ClassTree.from_dict({"r": {"x": ["x1", "x2"], "y": None, "z": {"z1": None}}})
    assert t2.nodes == ("r", "x", "x1", "x2", "y", "z", "z1") and t2.leaves == ("x1", "x2", "y", "z1")


@pytest.mark.parametrize("name", ["background", "Background", " BACKGROUND "])
def test_label_named_background_is_refused(name):
    tree = default_taxonomy().tree
    with pytest.raises(LabelSetError, match="reserved"):
        LabelSet(tree, {name: "epithelial", "Other": "lymphocyte"}, name="mine")


def test_missing_taxonomy_file_is_a_user_error_and_a_file_not_found(tmp_path):
    from stardist_hier import Taxonomy

    with pytest.raises(TreeError, match=f"{tmp_path / 'nope.yaml'}: no such file") as e:
        Taxonomy.from_file(tmp_path / "nope.yaml")
    assert isinstance(e.value, FileNotFoundError)


# ---------------------------------------------------------------------- class targets
def test_a_class_id_not_in_the_image_allocates_nothing():
    from stardist_hier.targets import encode_image

    ls = default_taxonomy()["pannuke"]
    labels = np.zeros((8, 8), np.int32)
    labels[2:4, 2:4] = 1
    cut = encode_image(labels, {1: ls.labels[0], 10 ** 12: ls.labels[1]}, ls)
    assert cut.label_of_id.shape == (2,)
    with pytest.raises(LabelSetError, match="instance 1000000000000"):
        encode_image(labels, {1: ls.labels[0], 10 ** 12: "no such label"}, ls)


# ------------------------------------------------------------------------------ NuCLS
@pytest.mark.parametrize("key", ["'1'", "true", "1.7", "yes"])
def test_nucls_label_map_codes_must_be_plain_integers(tmp_path, key):
    from stardist_hier.datasets import DatasetError
    from stardist_hier.datasets.nucls import NUCLS2_CLASSES, _label_map

    f = tmp_path / "label_map.yaml"
    f.write_text(f"{key}: Non-Tumor\n2: Tumor\n")
    with pytest.raises(DatasetError, match="is not an integer"):
        _label_map(f, NUCLS2_CLASSES, tuple(NUCLS2_CLASSES.values()))
    f.write_text("1: Non-Tumor\n2: Tumor\n")
    assert _label_map(f, NUCLS2_CLASSES, tuple(NUCLS2_CLASSES.values())) == {1: "Non-Tumor", 2: "Tumor"}


# --------------------------------------------------------------------------- progress
def test_plain_progress_lines_are_rate_limited_and_plain():
    from stardist_hier.console import _PlainProgress

    buf = io.StringIO()
    p = _PlainProgress(total=1000, desc="slide", unit="tile", file=buf)
    for _ in range(1000):
        p.update()
    p.close()
    lines = buf.getvalue().splitlines()
    assert lines == [lines[-1]] and lines[-1].startswith("slide: 1000/1000 tiles (") and lines[-1].endswith("done)")
    buf = io.StringIO()
    sub = _PlainProgress(total=3, desc="tile0", unit="tile", file=buf, leave=False)
    sub.update(3)
    sub.close()
    assert buf.getvalue() == ""  # a short sub-phase says nothing
    buf = io.StringIO()
    sub = _PlainProgress(total=3, desc="tile0", unit="tile", file=buf, leave=False)
    sub.interval = 0.0
    sub.update(1)
    sub.close()
    assert len(buf.getvalue().splitlines()) == 2 and "\r" not in buf.getvalue()  # a long one: its lines + the end


# ------------------------------------------------------------------------- checkpoint
def test_a_truncated_checkpoint_state_is_one_user_error(tmp_path):
    pytest.importorskip("tensorflow")
    from stardist_hier.errors import RunFolderError
    from stardist_hier.training.callback import EpisodeCallback

    ck = tmp_path / "checkpoint"
    ck.mkdir()
    (ck / "state.json").write_text(json.dumps({"fingerprint": "x", "history": {}})[:20])
    (ck / "weights.npz").write_bytes(b"PK")

    class Stub:
        find_checkpoint = staticmethod(EpisodeCallback.find_checkpoint)
        fingerprint = "x"

    with pytest.raises(RunFolderError, match=f"{ck / 'state.json'} is truncated or unreadable.*--restart"):
        EpisodeCallback.restore_checkpoint(Stub(), ck)
    (ck / "state.json").write_text(json.dumps({"fingerprint": "x", "history": {"epochs_done": 1},
                                               "steps_per_epoch": 2}))
    Stub.steps_per_epoch = 2
    keras_model = type("K", (), {"set_weights": lambda self, w: None})()
    Stub.sd_model = type("M", (), {"keras_model": keras_model})()
    with pytest.raises(RunFolderError, match=f"{ck / 'weights.npz'} is truncated or unreadable"):
        EpisodeCallback.restore_checkpoint(Stub(), ck)
