"""``stardist-hier datasets``: list the known datasets, verify a local copy, say where to get one.

Examples
--------
::

    stardist-hier datasets list
    stardist-hier datasets info pannuke
    stardist-hier datasets verify nucls ../shared/data/nucls --label-set nucls4
"""

from __future__ import annotations

import json

HELP = "List known datasets and their label sets, verify a local copy, or show where to download one."


def add_arguments(parser) -> None:
    from ._args import positive_int

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="known datasets, their label sets and how the labels sit on the class tree")
    p.add_argument("--taxonomy", help="taxonomy YAML/JSON file (default: the built-in one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("verify", help="read a local copy and count images and nuclei per class")
    p.add_argument("name", help="dataset name (see 'datasets list')")
    p.add_argument("path", help="dataset folder")
    p.add_argument("--label-set", help="label set to read (default: the dataset's first)")
    p.add_argument("--split", help="split / fold to read (default: all)")
    p.add_argument("--limit", type=positive_int, default=None, help="read at most this many samples")
    p.add_argument("--taxonomy", help="taxonomy YAML/JSON file (default: the built-in one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("info", help="where to download a dataset and how to lay it out")
    p.add_argument("name", help="dataset name")
    for p in sub.choices.values():  # accepted by every command; the readers print nothing of their own
        p.add_argument("-v", "--verbose", action="store_true", help="accepted for every command (no extra output)")


def _list(args) -> int:
    from ..datasets.catalog import list_datasets

    rows = list_datasets(args.taxonomy)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        reader = r["reader"] or "no reader yet"
        print(f"{r['name']}  [{reader}]")
        print(f"    {r['description']}")
        for ls, m in r["label_sets"].items():
            if m is None:
                print(f"    label set {ls}: not in the taxonomy")
                continue
            print(f"    label set {ls}:")
            for lab, nodes in m.items():
                target = nodes if isinstance(nodes, str) else " + ".join(nodes)
                print(f"        {lab} -> {target}")
        if r["any_label_set"]:
            print("    (accepts any label set of the taxonomy)")
    return 0


def _info(args) -> int:
    from ..datasets.registry import get_dataset

    d = get_dataset(args.name)
    print(f"{d.name}: {d.description}")
    print(f"  download: {d.url or '(none: your own data)'}")
    print(f"  layout:   {d.download}")
    print(f"  license:  {d.license}")
    print(f"  label sets: {', '.join(d.label_sets)}{' (or any of the taxonomy)' if d.any_label_set else ''}")
    print(f"  reader:   {'stardist_hier.datasets.' + d.reader.replace(':', '.') if d.reader else 'none yet'}")
    return 0


def _verify(args) -> int:
    from ..datasets.catalog import verify_dataset

    v = verify_dataset(args.name, args.path, label_set=args.label_set, split=args.split, limit=args.limit,
                       taxonomy=args.taxonomy)
    print(json.dumps(v.result, indent=2) if args.json else v.text())
    return 0


def run(args) -> int:
    """Bad input ends as a :class:`~stardist_hier.errors.UserError` (one line, exit code 2, by the CLI)."""
    from ..errors import InputError, UserError

    actions = {"list": _list, "info": _info, "verify": _verify}
    try:
        return actions[args.action](args)
    except UserError:
        raise
    except KeyError as e:  # unknown dataset name
        raise InputError(str(e.args[0] if e.args else e)) from None
    except (OSError, ValueError, NotImplementedError, ImportError) as e:
        raise InputError(str(e)) from None
