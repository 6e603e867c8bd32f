"""Bad input on the command line: one line on stderr naming the file, key or argument, exit code 2,
no traceback, and nothing written (the whole temporary folder is byte-identical before and after).

One case per row of ``ROWS``: ``(id, argv, files, fragments)``. ``argv`` and ``files`` may use
``{d}`` for the case's temporary folder; ``files`` maps a relative path to its content (text,
bytes, or ``None`` for an empty folder). Every fragment must appear in the error line. No row
trains a model: validation fails first.
"""

import copy
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from stardist_hier.cli import main

# a valid tiny experiment config; each experiment row changes one thing
BASE = {
    "name": "tiny", "seed": 0,
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2, "train_learning_rate": 0.001},
    "training": {"steps_per_epoch": 2, "tensorboard": False},
    "datasets": {"C": {"source": "synthetic", "generator": "consep", "n_tiles": 4, "size": 64, "seed": 2,
                       "split": {"train": 2, "val": 1, "test": 1}}},
    "episodes": [{"name": "fine", "datasets": "C", "epochs": 1}],
    "tests": [{"name": "C-test", "dataset": "C"}],
    "evaluation": {"overlays": 1},
}


def cfg(**changes) -> str:
    """BASE as YAML with ``a__b=value`` changes (``value=DROP`` deletes the key)."""
    c = copy.deepcopy(BASE)
    for path, value in changes.items():
        d, keys = c, path.split("__")
        for k in keys[:-1]:
            d = d[int(k)] if isinstance(d, list) else d[k]
        if value is DROP:
            del d[keys[-1]]
        elif isinstance(d, list):
            d[int(keys[-1])] = value
        else:
            d[keys[-1]] = value
    return yaml.safe_dump(c, sort_keys=False)


DROP = object()
EXP = ["experiment", "{d}/cfg.yaml", "--out", "{d}/run"]
TAX_OK = "tree: {nucleus: {a: [a1, a2], b: null}}\nlabel_sets:\n  one: {labels: {A: a, B: b}}\n"


def _npy(arr, **kw) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def _png(arr) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class _Payload:
    """Unpickling this would run ``os.mkdir("marker")`` (in the case's folder: the snapshot would show it)."""

    def __reduce__(self):
        import os

        return os.mkdir, ("marker",)


def _pickled(obj) -> bytes:
    a = np.empty((), dtype=object)
    a[()] = obj
    return _npy(a, allow_pickle=True)


LABELS = _npy(np.array([[0, 1], [1, 0]], np.int32))
PICKLED = _pickled({"inst_map": 1})
CRAFTED = _pickled({"inst_map": _Payload(), "type_map": np.zeros((8, 8), np.int32)})
RGB = _png(np.zeros((8, 8, 3), np.uint8))

