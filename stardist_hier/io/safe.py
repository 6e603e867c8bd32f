"""Loading data and config files without running code from them.

Rule of the package: **no pickle from data files by default.** ``np.load`` is only
called through :func:`load_npy` (pickles refused unless the caller passes
``trust_pickle=True`` after the user asked for it) or :func:`load_numpy_only_pickle`
(an unpickler that builds NumPy arrays only); YAML only through :func:`load_yaml`
(safe loader, duplicate keys refused). The developer notes in the README give the grep
that checks this rule.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["load_npy", "load_yaml", "load_numpy_only_pickle", "NotObjectArray", "PICKLE_RISK"]

PICKLE_RISK = ("a pickled .npy file can run arbitrary code when loaded; only pass trust_pickle=True "
               "for files from a source you trust")


class NotObjectArray(ValueError):
    """The ``.npy`` file holds a plain (non-pickled) array: read it with :func:`load_npy`."""


# the only globals a NumPy-only pickle may name: NumPy's array and dtype constructors
_NUMPY_ONLY = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}


def _reconstruct():
    core = getattr(np, "_core", None)
    if core is None or not hasattr(core, "multiarray"):
        import numpy.core as core  # NumPy 1.x
    return core.multiarray._reconstruct


def load_numpy_only_pickle(path) -> np.ndarray:
    """The object array of a pickled ``.npy`` whose pickle holds NumPy arrays and plain containers only.

    Some datasets (NuCLS) ship labels as a 0-d object array holding a dict of arrays.
    This reads the pickle stream with an unpickler whose ``find_class`` allows NumPy's
    array and dtype constructors only and refuses everything else *before* calling
    it, so no code named by the file runs.

    Raises
    ------
    NotObjectArray
        The file holds a plain array (read it with :func:`load_npy`).
    InputError
        Naming ``path``: the pickle names anything else, or the file is truncated or corrupt.
    """
    import pickle  # noqa: S403 - restricted: find_class allows NumPy's array constructors only

    path = Path(path)

    class NumpyOnly(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in _NUMPY_ONLY:
                raise InputError(f"{path}: refused: the file asks to run {module}.{name} when loaded "
                                 f"(the file is not loaded)")
            return _reconstruct() if name == "_reconstruct" else getattr(np, name)

        def persistent_load(self, pid):
            raise InputError(f"{path}: refused: the pickle holds persistent references")

    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            if dtype != object:
                raise NotObjectArray(str(path))
            obj = NumpyOnly(f).load()
    except (InputError, NotObjectArray):
        raise
    except Exception as e:  # truncated or corrupt file: any unpickling error
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(obj, np.ndarray) or obj.dtype != object or obj.shape != tuple(shape):
        raise InputError(f"{path}: unexpected pickle content (not an object array)")
    return obj


def load_npy(path, *, mmap_mode=None, trust_pickle: bool = False) -> np.ndarray:
    """Read a ``.npy`` array; object (pickled) arrays are refused unless ``trust_pickle``.

    Raises
    ------
    InputError
        Naming ``path``: unreadable, truncated, or pickled without ``trust_pickle``.
    """
    path = Path(path)
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=bool(trust_pickle))
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise InputError(f"{path}: holds a pickled object array, refused ({PICKLE_RISK})") from None
        raise InputError(f"{path}: not a readable .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None


#: Bounds of :func:`load_yaml`: characters of the text, nesting depth, and nodes once every
#: alias is expanded (an "alias bomb" of a few lines expands to billions of nodes).
YAML_MAX_CHARS = 5_000_000
YAML_MAX_DEPTH = 64
YAML_MAX_NODES = 200_000


def _check_yaml_bounds(text: str, where: str) -> None:
    """Refuse YAML beyond :data:`YAML_MAX_CHARS`, :data:`YAML_MAX_DEPTH` or :data:`YAML_MAX_NODES`.

    Walks PyYAML's event stream (iterative: no recursion, nothing built) and counts the
    nodes each anchor stands for, so that an alias costs what it expands to.
    """
    import yaml

    if len(text) > YAML_MAX_CHARS:
        raise InputError(f"{where}: too large for a config file ({len(text)} characters; at most "
                         f"{YAML_MAX_CHARS})")
    sizes = {}      # anchor -> expanded nodes
    stack = []      # [anchor, expanded nodes so far] of the open collections
    total = 0

    def count(n, line):
        nonlocal total
        total += n
        if total > YAML_MAX_NODES:
            raise InputError(f"{where}: line {line}: more than {YAML_MAX_NODES} values once its aliases "
                             f"(*name) are expanded; refused (a config never needs that many)")
        if stack:
            stack[-1][1] += n

    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= YAML_MAX_DEPTH:
                raise InputError(f"{where}: line {line}: nested more than {YAML_MAX_DEPTH} levels deep; refused")
            count(1, line)
            stack.append([ev.anchor, 1])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, n = stack.pop()
            if anchor is not None:
                sizes[anchor] = n
            if stack:  # the parent holds this collection's values too (counted in the total already)
                stack[-1][1] += n - 1
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.anchor is not None:
                sizes[ev.anchor] = 1
            count(1, line)
        elif isinstance(ev, yaml.AliasEvent):
            count(sizes.get(ev.anchor, 1), line)


def load_yaml(text_or_path, *, where=None):
    """Parse YAML with the safe loader, refusing duplicate keys and unbounded input.

    Parameters
    ----------
    text_or_path : str or Path
        A path (``Path``) or the YAML text itself (``str``).
    where : str, optional
        Name used in messages (default: the path).

    Raises
    ------
    InputError
        Naming ``where``: unreadable, not valid YAML, a duplicate key, or beyond the
        bounds (:data:`YAML_MAX_CHARS` characters, :data:`YAML_MAX_DEPTH` levels,
        :data:`YAML_MAX_NODES` values with aliases expanded).
    """
    import yaml

    if isinstance(text_or_path, Path):
        where = where or str(text_or_path)
        try:
            if text_or_path.stat().st_size > 4 * YAML_MAX_CHARS:
                raise InputError(f"{where}: too large for a config file ({text_or_path.stat().st_size} bytes)")
            text = text_or_path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{where}: cannot read ({e})") from None
    else:
        text, where = text_or_path, where or "<yaml>"
    try:
        _check_yaml_bounds(text, where)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{where}: {line}not valid YAML ({getattr(e, 'problem', None) or e})") from None

    class _Loader(yaml.SafeLoader):
        pass

    def _mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:  # an unhashable key ({[1]: x}): PyYAML refuses it below
                dup = False
            if dup:
                from ..errors import shorten

                raise InputError(f"{where}: line {key_node.start_mark.line + 1}: duplicate key {shorten(key)}")
            with contextlib.suppress(TypeError):
                seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    loader = _Loader(text)  # a SafeLoader: builds plain Python objects only
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{where}: {line}not valid YAML ({getattr(e, 'problem', None) or e})") from None
    finally:
        loader.dispose()
