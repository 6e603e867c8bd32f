"""The committed study record (issue 19): per-seed files, primary comparisons, recomputed tables."""

import json
from pathlib import Path

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.training.experiment.record import (BEGIN, END, read_per_seed, recompute, recompute_all,
                                                      summarize_values, write_per_seed)
from stardist_hier.training.experiment.study import format_study, holm

ROOT = Path(__file__).resolve().parents[2]


def _values(seed=0, n=6):
    rng = np.random.default_rng(seed)
    out = {}
    for row, shift in (("base", 0.0), ("x", 0.04), ("y", -0.01)):
        out[row] = {s: {"t": {"pq": float(rng.uniform(0.3, 0.6) + shift), "mpq": float(rng.uniform(0.1, 0.3)),
                              "per_label": {"A": float(rng.uniform()), "B": 1 / 3}}} for s in range(n)}
    return out


DESIGN = {"name": "toy", "seeds": list(range(6)), "rows": ["base", "x", "y"], "metrics": ["pq", "mpq"],
          "bootstrap": {"n": 1000, "seed": 0, "level": 0.95},
          "comparisons": [{"name": "x vs base", "a": "x", "b": "base", "metric": "pq", "test": "t", "primary": True},
                          {"name": "y vs base", "a": "y", "b": "base", "metric": "pq", "test": "t", "primary": True},
                          {"name": "x vs y", "a": "x", "b": "y", "metric": "mpq", "test": "t"}]}


def test_per_seed_file_round_trips_exactly(tmp_path):
    v = _values()
    write_per_seed(v, tmp_path / "per_seed.csv")
    assert read_per_seed(tmp_path / "per_seed.csv") == v
    (tmp_path / "bad.csv").write_text("row,seed,test,metric,value\nx,0,t,pq,abc\n")
    with pytest.raises(InputError, match="bad.csv: line 2"):
        read_per_seed(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("row,seed,test,metric,value\nx,0,t,pq,0.5\n")
    with pytest.raises(InputError, match="lacks pq or mpq"):
        read_per_seed(tmp_path / "bad2.csv")


def test_holm_over_primary_comparisons_only():
    r = summarize_values(DESIGN, _values())
    prim = [c for c in r["comparisons"] if c["role"] == "primary"]
    expl = [c for c in r["comparisons"] if c["role"] == "exploratory"]
    assert len(prim) == 2 and len(expl) == 1
    assert [c["p_holm"] for c in prim] == pytest.approx(holm([c["p"] for c in prim]))
    assert "p_holm" not in expl[0]
    md = format_study(r)
    assert "Holm over the primary comparisons only" in md and "| x vs y | exploratory |" in md
    # without any primary mark: every declared comparison is in the family (older studies)
    old = {**DESIGN, "comparisons": [{k: v for k, v in c.items() if k != "primary"} for c in DESIGN["comparisons"]]}
    r = summarize_values(old, _values())
    assert {c["role"] for c in r["comparisons"]} == {"declared"}
    assert [c["p_holm"] for c in r["comparisons"]] == pytest.approx(holm([c["p"] for c in r["comparisons"]]))


def test_more_than_three_primary_refused():
    from stardist_hier.training.experiment import ConfigError
    from stardist_hier.training.experiment.study import load_study

    from .test_study import STUDY

    comps = [{"a": "marginal", "b": "renorm", "metric": m, "test": "C-test", "primary": True}
             for m in ("pq", "mpq", "pq", "mpq")]
    with pytest.raises(ConfigError, match="4 are primary; declare at most 3"):
        load_study({**STUDY, "comparisons": comps})
    with pytest.raises(ConfigError, match="primary must be true or false"):
        load_study({**STUDY, "comparisons": [{**comps[0], "primary": "yes"}]})


def test_recompute_all_rewrites_tables_and_results_blocks(tmp_path):
    folder = tmp_path / "results" / "toy"
    folder.mkdir(parents=True)
    (folder / "design.json").write_text(json.dumps(DESIGN))
    write_per_seed(_values(), folder / "per_seed.csv")
    md = tmp_path / "RESULTS.md"
    md.write_text(f"# R\n\n{BEGIN.format(name='toy')}\nold\n{END.format(name='toy')}\n\ntail\n")
    assert len(recompute_all(tmp_path / "results", md, check=True)) == 2  # tables.md missing, block stale
    assert "old" in md.read_text()  # check mode writes nothing
    recompute_all(tmp_path / "results", md)
    _, table = recompute(folder)
    assert (folder / "tables.md").read_text() == table
    assert md.read_text() == f"# R\n\n{BEGIN.format(name='toy')}\n{table}{END.format(name='toy')}\n\ntail\n"
    assert recompute_all(tmp_path / "results", md, check=True) == []
    # a changed per-seed value changes the recomputed table
    v = _values()
    v["x"][0]["t"]["pq"] += 0.5
    write_per_seed(v, folder / "per_seed.csv")
    assert str(folder / "tables.md") in recompute_all(tmp_path / "results", md, check=True)


def test_committed_tables_are_recomputed_exactly():
    """Every committed docs/results/*/tables.md and its RESULTS.md block, from its per-seed file."""
    results = ROOT / "docs" / "results"
    folders = sorted(results.glob("*/design.json"))
    assert folders, "no committed study record under docs/results"
    assert recompute_all(results, ROOT / "docs" / "RESULTS.md", check=True) == []


def test_the_papers_figures_beside_ours():
    design = {**DESIGN, "paper": [{"comparison": "x vs base", "metric": "pq", "test": "t", "paper": "Table 2: A -> B",
                                   "paper_a": 0.571, "paper_b": 0.540}]}
    r = summarize_values(design, _values())
    c = r["comparisons"][0]
    md = format_study(r)
    assert (f"| Table 2: A -> B | 0.571 | 0.540 | +0.031 | x vs base | pq | t | 6 | {c['mean_a']:.3f} | "
            f"{c['mean_b']:.3f} | {c['diff']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['mde']:.3f} |") in md


def test_paper_entries_must_name_a_declared_comparison():
    from stardist_hier.training.experiment import ConfigError
    from stardist_hier.training.experiment.study import load_study

    from .test_study import STUDY

    comp = {"name": "m vs r", "a": "marginal", "b": "renorm", "metric": "pq", "test": "C-test"}
    entry = {"comparison": "m vs r", "metric": "pq", "test": "C-test", "paper": "T2", "paper_a": 0.5, "paper_b": 0.4}
    assert load_study({**STUDY, "comparisons": [comp], "paper": [entry]}).paper[0]["paper_a"] == 0.5
    with pytest.raises(ConfigError, match=r"paper\[0\]: no declared comparison 'nope'"):
        load_study({**STUDY, "comparisons": [comp], "paper": [{**entry, "comparison": "nope"}]})
    with pytest.raises(ConfigError, match="paper_b must be a number"):
        load_study({**STUDY, "comparisons": [comp], "paper": [{**entry, "paper_b": "0.4"}]})
