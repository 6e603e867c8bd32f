"""The committed record of a study: per-seed values, the design, and every table recomputed from them.

A study's run folders are large and never committed; what is committed (issue 19) is, per
study, a folder ``docs/results/NAME/`` with

- ``per_seed.csv``: one row per ``(row, seed, test, metric)`` with the value at full
  precision (``metric`` is ``pq``, ``mpq`` or ``pq:LABEL``), written by :func:`write_record`
  from a study's run folders (:func:`.study.record_study`);
- ``design.json``: the study's name, config path, seeds, rows, metrics, declared comparisons
  (with ``primary``) and resampling settings;
- ``tables.md``: :func:`format_study` of the statistics recomputed from the two
  files above (:func:`recompute`).

:func:`recompute_all` recomputes every folder's tables and the matching blocks of
``docs/RESULTS.md`` (between ``<!-- results:NAME begin -->`` and ``<!-- results:NAME end -->``);
with ``check=True`` it changes nothing and reports what differs. TF-free.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from ...metrics.paired import holm

__all__ = ["design_of", "summarize_values", "holm_family", "format_study", "write_per_seed", "read_per_seed",
           "write_record", "recompute", "recompute_all", "BEGIN", "END"]

BEGIN = "<!-- results:{name} begin -->"
END = "<!-- results:{name} end -->"
PER_SEED_COLUMNS = ("row", "seed", "test", "metric", "value")


def design_of(study) -> dict:
    """The parts of a :class:`~.study.StudyConfig` the statistics depend on (a plain, JSON-able dict)."""
    return {"name": study.name, "seeds": list(study.seeds), "rows": [r for r, _ in study.rows],
            "metrics": list(study.metrics), "comparisons": [dict(c) for c in study.comparisons],
            "bootstrap": dict(study.bootstrap), "paper": [dict(e) for e in getattr(study, "paper", ())]}


def summarize_values(design: dict, values: dict) -> dict:
    """The study result (as :func:`~.study.summarize_study` returns it) from per-seed ``values``.

    ``values``: ``{row: {seed (int): {test: {"pq", "mpq", "per_label": {label: pq}}}}}``.
    """
    from ...metrics.paired import paired_summary

    boot = design["bootstrap"]
    comps = []
    for c in design["comparisons"]:
        c = {"primary": False, **c}
        common = [s for s in design["seeds"] if s in values.get(c["a"], {}) and s in values.get(c["b"], {})]
        if len(common) < 2:
            comps.append({**c, "n": len(common), "p": math.nan})
            continue
        a = [values[c["a"]][s][c["test"]][c["metric"]] for s in common]
        b = [values[c["b"]][s][c["test"]][c["metric"]] for s in common]
        comps.append({**c, **paired_summary(a, b, level=boot["level"], seed=boot["seed"],
                                            n_resamples=max(1, int(boot["n"]))), "seeds": common})
    return {"name": design["name"], "seeds": list(design["seeds"]), "rows": list(design["rows"]),
            "metrics": list(design["metrics"]),
            "values": {r: {str(s): v for s, v in sorted(values[r].items())} for r in design["rows"] if r in values},
            "comparisons": holm_family(comps), "level": boot["level"], "paper": list(design.get("paper", []))}


def write_per_seed(values: dict, path) -> None:
    """``values`` (see :func:`summarize_values`) as ``per_seed.csv`` (full-precision floats), atomically."""
    from ...io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PER_SEED_COLUMNS)
    for row in values:
        for seed in sorted(values[row]):
            for test, v in values[row][seed].items():
                w.writerow([row, seed, test, "pq", repr(float(v["pq"]))])
                w.writerow([row, seed, test, "mpq", repr(float(v["mpq"]))])
                for lab, x in sorted(v.get("per_label", {}).items()):
                    w.writerow([row, seed, test, f"pq:{lab}", repr(float(x))])
    atomic_write_text(Path(path), buf.getvalue())


def read_per_seed(path) -> dict:
    """The ``values`` written by :func:`write_per_seed`.

    Raises
    ------
    InputError
        Naming the file and line of a malformed row.
    """
    from ...errors import InputError

    path = Path(path)
    values: dict = {}
    with open(path, newline="") as f:
        r = csv.reader(f)
        head = next(r, None)
        if tuple(head or ()) != PER_SEED_COLUMNS:
            raise InputError(f"{path}: the header must be {','.join(PER_SEED_COLUMNS)}, got {head!r}")
        for i, line in enumerate(r, start=2):
            try:
                row, seed, test, metric, value = line
                seed, value = int(seed), float(value)
            except ValueError:
                raise InputError(f"{path}: line {i}: expected row,seed,test,metric,value, got {line!r}") from None
            v = values.setdefault(row, {}).setdefault(seed, {}).setdefault(test, {"per_label": {}})
            if metric in ("pq", "mpq"):
                v[metric] = value
            elif metric.startswith("pq:"):
                v["per_label"][metric[3:]] = value
            else:
                raise InputError(f"{path}: line {i}: unknown metric {metric!r} (pq, mpq or pq:LABEL)")
    for row, seeds in values.items():
        for seed, tests in seeds.items():
            for test, v in tests.items():
                if "pq" not in v or "mpq" not in v:
                    raise InputError(f"{path}: {row} seed {seed} test {test!r} lacks pq or mpq")
    return values


def write_record(design: dict, values: dict, folder) -> dict:
    """Commit-ready record ``folder/{per_seed.csv, design.json, tables.md}`` of a study's
    ``design`` (:func:`design_of`) and per-seed ``values``; returns the recomputed result."""
    from ...io import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "design.json", json.dumps(design, indent=1) + "\n")
    write_per_seed(values, folder / "per_seed.csv")
    result, table = recompute(folder)
    atomic_write_text(folder / "tables.md", table)
    return result


def recompute(folder) -> tuple:
    """``(result, markdown)`` recomputed from ``folder/design.json`` and ``folder/per_seed.csv``."""
    from ...errors import InputError

    folder = Path(folder)
    try:
        design = json.loads((folder / "design.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{folder / 'design.json'}: unreadable ({e})") from None
    result = summarize_values(design, read_per_seed(folder / "per_seed.csv"))
    return result, format_study(result)


def holm_family(comps: list) -> list:
    """``comps`` with ``role`` and, for the Holm family, ``p_holm``.

    With comparisons marked ``primary``, Holm runs over those only (``role: primary``); the
    others are ``exploratory``: reported with their unadjusted p-values, never adjusted
    and never read as confirmatory. Without any ``primary`` mark (studies written before
    issue 19), every declared comparison is in the family (``role: declared``).
    """
    comps = [dict(c) for c in comps]
    any_primary = any(c.get("primary") for c in comps)
    for c in comps:
        c["role"] = ("primary" if c.get("primary") else "exploratory") if any_primary else "declared"
    family = [i for i, c in enumerate(comps) if c["role"] != "exploratory" and not math.isnan(c["p"])]
    for i, pa in zip(family, holm([comps[i]["p"] for i in family]) if family else []):
        comps[i]["p_holm"] = pa
    return comps


def _ms(v):
    v = np.asarray(v, float)
    if len(v) == 0:
        return ""
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def format_study(result: dict) -> str:
    """Markdown: per test set, rows as mean ± sd over seeds (PQ, mPQ+, per-label PQ), then the comparisons."""
    lines = []
    tests = []
    for r in result["rows"]:
        for s, v in result["values"].get(r, {}).items():
            tests += [t for t in v if t not in tests]
    for t in tests:
        labels = sorted({lab for r in result["rows"] for v in result["values"].get(r, {}).values()
                         for lab in v.get(t, {}).get("per_label", {})})
        head = ["row", "seeds", "PQ", "mPQ+"] + [f"PQ {lab}" for lab in labels]
        lines += [f"Test set `{t}` (mean ± sd over seeds)", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for r in result["rows"]:
            vs = [v[t] for v in result["values"].get(r, {}).values() if t in v]
            if not vs:
                continue
            cells = [r, str(len(vs)), _ms([v["pq"] for v in vs]), _ms([v["mpq"] for v in vs])]
            cells += [_ms([v["per_label"].get(lab, np.nan) for v in vs]) for lab in labels]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if result["comparisons"]:
        lvl = int(round(100 * result["level"]))
        primary = any(c.get("role") == "primary" for c in result["comparisons"])
        family = ("Holm over the primary comparisons only; exploratory ones are not adjusted and confirm nothing"
                  if primary else "Holm-corrected over all declared comparisons")
        lines += [f"Comparisons: paired difference a - b over seeds (sd of the differences), {lvl}% paired t "
                  f"interval, two-sided sign-flip p-value (exact up to 16 seeds), {family}; MDE: the smallest "
                  "true difference the paired t test detects with 80% power at this n and sd", "",
                  "| comparison | role | metric | test | n | a | b | a - b | sd | " + f"{lvl}% CI | wins/losses | "
                  "p | p (Holm) | MDE |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in result["comparisons"]:
            role = c.get("role", "declared")
            if math.isnan(c.get("p", math.nan)):
                lines.append(f"| {c['name']} | {role} | {c['metric']} | {c['test']} | {c['n']} | | | | | | | | | |")
                continue
            ph = f"{c['p_holm']:.3f}" if "p_holm" in c else "-"
            mde = c.get("mde", math.nan)
            lines.append(f"| {c['name']} | {role} | {c['metric']} | {c['test']} | {c['n']} | {c['mean_a']:.3f} | "
                         f"{c['mean_b']:.3f} | {c['diff']:+.3f} | {c.get('sd_diff', math.nan):.3f} | "
                         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['wins']}/{c['losses']} | {c['p']:.3f} | "
                         f"{ph} | {mde:.3f} |")
    if result.get("paper"):
        lines += ["", "Beside the paper (its single-run figures; ours: mean over seeds and the paired difference "
                      f"with its {lvl}% t interval)", "",
                  "| the paper's comparison | paper a | paper b | paper a - b | our comparison | metric | test | n | "
                  "ours a | ours b | ours a - b | " + f"{lvl}% CI | MDE |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for e in result["paper"]:
            c = next(c for c in result["comparisons"] if (c["name"], c["metric"], c["test"]) ==
                     (e["comparison"], e["metric"], e["test"]))
            paper = f"| {e['paper']} | {e['paper_a']:.3f} | {e['paper_b']:.3f} | {e['paper_a'] - e['paper_b']:+.3f} | "
            if math.isnan(c.get("p", math.nan)):
                lines.append(paper + f"{c['name']} | {c['metric']} | {c['test']} | {c['n']} | | | | | |")
                continue
            lines.append(paper + f"{c['name']} | {c['metric']} | {c['test']} | {c['n']} | {c['mean_a']:.3f} | "
                         f"{c['mean_b']:.3f} | {c['diff']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | "
                         f"{c.get('mde', math.nan):.3f} |")
    return "\n".join(lines) + "\n"


def _replace_block(text: str, name: str, table: str) -> str | None:
    """``text`` with the block of ``name`` replaced by ``table``; ``None`` when it has no such block."""
    b, e = BEGIN.format(name=name), END.format(name=name)
    i, j = text.find(b), text.find(e)
    if i < 0 or j < i:
        return None
    return text[:i + len(b)] + "\n" + table.rstrip("\n") + "\n" + text[j:]


def recompute_all(results_dir, results_md=None, *, check: bool = False) -> list:
    """Recompute every ``results_dir/*/tables.md`` (and its block in ``results_md``).

    Returns the list of files that differ from the recomputation (with ``check=False`` they
    are rewritten, atomically, and the list says which were changed).
    """
    from ...io import atomic_write_text

    changed = []
    md_text = Path(results_md).read_text() if results_md is not None else None
    new_md = md_text
    for folder in sorted(p.parent for p in Path(results_dir).glob("*/design.json")):
        _, table = recompute(folder)
        target = folder / "tables.md"
        if not target.is_file() or target.read_text() != table:
            changed.append(str(target))
            if not check:
                atomic_write_text(target, table)
        if new_md is not None:
            name = json.loads((folder / "design.json").read_text())["name"]
            replaced = _replace_block(new_md, name, table)
            if replaced is not None:
                new_md = replaced
    if md_text is not None and new_md != md_text:
        changed.append(str(results_md))
        if not check:
            atomic_write_text(Path(results_md), new_md)
    return changed
