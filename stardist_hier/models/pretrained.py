"""Pretrained models by name, the StarDist way (no TensorFlow until a model is loaded).

The registry :data:`REGISTRY` is a read-only mapping built once, at import, from the index
shipped in the package (``stardist_hier/pretrained/index.yaml``, which documents its
keys). A registered model is a normal model folder plus its model card, either

* **shipped** inside the package as ``stardist_hier/pretrained/NAME/``: it loads without
  network access; or
* **fetched** from a URL on first use, like StarDist's and CSBDeep's
  ``register_model(cls, key, url, hash)``: the zip is downloaded under a unique temporary
  name into the model cache, refused unless its SHA-256 is the registered one, extracted
  into a unique temporary folder and renamed into place, so that the cache never holds a
  half-written model and a refused download leaves nothing behind.

The cache is ``cache_dir`` when given, else ``$STARDIST_HIER_MODEL_CACHE``, else
``$KERAS_HOME/models/StarDist2DHier`` (Keras's cache folder, ``~/.keras`` by default, or
``/tmp/.keras`` when that is not writable, as ``keras.utils.get_file`` does).

Examples
--------
>>> from stardist_hier import StarDist2DHier
>>> StarDist2DHier.from_pretrained()                        # doctest: +SKIP
>>> model = StarDist2DHier.from_pretrained("he_consep_nucls")  # doctest: +SKIP

Every function takes ``registry=`` (default :data:`REGISTRY`), e.g. a mapping from
:func:`load_index`, so that other registries can be used without changing this one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from ..errors import InputError, ModelFolderError, did_you_mean

__all__ = ["PretrainedModel", "REGISTRY", "CACHE_ENV", "load_index", "get_registered_models", "get_model_details",
           "get_model_folder", "get_model_instance", "resolve_model", "model_cache_dir", "cached_folder",
           "model_card", "describe_models", "list_models"]

#: Environment variable naming the model cache folder (overrides the Keras cache folder).
CACHE_ENV = "STARDIST_HIER_MODEL_CACHE"

#: Written into a fetched model folder: the URL and SHA-256 it came from.
SOURCE_FILE = ".stardist_hier_source.json"

_INDEX = "pretrained/index.yaml"
_KEYS = {"folder", "url", "sha256", "description", "license", "aliases", "mpp", "docs"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PretrainedModel:
    """One registered model.

    Attributes
    ----------
    name : str
        Registry name, also the name of its folder (shipped or in the cache).
    description : str
        One line.
    license : str
        Licence of the weights (follows from the training data).
    folder : str or None
        Shipped: the folder ``stardist_hier/pretrained/FOLDER`` in the package.
    url : str or None
        Fetched: where the zip of the model folder is downloaded from.
    sha256 : str or None
        SHA-256 of that zip (64 lowercase hex digits).
    aliases : tuple of str
        Other names accepted for it.
    mpp : float or None
        Its pixel size (µm per pixel), for the listing (the folder's ``hier_mpp`` rules).
    docs : str or None
        Where its evaluation is written up.
    """

    name: str
    description: str
    license: str
    folder: str | None = None
    url: str | None = None
    sha256: str | None = None
    aliases: tuple = ()
    mpp: float | None = None
    docs: str | None = None

    @property
    def shipped(self) -> bool:
        """The model folder ships inside the package."""
        return self.folder is not None

    @property
    def source(self) -> str:
        """``"shipped"`` or the URL."""
        return "shipped" if self.shipped else str(self.url)


def _entry(name, d, where) -> PretrainedModel:
    at = f"{where}: model {name!r}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"{where}: model name {name!r} must be letters, digits, '_', '.', '-' (a folder name)")
    if not isinstance(d, dict):
        raise InputError(f"{at} must be a mapping, got {type(d).__name__}")
    unknown = set(d) - _KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise InputError(f"{at}: unknown key {key!r}{did_you_mean(key, _KEYS)}")
    for key in ("description", "license"):
        if not isinstance(d.get(key), str) or not d[key].strip():
            raise InputError(f"{at}: {key!r} must be a non-empty string")
    folder, url, sha = d.get("folder"), d.get("url"), d.get("sha256")
    if (folder is None) == (url is None):
        raise InputError(f"{at}: give either 'folder' (shipped in the package) or 'url' and 'sha256' (fetched)")
    if folder is not None:
        if sha is not None:
            raise InputError(f"{at}: 'sha256' is for a fetched model ('url'), not a shipped 'folder'")
        if not isinstance(folder, str) or not folder.isidentifier():
            # a Python identifier: setuptools' find_namespace sees the folder as a package of data
            raise InputError(f"{at}: 'folder' must be a folder name inside stardist_hier/pretrained made of "
                             f"letters, digits and '_' (not starting with a digit), got {folder!r}")
    else:
        if not isinstance(url, str) or not re.match(r"(https?|file)://", url):
            raise InputError(f"{at}: 'url' must be an https://, http:// or file:// URL, got {url!r}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha.lower()):
            raise InputError(f"{at}: 'sha256' must be the zip's SHA-256 (64 hex digits), got {sha!r}")
        sha = sha.lower()
    aliases = d.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise InputError(f"{at}: 'aliases' must be a list of names")
    mpp = d.get("mpp")
    if mpp is not None and (isinstance(mpp, bool) or not isinstance(mpp, (int, float)) or not mpp > 0):
        raise InputError(f"{at}: 'mpp' must be a positive number (µm per pixel), got {mpp!r}")
    docs = d.get("docs")
    if docs is not None and not isinstance(docs, str):
        raise InputError(f"{at}: 'docs' must be a string")
    return PretrainedModel(name=name, description=" ".join(d["description"].split()), license=d["license"].strip(),
                           folder=folder, url=url, sha256=sha, aliases=tuple(aliases),
                           mpp=None if mpp is None else float(mpp), docs=docs)


def load_index(source, *, where: str | None = None) -> MappingProxyType:
    """A read-only registry ``{name: PretrainedModel}`` from an index (see ``stardist_hier/pretrained/index.yaml``).

    Parameters
    ----------
    source : Path, str or dict
        The index file (``Path``), its YAML text (``str``) or its content (``dict``).
    where : str, optional
        Name used in messages.

    Raises
    ------
    InputError
        Naming the entry and key: an invalid entry, or a name or alias used twice.
    """
    from ..io import load_yaml

    if isinstance(source, dict):
        d, where = source, where or "<index>"
    else:
        where = where or (str(source) if isinstance(source, Path) else "<index>")
        d = load_yaml(source, where=where)
    if not isinstance(d, dict) or set(d) != {"models"} or not isinstance(d["models"], dict):
        raise InputError(f"{where}: the index must be a mapping with one key 'models' (name -> entry)")
    entries = [_entry(name, e, where) for name, e in d["models"].items()]
    seen = {}
    for e in entries:
        for n in (e.name, *e.aliases):
            if n in seen:
                raise InputError(f"{where}: name {n!r} of model {e.name!r} is already used by model {seen[n]!r}")
            seen[n] = e.name
    return MappingProxyType({e.name: e for e in entries})


def _package_dir() -> Path:
    return Path(str(resources.files("stardist_hier")))


#: The registered models (read-only), from the index shipped in the package.
REGISTRY = load_index(resources.files("stardist_hier").joinpath(_INDEX).read_text(encoding="utf-8"),
                      where=f"stardist_hier/{_INDEX}")


def _registry(registry):
    return REGISTRY if registry is None else registry


def get_registered_models(*, return_aliases: bool = True, registry=None):
    """Registered names, like CSBDeep's ``get_registered_models``.

    Returns
    -------
    tuple of str, or (tuple of str, dict)
        The names; with ``return_aliases`` also ``{name: tuple of aliases}``.
    """
    reg = _registry(registry)
    names = tuple(reg)
    return (names, {n: reg[n].aliases for n in names}) if return_aliases else names


def _lookup(name, registry):
    reg = _registry(registry)
    if name in reg:
        return reg[name]
    return next((e for e in reg.values() if name in e.aliases), None)


def get_model_details(name_or_alias: str, *, registry=None) -> PretrainedModel:
    """The registry entry of a name or alias.

    Raises
    ------
    InputError
        Unknown name (the message offers the closest registered name and lists them).
    """
    entry = _lookup(name_or_alias, registry)
    if entry is None:
        raise InputError(_unknown(name_or_alias, _registry(registry)))
    return entry


def _unknown(name, reg) -> str:
    names = [n for e in reg.values() for n in (e.name, *e.aliases)]
    known = ", ".join(reg) or "none"
    return (f"unknown pretrained model {name!r}{did_you_mean(name, names)}; registered: {known} "
            f"(see: stardist-hier models list)")


def model_cache_dir(cache_dir=None) -> Path:
    """The folder holding fetched models: ``cache_dir``, ``$STARDIST_HIER_MODEL_CACHE``, or Keras's cache.

    Keras's cache folder is ``$KERAS_HOME`` or ``~/.keras``, and ``/tmp/.keras`` when that
    cannot be written (as ``keras.utils.get_file``); models go to its ``models/StarDist2DHier``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    probe = base
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        base = Path(tempfile.gettempdir()) / ".keras"
    return base / "models" / "StarDist2DHier"


def _shipped_folder(entry: PretrainedModel) -> Path:
    return _package_dir() / "pretrained" / entry.folder


def _read_source(folder: Path) -> dict | None:
    try:
        d = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) else None


