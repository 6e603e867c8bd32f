import subprocess
import sys

import stardist_hier.datasets as ds


def test_no_tensorflow_import():
    code = ("import sys, stardist_hier.datasets, stardist_hier.datasets.registry, "
            "stardist_hier.commands.datasets; "
            "from stardist_hier.datasets import *; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; "
            "assert 'skimage' not in sys.modules and 'scipy.io' not in sys.modules, 'heavy import at import time'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_curated_namespace():
    for name in ds.__all__:
        assert hasattr(ds, name), name
    assert ds.__doc__.splitlines()[0] == "Dataset readers (no TensorFlow)."
