"""``stardist-hier demo``: the README's main job on embedded synthetic data (no download)."""

from __future__ import annotations

import os
import time

HELP = "train a small hierarchical model on generated data with two label sets and print the Table-2-like result"


def add_arguments(parser):
    parser.add_argument("--out", default="runs/demo", help="folder for the table, figures and models")
    parser.add_argument("--pretrain", default="pannuke", help="synthetic dataset to pre-train on")
    parser.add_argument("--target", default="consep", help="synthetic dataset to fine-tune and test on")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per episode (default 10)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")


def run(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import replace

    from ..benchmark import DemoSettings, format_table, run_protocol
    from ..synthetic import DATASET_NAMES

    for name in (args.pretrain, args.target):
        if name not in DATASET_NAMES:
            raise SystemExit(f"stardist-hier demo: unknown synthetic dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
    s = DemoSettings(seed=args.seed)
    if args.quick:
        s = replace(s, n_train=8, n_val=2, n_test=2, epochs_pretrain=1, epochs_finetune=1, steps_per_epoch=2)
    if args.epochs is not None:
        s = replace(s, epochs_pretrain=args.epochs, epochs_finetune=args.epochs)
    if args.steps is not None:
        s = replace(s, steps_per_epoch=args.steps)
    t0 = time.time()
    rows = run_protocol(s, pretrain=args.pretrain, target=args.target, out=args.out)
    print()
    print(format_table(rows))
    print(f"\nPQ at the test set's own label set ({args.target}), CoNIC convention. "
          f"Table, loss curves and overlays in {args.out}/ ({time.time() - t0:.0f} s).")
    return 0
