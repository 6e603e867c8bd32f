"""``stardist-hier experiment CONFIG.yaml``: train through episodes of datasets, then evaluate.

See :mod:`stardist_hier.training.experiment` for the config format and the files
written to the run folder. Rerunning with the same config and ``--out`` resumes an
interrupted run from its last completed epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "Run a training experiment from a YAML config: episodes across datasets, test-set PQ, curves, overlays."


def add_arguments(parser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG.yaml", help="experiment config (YAML)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder (default: the config's 'out', else runs/<name>)")
    parser.add_argument("--restart", action="store_true",
                        help="discard the run folder's checkpoint and train from scratch")
    parser.add_argument("--max-epochs", type=int, metavar="N",
                        help="stop after N epochs in this call (rerun to continue)")
    parser.add_argument("--check", action="store_true",
                        help="only validate the config and the data, do not train")
    parser.add_argument("-q", "--quiet", action="store_true", help="less output")


def run(args) -> int:
    from ..training.experiment import ConfigError, load_config, load_data

    verbose = 0 if args.quiet else 1
    try:
        cfg = load_config(args.config)
        if args.check:
            data, tests = load_data(cfg, verbose=verbose)
            print(f"config OK: {data}; test sets: {', '.join(t.name for t in cfg.tests) or '(none)'}")
            return 0
        from ..training.experiment import run_experiment

        res = run_experiment(cfg, args.out, restart=args.restart, max_epochs=args.max_epochs, verbose=verbose)
    except ConfigError as e:
        print(f"stardist-hier experiment: error: {e}", file=sys.stderr)
        return 2
    if not res["finished"]:
        print(f"stopped after {res['epochs_done']} epochs; rerun the same command to continue ({res['out']})")
        return 0
    print(f"done after {res['epochs_done']} epochs; results in {res['out']}/results.md")
    return 0
