"""The package's one error policy (no TensorFlow).

* A **user error** (bad input file, bad config key, bad argument, a locked or finished
  run folder) is raised as a :class:`UserError` subclass whose message names the file,
  key or argument. The command line turns it into one line on stderr and exit code 2
  (:func:`stardist_hier.cli.main`); library users catch it as ``UserError`` or as the
  ``ValueError`` it also is.
* Ctrl-C in a command prints ``interrupted; rerun to resume`` and exits with 130.
* Anything else is an internal error and keeps its traceback.

Every package error type derives from :class:`UserError`; ``grep -rn "UserError"``
finds them all.
"""

from __future__ import annotations

__all__ = ["UserError", "InputError", "ParameterError", "ModelFolderError", "RunFolderError", "TreeError", "LabelSetError", "did_you_mean", "shorten",
           "MAX_MESSAGE"]

#: Longest error message the command line prints (characters); longer ones are cut with "...".
MAX_MESSAGE = 2000


class UserError(ValueError):
    """An error the user can fix; the message names the file, key or argument."""


class InputError(UserError):
    """A bad input file or argument (image, slide, folder, option value)."""


class ParameterError(InputError):
    """A bad value of a library parameter: the message starts with the parameters' names.

    A library function names its own parameters (``block_size 0: must be positive``); a
    command line that exposes them as flags says its flags instead with :meth:`renamed`.

    Parameters
    ----------
    names : str or sequence of str
        The parameters the message is about (joined by ``/`` at its start).
    detail : str
        The rest of the message (``": must be positive"``, ``" 0: must be positive"``).
    """

    def __init__(self, names, detail: str):
        self.names = (names,) if isinstance(names, str) else tuple(names)
        self.detail = str(detail)
        super().__init__("/".join(self.names) + self.detail)

    def renamed(self, names) -> ParameterError:
        """The same error, each parameter named as ``names`` (a mapping) says, the others as they are."""
        return type(self)([names.get(n, n) for n in self.names], self.detail)

    def __reduce__(self):  # picklable (errors travel back from Dask workers)
        return type(self), (self.names, self.detail)


class ModelFolderError(UserError):
    """A model folder that is missing, truncated, or does not match its weights."""


class RunFolderError(UserError):
    """A run or output folder that is locked by another run, finished with another config, or not a folder."""



class TreeError(UserError):
    """Raised for an invalid class tree."""


class LabelSetError(UserError):
    """Raised for an invalid label set or an unknown label."""

def did_you_mean(key: str, allowed) -> str:
    """``" (did you mean 'x'?)"`` for the closest allowed name, or ``""``."""
    import difflib

    key = str(key)
    if len(key) > 200:  # difflib is quadratic; no typo is that long
        return ""
    close = difflib.get_close_matches(key, [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shorten(value, limit: int = 80) -> str:
    """``repr(value)`` bounded in length, nesting and items (for error messages).

    Containers show their first items and ``...``; strings are cut with ``...``, so a
    message never carries an unbounded value (a huge or deeply nested config entry).
    """
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 3, 6, 6, 6, 6
    r.maxstring = r.maxother = r.maxlong = max(8, int(limit))
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."
