"""Studies: rows of experiments over paired seeds, with paired statistics (:func:`run_study`).

A study config (see ``stardist_hier/examples/ablation.yaml``)::

    name: ablation
    base: {...}                     # an experiment config (without seed); or a path to one
    seeds: [0, 1, 2]                # every row runs once per seed
    rows:                           # each row: the base with some entries replaced
      - {name: target_long, set: {episodes: [...]}}
      - {name: marginal, set: {}}
      - {name: renormalised, set: {model: {train_class_loss_options: {...}}}}
    metrics: [pq, mpq]              # reported for every test set (also per-label PQ)
    comparisons:                    # declared before running; at most 3 primary (Holm over those)
      - {a: marginal, b: target_long, metric: mpq, test: consep_like, primary: true}
    bootstrap: {n: 10000, seed: 0}  # n: Monte-Carlo sign vectors above 16 seeds

``set`` is merged into the base recursively (mappings merged key by key; any other value,
lists included, replaced). Every row of a seed runs with that seed as the experiment's
``seed``: the same synthetic data (datasets without their own ``seed``), the same initial
weights (``keras.utils.set_random_seed`` before the model is built; rows share the
architecture) and the same patch-sampling stream, so rows are paired by seed. Datasets
that set their own ``seed`` keep it for every seed of the study (then only weights and
sampling vary).

For every declared comparison ``a`` vs ``b`` the per-seed paired differences
``metric(a) - metric(b)`` are summarised (:mod:`stardist_hier.metrics.paired`) by their mean
and sd, a paired *t* interval, a two-sided sign-flip permutation p-value (exact up to 16
seeds, else Monte Carlo counted as ``(1 + #extreme) / (1 + B)``) and the smallest effect the
design detects with 80% power. At most three comparisons may be marked ``primary: true``;
Holm runs over those only, the rest are exploratory (without any mark, over all). Thresholds are whatever
the base's ``evaluation`` says; ``tune_thresholds`` may only name training datasets'
validation splits (:func:`.config.load_config` refuses the rest).

Run one with ``stardist-hier experiment STUDY.yaml --out OUT`` (a config with ``rows`` and
``base`` is a study: :func:`is_study_config`) or ``stardist-hier benchmark --table
2|4|paper|ablation`` (the shipped ones, as :func:`study_config` adapts them); from Python,
:func:`run_study` also runs a subset (``rows=``, ``seeds=``, e.g. to time one row).

Outputs in ``OUT``: ``ROW/seedS/`` (each experiment's run folder), ``study.json`` (every
value), ``study.md`` (rows as mean ± std and the comparisons table). Rerunning continues:
finished experiments are read back, not rerun.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .config import ConfigError, _mapping, _unknown, load_config
from .record import design_of, format_study, holm_family, summarize_values, write_record

__all__ = ["StudyConfig", "load_study", "run_study", "check_study_folder", "paired_stats", "holm", "format_study",
           "summarize_study", "read_study_values", "record_study", "holm_family",
           "is_study_config", "study_config", "example_name", "mark_smoke_test", "SMOKE_NOTE"]

STUDY_KEYS = {"name", "base", "seeds", "rows", "metrics", "comparisons", "bootstrap", "out", "description", "paper"}
PAPER_KEYS = {"comparison", "metric", "test", "paper", "paper_a", "paper_b"}
METRICS = ("pq", "mpq")
MAX_PRIMARY = 3  # primary comparisons per study (issue 19); Holm runs over these only


@dataclass
class StudyConfig:
    name: str
    base: dict
    seeds: tuple
    rows: tuple  # ((name, set), ...)
    metrics: tuple
    comparisons: tuple  # ({name, a, b, metric, test}, ...)
    bootstrap: dict
    out: str | None
    base_dir: Path
    paper: tuple = ()  # ({comparison, metric, test, paper, paper_a, paper_b}, ...): the paper's figures beside ours

    def experiment(self, row: str, seed: int) -> dict:
        """The experiment config of ``row`` at ``seed`` (a plain mapping)."""
        cfg = merge(self.base, dict(self.rows)[row])
        cfg["seed"] = int(seed)
        cfg["name"] = f"{self.name}-{row}"
        cfg.pop("out", None)
        return cfg


def merge(base, over):
    """``base`` with ``over`` merged in recursively (mappings by key; anything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_study(config, *, base_dir=None) -> StudyConfig:
    """Read and validate a study config; every row's experiment config is validated too."""
    if isinstance(config, (str, Path)):
        from ...io import load_yaml

        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"study config not found: {path}")
        raw = load_yaml(path)
        base_dir = path.parent if base_dir is None else base_dir
    else:
        raw = copy.deepcopy(config)
    base_dir = Path(base_dir or ".")
    raw = _mapping(raw, "study")
    _unknown(raw, STUDY_KEYS, "study")
    name = raw.get("name", "study")
    base = raw.get("base")
    if isinstance(base, str):
        from ...io import load_yaml

        p = Path(base) if Path(base).is_absolute() else base_dir / base
        if not p.is_file():
            raise ConfigError(f"study: base config not found: {p}")
        base = load_yaml(p)
    base = _mapping(base, "study: base")
    if "seed" in base:
        raise ConfigError("study: base: 'seed' is set per run from the study's seeds; remove it")
    seeds = raw.get("seeds")
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                      for s in seeds)) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"study: seeds must be a non-empty list of distinct non-negative integers, got {seeds!r}")
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ConfigError("study: rows must be a non-empty list of {name, set}")
    parsed = []
    for i, r in enumerate(rows):
        r = _mapping(r, f"study: rows[{i}]")
        _unknown(r, {"name", "set", "description"}, f"study: rows[{i}]")
        n = r.get("name")
        if not isinstance(n, str) or not n.strip() or "/" in n:
            raise ConfigError(f"study: rows[{i}]: name must be a non-empty string without '/', got {n!r}")
        if n in dict(parsed):
            raise ConfigError(f"study: two rows are named {n!r}")
        parsed.append((n, _mapping(r.get("set"), f"study: row {n!r}: set")))
    metrics = tuple(raw.get("metrics", list(METRICS)))
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ConfigError(f"study: unknown metrics {bad}; known: {', '.join(METRICS)}")
    boot = _mapping(raw.get("bootstrap"), "study: bootstrap")
    _unknown(boot, {"n", "seed", "level"}, "study: bootstrap")
    boot = {"n": int(boot.get("n", 10000)), "seed": int(boot.get("seed", 0)), "level": float(boot.get("level", 0.95))}
    study = StudyConfig(name=str(name), base=base, seeds=tuple(seeds), rows=tuple(parsed), metrics=metrics,
                        comparisons=(), bootstrap=boot, out=raw.get("out"), base_dir=base_dir)
    tests = {}
    for n, _ in parsed:
        try:
            cfg = load_config(study.experiment(n, seeds[0]), base_dir=base_dir)
        except ConfigError as e:
            raise ConfigError(f"study: row {n!r}: {e}") from None
        tests[n] = [t.name for t in cfg.tests]
        if not tests[n]:
            raise ConfigError(f"study: row {n!r} has no test set")
    comps = []
    for i, c in enumerate(raw.get("comparisons") or []):
        c = _mapping(c, f"study: comparisons[{i}]")
        _unknown(c, {"name", "a", "b", "metric", "test", "primary"}, f"study: comparisons[{i}]")
        if not isinstance(c.get("primary", False), bool):
            raise ConfigError(f"study: comparisons[{i}]: primary must be true or false, got {c.get('primary')!r}")
        for k in ("a", "b"):
            if c.get(k) not in dict(parsed):
                raise ConfigError(f"study: comparisons[{i}]: unknown row {c.get(k)!r}")
        if c.get("metric") not in metrics:
            raise ConfigError(f"study: comparisons[{i}]: metric must be one of {metrics}, got {c.get('metric')!r}")
        t = c.get("test", tests[c["a"]][0])
        for k in ("a", "b"):
            if t not in tests[c[k]]:
                raise ConfigError(f"study: comparisons[{i}]: row {c[k]!r} has no test set {t!r}; "
                                  f"it has {tests[c[k]]}")
        comps.append({"name": str(c.get("name", f"{c['a']} vs {c['b']}")), "a": c["a"], "b": c["b"],
                      "metric": c["metric"], "test": t, "primary": bool(c.get("primary", False))})
    n_primary = sum(c["primary"] for c in comps)
    if n_primary > MAX_PRIMARY:
        raise ConfigError(f"study: comparisons: {n_primary} are primary; declare at most {MAX_PRIMARY} (the rest "
                          "are exploratory)")
    study.comparisons = tuple(comps)
    paper = []
    for i, e in enumerate(raw.get("paper") or []):
        where = f"study: paper[{i}]"
        e = _mapping(e, where)
        _unknown(e, PAPER_KEYS, where)
        if not any(c["name"] == e.get("comparison") and c["metric"] == e.get("metric") and c["test"] == e.get("test")
                   for c in comps):
            raise ConfigError(f"{where}: no declared comparison {e.get('comparison')!r} with metric "
                              f"{e.get('metric')!r} and test {e.get('test')!r}")
        for k in ("paper_a", "paper_b"):
            if isinstance(e.get(k), bool) or not isinstance(e.get(k), (int, float)):
                raise ConfigError(f"{where}: {k} must be a number (the paper's figure), got {e.get(k)!r}")
        paper.append({k: e[k] for k in ("comparison", "metric", "test", "paper_a", "paper_b")}
                     | {"paper": str(e.get("paper", ""))})
    study.paper = tuple(paper)
    return study


