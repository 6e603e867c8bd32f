"""Example experiment configs shipped inside the package (no TensorFlow).

``stardist-hier experiment --list-examples`` lists them and
``stardist-hier experiment --example NAME > my.yaml`` writes one out to edit::

    from stardist_hier.examples import list_examples, example_text
    list_examples()                 # ['two_datasets']
    text = example_text("two_datasets")

Every ``NAME.yaml`` in this folder is an example; the first comment line is its summary.
"""

from __future__ import annotations

from importlib import resources

from ..errors import InputError, did_you_mean

__all__ = ["list_examples", "example_text", "example_summary"]


def _folder():
    return resources.files(__name__)


def list_examples() -> list[str]:
    """Names of the shipped example configs, sorted."""
    return sorted(p.name[:-len(".yaml")] for p in _folder().iterdir()
                  if p.name.endswith(".yaml") and p.is_file())


def example_text(name: str) -> str:
    """The YAML text of the example config ``name`` (``.yaml`` optional).

    Raises :class:`~stardist_hier.errors.InputError` naming the known examples for an unknown name.
    """
    stem = str(name)
    if stem.endswith(".yaml"):
        stem = stem[:-len(".yaml")]
    names = list_examples()
    if stem not in names:
        raise InputError(f"unknown example {name!r}{did_you_mean(stem, names)}; "
                         f"known examples: {', '.join(names) or '(none)'}")
    return _folder().joinpath(f"{stem}.yaml").read_text(encoding="utf-8")


def example_summary(name: str) -> str:
    """The first comment line of the example ``name`` (without the ``#``), or ``""``."""
    for line in example_text(name).splitlines():
        line = line.strip()
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line:
            break
    return ""
