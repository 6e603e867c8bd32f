"""``stardist-hier demo``: the README's main job on embedded synthetic data (no download)."""

from __future__ import annotations

import os
import time

HELP = ("generate PanNuke- and CoNSeP-like data, train on CoNSeP only (10 and 20 epochs) and on PanNuke "
        "then CoNSeP, print the Table-2-like result")


def add_arguments(parser):
    parser.add_argument("--out", default="runs/demo", help="folder for the table, figures and models")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per episode (default 10; the control row gets twice)")
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import replace
    from pathlib import Path

    from .. import benchmark as bm

    if args.epochs < 1 or args.steps < 1:
        raise SystemExit("stardist-hier demo: --epochs and --steps must be positive")
    s = replace(bm.Settings(seed=args.seed), steps_per_epoch=args.steps)
    rows = bm.with_epochs(bm.DEMO, args.epochs)
    if args.quick:
        s, rows = bm.quick(s), bm.with_epochs(bm.DEMO, 1)
    t0 = time.time()
    results = bm.run_rows(rows, s, out=args.out)
    summary = bm.summarize([results])
    bm.write_tables(summary, Path(args.out))
    print()
    print(bm.format_table(summary))
    print(f"\nPQ at the test set's own label set (CoNIC convention; mPQ+ = mean over its labels). "
          f"Table, loss curves and overlays in {args.out}/ ({time.time() - t0:.0f} s).")
    return 0
