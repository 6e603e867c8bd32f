"""The command layer stays thin: a command parses, calls the library and prints.

Every module ``stardist_hier/commands/NAME.py`` (besides ``__init__.py`` and the shared
argparse validators ``_args.py``) is read with :mod:`ast`, not imported, and must keep
these rules:

1. **Imports.** From the standard library only :data:`STDLIB` (``__future__``, ``argparse``,
   ``pathlib``, ``sys``, and ``json``, ``time``, ``functools`` for printing JSON, timing a
   run and binding ``print``); from the command layer only ``._args``; from the library
   (``..module`` or ``stardist_hier.module``) only public names of public modules: no
   module path component and no imported name starting with ``_`` (a private name is a
   library detail the command would re-implement around), and nothing from ``cli`` or
   ``commands`` upwards. NumPy, matplotlib, ``os``, ``json`` parsing of input files... are
   library work: they live in the library.
2. **Definitions.** Module level holds only the docstring, imports, constants (``HELP``,
   ``DESCRIPTION``, choices) and functions; no class. Functions: ``add_arguments``, ``run``
   (at most :data:`MAX_RUN_LINES` lines) and private helpers (``_name``, at most
   :data:`MAX_HELPER_LINES` lines each: an action of a sub-command that calls the library and
   prints, or parsing of one argument). No function is defined inside another (lambdas are
   fine): a nested function is logic that belongs in the library.
3. **No files.** No call named ``open``, ``write_text``, ``write_bytes``, ``mkdir``, ``unlink``,
   ``rmdir``, ``rmtree``, ``savefig``: writing goes through the library (``stardist_hier.io``).
4. **One error policy.** Every ``except`` handler ends by raising (a library error is a
   :class:`~stardist_hier.errors.UserError` that :func:`stardist_hier.cli.main` turns into one
   line and exit code 2); no handler returns an exit code of its own.
5. **Shape.** Every command module is listed in :data:`stardist_hier.commands.COMMANDS` and
   defines ``HELP``, ``add_arguments`` and ``run``.
"""

import ast
from pathlib import Path

import pytest

import stardist_hier
from stardist_hier.commands import COMMANDS

COMMANDS_DIR = Path(stardist_hier.__file__).parent / "commands"
MODULES = sorted(p for p in COMMANDS_DIR.glob("*.py") if p.name not in ("__init__.py", "_args.py"))

STDLIB = {"__future__", "argparse", "pathlib", "sys", "json", "time", "functools"}
COMMAND_LAYER = {"_args"}
FILE_CALLS = {"open", "write_text", "write_bytes", "mkdir", "unlink", "rmdir", "rmtree", "savefig"}
MAX_RUN_LINES = 45
MAX_HELPER_LINES = 25


def _import_problems(node: ast.AST) -> list:
    if isinstance(node, ast.Import):
        out = []
        for a in node.names:
            parts = a.name.split(".")
            if parts[0] == "stardist_hier":
                out += _library_problems(parts[1:], [], f"import {a.name}")
            elif a.name not in STDLIB:
                out.append(f"import {a.name}: not an allowed standard-library module ({', '.join(sorted(STDLIB))})")
        return out
    assert isinstance(node, ast.ImportFrom)
    names = [a.name for a in node.names]
    module = (node.module or "").split(".") if node.module else []
    what = f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}"
    if node.level == 0:
        if module[0] == "stardist_hier":
            return _library_problems(module[1:], names, what)
        return [] if node.module in STDLIB else [f"{what}: not an allowed standard-library module"]
    if node.level == 1:  # the command layer itself
        if module and module[0] in COMMAND_LAYER and len(module) == 1:
            return []
        return [f"{what}: a command imports only ._args from the command layer"]
    if node.level == 2:
        return _library_problems(module, names, what)
    return [f"{what}: relative import beyond the package"]