# ---------------------------------------------------------------- statistics
def paired_stats(a, b, *, n_boot=10000, seed=0, level=0.95) -> dict:
    """Paired differences ``a - b`` over seeds (:func:`stardist_hier.metrics.paired.paired_summary`).

    Mean and sd of the differences, the paired *t* interval at ``level``, the two-sided
    sign-flip p-value (exact up to 16 seeds, else ``n_boot`` Monte-Carlo sign vectors
    seeded by ``seed``, counted as ``(1 + #extreme) / (1 + n_boot)``), wins/losses, and the
    smallest effect the design detects with 80% power (``mde``).
    """
    from ...metrics.paired import paired_summary

    return paired_summary(a, b, level=level, seed=seed, n_resamples=max(1, int(n_boot)))


def holm(pvalues) -> list:
    """Holm-adjusted p-values (:func:`stardist_hier.metrics.paired.holm`)."""
    from ...metrics.paired import holm as _holm

    return _holm(pvalues)


# ---------------------------------------------------------------- running
def _read_results(run: Path) -> dict:
    """``{test: {pq, mpq, per_label: {label: pq}}}`` of a finished run folder."""
    out = {}
    with open(run / "results.csv", newline="") as f:
        for r in csv.DictReader(f):
            out[r["Test"]] = {"pq": float(r["PQ"]), "mpq": float(r["mPQ+"]), "per_label": {}}
    from .outputs import _safe

    for t in out:
        p = run / "tests" / f"{_safe(t)}.csv"
        if p.is_file():
            with open(p, newline="") as f:
                for r in csv.DictReader(f):
                    if r.get("kind") == "class":
                        out[t]["per_label"][r["label"]] = float(r["pq"])
    return out