def cached_folder(entry: PretrainedModel, *, cache_dir=None) -> Path | None:
    """The model folder of ``entry`` when it is on this machine now (shipped, or fetched with its
    SHA-256), else ``None``."""
    if entry.shipped:
        folder = _shipped_folder(entry)
        return folder if (folder / "config.json").is_file() else None
    folder = model_cache_dir(cache_dir) / entry.name
    source = _read_source(folder)
    if source is not None and source.get("sha256") == entry.sha256 and (folder / "config.json").is_file():
        return folder
    return None


def get_model_folder(name_or_alias: str, *, cache_dir=None, registry=None, log=None) -> Path:
    """The model folder of a registered model: shipped, cached, or fetched now.

    Parameters
    ----------
    name_or_alias : str
    cache_dir : path, optional
        Model cache (see :func:`model_cache_dir`).
    registry : mapping, optional
        Default :data:`REGISTRY`.
    log : callable, optional
        Called with one line before a download (default: print it on stderr).

    Raises
    ------
    InputError
        Unknown name.
    ModelFolderError
        A shipped folder missing from this installation; a download that fails, whose
        SHA-256 differs from the registered one, or whose zip is corrupt or holds no model
        folder (nothing is left in the cache then).
    """
    entry = get_model_details(name_or_alias, registry=registry)
    if entry.shipped:
        folder = _shipped_folder(entry)
        if not (folder / "config.json").is_file():
            raise ModelFolderError(
                f"pretrained model {entry.name!r} ships with the package, but its folder {folder} is missing or "
                f"incomplete in this installation (reinstall stardist-hier)")
        return folder
    return _fetch(entry, cache_dir=cache_dir, log=log)


