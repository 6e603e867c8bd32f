"""One process at a time in an output folder: an OS lock, refused at once naming its holder (no TensorFlow).

:class:`FolderLock` holds ``OUT/.lock`` (:mod:`filelock`, released by the OS when the
process ends, even when killed) and writes ``OUT/.lock.info`` (PID, host, start time)
while held. A second holder is refused without waiting, with a
:class:`~stardist_hier.errors.RunFolderError` naming the first. The experiment runner's
run folders (:mod:`stardist_hier.training.experiment.runfolder`) and the prediction
output folders (:mod:`stardist_hier.predict.runner`) are locked this way.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from ..errors import RunFolderError

__all__ = ["FolderLock", "LOCK_NAME", "LOCK_INFO_NAME", "lock_holder"]

LOCK_NAME = ".lock"
LOCK_INFO_NAME = ".lock.info"


class FolderLock:
    """Hold ``OUT/.lock`` without waiting; refuse with the holder's PID, host and start time.

    Parameters
    ----------
    out : path
        The folder (created on :meth:`acquire`).
    what : str
        How messages name the folder (``"run folder"``, ``"output folder"``).
    user : str
        Who else may hold it (``"another run"``, ``"another stardist-hier predict"``).
    """

    def __init__(self, out, *, what: str = "run folder", user: str = "another run"):
        self.out = Path(out)
        self.what, self.user = what, user
        self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def acquire(self) -> "FolderLock":
        from filelock import FileLock, Timeout

        if self.held:
            return self
        if self.out.exists() and not self.out.is_dir():
            raise RunFolderError(f"{self.what} {self.out} is a file, not a folder; choose another --out")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"{self.what} {self.out} cannot be created ({e.strerror or e}); "
                                 f"choose another --out") from None
        lock = FileLock(str(self.out / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunFolderError(f"{self.what} {self.out} is in use by {self.user} ({lock_holder(self.out)}); "
                                 f"wait for it to end or choose another --out") from None
        except OSError as e:
            raise RunFolderError(f"{self.what} {self.out}: cannot lock it ({e.strerror or e}); "
                                 f"choose another --out") from None
        self._lock = lock
        from .atomic import atomic_write_text

        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        try:
            atomic_write_text(self.out / LOCK_INFO_NAME, json.dumps(info) + "\n")
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        try:
            if self._lock.is_locked:
                try:
                    (self.out / LOCK_INFO_NAME).unlink()
                except FileNotFoundError:
                    pass
        finally:
            self._lock.release()
            self._lock = None

    def probe(self) -> None:
        """Refuse at once when another process holds the folder (takes and drops the lock; creates nothing)."""
        if (self.out / LOCK_NAME).is_file():
            self.acquire().release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def lock_holder(out) -> str:
    """``PID ... on host ..., started ...`` from ``OUT/.lock.info``, or why it is unknown."""
    out = Path(out)
    try:
        info = json.loads((out / LOCK_INFO_NAME).read_text())
        return f"PID {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"
    except (OSError, ValueError, AttributeError):
        return f"holder unknown: {out / LOCK_INFO_NAME} is missing or unreadable"
