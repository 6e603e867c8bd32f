"""The run folder's guards: one run at a time (a lock), and a run is never mixed with another config.

* **Lock.** A run holds ``OUT/.lock`` (:mod:`filelock`, an OS lock released when the
  process ends, even when killed) for its whole life; ``OUT/.lock.info`` names the holder
  (PID, host, start time) while it runs. A second run into the same folder is refused at
  once (no waiting) with a :class:`~stardist_hier.errors.RunFolderError` naming the holder.
  The empty ``.lock`` file stays in the folder after the run.
* **Config.** ``OUT/config.yaml`` is the config the folder was started with. A rerun whose
  config differs from it (any key but ``out``) is refused, naming the keys that differ,
  before anything is written: a finished run is never modified, an interrupted one is
  never continued with other settings.
* **--restart** (``restart=True``) moves the existing run (every entry of ``OUT`` but the
  lock) into a new folder ``OUT.old-<UTC time>`` beside it, then starts afresh in ``OUT``.
  Nothing is deleted.
* A path that is a file, or a non-empty folder holding no run (no ``config.yaml``), is
  refused.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from ...errors import RunFolderError, UserError
from ...io.lock import LOCK_INFO_NAME, LOCK_NAME, FolderLock

__all__ = ["RunLock", "probe_lock", "check_run_folder", "config_differences", "move_run_aside", "LOCK_NAME",
           "LOCK_INFO_NAME"]

_LOCK_FILES = (LOCK_NAME, LOCK_INFO_NAME)


class RunLock(FolderLock):
    """Hold ``OUT/.lock`` without waiting; refuse with the holder's PID, host and start time
    (:class:`stardist_hier.io.lock.FolderLock` for a run folder)."""

    def __init__(self, out):
        super().__init__(out, what="run folder", user="another run")


def probe_lock(out) -> None:
    """Refuse at once when another run holds ``out`` (takes and drops the lock; creates nothing).

    A quick check before slow work; :class:`RunLock` is what guards the run.
    """
    RunLock(out).probe()


# ------------------------------------------------------------------ the config
def _plain(x):
    """JSON-normalised copy (tuples -> lists) of a config mapping."""
    return json.loads(json.dumps(x, default=str))


def _flat(x, prefix="") -> dict:
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(x, list) and x and any(isinstance(v, (dict, list)) for v in x):
        out = {}
        for i, v in enumerate(x):
            out.update(_flat(v, f"{prefix}[{i}]"))
        out[f"{prefix}.length"] = len(x)
        return out
    return {prefix: x}


def config_differences(old: dict, new: dict) -> list:
    """Dotted keys (``model.train_learning_rate``, ``episodes[1].epochs``) whose values differ; ``out`` ignored."""
    a = _flat({k: v for k, v in _plain(old or {}).items() if k != "out"})
    b = _flat({k: v for k, v in _plain(new or {}).items() if k != "out"})
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _stored_config(out: Path):
    from ...io import load_yaml

    try:
        d = load_yaml(out / "config.yaml")
    except UserError as e:
        raise RunFolderError(f"run folder {out}: its config.yaml cannot be read ({e}); choose another --out "
                             f"or --restart") from None
    return d if isinstance(d, dict) else {}


def _finished(out: Path) -> bool:
    try:
        return bool(json.loads((out / "history.json").read_text()).get("finished"))
    except (OSError, ValueError, AttributeError):
        return False


def check_run_folder(out, raw: dict, *, restart: bool = False) -> str:
    """Check that ``raw`` (a config) may run in ``out``; return ``"new"``, ``"same"`` or ``"restart"``.

    Reads only. ``"restart"``: ``out`` holds a run that :func:`move_run_aside` will move.

    Raises
    ------
    RunFolderError
        ``out`` is a file; a non-empty folder without ``config.yaml``; or (without
        ``restart``) a run started with another config, naming the keys that differ.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"run folder {out} is a file, not a folder; choose another --out")
    if not out.is_dir():
        return "new"
    entries = [p.name for p in out.iterdir() if p.name not in _LOCK_FILES]
    if not (out / "config.yaml").is_file():
        if entries:
            raise RunFolderError(f"run folder {out} is not empty and holds no run (no config.yaml); "
                                 f"choose another --out")
        return "new"
    if restart:
        return "restart"
    diff = config_differences(_stored_config(out), raw)
    if diff:
        state = "a finished run" if _finished(out) else "an unfinished run"
        shown = ", ".join(diff[:8]) + (f" and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise RunFolderError(f"run folder {out} holds {state} with another config (keys that differ: {shown}); "
                             f"it is left untouched: choose another --out, or pass --restart to move the old "
                             f"run to {out.name}.old-<time> and start afresh")
    return "same"


def move_run_aside(out) -> Path:
    """Move every entry of ``out`` but the lock into a new ``<out>.old-<UTC time>`` folder; return it."""
    out = Path(out)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = out.with_name(f"{out.name}.old-{stamp}")
    k = 1
    while True:
        try:
            dest.mkdir()
            break
        except FileExistsError:
            k += 1
            dest = out.with_name(f"{out.name}.old-{stamp}-{k}")
    for p in sorted(out.iterdir()):
        if p.name not in _LOCK_FILES:
            os.replace(p, dest / p.name)
    return dest