def check_study_folder(study: StudyConfig, out, *, rows=None, seeds=None) -> None:
    """Refuse, before anything runs, an ``out`` holding runs of the study made with other settings.

    Finished runs are read back, not rerun: without this check a rerun with changed
    settings into the same folder would report the old results as the new ones.

    Raises
    ------
    RunFolderError
        Naming the first run folder whose stored config differs, and the keys that differ.
    """
    from ...errors import RunFolderError
    from .runfolder import check_run_folder

    out = Path(out)
    for row in (rows if rows is not None else [r for r, _ in study.rows]):
        for seed in (seeds if seeds is not None else study.seeds):
            cfg = load_config(study.experiment(row, seed), base_dir=study.base_dir)
            try:
                check_run_folder(out / row / f"seed{seed}", cfg.raw)
            except RunFolderError as e:
                raise RunFolderError(str(e).split("; it is left untouched")[0]
                                     + "; a study reuses finished runs only with the same settings: rerun with "
                                       "the same config and options, or choose another --out") from None


def run_study(config, out=None, *, rows=None, seeds=None, verbose=1, log=print) -> dict:
    """Run every row at every seed (skipping finished runs), then the paired statistics.

    ``rows``/``seeds`` restrict this call to some of them (e.g. to time one row); the
    statistics are computed over the seeds for which every compared row has finished.
    """
    study = config if isinstance(config, StudyConfig) else load_study(config)
    out = Path(out or study.out or Path("runs") / study.name)
    todo_rows = [r for r, _ in study.rows if rows is None or r in rows]
    todo_seeds = [s for s in study.seeds if seeds is None or s in seeds]
    check_study_folder(study, out, rows=todo_rows, seeds=todo_seeds)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    from .run import run_experiment

    timing = {}
    for seed in todo_seeds:
        for row in todo_rows:
            run = out / row / f"seed{seed}"
            if (run / "results.csv").is_file():
                continue
            t0 = time.time()
            res = run_experiment(load_config(study.experiment(row, seed), base_dir=study.base_dir), run,
                                 verbose=max(0, verbose - 1))
            timing[f"{row}/seed{seed}"] = round(time.time() - t0, 1)
            if not res["finished"]:
                raise RuntimeError(f"study: {row} seed {seed} did not finish")
            if verbose:
                r = _read_results(run)
                log(f"[{row} seed {seed}] " + ", ".join(f"{t}: PQ {v['pq']:.3f} mPQ+ {v['mpq']:.3f}"
                                                        for t, v in r.items()) + f" ({timing[f'{row}/seed{seed}']} s)")
    result = summarize_study(study, out)
    result["timing"] = timing
    from ...io import atomic_write_text

    old = {}
    if (out / "study.json").is_file():
        old = json.loads((out / "study.json").read_text()).get("timing", {})
    result["timing"] = {**old, **timing}
    atomic_write_text(out / "study.json", json.dumps(result, indent=1, default=float))
    atomic_write_text(out / "study.md", format_study(result))
    return result


