"""Bad input on the command line: one line on stderr naming the file, key or argument, exit code 2,
no traceback, and nothing written (the whole temporary folder is byte-identical before and after).

One case per row of ``ROWS``: ``(id, argv, files, fragments)``. ``argv`` and ``files`` may use
``{d}`` for the case's temporary folder; ``files`` maps a relative path to its content (text,
bytes, or ``None`` for an empty folder). Every fragment must appear in the error line. No row
trains a model: validation fails first.
"""

import copy
import hashlib
import json
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
# a YAML "billion laughs": nine levels of nine aliases (a few hundred bytes, 9**9 values once expanded)
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
# a taxonomy whose tree is 60 levels deep (within the YAML depth bound, beyond the tree's)
DEEP_TAX = "tree: " + "".join("{n%d: " % i for i in range(60)) + "null" + "}" * 60 + "\n"
# the smallest NuCLS copy the reader opens (its label maps are read first)
NUCLS_MIN = {"n/segmentation/test/images/x.png": RGB, "n/segmentation/test/labels/x.npy": LABELS}
# harmonise rows open NUCLS_MIN; its pixels are never read: every row fails before
HARM = ["harmonise", "--dataset", "nucls", "{d}/n", "--out", "{d}/o"]

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
    # ---------------------------------------------------------------- issue 17: YAML, trees, label sets
    ("exp-yaml-alias-bomb", EXP, {"cfg.yaml": BOMB}, ["cfg.yaml", "aliases"]),
    ("exp-yaml-too-deep", EXP, {"cfg.yaml": "model: " + "[" * 100 + "]" * 100 + "\n"}, ["cfg.yaml", "nested"]),
    ("exp-yaml-huge-value", EXP, {"cfg.yaml": cfg(model__train_learning_rate=list(range(50000)))},
     ["train_learning_rate"]),
    ("exp-taxonomy-alias-bomb", EXP, {"cfg.yaml": cfg(taxonomy="tax.yaml"), "tax.yaml": BOMB}, ["tax.yaml", "aliases"]),
    ("exp-taxonomy-deep-tree", EXP, {"cfg.yaml": cfg(taxonomy="tax.yaml"), "tax.yaml": DEEP_TAX},
     ["tax.yaml", "levels deep"]),
    ("exp-taxonomy-background-label", EXP,
     {"cfg.yaml": cfg(taxonomy="tax.yaml"), "tax.yaml": TAX_OK + "  two: {labels: {Background: a}}\n"},
     ["tax.yaml", "'Background'", "reserved"]),
    ("exp-heads-typo", EXP, {"cfg.yaml": cfg(model__hier_class_heads=["consep", "consepp"])},
     ["hier_class_heads", "'consepp'", "did you mean 'consep'"]),
    ("exp-patch-larger-than-images", EXP, {"cfg.yaml": cfg(model__train_patch_size=[128, 128])},
     ["dataset 'C'", "64 x 64", "train_patch_size"]),
    ("exp-patch-larger-check", EXP + ["--check"], {"cfg.yaml": cfg(model__train_patch_size=[128, 128])},
     ["dataset 'C'", "train_patch_size"]),
    ("exp-epochs-zero", EXP, {"cfg.yaml": cfg(episodes=[{"name": "fine", "datasets": "C", "epochs": 0}])},
     ["episode 'fine'", "0"]),
    ("exp-epochs-negative", EXP, {"cfg.yaml": cfg(episodes=[{"name": "fine", "datasets": "C", "epochs": -3}])},
     ["episode 'fine'", "-3"]),
    ("exp-steps-negative", EXP, {"cfg.yaml": cfg(training__steps_per_epoch=-5)}, ["steps_per_epoch", "-5"]),
    ("datasets-taxonomy-alias-bomb", ["datasets", "list", "--taxonomy", "{d}/tax.yaml"], {"tax.yaml": BOMB},
     ["tax.yaml", "aliases"]),
    ("datasets-taxonomy-deep-tree", ["datasets", "list", "--taxonomy", "{d}/tax.yaml"], {"tax.yaml": DEEP_TAX},
     ["tax.yaml", "levels deep"]),
    ("datasets-nucls-label-map-string-key", ["datasets", "verify", "nucls", "{d}/n"],
     {**NUCLS_MIN, "n/segmentation/label_map.yaml": "'1': Non-Tumor\n2: Tumor\n"},
     ["{d}/n/segmentation/label_map.yaml", "'1'", "not an integer"]),
    ("datasets-nucls-label-map-bool-key", ["datasets", "verify", "nucls", "{d}/n"],
     {**NUCLS_MIN, "n/segmentation/label_map.yaml": "true: Non-Tumor\n2: Tumor\n"},
     ["{d}/n/segmentation/label_map.yaml", "True", "not an integer"]),
    ("datasets-nucls-label-map-float-key", ["datasets", "verify", "nucls", "{d}/n"],
     {**NUCLS_MIN, "n/segmentation/label_map.yaml": "1.7: Non-Tumor\n2: Tumor\n"},
     ["{d}/n/segmentation/label_map.yaml", "1.7", "not an integer"]),
    ("datasets-nucls-label-map-bomb", ["datasets", "verify", "nucls", "{d}/n"],
     {**NUCLS_MIN, "n/segmentation/label_map.yaml": BOMB}, ["{d}/n/segmentation/label_map.yaml", "aliases"]),
    ("exp-out-under-a-file", ["experiment", "{d}/cfg.yaml", "--out", "{d}/f/run"], {"cfg.yaml": cfg(), "f": "x"},
     ["{d}/f/run", "cannot be created"]),
    ("eval-out-under-a-file", ["evaluate", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/f/o"],
     {"f": "x", "p/a.npy": LABELS, "g/a.npy": LABELS}, ["{d}/f"]),
    ("eval-verbose-still-checks", ["evaluate", "-v", "--pred", "{d}/p", "--gt", "{d}/g", "--out", "{d}/o",
                                   "--radius", "-5"], {}, ["--radius", "-5"]),
    # ---------------------------------------------------------------- harmonise
    ("harm-label-set-not-on-tree", HARM + ["--label-sets", "nucls4", "tumour"], NUCLS_MIN,
     ["'tumour'", "not a label set on the class tree"]),
    ("harm-export-not-on-tree", HARM + ["--export", "nucls9"], NUCLS_MIN, ["'nucls9'", "not a label set"]),
    ("harm-model-other-tree", HARM + ["--model", "{d}/m"],
     {**NUCLS_MIN, "m/config.json": '{"hier_tree": {"nucleus": {"a": null, "b": null}}}'}, ["{d}/m", "class tree differs"]),
    ("harm-model-missing", HARM + ["--model", "{d}/m"], NUCLS_MIN, ["{d}/m", "not a model folder"]),
    ("harm-overlap", HARM + ["--dataset", "nucls", "{d}/n", "split=test"], NUCLS_MIN, ["overlap", "nucls/x"]),
    ("harm-out-exists", HARM, {**NUCLS_MIN, "o": None}, ["{d}/o", "exists"]),
    ("harm-dataset-option", ["harmonise", "--dataset", "nucls", "{d}/n", "splits=test", "--out", "{d}/o"], NUCLS_MIN,
     ["--dataset", "'splits=test'"]),
    ("harm-dataset-unknown", ["harmonise", "--dataset", "nuclx", "{d}/n", "--out", "{d}/o"], {}, ["'nuclx'"]),
    ("harm-reader-label-set", ["harmonise", "--dataset", "nucls", "{d}/n", "label_set=pannuke", "--out", "{d}/o"],
     NUCLS_MIN, ["nucls", "'pannuke'"]),
]

