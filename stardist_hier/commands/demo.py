"""``stardist-hier demo``: the README's main job on embedded synthetic data (no download).

The shipped study config ``stardist_hier/examples/demo.yaml`` (three rows: CoNSeP-like only
for E epochs, CoNSeP-like only for 2E epochs, PanNuke-like E -> CoNSeP-like E; tested on
CoNSeP-like tiles) run by the study runner (:mod:`stardist_hier.training.experiment.study`),
the same way as ``stardist-hier benchmark``.
"""

from __future__ import annotations

import time

HELP = ("generate PanNuke- and CoNSeP-like data, train on CoNSeP only (10 and 20 epochs) and on PanNuke "
        "then CoNSeP, print the Table-2-like result")


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
    import sys
    from functools import partial
    from pathlib import Path

    from ..console import done, import_tensorflow, no_retracing_warnings, quiet_stardist
    from ..training.experiment.study import format_study, load_study, mark_smoke_test, run_study, study_config

    raw = study_config("demo", seeds=[args.seed], epochs=args.epochs, steps=args.steps, quick=args.quick)
    import_tensorflow()  # TensorFlow's start-up notices held back (the config check imports it)
    study = load_study(raw)
    out = Path(args.out)
    t0 = time.time()
    log = partial(print, file=sys.stdout, flush=True)  # one line per finished row, past quiet_stardist
    with quiet_stardist(args.verbose), no_retracing_warnings(args.verbose):  # held back unless -v
        res = run_study(study, out, verbose=args.verbose, log=log)
    table = format_study(res)
    if args.quick:
        table = mark_smoke_test(out, table)
    print()
    print(table)
    print("PQ at the test set's own label set (CoNIC convention; mPQ+ = mean over its labels); one seed, so "
          "no interval or p-value for the comparison (use `stardist-hier benchmark --table 2` for several seeds).")
    rows = [r for r, _ in study.rows]
    done("demo", f"table in {out}/study.md (study.json); per row {out}/ROW/seed{args.seed}/: results.md, "
                 f"results.csv, loss_curves.png, overlays/ and the trained model/ (rows: {', '.join(rows)})", t0=t0)
    return 0
