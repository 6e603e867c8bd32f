"""``stardist-hier models``: the pretrained models registered by name (a thin layer over
:mod:`stardist_hier.models.pretrained`).

Examples
--------
::

    stardist-hier models list
    stardist-hier models show he_consep_nucls
    stardist-hier models fetch NAME        # download a model registered by URL now (e.g. before going offline)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = "List the pretrained models, show a model card, or download a model now."

DESCRIPTION = """\
Pretrained models are used by name: StarDist2DHier.from_pretrained(NAME) in Python,
stardist-hier predict --model NAME on the command line. A model ships inside the package
(no network needed) or is downloaded on first use, checked against its SHA-256, into the
model cache ($STARDIST_HIER_MODEL_CACHE, default ~/.keras/models/StarDist2DHier).
"""


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="registered models, their licence, pixel size and whether they are on this machine")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="model cache (default $STARDIST_HIER_MODEL_CACHE "
                                                                 "or ~/.keras/models/StarDist2DHier)")
    p = sub.add_parser("show", help="a model's registry entry and model card")
    p.add_argument("name", help="registered name (see 'models list')")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="model cache")
    p = sub.add_parser("fetch", help="download a model registered by URL now; print its folder")
    p.add_argument("name", help="registered name (see 'models list')")
    p.add_argument("--cache-dir", type=Path, metavar="DIR", help="model cache")


def _list(args) -> int:
    from ..models.pretrained import describe_models, list_models

    if args.json:
        print(json.dumps(list_models(cache_dir=args.cache_dir), indent=2, ensure_ascii=False))
    else:
        print(describe_models(cache_dir=args.cache_dir))
    return 0


def _show(args) -> int:
    from ..models.pretrained import cached_folder, get_model_details, model_card

    e = get_model_details(args.name)
    folder = cached_folder(e, cache_dir=args.cache_dir)
    print(f"{e.name}: {e.description}")
    if e.aliases:
        print(f"  aliases:  {', '.join(e.aliases)}")
    print(f"  licence:  {e.license}")
    if e.mpp:
        print(f"  pixel size: {e.mpp:g} µm/px")
    print(f"  source:   {'shipped with the package' if e.shipped else f'{e.url} (sha256 {e.sha256})'}")
    if folder is None:
        folder = ("missing from this installation (reinstall stardist-hier)" if e.shipped
                  else f"not downloaded yet (stardist-hier models fetch {e.name})")
    print(f"  folder:   {folder}")
    if e.docs:
        print(f"  evaluation: {e.docs}")
    card = model_card(e.name, cache_dir=args.cache_dir)
    if card is not None:
        print()
        print(card.rstrip())
    return 0


def _fetch(args) -> int:
    from ..models.pretrained import get_model_folder

    folder = get_model_folder(args.name, cache_dir=args.cache_dir, log=lambda s: print(s, file=sys.stderr))
    print(f"stardist-hier models: {args.name} is in {folder}/")
    return 0


def run(args) -> int:
    """Bad input ends as a :class:`~stardist_hier.errors.UserError` (one line, exit code 2, by the CLI)."""
    return {"list": _list, "show": _show, "fetch": _fetch}[args.action](args)
