"""``stardist-hier demo``: the README's main job on embedded synthetic data (no download)."""

from __future__ import annotations

import os
import time

HELP = ("generate PanNuke- and CoNSeP-like data, train on CoNSeP only (10 and 20 epochs) and on PanNuke "
        "then CoNSeP, print the Table-2-like result")


SMOKE_NOTE = ("**SMOKE TEST (--quick): one epoch per episode on a few tiles. These numbers only show that "
              "the pipeline runs; they say nothing about the method.**")


def add_arguments(parser):
    from ._args import non_negative_int, out_folder, positive_int

    parser.add_argument("--out", type=out_folder, default="runs/demo", help="folder for the table, figures and models")
    parser.add_argument("--epochs", type=positive_int, default=10,
                        help="epochs per episode (default 10; the control row gets twice)")
    parser.add_argument("--steps", type=positive_int, default=20, help="steps per epoch (default 20)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (a non-negative integer)")
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")
    parser.add_argument("-v", "--verbose", action="count", default=1,
                        help="also show Keras's and StarDist's own progress output")


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import replace
    from pathlib import Path

    from .. import benchmark as bm
    from ..console import done

    s = replace(bm.Settings(seed=args.seed), steps_per_epoch=args.steps)
    rows = bm.with_epochs(bm.DEMO, args.epochs)
    if args.quick:
        s, rows = bm.quick(s), bm.with_epochs(bm.DEMO, 1)
    t0 = time.time()
    results = bm.run_rows(rows, s, out=args.out, verbose=args.verbose)
    summary = bm.summarize([results])
    bm.write_tables(summary, Path(args.out))
    table = bm.format_table(summary)
    if args.quick:
        from ..io import atomic_write_text

        table = SMOKE_NOTE + "\n\n" + table
        atomic_write_text(Path(args.out) / "results.md", table + "\n")
    print()
    print(table)
    print("\nPQ at the test set's own label set (CoNIC convention; mPQ+ = mean over its labels).")
    done("demo", f"table (results.md, results.csv), loss curves, overlays and models in {args.out}/", t0=t0)
    return 0
