"""Atomic writes (:mod:`stardist_hier.io.atomic`): a reader sees the old content or the new, never half."""

import os

import pytest

from stardist_hier.io import atomic_dir, atomic_path, atomic_write_files, atomic_write_text


def test_atomic_write_text_replaces_and_leaves_no_temporary(tmp_path):
    f = tmp_path / "sub" / "a.txt"
    atomic_write_text(f, "one")
    atomic_write_text(f, "two")
    assert f.read_text() == "two"
    assert [p.name for p in f.parent.iterdir()] == ["a.txt"]


def test_atomic_path_failure_keeps_the_old_file(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(f) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert f.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_files_writes_all_and_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep")
    atomic_write_files(out, {"a.csv": b"x", "b.md": b"y"})
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.md", "old.txt"]
    assert (out / "a.csv").read_bytes() == b"x" and (out / "old.txt").read_text() == "keep"
    atomic_write_files(tmp_path / "new" / "deep", {"c.txt": b"z"})  # folders created
    assert (tmp_path / "new" / "deep" / "c.txt").read_bytes() == b"z"


def test_atomic_write_files_failure_renames_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_files(out, {"a.csv": b"new", "b.md": "not bytes"})
    assert [p.name for p in out.iterdir()] == ["a.csv"] and (out / "a.csv").read_bytes() == b"old"


def test_atomic_dir_swaps_a_complete_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"2")
        raise RuntimeError
    assert (target / "w.bin").read_bytes() == b"1"
    assert sorted(os.listdir(tmp_path)) == ["model"]
