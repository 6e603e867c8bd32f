"""``stardist-hier benchmark``: the paper's Tables 2 and 4 on synthetic data, several seeds."""

from __future__ import annotations

import os
import time

HELP = "run the synthetic Table 2 (pre-train, fine-tune, test) or Table 4 (unseen test set) over seeds"


def add_arguments(parser):
    from ._args import non_negative_int, out_folder, positive_int

    parser.add_argument("--table", choices=("2", "4"), default="2")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2],
                        help="random seeds (non-negative integers)")
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs per episode")
    parser.add_argument("--steps", type=positive_int, default=20, help="steps per epoch")
    parser.add_argument("--out", type=out_folder, default="runs/benchmark")
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import replace
    from pathlib import Path

    from .. import benchmark as bm

    if len(set(args.seeds)) != len(args.seeds):
        from ..errors import InputError

        raise InputError(f"--seeds: each seed once, got {' '.join(map(str, args.seeds))}")
    rows = bm.with_epochs(bm.TABLE2 if args.table == "2" else bm.TABLE4, 1 if args.quick else args.epochs)
    out = Path(args.out) / f"table{args.table}"
    t0 = time.time()
    runs = []
    for seed in args.seeds:
        s = replace(bm.Settings(seed=seed), steps_per_epoch=args.steps)
        runs.append(bm.run_rows(rows, bm.quick(s) if args.quick else s, out=out))
    summary = bm.summarize(runs)
    bm.write_tables(summary, out, stem=f"table{args.table}")
    print()
    print(bm.format_table(summary))
    print(f"\nseeds {args.seeds}; mean ± std over seeds; PQ at the test set's own label set (CoNIC convention). "
          f"Written to {out}/ ({time.time() - t0:.0f} s).")
    return 0