def read_study_values(study: StudyConfig, out) -> dict:
    """``{row: {seed: {test: {pq, mpq, per_label}}}}`` of the finished runs of ``study`` in ``out``."""
    values = {}
    for row, _ in study.rows:
        for seed in study.seeds:
            run = Path(out) / row / f"seed{seed}"
            if (run / "results.csv").is_file():
                values.setdefault(row, {})[seed] = _read_results(run)
    return values


def record_study(study: StudyConfig, out, folder, *, config_path=None) -> dict:
    """Write the commit-ready record of the finished runs in ``out`` to ``folder``
    (:func:`.record.write_record`); returns the recomputed result."""
    design = design_of(study)
    if config_path is not None:
        design["config"] = str(config_path)
    result = write_record(design, read_study_values(study, out), folder)
    write_episode_table(study, out, Path(folder) / "episodes.csv")
    write_curve_table(study, out, Path(folder) / "curves.csv")
    from ...plotting import save_figure

    save_figure(study_curves_figure(Path(folder) / "curves.csv"), Path(folder) / "curves.png")
    return result


CURVE_COLUMNS = ("row", "seed", "episode", "epoch", "loss", "val_loss")


def write_curve_table(study: StudyConfig, out, path) -> None:
    """``path``: the loss curves of every finished run, one line per run, episode and epoch
    (``epoch`` global and 1-based; ``val_loss`` on the validation split of the episode's own
    datasets, the quantity early stopping watches), from ``history.json``."""
    import io

    from ...io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CURVE_COLUMNS)
    for row, _ in study.rows:
        for seed in study.seeds:
            run = Path(out) / row / f"seed{seed}"
            if not (run / "results.csv").is_file():
                continue
            for e in json.loads((run / "history.json").read_text())["episodes"]:
                val = e.get("val_loss_episode") or []
                for i, loss in enumerate(e.get("loss") or []):
                    v = val[i] if i < len(val) else None
                    w.writerow([row, seed, e["name"], int(e["first_epoch"] or 0) + i + 1, repr(float(loss)),
                                "" if v is None else repr(float(v))])
    atomic_write_text(Path(path), buf.getvalue())


def study_curves_figure(path, *, seed: int | None = None):
    """One panel per row of a committed ``curves.csv`` (:func:`write_curve_table`): training
    and validation loss of one seed (default: the smallest), best epochs starred, episode
    switches marked (:func:`stardist_hier.plotting.loss_curves_figure`)."""
    import numpy as np

    from ...plotting import loss_curves_figure

    with open(path, newline="", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    if not lines:
        raise ValueError(f"{path}: no curves")
    seeds = sorted({int(r["seed"]) for r in lines})
    seed = seeds[0] if seed is None else int(seed)
    runs, titles = {}, {}
    for r in lines:
        if int(r["seed"]) != seed:
            continue
        eps = runs.setdefault(r["row"], {})
        e = eps.setdefault(r["episode"], {"name": r["episode"], "loss": [], "val_loss": [],
                                          "first_epoch": int(r["epoch"]) - 1})
        e["loss"].append(float(r["loss"]))
        e["val_loss"].append(float(r["val_loss"]) if r["val_loss"] else None)
    for row, eps in runs.items():
        for e in eps.values():
            v = [np.nan if x is None else x for x in e["val_loss"]]
            if np.isfinite(v).any():
                k = int(np.nanargmin(v))
                e["best_epoch"], e["best_val_loss"] = e["first_epoch"] + k, float(v[k])
        titles[row] = f"{row} (seed {seed})"
    return loss_curves_figure([list(eps.values()) for eps in runs.values()], titles=list(titles.values()),
                              ncols=min(4, len(runs)), title=f"{Path(path).parent.name}: loss per epoch (validation: the episode's datasets)")


def write_episode_table(study: StudyConfig, out, path) -> None:
    """``path``: one line per finished run and episode: epochs run, best epoch (global, 0-based),
    whether it stopped early and whether its best weights were restored (from ``history.json``)."""
    import io

    from ...io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "seed", "episode", "epochs_run", "best_epoch", "stopped_early", "restored_best"])
    for row, _ in study.rows:
        for seed in study.seeds:
            run = Path(out) / row / f"seed{seed}"
            if not (run / "results.csv").is_file():
                continue
            for e in json.loads((run / "history.json").read_text())["episodes"]:
                w.writerow([row, seed, e["name"], e["epochs_run"], e["best_epoch"], e["stopped_early"],
                            e["restored_best"]])
    atomic_write_text(Path(path), buf.getvalue())