def _library_problems(module: list, names: list, what: str) -> list:
    out = []
    if module and module[0] in ("cli", "commands"):
        out.append(f"{what}: a command does not import the command line or other commands")
    if any(part.startswith("_") for part in module):
        out.append(f"{what}: private library module")
    private = [n for n in names if n.startswith("_")]
    if private:
        out.append(f"{what}: private library name(s) {', '.join(private)}")
    if "*" in names:
        out.append(f"{what}: star import")
    return out


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def layering_problems(source: str) -> list:
    """Every break of the rules of this module's docstring in ``source`` (a command module), as text."""
    tree = ast.parse(source)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            problems += [f"line {node.lineno}: {p}" for p in _import_problems(node)]
        elif isinstance(node, ast.Call) and _call_name(node) in FILE_CALLS and not (
                _call_name(node) == "open" and isinstance(node.func, ast.Attribute)):  # a reader's open()
            problems.append(f"line {node.lineno}: {_call_name(node)}(): files are written by the library")
        elif isinstance(node, ast.ExceptHandler):
            if not (node.body and isinstance(node.body[-1], ast.Raise)):
                problems.append(f"line {node.lineno}: an except handler that does not raise (the error policy "
                                f"is stardist_hier.cli's: raise a UserError)")
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            problems.append(f"line {node.lineno}: class {node.name}: classes belong in the library")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n_lines = node.end_lineno - node.lineno + 1
            if node.name == "run" and n_lines > MAX_RUN_LINES:
                problems.append(f"line {node.lineno}: run is {n_lines} lines (at most {MAX_RUN_LINES})")
            elif node.name not in ("add_arguments", "run"):
                if not node.name.startswith("_"):
                    problems.append(f"line {node.lineno}: {node.name}: a public function in a command "
                                    f"(library code; only add_arguments, run and private helpers)")
                elif n_lines > MAX_HELPER_LINES:
                    problems.append(f"line {node.lineno}: {node.name} is {n_lines} lines "
                                    f"(a helper has at most {MAX_HELPER_LINES})")
            for inner in ast.walk(node):
                if inner is not node and isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    problems.append(f"line {inner.lineno}: {inner.name} defined inside {node.name}")
        elif not isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.Expr)):
            problems.append(f"line {node.lineno}: {type(node).__name__} at module level")
        elif isinstance(node, ast.Expr) and not (isinstance(node.value, ast.Constant)
                                                 and isinstance(node.value.value, str)):
            problems.append(f"line {node.lineno}: a statement at module level")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_command_module_is_thin(path):
    problems = layering_problems(path.read_text())
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_command_module_has_the_shape_of_a_command(path):
    tree = ast.parse(path.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert {"HELP", "add_arguments", "run"} <= defined
    assert path.stem in COMMANDS


def test_every_listed_command_has_a_module_and_a_test_module():
    assert sorted(COMMANDS) == [p.stem for p in MODULES]
    here = Path(__file__).parent
    missing = [c for c in COMMANDS if not (here / f"test_{c}.py").is_file()]
    assert not missing, f"tests/commands/ has no test module for: {', '.join(missing)}"


@pytest.mark.parametrize("source, problem", [
    ("import numpy as np\n", "import numpy"),
    ("import os\n", "import os"),
    ("from ..metrics.folders import _load\n", "private library name(s) _load"),
    ("from ..models._stardist_compat import x\n", "private library module"),
    ("from .benchmark import study_config\n", "only ._args"),
    ("from ..cli import main\n", "does not import the command line"),
    ("def run(args):\n    try:\n        pass\n    except ValueError:\n        return 2\n", "does not raise"),
    ("def run(args):\n    open('x', 'w')\n", "open(): files are written by the library"),
    ("def run(args):\n    Path('x').write_text('')\n", "write_text()"),
    ("def study_config(name):\n    pass\n", "study_config: a public function"),
    ("def _helper():\n" + "    x = 1\n" * 30, "_helper is 31 lines"),
    ("def run(args):\n    def inner():\n        pass\n", "inner defined inside run"),
    ("class Report:\n    pass\n", "class Report"),
    ("for x in []:\n    pass\n", "For at module level"),
])
def test_the_rules_catch_library_logic(source, problem):
    """The checker itself: each kind of library logic in a command is reported."""
    assert any(problem in p for p in layering_problems(source)), layering_problems(source)


def test_a_thin_command_passes():
    source = ('"""doc"""\nfrom __future__ import annotations\nimport sys\nfrom pathlib import Path\n'
              'HELP = "x"\n\ndef add_arguments(parser):\n    from ._args import positive_int\n\n'
              'def run(args):\n    from ..metrics.folders import evaluate_folders\n'
              '    try:\n        res = evaluate_folders(args.pred, args.gt)\n'
              '    except KeyError as e:\n        raise ValueError(str(e)) from None\n'
              '    print(res.summary, file=sys.stderr)\n    return 0\n')
    assert layering_problems(source) == []