# a few rows also run as a separate process (the real entry point)
SUBPROCESS_ROWS = ("eval-threshold-nan", "datasets-unknown", "datasets-nucls-crafted", "demo-seed-negative",
                   "harm-model-other-tree",
                   "bench-out-file", "datasets-taxonomy-alias-bomb")


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
    assert len(lines[0]) <= 2300, len(lines[0])  # never an unbounded value (MAX_MESSAGE and the prefix)
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


# ------------------------------------------------------------------------ rows that need a model folder
class Model:
    """A copy of the untrained tiny model folder at this place of a row's files; ``edit(config)`` may
    change its ``config.json`` (a dict), ``drop`` removes files from the copy."""

    def __init__(self, edit=None, drop=()):
        self.edit, self.drop = edit, drop


def _unknown_key(c):
    c["n_rayz"] = 3


def _no_mpp(c):
    c["hier_mpp"] = None


IMG = _png(np.full((40, 48, 3), 200, np.uint8))
PRED = ["predict", "{d}/in/a.png", "--model", "{d}/m", "--out", "{d}/o", "--quiet"]
RECORD_OTHER = json.dumps({"made_by": "stardist-hier 0", "model_folder": "elsewhere",
                           "options": {"model": "0" * 64, "label_sets": ["pannuke"]}})

