"""Run the code cells of the TensorFlow-free notebooks (until notebooks are executed in CI)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = json.loads(path.read_text())
    code = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    code += "\nimport sys\nassert 'tensorflow' not in sys.modules, 'quickstart notebooks must not need TensorFlow'\n"
    script = tmp_path / "nb.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env={"MPLBACKEND": "Agg", "PATH": ""}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "binary PQ" in r.stdout
