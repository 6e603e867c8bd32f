"""Draw the synthetic study's target-size curve from its committed per-seed file (issue 19).

    python benchmarks/plot_target_size.py        # writes docs/results/synthetic_hard/target_size.png

Rows ``target``/``source_target`` (8 target tiles), ``target_24``/``source_target_24`` and
``target_48``/``source_target_48`` of ``benchmarks/synthetic_hard.yaml``, paired by seed,
metric mPQ+ on the target's test tiles; only seeds present in every row are drawn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POINTS = ((8, "source_target", "target"), (24, "source_target_24", "target_24"), (48, "source_target_48", "target_48"))


def main(argv=None) -> int:
    from stardist_hier.plotting import paired_curve_figure, save_figure
    from stardist_hier.training.experiment.record import read_per_seed

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", type=Path, default=ROOT / "docs" / "results" / "synthetic_hard")
    p.add_argument("--metric", default="mpq", choices=("pq", "mpq"))
    p.add_argument("--test", default="consep")
    args = p.parse_args(argv)
    values = read_per_seed(args.record / "per_seed.csv")
    rows = [r for _, a, b in POINTS for r in (a, b)]
    missing = [r for r in rows if r not in values]
    if missing:
        print(f"{args.record / 'per_seed.csv'}: no runs of rows {missing}", file=sys.stderr)
        return 1
    seeds = sorted(set.intersection(*(set(values[r]) for r in rows)))
    if len(seeds) < 2:
        print(f"{args.record / 'per_seed.csv'}: fewer than 2 seeds common to {rows}", file=sys.stderr)
        return 1

    def get(row):
        return [values[row][s][args.test][args.metric] for s in seeds]

    name = {"mpq": "mPQ+", "pq": "PQ"}[args.metric]
    fig = paired_curve_figure([n for n, _, _ in POINTS], [get(a) for _, a, _ in POINTS], [get(b) for _, _, b in POINTS],
                              labels=("source -> target", "target only"), xlabel="target training tiles",
                              ylabel=f"{name} on the target's test tiles",
                              title=f"synthetic_hard: pre-training on the source against target size "
                                    f"({len(seeds)} paired seeds)")
    out = save_figure(fig, args.record / "target_size.png")
    print(f"wrote {out} ({len(seeds)} seeds: {seeds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
