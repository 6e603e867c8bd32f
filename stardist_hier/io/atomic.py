"""Write files and folders under a unique temporary name, then rename them into place.

A reader never sees a half-written file: either the old content or the new one.
Temporary names are unique per process and call (``.<name>.<pid>.<random>.tmp``), so
two writers never share one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_files", "atomic_dir"]


def _temp_name(target: Path, *, directory: bool = False, keep_suffix: bool = False) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        d = tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
        os.chmod(d, 0o777 & ~_umask())
        return Path(d)
    suffix = ".tmp" + (target.suffix if keep_suffix else "")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target, *, keep_suffix: bool = False):
    """Yield a unique temporary path beside ``target``; rename it to ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left as it was.
    The temporary suffix is ``.tmp``, followed by ``target``'s own suffix with
    ``keep_suffix`` (for writers that pick a format from the suffix, e.g. Keras).
    """
    target = Path(target)
    tmp = _temp_name(target, keep_suffix=keep_suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(target, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(target, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_files(folder, files) -> None:
    """Write ``files`` (``{file name: bytes}``) into ``folder``: every file under a temporary name first,
    then all renamed, so a failure while writing leaves ``folder``'s files as they were."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    temps = {}
    try:
        for name, data in files.items():
            tmp = _temp_name(folder / name)
            temps[name] = tmp
            tmp.write_bytes(data)
        for name, tmp in temps.items():
            os.replace(tmp, folder / name)
    finally:
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target, *, replace: bool = True):
    """Yield a unique temporary folder beside ``target``; move it to ``target`` on success.

    With ``replace`` an existing ``target`` folder is swapped out (renamed aside, then
    removed) only after the new one is complete. On an exception the temporary folder
    is removed and ``target`` is untouched.
    """
    target = Path(target)
    tmp = _temp_name(target, directory=True)
    try:
        yield tmp
        if target.exists():
            if not replace:
                raise FileExistsError(f"{target} exists")
            old = _temp_name(target.with_name(target.name + ".old"), directory=True)
            os.rmdir(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
