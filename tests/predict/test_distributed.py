"""``stardist-hier predict --workers N / --scheduler ADDRESS``: many slides on dask.distributed.

Three small pyramidal TIFF slides, one truncated: two complete output sets, one failure
reported with its path, nothing partial; ``--resume`` does no work; the tables equal
those of the serial runner.
"""

import sys

import pytest

from stardist_hier.cli import main
from stardist_hier.errors import InputError, RunFolderError
from stardist_hier.slides import SyntheticSlide, write_pyramid_tiff

# a low probability threshold so that the tiny model (trained for seconds, not always as well) finds nuclei
BLOCK = dict(block_size=160, min_overlap=32, context=24, prob_thresh=0.3)
BLOCK_ARGS = ["--block-size", "160", "--min-overlap", "32", "--context", "24", "--prob-thresh", "0.3", "--quiet"]


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slides")
    for i in range(2):
        synth = SyntheticSlide((448, 384), seed=3 + i, cell=48, radius=(8, 13), tissue=lambda r, c: c < 300)
        write_pyramid_tiff(folder / f"wsi{i}.tif", synth, mpp=0.25, downsamples=(1, 4), tile=128)
    data = (folder / "wsi0.tif").read_bytes()
    (folder / "broken.tif").write_bytes(data[: len(data) // 3])  # opens, pixels unreadable
    return folder


def _snapshot(folder):
    # the output folder's lock file is opened by every run that predicts (its empty file stays)
    return sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir() if p.name != ".lock")


def _rows(path):
    lines = path.read_bytes().splitlines()
    return lines[0], sorted(lines[1:])


# ------------------------------------------------------------------ no cluster needed
def test_missing_extra_names_the_pip_command(monkeypatch, tmp_path, capsys):
    from stardist_hier.predict.distributed import predict_distributed

    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(InputError, match=r"pip install 'stardist-hier\[distributed\]'"):
        predict_distributed([tmp_path], model=tmp_path, out=tmp_path / "out", workers=2)
    rc = main(["predict", str(tmp_path), "--model", str(tmp_path), "--out", str(tmp_path / "out"), "--workers", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "stardist-hier[distributed]" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, match, error", [
    (dict(workers=0), "--workers 0", InputError),
    (dict(workers=2, scheduler="tcp://127.0.0.1:8786"), "exactly one", InputError),
    (dict(), "exactly one", InputError),
    (dict(workers=2, formats=["csv", "nope"]), "formats nope", InputError),
    (dict(workers=2, out_is_file=True), "is a file", RunFolderError),
    (dict(workers=2, abstain=1.5), "abstain", InputError),
    (dict(workers=2, model_missing=True), "--model", Exception),
])
def test_bad_arguments_fail_before_any_cluster_or_write(kwargs, match, error, slides, tmp_path):
    from stardist_hier.predict.distributed import predict_distributed

    kwargs = dict(kwargs)
    out = tmp_path / "out"
    if kwargs.pop("out_is_file", False):
        out = tmp_path / "out.txt"
        out.write_text("a file")
    model = tmp_path / ("no_model" if kwargs.pop("model_missing", False) else "model")
    with pytest.raises(error, match=match):
        predict_distributed([slides], model=model, out=out, **kwargs)
    assert not (tmp_path / "out").exists()


def test_command_bad_workers_exit_2(slides, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # refused by the argument parser
        main(["predict", str(slides), "--model", str(tmp_path), "--out", str(tmp_path / "out"), "--workers", "0"])
    rc = e.value.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--workers" in err[0] and "'0'" in err[0]


# ------------------------------------------------------------------ on a cluster (trains the tiny model)
@pytest.fixture(scope="module")
def cluster():
    """A 2-worker LocalCluster the test keeps (for --scheduler ADDRESS): 127.0.0.1, no dashboard."""
    distributed = pytest.importorskip("distributed")
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 dashboard_address=None, silence_logs=40)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.slow
def test_three_slides_one_corrupt_then_resume(tiny_model_dir, slides, cluster, tmp_path, capsys):
    from dask.system import CPU_COUNT

    from stardist_hier.predict.distributed import predict_distributed
    from stardist_hier.predict.runner import predict_to_folder

    out = tmp_path / "out"
    logs = []
    s = predict_distributed([slides], model=tiny_model_dir, out=out, workers=2, formats=["csv", "geojson"],
                            log=logs.append, **BLOCK)
    assert (s.n_inputs, s.n_predicted, s.n_skipped, s.n_failed) == (3, 2, 0, 1)
    assert s.n_workers == 2 and "dashboard" in logs[0]
    [bad] = s.failures
    assert bad.path == slides / "broken.tif" and "broken.tif" in bad.error
    table = s.table()
    assert str(slides / "broken.tif") in table and "failed" in table
    done = [r for r in s.results if r.status == "done"]
    assert sum(r.n_nuclei for r in done) > 0, table
    # each worker process loaded the model once (its plugin), TensorFlow limited to its share of cores
    assert all(r.model_loads == 1 for r in s.results)
    assert all(r.tf_threads == max(1, CPU_COUNT // 2) for r in s.results)
    # two complete output sets, nothing of the broken slide, no temporary file
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "wsi0.csv", "wsi0.geojson", "wsi1.csv", "wsi1.geojson"]
    assert (out / ".stardist-hier-predict.json").is_file()  # the options the outputs were made with
    assert sorted(s.outputs) == sorted(out / n for n in ["wsi0.csv", "wsi0.geojson", "wsi1.csv", "wsi1.geojson"])

    # rerun with resume on an existing cluster (--scheduler): no work on the complete slides
    before = _snapshot(out)
    s2 = predict_distributed([slides], model=tiny_model_dir, out=out, scheduler=cluster.scheduler_address,
                             formats=["csv", "geojson"], resume=True, **BLOCK)
    assert (s2.n_predicted, s2.n_skipped, s2.n_failed) == (0, 2, 1)
    assert s2.failures[0].path == slides / "broken.tif"
    assert _snapshot(out) == before

    # the command: per-input table, exit code 1 when some input failed
    capsys.readouterr()
    rc = main(["predict", str(slides), "--model", str(tiny_model_dir), "--out", str(out), "--format", "csv",
               "geojson", "--scheduler", cluster.scheduler_address, "--resume", *BLOCK_ARGS])
    printed = capsys.readouterr().out
    assert rc == 1
    assert str(slides / "broken.tif") in printed and "1 FAILED" in printed and "2 already complete" in printed
    assert _snapshot(out) == before

    # the same slides without Dask: the same tables (row order aside)
    serial = tmp_path / "serial"
    predict_to_folder([slides / "wsi0.tif", slides / "wsi1.tif"], model=tiny_model_dir, out=serial,
                      formats=["csv"], **BLOCK)
    for name in ("wsi0.csv", "wsi1.csv"):
        assert _rows(out / name) == _rows(serial / name)
