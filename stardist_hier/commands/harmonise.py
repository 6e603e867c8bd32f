"""``stardist-hier harmonise``: every ground-truth nucleus of several datasets at every label set, with provenance.

Examples
--------
::

    stardist-hier harmonise --dataset consep_merged ../shared/data/consep split=test \\
        --dataset nucls ../shared/data/nucls label_set=nucls2 --label-sets nucls4 consep4 pannuke \\
        --model runs/he_consep_nucls/model --export nucls4 --out harmonised/
"""

from __future__ import annotations

HELP = "every ground-truth nucleus of several datasets at every label set (given/coarsened/inferred/unknown)"
DESCRIPTION = """\
Read datasets through the registry readers and write, for every ground-truth nucleus, its
label at every requested label set of the class tree and how it is known:

  given      the dataset's own label set
  coarsened  exact: the given label lies inside one label of the target set
  outside    exact: the target set has no label for the given one (label left empty)
  inferred   the target splits the given label: the model's most probable target label among
             those compatible with the given one (probabilities averaged over the nucleus)
  unknown    no model, or the given label is the root, an ignore label or missing

OUT/nuclei.csv (and .parquet) hold the table; --export LABEL_SET also writes OUT/harmonised,
a copy of all datasets at that label set that the 'folder' reader reads back
(stardist_hier.datasets.harmonise.read_harmonised). OUT must not exist; nothing is written
unless every input checks out.
"""


def add_arguments(parser) -> None:
    from ..datasets.harmonise import TABLE_FORMATS, UNKNOWN_OPTIONS

    parser.add_argument("--dataset", action="append", nargs="+", required=True, metavar="SPEC",
                        help="NAME PATH [label_set=LABEL_SET] [split=SPLIT]: a registry dataset and its folder "
                             "(repeat for every dataset)")
    parser.add_argument("--label-sets", nargs="+", metavar="LABEL_SET",
                        help="target label sets (default: every label set of the taxonomy)")
    parser.add_argument("--model", metavar="DIR|NAME", help="a StarDist2DHier model folder on the taxonomy's tree, "
                                                            "or a registered model name (stardist-hier models list), "
                                                            "for inferred labels")
    parser.add_argument("--taxonomy", metavar="FILE", help="taxonomy YAML/JSON file (default: the built-in one)")
    parser.add_argument("--export", metavar="LABEL_SET", help="also write a harmonised copy at this label set")
    parser.add_argument("--unknown", choices=UNKNOWN_OPTIONS, default="class",
                        help="in the export, nuclei without a label there: an explicit 'unknown' class (default) "
                             "or dropped (their pixels become ignore regions)")
    parser.add_argument("--format", nargs="+", choices=TABLE_FORMATS, default=["csv"], dest="formats",
                        help="table formats (parquet needs pyarrow; default csv)")
    parser.add_argument("--lizard-info", metavar="CSV", help="Lizard's info.csv, to find images that Lizard or "
                                                            "CoNIC share with other datasets")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new output folder")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _source_specs(values) -> list:
    from ..errors import InputError

    out = []
    for v in values:
        if len(v) < 2:
            raise InputError(f"--dataset {' '.join(v)}: expected NAME PATH [label_set=...] [split=...]")
        opts = {}
        for kv in v[2:]:
            key, sep, value = kv.partition("=")
            if not sep or key not in ("label_set", "split") or not value:
                raise InputError(f"--dataset {' '.join(v)}: {kv!r} is not label_set=... or split=...")
            opts[key] = value
        out.append((v[0], v[1], opts))
    return out


def run(args) -> int:
    import time

    from ..console import done
    from ..datasets.harmonise import harmonise, open_source
    from ..models.pretrained import resolve_model
    from ..tree import Taxonomy, default_taxonomy

    t0 = time.time()
    tax = Taxonomy.from_file(args.taxonomy) if args.taxonomy else default_taxonomy()
    sources = [open_source(name, path, taxonomy=tax, **opts) for name, path, opts in _source_specs(args.dataset)]
    model = None if args.model is None else resolve_model(args.model, what="--model")
    res = harmonise(sources, args.label_sets, model=model, taxonomy=tax, out=args.out, formats=args.formats,
                    export=args.export, unknown=args.unknown, info=args.lizard_info, verbose=0 if args.quiet else 1)
    print(res.summary())
    done("harmonise", f"{len(res.rows)} nuclei at {len(res.label_sets)} label sets in "
                      f"{', '.join(str(f) for f in res.files)}", t0=t0)
    return 0
