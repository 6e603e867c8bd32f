"""``stardist-hier benchmark``: the paper's Tables 2 and 4 (and the issue-11 ablation) on synthetic data.

A thin wrapper over the study runner (:mod:`stardist_hier.training.experiment.study`):
it runs the study configs shipped in ``stardist_hier/examples`` (``table2.yaml``,
``table4.yaml``, ``paper.yaml``, ``ablation.yaml``) with the seeds, epochs and steps given
here, as :func:`stardist_hier.training.experiment.study.study_config` adapts them.
"""

from __future__ import annotations

import time

TABLES = ("2", "4", "paper", "ablation")

HELP = ("run the synthetic Table 2 (pre-train, fine-tune, test), Table 4 (unseen test set), both with H2 (paper) "
        "or the ablation over seeds")


def add_arguments(parser):
    from ._args import non_negative_int, out_folder, positive_int

    parser.add_argument("--table", choices=TABLES, default="2",
                        help="2, 4: the paper's Tables 2 and 4 (full row sets); paper: both and H2 as one study "
                             "(examples/paper.yaml); ablation: the issue-11 ablation")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=None,
                        help="random seeds (non-negative integers; default: the study config's)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs of a 10-epoch episode (others scaled alike; default: the config's)")
    parser.add_argument("--steps", type=positive_int, default=None, help="steps per epoch (default: the config's)")
    parser.add_argument("--out", type=out_folder, default="runs/benchmark")
    parser.add_argument("--quick", action="store_true", help="a much smaller run (smoke test)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show StarDist's and Keras's own output")


def run(args) -> int:
    from pathlib import Path

    from ..training.experiment.study import example_name, format_study, load_study, run_study, study_config

    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        from ..errors import InputError

        raise InputError(f"--seeds: each seed once, got {' '.join(map(str, args.seeds))}")
    raw = study_config(args.table, seeds=args.seeds, epochs=args.epochs, steps=args.steps, quick=args.quick)
    study = load_study(raw)
    out = Path(args.out) / example_name(args.table)
    t0 = time.time()
    from ..console import quiet_stardist

    with quiet_stardist(2 if args.verbose else 1):  # StarDist's status prints unless -v
        res = run_study(study, out, verbose=2 if args.verbose else 1)
    print()
    print(format_study(res))
    print(f"seeds {list(study.seeds)}; mean ± sd over seeds; PQ at the test set's own label set (CoNIC convention); "
          f"paired comparisons with t intervals, sign-flip p-values and Holm over the primary ones. Written to {out}/ "
          f"({time.time() - t0:.0f} s).")
    return 0
