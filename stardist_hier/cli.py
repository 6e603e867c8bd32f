"""The ``stardist-hier`` command line: a thin dispatcher over :mod:`stardist_hier.commands`.

Error policy (see :mod:`stardist_hier.errors`): a :class:`~stardist_hier.errors.UserError`
ends as one line ``stardist-hier COMMAND: error: MESSAGE`` on stderr and exit code 2;
a bad argument likewise (argparse's usage block is not repeated); Ctrl-C ends as
``interrupted; rerun to resume`` and exit code 130. Other exceptions keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings

from .commands import COMMANDS
from .errors import MAX_MESSAGE, UserError
from .version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message):
        message = " ".join(str(message).split())
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stardist-hier",
        description="StarDist nucleus segmentation and classification across datasets with different label sets.")
    parser.add_argument("--version", action="version", version=f"stardist-hier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"stardist_hier.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"stardist_hier.commands.{name}":
                continue  # command not built yet
            raise
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ logs and oneDNN notice for the command line only (before TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    _quiet_tensorflow()
    prog = f"stardist-hier {args.command}"
    previous = _terminate_as_interrupt()
    saved_showwarning = warnings.showwarning
    warnings.showwarning = _one_line_warning(prog)
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        if len(msg) > MAX_MESSAGE:  # never an unbounded value on the terminal
            msg = msg[: MAX_MESSAGE - 3] + "..."
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted; rerun to resume", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = saved_showwarning
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line_warning(prog):
    """``warnings.showwarning`` for the command line: ``PROG: warning: MESSAGE`` on one line of stderr."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if len(text) > MAX_MESSAGE:
            text = text[: MAX_MESSAGE - 3] + "..."
        try:
            print(f"{prog}: warning: {text}", file=file if file is not None else sys.stderr)
        except (OSError, ValueError):
            pass

    return show


def _terminate_as_interrupt():
    """SIGTERM (``kill``, a batch system's time limit) ends a command like Ctrl-C: temporary
    files are removed and locks released on the way out. Returns the previous handler, or
    ``None`` outside the main thread (where handlers cannot be set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
