"""Recompute every study table of docs/RESULTS.md from the committed per-seed files (issue 19).

    python benchmarks/recompute_results.py            # rewrite docs/results/*/tables.md and RESULTS.md's blocks
    python benchmarks/recompute_results.py --check    # change nothing; exit 1 when a table differs
    python benchmarks/recompute_results.py --record benchmarks/real_nucls.yaml runs/real_nucls
                                                       # commit-ready record of a study's finished runs

Each ``docs/results/NAME/`` holds ``per_seed.csv`` (every value of every row, seed and test),
``design.json`` (seeds, rows, declared comparisons) and ``tables.md``; RESULTS.md shows each
table between ``<!-- results:NAME begin -->`` and ``<!-- results:NAME end -->``. The work is
done by :mod:`stardist_hier.training.experiment.record`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from stardist_hier.training.experiment.record import recompute_all
    from stardist_hier.training.experiment.study import load_study, record_study

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table differs")
    p.add_argument("--record", nargs=2, metavar=("STUDY_YAML", "RUNS"),
                   help="first write docs/results/NAME/ from the finished runs of a study")
    p.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "RESULTS.md")
    args = p.parse_args(argv)
    if args.record:
        config, runs = Path(args.record[0]), Path(args.record[1])
        study = load_study(config)
        shown = config.resolve().relative_to(ROOT) if config.resolve().is_relative_to(ROOT) else config
        record_study(study, runs, args.results / study.name, config_path=shown)
        print(f"recorded {study.name} from {runs} into {args.results / study.name}")
    changed = recompute_all(args.results, args.markdown, check=args.check)
    for f in changed:
        print(("differs: " if args.check else "rewritten: ") + f)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
