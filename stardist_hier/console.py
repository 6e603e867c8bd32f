"""What the command line prints: one progress bar per phase, plain text when not a terminal,
library chatter kept out (no TensorFlow at import).

Helpers for :mod:`stardist_hier.commands` and the jobs they run (the study runner,
:mod:`stardist_hier.training.experiment.study`):

* :func:`import_tensorflow` imports TensorFlow with its C++ start-up lines (absl's
  ``WARNING: All log messages before absl::InitializeLog()``, the oneDNN and "Could not
  find cuda drivers" notices) held back; ``TF_CPP_MIN_LOG_LEVEL`` (set by
  :mod:`stardist_hier.cli`) does not reach those on TensorFlow >= 2.18. Any other line
  written during the import is passed on.
* :func:`quiet_stardist` holds back what StarDist and CSBDeep ``print`` (``Using default
  values: ...``, ``Loading network weights from ...``, ``Using optimized values: ...``,
  ``Saving to 'thresholds.json'.``) and Keras's ``shuffle=True`` warning. On an exception
  the held-back text goes to stderr, so nothing is lost when something fails.
* :func:`progress` is one ``tqdm`` bar for a phase on a terminal; without one, plain lines
  (no carriage returns or ANSI codes; at most one every 30 s and one at the end).
* :func:`keras_verbose` is the ``verbose`` to give ``fit``: 1 (progress bar) on a
  terminal, 2 (one line per epoch) otherwise.
* :func:`done` is the one-line summary that ends a command: where its outputs are.
* :func:`no_retracing_warnings` holds back TensorFlow's "triggered tf.function retracing"
  warnings (expected when a study builds one model per row) unless ``verbose`` >= 2.

``verbose`` follows one scale everywhere: 0 quiet, 1 normal (one bar per phase),
2 and more (``-v``) also the libraries' own bars and lines.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import time
import warnings

__all__ = ["is_terminal", "keras_verbose", "progress", "write", "quiet_stardist", "import_tensorflow", "done",
           "no_retracing_warnings", "TF_NOISE"]

#: Lines TensorFlow's C++ side writes at import (matched anywhere in the line).
TF_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)|oneDNN custom operations are on|"
    r"Could not find cuda drivers|cpu_feature_guard|This TensorFlow binary is optimized|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation placer already registered|"
    r"absl::InitializeLog")

#: Keras warnings that say nothing to a person running a command.
_KERAS_WARNINGS = (r"`shuffle=True` was passed",)


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr, where the bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def keras_verbose(verbose: int = 1, stream=None) -> int:
    """Keras ``fit(verbose=...)``: 0 when quiet, 1 (a bar with ANSI codes) on a terminal, else 2 (one line per epoch)."""
    if not verbose:
        return 0
    return 1 if is_terminal(stream if stream is not None else sys.stdout) else 2


def progress(iterable=None, *, total=None, desc=None, verbose: int = 1, unit="it", **kwargs):
    """One progress bar on stderr for a phase (nothing when ``verbose`` is 0).

    On a terminal a ``tqdm`` bar; otherwise (a log file, a pipe) plain lines without
    carriage returns or ANSI codes: at most one every 30 s, and one when the phase ends
    (with ``leave=False``, a sub-phase: only when it printed a line before, so that many
    short sub-phases stay quiet).
    """
    if verbose and not is_terminal():
        return _PlainProgress(iterable, total=total, desc=desc, unit=unit, leave=kwargs.get("leave", True))
    from tqdm.auto import tqdm

    opts = dict(total=total, desc=desc, unit=unit, disable=not verbose, file=sys.stderr, leave=True,
                dynamic_ncols=True)
    opts.update(kwargs)
    return tqdm(iterable, **opts)


class _PlainProgress:
    """The part of ``tqdm``'s interface :func:`progress` users need, as plain log lines."""

    interval = 30.0

    def __init__(self, iterable=None, *, total=None, desc=None, unit="it", file=None, leave=True):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc or "progress", unit
        self.leave, self.emitted = bool(leave), False
        if self.total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)
        self.file = file if file is not None else sys.stderr
        self.n, self.postfix, self.closed = 0, "", False
        self.t0 = self.last = time.time()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        of = f"/{self.total}" if self.total is not None else ""
        post = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {self.n}{of} {self.unit}s ({time.time() - self.t0:.0f} s{post})"

    def _emit(self):
        print(self._line(), file=self.file, flush=True)
        self.last = time.time()
        self.emitted = True

    def update(self, n=1):
        self.n += n
        if n and time.time() - self.last >= self.interval:
            self._emit()

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = str(s)

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or self.desc

    def refresh(self):
        pass

    def close(self):
        if not self.closed:
            self.closed = True
            self.postfix = "done"
            if self.leave or self.emitted:
                self._emit()


def write(msg: str, *, file=None) -> None:
    """Print ``msg`` without breaking an open :func:`progress` bar."""
    from tqdm.auto import tqdm

    tqdm.write(msg, file=file if file is not None else sys.stdout)


@contextlib.contextmanager
def quiet_stardist(verbose: int = 1):
    """Hold back StarDist's/CSBDeep's status prints and Keras's ``shuffle`` warning (unless ``verbose >= 2``).

    Only Python-level ``sys.stdout`` is redirected (what ``print`` writes); progress bars on
    stderr are left alone. On an internal error (not a :class:`~stardist_hier.errors.UserError`,
    whose one line says it all, nor Ctrl-C) the held-back text is written to stderr.
    """
    if verbose >= 2:
        yield
        return
    buf = io.StringIO()
    with warnings.catch_warnings():
        for msg in _KERAS_WARNINGS:
            warnings.filterwarnings("ignore", message=msg)
        try:
            with contextlib.redirect_stdout(buf):
                yield
        except BaseException as e:
            from .errors import UserError

            if isinstance(e, (UserError, KeyboardInterrupt)):  # one line says it all (the error policy)
                raise
            text = buf.getvalue()
            if text.strip():
                sys.stderr.write(text if text.endswith("\n") else text + "\n")
            raise


def import_tensorflow():
    """``import tensorflow`` with its C++ start-up notices held back; returns the module.

    The file descriptor 2 is pointed at a temporary file during the import (the notices
    come from C++, below Python's ``sys.stderr``); lines that are not known notices are
    written back to stderr afterwards. A no-op after the first import.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    # TensorFlow's C++ code writes to file descriptor 2 itself (also in a Jupyter kernel,
    # where sys.stderr is a Python stream with a copy of that descriptor, or none)
    fd = 2
    try:
        os.fstat(fd)
    except OSError:
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not TF_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
    return tensorflow


def done(command: str, what: str, *, t0: float | None = None, file=None) -> str:
    """Print and return the one line that ends a command: ``stardist-hier CMD: WHAT (N s)``."""
    took = "" if t0 is None else f" ({time.time() - t0:.0f} s)"
    line = f"stardist-hier {command}: {what}{took}"
    print(line, file=file if file is not None else sys.stdout, flush=True)
    return line


@contextlib.contextmanager
def no_retracing_warnings(verbose: int = 1):
    """Hold back TensorFlow's "triggered tf.function retracing" warnings (expected: one new model per row)."""
    import logging

    class _Drop(logging.Filter):
        def filter(self, record):
            return "triggered tf.function retracing" not in record.getMessage()

    logger = logging.getLogger("tensorflow")
    f = _Drop()
    if verbose < 2:
        logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)
