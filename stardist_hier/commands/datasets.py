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
from collections import Counter

import numpy as np

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


def _taxonomy(path):
    from ..tree import Taxonomy, default_taxonomy

    return Taxonomy.from_file(path) if path else default_taxonomy()


def _mapping(tax, ls_name) -> dict | None:
    if ls_name not in tax and ls_name != "root":
        return None
    ls = tax[ls_name]
    out = {lab: list(ls.nodes(lab)) for lab in ls.labels}
    out.update({lab: "ignore" for lab in ls.ignore_labels})
    return out


def _list(args) -> int:
    from ..datasets.registry import DATASETS

    tax = _taxonomy(args.taxonomy)
    rows = []
    for d in DATASETS.values():
        rows.append({"name": d.name, "reader": d.reader, "description": d.description,
                     "label_sets": {ls: _mapping(tax, ls) for ls in d.label_sets},
                     "any_label_set": d.any_label_set})
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
    from ..datasets.registry import get_dataset

    tax = _taxonomy(args.taxonomy)
    d = get_dataset(args.name)
    kwargs = {}
    if d.any_label_set:
        kwargs["taxonomy"] = tax
    reader = d.open(args.path, label_set=args.label_set, split=args.split, **kwargs)
    ls = tax[reader.label_set]
    n_images, n_nuclei, ignore_px = 0, 0, 0
    per_class, counters = Counter(), Counter()
    shapes = set()
    for i, s in enumerate(reader):
        if args.limit is not None and i >= args.limit:
            break
        n_images += 1
        shapes.add(s.image.shape[:2])
        ids = {int(v) for v in np.unique(s.labels) if v != 0}
        if ids != set(s.classes):
            raise ValueError(f"{s.meta.get('source')}: classes do not match the instance ids of the labels")
        for lab in s.classes.values():
            if lab is not None:
                ls.resolve(lab)  # raises for a label that is not in the label set
            per_class["(class unknown)" if lab is None else lab] += 1
        n_nuclei += len(s.classes)
        if s.ignore is not None:
            ignore_px += int(s.ignore.sum())
        for k, v in s.meta.items():
            if k.startswith("n_") and isinstance(v, int):
                counters[k] += v
    if n_images == 0:
        raise ValueError(f"{args.path}: no samples read")
    result = {"dataset": d.name, "path": str(args.path), "label_set": reader.label_set, "images": n_images,
              "nuclei": n_nuclei, "per_class": dict(per_class), "ignore_pixels": ignore_px,
              "image_shapes": sorted(list(x) for x in shapes)[:10], "counters": dict(counters)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{d.name} at {args.path}  (label set {reader.label_set})")
    print(f"  images: {n_images}")
    print(f"  nuclei: {n_nuclei}")
    for lab in list(ls.labels) + list(ls.ignore_labels) + ["(class unknown)"]:
        if lab in per_class:
            nodes = " + ".join(ls.nodes(lab)) if lab in ls.labels else "ignore"
            print(f"    {lab:<28} {per_class[lab]:>8}   -> {nodes}")
    print(f"  ignore pixels: {ignore_px}")
    for k, v in sorted(counters.items()):
        print(f"  {k}: {v}")
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
