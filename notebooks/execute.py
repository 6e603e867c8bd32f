"""Re-execute the notebooks with full settings and save them with their outputs (for committing).

    python notebooks/execute.py                      # every notebook, in file-name order
    python notebooks/execute.py 3_prediction.ipynb   # some of them

Each notebook runs top to bottom in a Jupyter kernel of this interpreter, with this folder
as the working directory (so ``3_prediction`` loads the model ``2_training`` saved) and
without ``STARDIST_HIER_NOTEBOOK_SMALL``; the kernel spec is written to a temporary folder,
so the machine's own kernel specs play no part. Before ``2_training`` runs, the model folder
of an earlier run (``models/hier_two_datasets``) is removed, so that StarDist does not warn,
with an absolute path, that it exists; before ``3_prediction`` its ``predictions/`` folder. When saving,
TensorFlow's C++ start-up lines (absl's "All log messages before absl::InitializeLog()" and
the oneDNN notice, and the CUDA stub's "Could not find cuda drivers" on a machine without a GPU,
which ``TF_CPP_MIN_LOG_LEVEL`` does not reach and which carry time stamps
and process ids) are dropped from the outputs, and so is nbclient's per-cell timing metadata.
``tests/test_notebooks.py`` checks the saved notebooks for both.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from ipykernel.kernelspec import install
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
#: Outputs of a notebook (relative to this folder) removed before it runs.
GENERATED = {"2_training.ipynb": "models/hier_two_datasets", "3_prediction.ipynb": "predictions"}
NOISE = re.compile(r"All log messages before absl::InitializeLog\(\)|oneDNN custom operations are on|"
                   r"cudart_stub\.cc.*Could not find cuda drivers")


def clean(nb):
    """Drop TensorFlow's C++ start-up lines and nbclient's timing metadata."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            if out.output_type == "stream":
                out.text = "\n".join(line for line in out.text.split("\n") if not NOISE.search(line))
                if not out.text.strip():
                    continue
            outputs.append(out)
        cell.outputs = outputs
        cell.metadata.pop("execution", None)
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebook files (default: every *.ipynb in this folder)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    args = ap.parse_args(argv)
    # a bare name is looked up in this folder too (``python notebooks/execute.py 3_prediction.ipynb``)
    paths = [(Path(p) if Path(p).is_file() or not (HERE / p).is_file() else HERE / p).resolve()
             for p in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"execute.py: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    os.environ.pop("STARDIST_HIER_NOTEBOOK_SMALL", None)
    os.environ.pop("MPLBACKEND", None)
    with tempfile.TemporaryDirectory() as prefix:
        install(kernel_name="stardist-hier-notebooks", prefix=prefix)  # runs sys.executable
        ksm = KernelSpecManager(kernel_dirs=[str(Path(prefix) / "share" / "jupyter" / "kernels")])
        for path in paths:
            rel = GENERATED.get(path.name)
            if rel and (HERE / rel).exists():
                print(f"removing {rel}/ (output of an earlier run)")
                shutil.rmtree(HERE / rel)
            nb = nbformat.read(path, as_version=4)
            t0 = time.time()
            km = KernelManager(kernel_name="stardist-hier-notebooks", kernel_spec_manager=ksm)
            NotebookClient(nb, km=km, timeout=args.timeout, record_timing=False,
                           resources={"metadata": {"path": str(HERE)}}).execute()
            nbformat.validate(nb)
            nbformat.write(clean(nb), path)
            print(f"{path.name}: {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
