"""Folder locks (:mod:`stardist_hier.io.lock`): one holder at a time, a second refused naming the first."""

import os

import pytest

from stardist_hier.errors import RunFolderError
from stardist_hier.io.lock import LOCK_INFO_NAME, FolderLock, lock_holder


def test_second_holder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "run"
    with FolderLock(out) as lock:
        assert lock.held and f"PID {os.getpid()}" in lock_holder(out)
        with pytest.raises(RunFolderError, match=r"run folder .* is in use by another run \(PID"):
            FolderLock(out).acquire()
    assert not (out / LOCK_INFO_NAME).exists()
    FolderLock(out).probe()  # free again: no error


def test_a_file_is_not_a_folder(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        FolderLock(f, what="output folder").acquire()
