"""``stardist-hier experiment CONFIG.yaml``: train through episodes of datasets, then evaluate.

See :mod:`stardist_hier.training.experiment` for the config format and the files
written to the run folder. Rerunning with the same config and ``--out`` resumes an
interrupted run from its last completed epoch (a finished one is only evaluated again).

The run folder is locked while a run uses it: a second run into it is refused, naming the
holder (PID, host, start time). A rerun with a config that differs from the folder's
``config.yaml`` is refused, naming the keys that differ, and nothing is written.
``--restart`` moves the folder's existing run, whole, to ``OUT.old-<UTC time>`` beside it
(nothing is deleted) and trains from scratch in ``OUT``.
"""

from __future__ import annotations

from pathlib import Path

HELP = "Run a training experiment from a YAML config: episodes across datasets, test-set PQ, curves, overlays."


def add_arguments(parser) -> None:
    parser.add_argument("config", type=Path, metavar="CONFIG.yaml", nargs="?", help="experiment config (YAML)")
    parser.add_argument("--example", metavar="NAME", help="print the shipped example config NAME and exit "
                        "(stardist-hier experiment --example two_datasets > my.yaml)")
    parser.add_argument("--list-examples", action="store_true", help="list the shipped example configs and exit")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder (default: the config's 'out', else runs/<name>)")
    parser.add_argument("--restart", action="store_true",
                        help="move an existing run in the folder to DIR.old-<UTC time> (nothing is deleted) "
                             "and train from scratch")
    from ._args import positive_int

    parser.add_argument("--max-epochs", type=positive_int, metavar="N",
                        help="stop after N epochs in this call (rerun to continue)")
    parser.add_argument("--check", action="store_true",
                        help="only validate the config and the data, do not train")
    parser.add_argument("-q", "--quiet", action="store_true", help="less output")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show StarDist's own status lines")


def run(args) -> int:
    # user errors (ConfigError, RunFolderError, ...) are UserErrors: stardist_hier.cli prints one line, exit 2
    from ..console import import_tensorflow, quiet_stardist

    if args.example or args.list_examples:
        from ..examples import example_summary, example_text, list_examples

        if args.example:
            print(example_text(args.example), end="")  # an unknown NAME is an InputError (did-you-mean)
        else:
            print("\n".join(f"{name}: {example_summary(name)}" for name in list_examples()))
        return 0
    if args.config is None:
        from ..errors import InputError

        raise InputError("give CONFIG.yaml (or --example NAME, --list-examples)")
    verbose = 0 if args.quiet else 1
    import_tensorflow()  # TensorFlow's start-up notices held back (the config check imports it)
    from ..training.experiment import load_config, load_data
    from ..training.experiment.study import is_study_config

    if is_study_config(args.config):  # rows of experiments over seeds (e.g. --example ablation)
        return _run_study(args, verbose)

    if args.out is not None and not args.check:
        from ..training.experiment.runfolder import probe_lock

        probe_lock(args.out)  # another run in --out: refuse before the (slow) config check
    cfg = load_config(args.config)
    if args.check:
        data, tests = load_data(cfg, verbose=verbose)
        print(f"config OK: {data}; test sets: {', '.join(t.name for t in cfg.tests) or '(none)'}")
        return 0
    from ..training.experiment import run_experiment

    with quiet_stardist(2 if args.verbose else 1):  # StarDist's status prints unless -v
        res = run_experiment(cfg, args.out, restart=args.restart, max_epochs=args.max_epochs, verbose=verbose)
    if not res["finished"]:
        print(f"stopped after {res['epochs_done']} epochs; rerun the same command to continue ({res['out']})")
        return 0
    print(f"done after {res['epochs_done']} epochs; results in {res['out']}/results.md")
    return 0


def _run_study(args, verbose) -> int:
    from ..console import quiet_stardist
    from ..errors import InputError
    from ..training.experiment.study import format_study, load_study, run_study

    if args.restart or args.max_epochs is not None:
        raise InputError("--restart and --max-epochs apply to one experiment, not to a study (rows x seeds); "
                         "rerunning a study continues it")
    study = load_study(args.config)
    if args.check:
        print(f"study OK: {len(study.rows)} rows x {len(study.seeds)} seeds, "
              f"{len(study.comparisons)} declared comparisons")
        return 0
    with quiet_stardist(2 if args.verbose else 1):
        res = run_study(study, args.out, verbose=verbose)
    print(format_study(res))
    return 0