def _fetch(entry: PretrainedModel, *, cache_dir=None, log=None) -> Path:
    """Download, check, extract and rename into place (see the module docstring)."""
    folder = cached_folder(entry, cache_dir=cache_dir)
    if folder is not None:
        return folder
    cache = model_cache_dir(cache_dir)
    target = cache / entry.name
    what = f"pretrained model {entry.name!r}"
    created = not cache.exists()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{entry.name}.{os.getpid()}.", suffix=".zip.tmp", dir=cache)
    except OSError as e:
        raise ModelFolderError(f"{what}: cannot write into the model cache {cache} ({e.strerror or e}); "
                               f"set {CACHE_ENV} to a writable folder") from None
    (log or (lambda s: print(s, file=sys.stderr)))(f"downloading {what} from {entry.url} into {cache}")
    archive = Path(name)
    tmp = None
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            digest = _download(entry.url, fh, what=what)
        if digest != entry.sha256:
            raise ModelFolderError(f"{what}: the file downloaded from {entry.url} has SHA-256 {digest}, not the "
                                   f"registered {entry.sha256}; refused (nothing kept)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.{os.getpid()}.", suffix=".tmp", dir=cache))
        model = _extract(archive, tmp, what=f"{what} ({entry.url})")
        (model / SOURCE_FILE).write_text(json.dumps({"name": entry.name, "url": entry.url, "sha256": entry.sha256},
                                                    indent=2), encoding="utf-8")
        _move_into_place(model, target, entry)
        done = True
        return target
    finally:
        with contextlib.suppress(FileNotFoundError):
            archive.unlink()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if created and not done:
            with contextlib.suppress(OSError):
                cache.rmdir()  # the cache folder made for this download, left empty


