"""Packaging: metadata, one TensorFlow build per environment, the shipped examples, and the
wheel installed outside the repository running ``stardist-hier demo --quick``.

The fast checks read ``setup.cfg``. The ``packaging``-marked ones build the sdist and the
wheel once per session (``python -m build``, which fetches setuptools into an isolated
environment), resolve installs with ``pip install --dry-run --report`` and install the
wheel into a fresh virtual environment; they need the package index (skipped with a
reason when pip cannot reach one) and take one to a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TF_BUILDS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
             "tf-nightly", "tf-nightly-cpu", "tf-nightly-gpu", "tensorflow-rocm"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _setup_cfg():
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "setup.cfg")
    return cfg


def _lines(value: str):
    return [ln.strip() for ln in value.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def _requirements():
    """{"install": [Requirement], extra: [Requirement]} from setup.cfg."""
    from packaging.requirements import Requirement

    cfg = _setup_cfg()
    out = {"install": [Requirement(r) for r in _lines(cfg["options"]["install_requires"])]}
    for extra, value in cfg["options.extras_require"].items():
        out[extra] = [Requirement(r) for r in _lines(value)]
    return out


# -- metadata (no network) ---------------------------------------------------------------------

def test_metadata_is_complete_and_consistent():
    from packaging.specifiers import SpecifierSet

    meta, opts = _setup_cfg()["metadata"], _setup_cfg()["options"]
    assert meta["author"] == "stardist-hier developers"
    assert meta["license"] == "BSD-3-Clause"
    license_text = (REPO / "LICENSE").read_text()
    assert "BSD 3-Clause License" in license_text and "stardist-hier developers" in license_text
    urls = dict(ln.split("=", 1) for ln in _lines(meta["project_urls"]))
    urls = {k.strip(): v.strip() for k, v in urls.items()}
    assert {"Source", "Issues", "Documentation"} <= set(urls)
    for url in urls.values():
        assert url.startswith("https://github.com/stardist-hier/stardist-hier"), url
    classifiers = _lines(meta["classifiers"])
    assert "Intended Audience :: Science/Research" in classifiers
    assert any(c.startswith("Operating System ::") for c in classifiers)
    # PEP 639: the licence is the SPDX expression; PyPI rejects uploads that also carry License :: classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]
    versions = sorted(c.rsplit(" ", 1)[-1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert versions == ["3.11"]  # only what CI tests (issue 17)
    spec = SpecifierSet(opts["python_requires"])
    assert all(spec.contains(v) for v in versions)  # every advertised version is allowed ...
    assert not spec.contains("3.10") and not spec.contains("3.12")  # ... and only those
    assert spec.contains(f"{sys.version_info.major}.{sys.version_info.minor}")


def test_package_data_folders_are_packages_in_the_configuration():
    cfg = _setup_cfg()
    assert cfg["options"]["packages"].strip() == "find_namespace:"
    package_data = dict(cfg["options.package_data"])
    assert "stardist_hier.data" in package_data and "stardist_hier.examples" in package_data
    manifest = (REPO / "MANIFEST.in").read_text()
    assert re.search(r"^prune tests$", manifest, re.M), "the sdist must not hold tests without their conftest"


def test_shipped_pretrained_models_are_package_data_and_tracked_by_git():
    """The index and the model folders under stardist_hier/pretrained/ reach the sdist and the wheel,
    and git does not ignore their weights (``*.h5`` is ignored elsewhere)."""
    patterns = {p.strip() for p in _setup_cfg()["options.package_data"]["stardist_hier.pretrained"].split(",")}
    assert {"*.yaml", "*/*.h5", "*/*.json", "*/*.md", "*/*.png"} <= patterns
    manifest = (REPO / "MANIFEST.in").read_text()
    assert re.search(r"^recursive-include stardist_hier/pretrained .*\*\.h5", manifest, re.M)
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    r = _run(["git", "check-ignore", "-q", "stardist_hier/pretrained/he_consep_nucls/weights_best.h5"], cwd=REPO)
    assert r.returncode == 1, "git ignores the shipped model's weights (add a !-exception to .gitignore)"
    r = _run(["git", "check-ignore", "-q", "runs/x/model/weights_best.h5"], cwd=REPO)
    assert r.returncode == 0, "weights of runs must stay ignored"


def _shipped_model_files() -> set:
    """Package-relative paths of the files of every model folder shipped in this checkout."""
    root = REPO / "stardist_hier" / "pretrained"
    return {str(f.relative_to(REPO)) for f in root.glob("*/*")
            if f.is_file() and f.suffix in (".h5", ".json", ".md", ".png")}


def test_one_tensorflow_distribution_declared():
    """Every TensorFlow requirement names `tensorflow`, with the same versions in the default install and [gpu]."""
    reqs = _requirements()
    tf = {where: [r for r in rs if _norm(r.name) in TF_BUILDS] for where, rs in reqs.items()}
    names = {_norm(r.name) for rs in tf.values() for r in rs}
    assert names == {"tensorflow"}, f"TensorFlow builds declared: {names} ({tf})"
    assert len(tf["install"]) == 1 and tf["install"][0].marker is None
    assert len(tf["gpu"]) == 1 and tf["gpu"][0].extras == {"and-cuda"}
    assert tf["gpu"][0].specifier == tf["install"][0].specifier
    assert not [where for where, rs in tf.items() if where not in ("install", "gpu") and rs]


def test_this_environment_has_one_tensorflow_build():
    """`tensorflow` and `tensorflow-cpu` write the same files: having both installed is an accident."""
    from importlib import metadata

    found = sorted({_norm(d.metadata["Name"]) for d in metadata.distributions()
                    if d.metadata["Name"] and _norm(d.metadata["Name"]) in TF_BUILDS})
    assert len(found) <= 1, (
        f"several TensorFlow builds installed: {found}; repair with: pip uninstall -y {' '.join(found)} "
        f"&& pip install -e '.[test]'")


# -- the shipped example configs (no network, no TensorFlow) --------------------------------------

def test_examples_are_listed_printed_and_valid(tmp_path):
    import yaml

    from stardist_hier.errors import InputError
    from stardist_hier.examples import example_summary, example_text, list_examples
    from stardist_hier.training.experiment.config import load_config

    names = list_examples()
    assert "two_datasets" in names
    text = example_text("two_datasets")
    assert example_text("two_datasets.yaml") == text
    assert "stardist-hier experiment --example two_datasets" in text
    assert example_summary("two_datasets").startswith("Pre-train on a PanNuke-like")
    # the repository's examples/two_datasets.yaml is the same config
    assert yaml.safe_load(text) == yaml.safe_load((REPO / "examples" / "two_datasets.yaml").read_text())
    from stardist_hier.training.experiment.study import load_study

    import stardist_hier.examples as shipped

    for name in names:
        path = tmp_path / f"{name}.yaml"
        path.write_text(example_text(name))
        if "source: registry" in path.read_text():
            # real data: paths are relative to the shipped file (the repository's ../shared/data)
            path = Path(shipped.__file__).parent / f"{name}.yaml"
            if not (REPO.parent / "shared" / "data").is_dir():
                continue  # its paths cannot resolve without the real data; the others still load
        if "rows" in yaml.safe_load(path.read_text()):  # a study (rows of experiments over seeds)
            load_study(path)  # validates every row's experiment config
        else:
            load_config(path)  # raises ConfigError naming the entry if an example went stale
    with pytest.raises(InputError, match=r"unknown example 'two_dataset' \(did you mean 'two_datasets'\?\)"):
        example_text("two_dataset")
    with pytest.raises(InputError, match="known examples: .*two_datasets"):
        example_text("nothing-like-it")


# -- build, resolve, install (package index needed) ---------------------------------------------

def _run(cmd, *, cwd=None, env=None, timeout=900):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def index_reachable():
    r = _run([sys.executable, "-m", "pip", "index", "versions", "tensorflow"], timeout=120)
    if r.returncode != 0 or "Available versions" not in r.stdout:
        pytest.skip(f"pip cannot reach a package index: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")


@pytest.fixture(scope="session")
def dist(tmp_path_factory, index_reachable):
    """sdist and wheel built once per session: (sdist, wheel, build log)."""
    pytest.importorskip("build", reason="`build` is in the [test] extra")
    out = tmp_path_factory.mktemp("dist")
    r = _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, REPO], cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (sdist,), (wheel,) = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return sdist, wheel, r.stdout + r.stderr


@pytest.mark.packaging
def test_sdist_and_wheel_build_cleanly_and_pass_twine(dist):
    pytest.importorskip("twine", reason="`twine` is in the [test] extra")
    sdist, wheel, log = dist
    assert "is absent from the `packages` configuration" not in log
    assert "License classifiers are deprecated" not in log
    r = _run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel])
    assert r.returncode == 0, r.stdout + r.stderr

    with tarfile.open(sdist) as tf:
        snames = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "setup.cfg", "stardist_hier/data/default_taxonomy.yaml",
            "stardist_hier/examples/two_datasets.yaml", "stardist_hier/examples/__init__.py"} <= snames
    assert not [n for n in snames if n.startswith("tests/")], "tests without their conftest in the sdist"
    shipped = _shipped_model_files() | {"stardist_hier/pretrained/index.yaml"}
    assert shipped <= snames, f"shipped model files missing from the sdist: {sorted(shipped - snames)}"

    with zipfile.ZipFile(wheel) as zf:
        wnames = set(zf.namelist())
        metadata_text = zf.read(next(n for n in wnames if n.endswith(".dist-info/METADATA"))).decode()
    assert {"stardist_hier/data/default_taxonomy.yaml", "stardist_hier/examples/two_datasets.yaml",
            "stardist_hier/console.py"} <= wnames
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in wnames)
    assert not [n for n in wnames if n.startswith("tests/") or "__pycache__" in n]
    assert shipped <= wnames, f"shipped model files missing from the wheel: {sorted(shipped - wnames)}"
    assert "Requires-Python: <3.12,>=3.11" in metadata_text or "Requires-Python: >=3.11,<3.12" in metadata_text
    assert "Project-URL: Source, https://github.com/stardist-hier/stardist-hier" in metadata_text


def _resolve(wheel: Path, extras: str, report: Path):
    """Names of the distributions ``pip install WHEEL[extras]`` would install into an empty environment."""
    r = _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
              "--report", report, f"{wheel}{extras}"], timeout=900)
    assert r.returncode == 0, f"pip could not resolve {extras or 'the default install'}:\n{r.stderr[-3000:]}"
    return {_norm(item["metadata"]["name"]) for item in json.loads(report.read_text())["install"]}


# The default install (README's first command) and [gpu,test] in one resolution: [test] is the
# CI's install and holds [slides] and [distributed]; resolving each extra separately takes
# 30-100 s each on the project's machine.
@pytest.mark.packaging
@pytest.mark.parametrize("extras", ["", "[gpu,test]"], ids=["default", "gpu+test"])
def test_resolved_install_has_exactly_one_tensorflow(dist, extras, tmp_path):
    _, wheel, _ = dist
    names = _resolve(wheel, extras, tmp_path / "report.json")
    assert names & TF_BUILDS == {"tensorflow"}, f"TensorFlow builds resolved for {extras or 'default'}: {names & TF_BUILDS}"
    assert "tensorboard" in names  # the experiment's TensorBoard logs need it (TF >= 2.20 does not bring it)
    if "gpu" in extras:
        assert any(n.startswith("nvidia-cudnn") for n in names), "tensorflow[and-cuda] did not bring CUDA libraries"
    if "test" in extras:
        assert {"build", "twine", "pytest", "dask", "openslide-python"} <= names


@pytest.fixture(scope="session")
def fresh_env(dist, tmp_path_factory):
    """A new virtual environment outside the repository with only the wheel installed in it.

    Its dependencies are this environment's site-packages, added by a ``.pth`` line (a plain
    path, so that the editable install of the checkout, itself a ``.pth`` there, is not).
    """
    _, wheel, _ = dist
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz_deps_from_test_env.pth").write_text("\n".join(sorted(ours)) + "\n")
    r = _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "--quiet", wheel])
    assert r.returncode == 0, r.stdout + r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(MPLBACKEND="Agg", PYTHONNOUSERSITE="1")
    work = root / "work"
    work.mkdir()
    return venv, env, work


@pytest.mark.packaging
@pytest.mark.slow
def test_wheel_outside_the_repository_runs_version_and_demo(fresh_env):
    venv, env, work = fresh_env
    exe = venv / "bin" / "stardist-hier"
    from stardist_hier.version import __version__

    r = _run([venv / "bin" / "python", "-c", "import stardist_hier, stardist_hier.examples as e; "
              "print(stardist_hier.__file__); print(e.example_text('two_datasets')[:1])"], cwd=work, env=env)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.splitlines()[0]).resolve().is_relative_to(venv.resolve()), r.stdout  # the wheel, not the checkout

    r = _run([exe, "--version"], cwd=work, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"stardist-hier {__version__}", r.stdout + r.stderr

    # every model folder shipped in this checkout is installed with the wheel (loadable by name, no network)
    r = _run([exe, "models", "list", "--json"], cwd=work, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    for folder in sorted({Path(f).parent.name for f in _shipped_model_files()}):
        row = next((row for row in rows.values() if row["path"] and Path(row["path"]).name == folder), None)
        assert row is not None and row["status"] == "installed", f"{folder}: {rows}"
        assert Path(row["path"]).resolve().is_relative_to(venv.resolve())

    out = work / "demo"
    r = _run([exe, "demo", "--quick", "--out", out], cwd=work, env=env, timeout=900)
    printed = r.stdout + r.stderr
    assert r.returncode == 0, printed[-4000:]
    assert "| row | seeds | PQ | mPQ+ |" in r.stdout  # the study table, printed
    assert (out / "study.md").is_file() and (out / "study.json").is_file()
    for row in ("consep_only", "consep_only_2x", "pannuke_to_consep"):  # the shipped demo.yaml, from the wheel
        assert f"| {row} | 1 |" in r.stdout
        assert (out / row / "seed0" / "results.csv").is_file() and (out / row / "seed0" / "model").is_dir()
    # a console a person can read (output is not a terminal here)
    assert r.stdout.strip().splitlines()[-1].startswith("stardist-hier demo: "), r.stdout[-500:]
    assert f"{out}/" in r.stdout.strip().splitlines()[-1]
    assert "\x1b[" not in printed and "\r" not in printed, "ANSI codes or carriage returns without a terminal"
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "Using default values", "Loading network weights",
                  "Using optimized values", "NMS threshold =", "`shuffle=True` was passed"):
        assert noise not in printed, f"{noise!r} on the console:\n{printed[-3000:]}"
    assert len(printed.splitlines()) <= 25, printed