ROWS = [
    # ---------------------------------------------------------------- experiment: config values
    ("exp-negative-lr", EXP, {"cfg.yaml": cfg(model__train_learning_rate=-0.001)}, ["train_learning_rate", "-0.001"]),
    ("exp-zero-lr", EXP, {"cfg.yaml": cfg(model__train_learning_rate=0)}, ["train_learning_rate"]),
    ("exp-lr-text", EXP, {"cfg.yaml": cfg(model__train_learning_rate="fast")}, ["train_learning_rate", "fast"]),
    ("exp-negative-seed", EXP, {"cfg.yaml": cfg(seed=-1)}, ["seed", "-1"]),
    ("exp-float-seed", EXP, {"cfg.yaml": cfg(seed=1.5)}, ["seed", "1.5"]),
    ("exp-prob-thresh", EXP, {"cfg.yaml": cfg(evaluation={"prob_thresh": 1.5})}, ["prob_thresh", "1.5"]),
    ("exp-nms-thresh", EXP, {"cfg.yaml": cfg(evaluation={"nms_thresh": 0})}, ["nms_thresh"]),
    ("exp-overlays-negative", EXP, {"cfg.yaml": cfg(evaluation={"overlays": -1})}, ["overlays", "-1"]),
    ("exp-overlays-text", EXP, {"cfg.yaml": cfg(evaluation={"overlays": "two"})}, ["overlays", "two"]),
    ("exp-convention", EXP, {"cfg.yaml": cfg(evaluation={"convention": "coco"})}, ["convention", "coco"]),
    ("exp-patch-stride", EXP, {"cfg.yaml": cfg(model__train_patch_size=[60, 60])}, ["train_patch_size", "stride"]),
    ("exp-batch-zero", EXP, {"cfg.yaml": cfg(model__train_batch_size=0)}, ["train_batch_size"]),
    ("exp-batch-float", EXP, {"cfg.yaml": cfg(model__train_batch_size=2.5)}, ["train_batch_size", "2.5"]),
    ("exp-model-typo", EXP, {"cfg.yaml": cfg(model__n_ray=8)}, ["n_ray", "did you mean 'n_rays'"]),
    ("exp-loss-name", EXP, {"cfg.yaml": cfg(model__train_class_loss={"dise": 1})}, ["train_class_loss", "dise"]),
    ("exp-loss-options", EXP, {"cfg.yaml": cfg(model__train_class_loss_options="x")}, ["train_class_loss_options"]),
    ("exp-top-typo", EXP, {"cfg.yaml": cfg(episode=[])}, ["episode", "did you mean 'episodes'"]),
    ("exp-steps", EXP, {"cfg.yaml": cfg(training__steps_per_epoch=1)}, ["steps_per_epoch"]),
    ("exp-tensorboard", EXP, {"cfg.yaml": cfg(training__tensorboard="yes")}, ["tensorboard", "yes"]),
    ("exp-oversample", EXP, {"cfg.yaml": cfg(training__oversample={"threshold": "x"})}, ["oversample", "threshold"]),
    ("exp-ls-number-target", EXP,
     {"cfg.yaml": cfg(tests=[{"name": "t", "dataset": "C", "label_set": {"labels": {"Tumor": 3}}}])},
     ["test set 't'", "'Tumor'", "3"]),
    ("exp-ls-list-target", EXP,
     {"cfg.yaml": cfg(tests=[{"name": "t", "dataset": "C", "label_set": {"labels": {"Tumor": [["a"]]}}}])},
     ["test set 't'", "'Tumor'"]),
    ("exp-ls-weight-typo", EXP,
     {"cfg.yaml": cfg(tests=[{"name": "t", "dataset": "C",
                              "label_set": {"labels": {"T": "epithelial"}, "weight": {"T": 2}}}])},
     ["'weight'", "did you mean 'weights'"]),
    ("exp-dataset-label-set-list", EXP, {"cfg.yaml": cfg(datasets__C__label_set=["consep"])},
     ["dataset 'C'", "label_set"]),
    # ---------------------------------------------------------------- experiment: files
    ("exp-duplicate-key", EXP, {"cfg.yaml": cfg() + "seed: 1\n"}, ["cfg.yaml", "duplicate key 'seed'"]),
    ("exp-bad-yaml", EXP, {"cfg.yaml": "model: [1, 2\n"}, ["cfg.yaml", "YAML"]),
    ("exp-not-mapping", EXP, {"cfg.yaml": "- 1\n- 2\n"}, ["config", "mapping"]),
    ("exp-missing-config", EXP, {}, ["cfg.yaml", "not found"]),
    ("exp-taxonomy-duplicate", EXP,
     {"cfg.yaml": cfg(taxonomy="tax.yaml"), "tax.yaml": TAX_OK + "tree: {x: [y]}\n"}, ["tax.yaml", "duplicate key"]),
    ("exp-taxonomy-weight-typo", EXP,
     {"cfg.yaml": cfg(taxonomy="tax.yaml"),
      "tax.yaml": TAX_OK + "  two: {labels: {A: a}, weight: {A: 2}}\n"}, ["tax.yaml", "did you mean 'weights'"]),
    ("exp-taxonomy-number-target", EXP,
     {"cfg.yaml": cfg(taxonomy="tax.yaml"), "tax.yaml": TAX_OK + "  two: {labels: {A: 7}}\n"},
     ["tax.yaml", "label 'A'", "7"]),
    ("exp-max-epochs", EXP + ["--max-epochs", "0"], {"cfg.yaml": cfg()}, ["--max-epochs", "0"]),
    ("exp-registry-crafted-labels", EXP + ["-q"],  # -q: no progress bar on stderr
     {"cfg.yaml": cfg(datasets={"N": {"source": "registry", "dataset": "nucls", "path": "n"}},
                      episodes=[{"name": "e", "datasets": "N", "epochs": 1}], tests=[]),
      "n/segmentation/test/images/x.png": RGB, "n/segmentation/test/labels/x.npy": CRAFTED},
     ["dataset 'N'", "{d}/n/segmentation/test/labels/x.npy", "mkdir"]),
    ("exp-registry-options", EXP,
     {"cfg.yaml": cfg(datasets={"N": {"source": "registry", "dataset": "nucls", "path": "n", "options": [1]}},
                      episodes=[{"name": "e", "datasets": "N", "epochs": 1}], tests=[]),
      "n/": None}, ["dataset 'N'", "options"]),
    ("exp-out-is-file", EXP, {"cfg.yaml": cfg(), "run": "not a folder"}, ["run", "is a file"]),
    ("exp-out-not-a-run", EXP, {"cfg.yaml": cfg(), "run/notes.txt": "mine"}, ["run", "holds no run"]),
    # ---------------------------------------------------------------- evaluate
    ("eval-threshold-negative", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o",
                                 "--threshold", "-1"], {}, ["--threshold", "-1"]),
    ("eval-threshold-nan", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o",
                            "--threshold", "nan"], {}, ["--threshold", "nan"]),
    ("eval-radius-negative", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o",
                              "--radius", "-5"], {}, ["--radius", "-5"]),
    ("eval-out-is-file", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o"],
     {"o": "x", "p/a.npy": LABELS, "g/a.npy": LABELS}, ["--out", "not a folder"]),
    ("eval-missing-gt", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o"],
     {"p/a.npy": LABELS}, ["ground-truth folder", "/g"]),
    ("eval-pickled-npy", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o"],
     {"p/a.npy": LABELS, "g/a.npy": PICKLED}, ["{d}/g/a.npy", "pickle"]),
    ("eval-crafted-npy", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o"],
     {"p/a.npy": CRAFTED, "g/a.npy": LABELS}, ["{d}/p/a.npy", "pickle"]),
    # ---------------------------------------------------------------- datasets
    ("datasets-unknown", ["datasets", "info", "nope"], {}, ["'nope'"]),
    ("datasets-verify-missing", ["datasets", "verify", "nucls", "{d}/absent"], {}, ["absent"]),
    ("datasets-verify-limit", ["datasets", "verify", "nucls", "{d}", "--limit", "0"], {}, ["--limit", "0"]),
    ("datasets-taxonomy-missing", ["datasets", "list", "--taxonomy", "{d}/tax.yaml"], {}, ["tax.yaml"]),
    ("datasets-taxonomy-duplicate", ["datasets", "list", "--taxonomy", "{d}/tax.yaml"],
     {"tax.yaml": TAX_OK + "label_sets: {}\n"}, ["tax.yaml", "duplicate key 'label_sets'"]),
    ("datasets-nucls-crafted", ["datasets", "verify", "nucls", "{d}/n"],
     {"n/segmentation/test/images/x.png": RGB, "n/segmentation/test/labels/x.npy": CRAFTED},
     ["{d}/n/segmentation/test/labels/x.npy", "mkdir"]),
    ("datasets-nucls-not-labels", ["datasets", "verify", "nucls", "{d}/n"],
     {"n/segmentation/test/images/x.png": RGB, "n/segmentation/test/labels/x.npy": LABELS},
     ["{d}/n/segmentation/test/labels/x.npy"]),
    # ---------------------------------------------------------------- demo, benchmark
    ("demo-seed-negative", ["demo", "--seed", "-1"], {}, ["--seed", "-1"]),
    ("demo-out-file", ["demo", "--out", "{d}/f"], {"f": "x"}, ["--out", "not a folder"]),
    ("demo-epochs-zero", ["demo", "--epochs", "0"], {}, ["--epochs", "0"]),
    ("demo-steps-text", ["demo", "--steps", "many"], {}, ["--steps", "many"]),
    ("bench-seed-negative", ["benchmark", "--seeds", "0", "-1"], {}, ["--seeds", "-1"]),
    ("bench-out-file", ["benchmark", "--out", "{d}/f"], {"f": "x"}, ["--out", "not a folder"]),
    ("bench-steps-zero", ["benchmark", "--steps", "0"], {}, ["--steps", "0"]),
    ("bench-seeds-repeated", ["benchmark", "--seeds", "1", "1", "--out", "{d}/b"], {}, ["--seeds", "1 1"]),
    ("bench-table", ["benchmark", "--table", "3"], {}, ["--table", "'3'"]),
]