MODEL_ROWS = [
    ("pred-prob-thresh", PRED + ["--prob-thresh", "2"], {"in/a.png": IMG, "m": Model()}, ["--prob-thresh", "'2'"]),
    ("pred-nms-thresh", PRED + ["--nms-thresh", "-1"], {"in/a.png": IMG, "m": Model()}, ["--nms-thresh", "'-1'"]),
    ("pred-context", PRED + ["--context", "-8"], {"in/a.png": IMG, "m": Model()}, ["--context", "'-8'"]),
    ("pred-n-tiles", PRED + ["--n-tiles", "0", "0"], {"in/a.png": IMG, "m": Model()}, ["--n-tiles", "'0'"]),
    ("pred-block-size", PRED + ["--block-size", "0"], {"in/a.png": IMG, "m": Model()}, ["--block-size", "'0'"]),
    ("pred-block-size-word", PRED + ["--block-size", "big"], {"in/a.png": IMG, "m": Model()},
     ["--block-size", "'auto'", "'big'"]),
    ("pred-workers-zero", PRED + ["--workers", "0"], {"in/a.png": IMG, "m": Model()}, ["--workers", "'0'"]),
    ("pred-abstain", PRED + ["--abstain", "1.5"], {"in/a.png": IMG, "m": Model()}, ["--abstain", "'1.5'"]),
    ("pred-taxonomy-missing", PRED + ["--label-set", "x", "--taxonomy", "{d}/nope.yaml"],
     {"in/a.png": IMG, "m": Model()}, ["{d}/nope.yaml", "no such file"]),
    ("pred-model-unknown-key", PRED, {"in/a.png": IMG, "m": Model(_unknown_key)},
     ["{d}/m/config.json", "'n_rayz'", "did you mean 'n_rays'"]),
    ("pred-model-config-deep", PRED, {"in/a.png": IMG, "m": Model(), "m/config.json": "[" * 100000 + "]" * 100000},
     ["{d}/m/config.json"]),
    ("pred-out-cannot-be-created", ["predict", "{d}/in/a.png", "--model", "{d}/m", "--out", "{d}/" + "x" * 300],
     {"in/a.png": IMG, "m": Model()}, ["--out", "cannot be created"]),
    ("pred-out-under-a-file", ["predict", "{d}/in/a.png", "--model", "{d}/m", "--out", "{d}/f/o"],
     {"in/a.png": IMG, "m": Model(), "f": "a file"}, ["--out", "{d}/f is a file"]),
    ("pred-labels-into-input-folder", ["predict", "{d}/in", "--model", "{d}/m", "--out", "{d}/in", "--format",
                                       "labels"], {"in/a.tif": IMG, "m": Model()}, ["--out", "folder of the input"]),
    ("pred-overlay-onto-input", ["predict", "{d}/in/overlay/a.png", "--model", "{d}/m", "--out", "{d}/in",
                                 "--format", "overlay"], {"in/overlay/a.png": IMG, "m": Model()},
     ["{d}/in/overlay/a.png", "would replace the input"]),
    ("pred-input-dotdot-png", ["predict", "{d}/in/..png", "--model", "{d}/m", "--out", "{d}/o"],
     {"in/..png": IMG, "m": Model()}, ["{d}/in/..png", "no usable output name"]),
    ("pred-out-made-with-other-options", PRED + ["--resume"],
     {"in/a.png": IMG, "m": Model(), "o/.stardist-hier-predict.json": RECORD_OTHER, "o/a.geojson": "{}"},
     ["output folder {d}/o", "other options", "label_sets: ['pannuke'] -> ['leaves']"]),
    ("pred-input-mpp-without-model-mpp", PRED + ["--input-mpp", "0.25"], {"in/a.png": IMG, "m": Model(_no_mpp)},
     ["--input-mpp 0.25", "pixel size is unknown", "--mpp"]),
    ("export-out-is-the-model", ["export", "{d}/m", "--to", "stardist", "--out", "{d}/m", "--force"],
     {"m": Model()}, ["--out {d}/m", "never replaces a model folder"]),
    ("export-out-holds-the-model", ["export", "{d}/models/m", "--to", "stardist", "--out", "{d}/models", "--force"],
     {"models/m": Model()}, ["--out {d}/models", "never replaces a model folder"]),
    ("export-out-other-model", ["export", "{d}/m", "--to", "stardist", "--out", "{d}/m2", "--force"],
     {"m": Model(), "m2": Model()}, ["--out {d}/m2", "holds a stardist-hier model"]),
    ("export-out-not-an-export", ["export", "{d}/m", "--to", "savedmodel", "--out", "{d}/docs", "--force"],
     {"m": Model(), "docs/notes.txt": "mine"}, ["--out {d}/docs", "not an earlier export"]),
    ("export-zip-not-an-export", ["export", "{d}/m", "--to", "qupath", "--out", "{d}/a.zip", "--force"],
     {"m": Model(), "a.zip": b"PK not really"}, ["--out {d}/a.zip", "not an earlier QuPath export"]),
    ("export-out-under-a-file", ["export", "{d}/m", "--to", "stardist", "--out", "{d}/f/e"],
     {"m": Model(), "f": "a file"}, ["--out {d}/f/e", "cannot be created", "{d}/f is a file"]),
    ("export-model-unknown-key", ["export", "{d}/m", "--to", "stardist", "--out", "{d}/e", "-v"],
     {"m": Model(_unknown_key)}, ["{d}/m/config.json", "'n_rayz'"]),
]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """An untrained tiny 3-channel model folder (config.json, weights, hier_weights.json; hier_mpp 0.5)."""
    pytest.importorskip("tensorflow")
    import contextlib
    import io

    from stardist_hier import Config2DHier, StarDist2DHier, default_taxonomy

    base = tmp_path_factory.mktemp("cli_model")
    cfg = Config2DHier(tree=default_taxonomy().tree, n_channel_in=3, n_rays=8, grid=(2, 2), unet_n_depth=1,
                       unet_n_filter_base=4, net_conv_after_unet=8, train_patch_size=(32, 32), hier_mpp=0.5)
    with contextlib.redirect_stdout(io.StringIO()):
        m = StarDist2DHier(cfg, name="m", basedir=str(base))
        m.keras_model.save_weights(str(m.logdir / "weights_best.h5"))
    assert (m.logdir / "hier_weights.json").is_file()
    return m.logdir


def _setup_models(tmp_path, files, model_folder):
    import shutil

    plain = {}
    for rel, content in files.items():
        if isinstance(content, Model):
            dest = tmp_path / rel
            shutil.copytree(model_folder, dest)
            if content.edit is not None:
                c = json.loads((dest / "config.json").read_text())
                content.edit(c)
                (dest / "config.json").write_text(json.dumps(c))
            for name in content.drop:
                (dest / name).unlink()
        else:
            plain[rel] = content
    return plain


@pytest.mark.parametrize("case, argv, files, fragments", MODEL_ROWS, ids=[r[0] for r in MODEL_ROWS])
def test_bad_input_with_a_model_folder(case, argv, files, fragments, tmp_path, capsys, monkeypatch, model_folder):
    monkeypatch.chdir(tmp_path)
    argv = _setup(tmp_path, argv, _setup_models(tmp_path, files, model_folder))
    before = snapshot(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    _check(rc, capsys.readouterr().err, fragments, tmp_path, before)
