"""Execute every notebook in ``notebooks/`` top to bottom through a real Jupyter kernel.

Each notebook runs with ``nbclient`` in a kernel of *this* interpreter (a kernel spec
pointing at ``sys.executable`` is written to a temporary folder at test time, so the
machine's own kernel specs play no part), with ``STARDIST_HIER_NOTEBOOK_SMALL=1`` (the
notebooks' small settings), in a temporary working directory that is never the
repository. The notebooks of one test session share that directory, in file-name order,
so ``3_prediction`` loads the model that ``2_training`` saved (run alone, it trains its
own). A cell that raises fails the test. New notebooks are picked up automatically.

The committed notebooks are also checked: executed, with outputs, without errors and
without machine-specific paths or TensorFlow's C++ start-up lines (``notebooks/execute.py``
re-executes and saves them that way).
"""

import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
#: Notebooks that must not import TensorFlow.
TF_FREE = {"quickstart.ipynb"}
KERNEL = "stardist-hier-test"
CELL_TIMEOUT = 600  # seconds per cell; the small settings need far less


def _marks(path):
    return [] if path.name in TF_FREE else [pytest.mark.slow]


PARAMS = [pytest.param(p, id=p.name, marks=_marks(p)) for p in NOTEBOOKS]


def test_notebooks_found():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory):
    """A kernel spec running ``sys.executable -m ipykernel_launcher``, in a temporary folder."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, display_name="stardist-hier tests", prefix=str(prefix))
    return [str(prefix / "share" / "jupyter" / "kernels")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The notebooks' working directory, shared by the notebooks of this module."""
    return tmp_path_factory.mktemp("notebooks")


def _probe_cell(check_tf_free: bool):
    src = "import sys\nprint('KERNEL-PROBE', sys.executable, sys.prefix, sep='\\n')"
    if check_tf_free:
        src += "\nassert 'tensorflow' not in sys.modules, 'this notebook must not import TensorFlow'"
    return nbformat.v4.new_code_cell(src)


@pytest.mark.parametrize("path", PARAMS)
def test_notebook_runs(path, kernel_dirs, workdir, monkeypatch):
    monkeypatch.setenv("STARDIST_HIER_NOTEBOOK_SMALL", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the figures
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(_probe_cell(path.name in TF_FREE))
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(workdir)}})
    before = _tree(ROOT / "notebooks")
    t0 = time.time()
    try:
        client.execute()
    except CellExecutionError as e:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # drop the traceback's colour codes
        pytest.fail(f"{path.name}: a cell raised (small settings, working directory {workdir}):\n{text}",
                    pytrace=False)
    print(f"{path.name}: {time.time() - t0:.1f} s with STARDIST_HIER_NOTEBOOK_SMALL=1")

    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    lines = probe.split("KERNEL-PROBE\n", 1)[-1].splitlines()
    assert lines[:2] == [sys.executable, sys.prefix], (
        f"{path.name} ran in {lines[:2]}, not in this interpreter {[sys.executable, sys.prefix]}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: error outputs {[(o.ename, o.evalue) for o in errors]}"
    assert _tree(ROOT / "notebooks") == before, f"{path.name} wrote into the repository's notebooks/ folder"


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_committed_with_outputs(path):
    """Committed notebooks are saved executed top to bottom, with outputs and no machine paths."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code cell"
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: not executed top to bottom in one kernel (execution counts {counts}); "
        "re-run and save it with `python notebooks/execute.py`")
    assert sum(len(c.outputs) for c in code) > 0, f"{path.name} is saved without outputs"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is saved with error outputs"
    text = nbformat.writes(nb)
    machine = ["/tmp/", str(ROOT), "absl::InitializeLog", "oneDNN custom operations"]
    if len(Path.home().parts) > 1:
        machine.append(str(Path.home()) + os.sep)
    for bad in machine:
        assert bad not in text, (f"{path.name}: outputs contain {bad!r} (machine-specific); "
                                 "re-run and save it with `python notebooks/execute.py`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_documents_small_settings(path):
    """The first cell documents the STARDIST_HIER_NOTEBOOK_SMALL switch."""
    nb = nbformat.read(path, as_version=4)
    assert "STARDIST_HIER_NOTEBOOK_SMALL" in "".join(nb.cells[0].source), \
        f"{path.name}: the first cell must document STARDIST_HIER_NOTEBOOK_SMALL"