# a few rows also run as a separate process (the real entry point)
SUBPROCESS_ROWS = ("eval-threshold-nan", "datasets-unknown", "datasets-nucls-crafted", "demo-seed-negative",
                   "bench-out-file")


def snapshot(folder) -> dict:
    """``{relative path: sha256 of the bytes}`` of everything under ``folder`` (folders as ``/``)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def _setup(tmp_path, argv, files):
    for rel, content in files.items():
        p = tmp_path / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return [a.replace("{d}", str(tmp_path)) for a in argv]


def _check(rc, err, fragments, tmp_path, before):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("stardist-hier ") and "error:" in lines[0]
    for f in fragments:
        assert f.replace("{d}", str(tmp_path)) in lines[0], (f, lines[0])
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


def test_table_has_enough_rows():
    assert len(ROWS) >= 30
    assert len({r[0] for r in ROWS}) == len(ROWS)
    assert set(SUBPROCESS_ROWS) <= {r[0] for r in ROWS}


@pytest.mark.parametrize("case, argv, files, fragments", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_in_process(case, argv, files, fragments, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a command that wrongly wrote to a default folder would show here
    argv = _setup(tmp_path, argv, files)
    before = snapshot(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    _check(rc, capsys.readouterr().err, fragments, tmp_path, before)


@pytest.mark.parametrize("case", SUBPROCESS_ROWS)
def test_bad_input_subprocess(case, tmp_path):
    _, argv, files, fragments = next(r for r in ROWS if r[0] == case)
    argv = _setup(tmp_path, argv, files)
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", "stardist_hier.cli", *argv], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    _check(r.returncode, r.stderr, fragments, tmp_path, before)