def summarize_study(study: StudyConfig, out: Path) -> dict:
    """The paired statistics of the finished runs (:func:`.record.summarize_values`)."""
    return summarize_values(design_of(study), read_study_values(study, out))


# ------------------------------------------------------------------ configs by name
def is_study_config(path) -> bool:
    """Whether the YAML file ``path`` is a study config (top-level ``rows`` and ``base``).

    ``False`` for an unreadable or invalid file too: :func:`.config.load_config` reports it.
    """
    from ...io import load_yaml

    try:
        raw = load_yaml(Path(path))
    except Exception:  # noqa: BLE001 - load_config reports a bad file
        return False
    return isinstance(raw, dict) and "rows" in raw and "base" in raw


def example_name(name: str) -> str:
    """The shipped example file stem of a ``--table`` choice or example name (``"2"`` -> ``"table2"``)."""
    name = str(name)
    return f"table{name}" if name.isdigit() else name


def study_config(name: str, *, seeds=None, epochs=None, steps=None, quick=False) -> dict:
    """The shipped study config ``name`` with the command line's changes (a plain mapping).

    ``name``: a ``--table`` choice (``"2"``, ``"4"``, ``"paper"``, ``"ablation"``) or the name
    of a shipped study example (``"demo"``, ``"table2"``, ...). ``epochs`` rescales every
    episode so that 10 epochs become ``epochs`` (others alike, at least 1); ``steps`` sets the
    steps per epoch; ``quick`` makes a smoke run (1 epoch per episode, 2 steps, 5 tiles per
    dataset, 200 bootstrap samples).
    """
    from ...examples import example_text
    from ...io import load_yaml

    stem = example_name(name)
    raw = load_yaml(example_text(stem), where=f"stardist_hier/examples/{stem}.yaml")
    if not (isinstance(raw, dict) and "rows" in raw and "base" in raw):
        from ...errors import InputError

        raise InputError(f"example {name!r} is not a study config (no 'rows' and 'base')")
    if seeds is not None:
        raw["seeds"] = list(seeds)

    def scale(eps):
        for e in eps:
            if epochs is not None:
                e["epochs"] = max(1, int(e["epochs"]) * int(epochs) // 10)
            if quick:
                e["epochs"] = 1

    scale(raw["base"]["episodes"])
    for r in raw["rows"]:
        if "episodes" in (r.get("set") or {}):
            scale(r["set"]["episodes"])
    tr = raw["base"].setdefault("training", {})
    if steps is not None:
        tr["steps_per_epoch"] = max(2, int(steps))
    if quick:
        tr["steps_per_epoch"] = 2
        for d in raw["base"]["datasets"].values():
            d["n_tiles"], d["split"] = 5, {"train": 3, "val": 1, "test": 1}
        raw["bootstrap"] = {"n": 200}
    return raw


SMOKE_NOTE = ("**SMOKE TEST (--quick): one epoch per episode on a few tiles. These numbers only show that "
              "the pipeline runs; they say nothing about the method.**")


def mark_smoke_test(out, table: str) -> str:
    """``table`` (:func:`format_study`) headed by :data:`SMOKE_NOTE`, also written to ``OUT/study.md``."""
    from ...io import atomic_write_text

    table = SMOKE_NOTE + "\n\n" + table
    atomic_write_text(Path(out) / "study.md", table)
    return table
