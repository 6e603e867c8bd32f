"""The package's structure: StarDist/csbdeep/Keras private names only in the compat modules, no import cycle.

Both checks parse the package's source (``ast``); nothing is imported.

Private names: an attribute access ``x._name`` (or ``from stardist... import _name``)
where ``_name`` is one of the private names of StarDist, csbdeep or Keras the package
uses (:data:`THIRD_PARTY_PRIVATE`), or any private attribute of a Keras model
(``<...>.keras_model._name`` other than stardist-hier's own ``_hier_*`` marks), may
appear only in ``models/_stardist_compat.py`` and ``models/_stardist_big_compat.py``.
``models/model2d.py`` subclasses ``StarDist2D``: there ``super()._hook(...)`` (calling
the overridden StarDist hook) and ``self._hook`` for a hook it overrides itself are
allowed, and nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stardist_hier

PACKAGE = Path(stardist_hier.__file__).parent
COMPAT = {"models/_stardist_compat.py", "models/_stardist_big_compat.py"}
SUBCLASS = "models/model2d.py"

#: Private names of StarDist, csbdeep and Keras objects (grown from the package's own uses).
THIRD_PARTY_PRIVATE = frozenset({
    # StarDistBase / StarDist2D
    "_is_multiclass", "_model_prepared", "_set_logdir", "_axes_out", "_axes_tile_overlap", "_axes_div_by",
    "_config_class", "_build", "_tile_overlap", "_normalize_axes", "_predict_setup", "_instances_from_prediction",
    "_find_and_load_weights", "_training_finished", "_compute_receptive_field", "_guess_n_tiles",
    "_predict_generator", "_predict_instances_generator", "_prepare_patch_size", "_axes_to_grid",
    # stardist / csbdeep module-level
    "_grid_divisible", "_tf_version_at_least", "_raise", "_keras_version",
    # Keras
    "_distribute_strategy", "_maybe_symbolic_build", "_compile_config", "_is_compiled", "_tracker",
    "_layers", "_inbound_nodes", "_keras_history", "_functional", "_run_eagerly",
})

THIRD_PARTY_MODULES = ("stardist", "csbdeep", "keras", "tensorflow")


def _files():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path))


def _is_super_call(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _ends_in_keras_model(node) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "keras_model") or \
        (isinstance(node, ast.Name) and node.id == "keras_model")


def private_uses(rel: str, tree) -> list:
    """``(line, text)`` of every StarDist/csbdeep/Keras private name used in one module."""
    found = []
    overrides = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            third = node.attr in THIRD_PARTY_PRIVATE or (_ends_in_keras_model(node.value)
                                                         and not node.attr.startswith("_hier"))
            own_hook = isinstance(node.value, ast.Name) and node.value.id == "self" and node.attr in overrides
            if not third or (rel == SUBCLASS and (_is_super_call(node.value) or own_hook)):
                continue
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in THIRD_PARTY_MODULES:
            found.extend((node.lineno, f"from {node.module} import {a.name}") for a in node.names
                         if a.name.startswith("_"))
    return found


def test_private_names_only_in_the_compat_modules():
    offenders = [f"{rel}:{line}: {text}" for rel, tree in _files() if rel not in COMPAT
                 for line, text in private_uses(rel, tree)]
    assert not offenders, "StarDist/csbdeep/Keras private names outside the compat modules:\n" + "\n".join(offenders)


def test_the_rule_catches_what_it_should():
    src = ("model._is_multiclass()\nm.keras_model._distribute_strategy = None\nself.keras_model._hier_mark = 1\n"
           "from stardist.big import _grid_divisible\nsuper()._build()\nx._private_of_ours\nself._build()\n"
           "def _build(self): pass\n")
    got = {text for _, text in private_uses("predict/runner.py", ast.parse(src))}
    assert got == {"model._is_multiclass", "m.keras_model._distribute_strategy",
                   "from stardist.big import _grid_divisible", "super()._build", "self._build"}
    assert {t for _, t in private_uses(SUBCLASS, ast.parse(src))} == \
        {"model._is_multiclass", "m.keras_model._distribute_strategy", "from stardist.big import _grid_divisible"}


def _module_name(rel: str) -> str:
    parts = ["stardist_hier", *rel[:-3].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict:
    """``{module: {imported stardist_hier modules}}``, every import (also inside functions), relative ones resolved."""
    modules = {_module_name(rel): (rel, tree) for rel, tree in _files()}
    graph = {}
    for name, (rel, tree) in modules.items():
        package = name if rel.endswith("__init__.py") else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # ``from . import x`` may name a submodule
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("stardist_hier"):
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycle(graph: dict) -> list | None:
    """One import cycle as a list of modules, or ``None``."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def _is_package_init_edge(a: str, b: str) -> bool:
    """An edge between a package's ``__init__`` and its own submodule (re-exports), not a design cycle."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle():
    graph = import_graph()
    assert "stardist_hier.models.model2d" in graph["stardist_hier.models.export"]
    pruned = {a: {b for b in bs if not _is_package_init_edge(a, b)} for a, bs in graph.items()}
    cycle = find_cycle(pruned)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