def _download(url: str, fh, *, what: str) -> str:
    """Copy ``url`` into the open file ``fh``; return the SHA-256 of what was read."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - the registry's https:// or file:// URL
            while True:
                chunk = r.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                fh.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ModelFolderError(f"{what}: cannot download {url} ({reason}); without network access, download it "
                               f"elsewhere and unpack it, or use a model folder") from None
    return h.hexdigest()


def _extract(archive: Path, into: Path, *, what: str) -> Path:
    """Extract the zip safely into ``into``; return the model folder inside it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                p = PurePosixPath(info.filename.replace("\\", "/"))
                mode = (info.external_attr >> 16) & 0o170000
                if p.is_absolute() or ".." in p.parts or ":" in info.filename or mode == 0o120000:
                    raise ModelFolderError(f"{what}: the zip holds an unsafe entry {info.filename!r}; refused")
            zf.extractall(into)
    except ModelFolderError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
        raise ModelFolderError(f"{what}: the zip is truncated or corrupt ({' '.join(str(e).split())}); "
                               f"refused (nothing kept)") from None
    candidates = [into] + [d for d in sorted(into.iterdir())
                           if d.is_dir() and not d.name.startswith((".", "__MACOSX"))]
    found = [d for d in candidates if (d / "config.json").is_file()]
    if len(found) != 1 or (found[0] != into and len(candidates) != 2):
        raise ModelFolderError(f"{what}: the zip holds no model folder (config.json at its top or inside its one "
                               f"folder); refused (nothing kept)")
    model = found[0]
    try:
        json.loads((model / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{what}: config.json in the zip is not valid JSON ({e}); refused") from None
    if not any(model.glob("*.h5")):
        raise ModelFolderError(f"{what}: the zip's model folder has no weights file (*.h5); refused")
    return model


def _move_into_place(model: Path, target: Path, entry: PretrainedModel) -> None:
    """Rename the complete folder ``model`` to ``target``; an older folder there is swapped out."""
    try:
        os.rename(model, target)
        return
    except OSError:
        if not target.exists():
            raise
    if cached_folder(entry, cache_dir=target.parent) == target:
        return  # another process fetched the same model meanwhile
    old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.{os.getpid()}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)  # a stale copy (other SHA-256, or incomplete)
    os.rename(model, target)
    shutil.rmtree(old, ignore_errors=True)


def get_model_instance(cls, name_or_alias: str, *, cache_dir=None, registry=None):
    """The registered model loaded as ``cls`` (e.g. :class:`~stardist_hier.StarDist2DHier`), read-only.

    Like CSBDeep's, the loaded model has ``basedir=None``: training or threshold
    optimisation never write into the shipped or cached folder.
    """
    folder = get_model_folder(name_or_alias, cache_dir=cache_dir, registry=registry)
    model = cls(None, name=folder.name, basedir=str(folder.parent))
    model.basedir = None
    return model


def resolve_model(value, *, cache_dir=None, registry=None, what: str = "--model") -> Path:
    """A model folder from a folder path or a registered name (a folder that exists wins).

    A value that is no registered name and is a file, or looks like a path (holds a path
    separator, or starts with ``.`` or ``~``), is returned as it is, for the model loader
    to report.

    Raises
    ------
    InputError
        A value that looks like a name but is neither a folder nor a registered model
        (one line, with the closest registered name).
    ModelFolderError
        As :func:`get_model_folder`.
    """
    text = str(value)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if _lookup(text, registry) is not None:
        return get_model_folder(text, cache_dir=cache_dir, registry=registry)
    if path.exists() or "/" in text or os.sep in text or text.startswith((".", "~")):
        return path
    reg = _registry(registry)
    names = [n for e in reg.values() for n in (e.name, *e.aliases)]
    raise InputError(f"{what} {text}: no such model folder, nor a registered model{did_you_mean(text, names)} "
                     f"(registered: {', '.join(reg) or 'none'}; see: stardist-hier models list)")


def model_card(name_or_alias: str, *, cache_dir=None, registry=None) -> str | None:
    """The model card (``README.md``, else ``model_card.json``) of a model on this machine, else ``None``."""
    entry = get_model_details(name_or_alias, registry=registry)
    folder = cached_folder(entry, cache_dir=cache_dir)
    if folder is None:
        return None
    for f in ("README.md", "model_card.json"):
        if (folder / f).is_file():
            return (folder / f).read_text(encoding="utf-8")
    return None


def list_models(*, cache_dir=None, registry=None) -> list:
    """One dict per registered model: its entry's fields, ``source`` and ``status`` (``installed``,
    ``downloaded``, ``download on first use``, ``missing from this installation``) and ``path``."""
    rows = []
    for e in _registry(registry).values():
        folder = cached_folder(e, cache_dir=cache_dir)
        if e.shipped:
            status = "installed" if folder is not None else "missing from this installation"
        else:
            status = "downloaded" if folder is not None else "download on first use"
        rows.append({"name": e.name, "aliases": list(e.aliases), "description": e.description, "license": e.license,
                     "mpp": e.mpp, "source": e.source, "sha256": e.sha256, "docs": e.docs, "status": status,
                     "path": None if folder is None else str(folder)})
    return rows


def describe_models(*, cache_dir=None, registry=None) -> str:
    """The listing printed by ``from_pretrained()`` and ``stardist-hier models list``."""
    rows = list_models(cache_dir=cache_dir, registry=registry)
    n = len(rows)
    lines = [f"{n} registered pretrained model{'' if n == 1 else 's'} for StarDist2DHier{':' if n else ''}"]
    for r in rows:
        aliases = f"  (aliases: {', '.join(repr(a) for a in r['aliases'])})" if r["aliases"] else ""
        mpp = f", {r['mpp']:g} µm/px" if r["mpp"] else ""
        lines.append(f"  {r['name']}{aliases}")
        lines.append(f"      {r['description']}")
        where = "shipped with the package" if r["source"] == "shipped" else r["source"]
        lines.append(f"      licence {r['license']}{mpp}; {where}; {r['status']}")
    return "\n".join(lines)
