import subprocess
import sys

import stardist_hier.metrics as metrics


def test_metrics_and_evaluate_command_import_without_heavy_modules():
    code = ("import sys, stardist_hier.metrics, stardist_hier.commands.evaluate; "
            "print(sorted(m for m in ('tensorflow', 'stardist', 'matplotlib', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_curated_namespace():
    assert all(hasattr(metrics, name) for name in metrics.__all__)
    assert {"pq_hovernet", "pq_conic", "pq_pannuke", "pq_stardist", "evaluate_cut", "evaluate_levels",
            "detection_f1", "aji", "aji_plus"} <= set(metrics.__all__)
    assert "np" not in metrics.__all__
