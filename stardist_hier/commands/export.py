"""``stardist-hier export``: a model folder as a plain StarDist2D folder, a SavedModel or a QuPath zip."""

from __future__ import annotations

HELP = "export a model folder to a plain StarDist2D folder, a TensorFlow SavedModel or a QuPath zip"
DESCRIPTION = """\
Export a stardist-hier model folder.

  --to stardist    a StarDist2D model folder (config.json without stardist-hier's keys, the
                   same weights, thresholds.json) plus classes.json naming every class index;
                   opens with stardist.models.StarDist2D, stardist-predict2d and napari-stardist
  --to savedmodel  a TensorFlow SavedModel folder (Keras 3 Model.export; outputs prob, dist,
                   class probabilities) plus classes.json and thresholds.json
  --to qupath      a .zip in StarDist's export_TF layout with one output (prob, rays, classes)
                   for QuPath's StarDist extension (unzip it there; not for Fiji)

Every export also holds normalization.json (the model's input normalisation,
hier_normalize) and a README.md with the exact settings for Python, stardist-predict2d,
napari-stardist or QuPath: StarDist's tools read no normalisation from a model folder.

--out is written atomically and an existing --out is refused unless --force is given;
--force replaces an earlier export only, never a model folder (nor the exported one).
"""


def add_arguments(parser):
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="the stardist-hier model folder")
    parser.add_argument("--to", choices=("stardist", "savedmodel", "qupath"), required=True)
    parser.add_argument("--out", required=True, metavar="PATH", help="the new folder (or .zip for --to qupath)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing --out that is an earlier export (never a model folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show StarDist's and Keras's own output")


def run(args) -> int:
    from pathlib import Path

    from ..console import import_tensorflow, quiet_stardist
    from ..errors import InputError

    out = Path(args.out)
    model_dir = Path(args.model_dir).resolve()
    if out.resolve() == model_dir or out.resolve() in model_dir.parents:
        raise InputError(f"--out {out} {'is' if out.resolve() == model_dir else 'holds'} the model folder "
                         f"{args.model_dir}; an export never replaces a model folder: choose another --out")
    if out.exists() and not args.force:
        raise InputError(f"--out {out} exists; pass --force to replace it")
    import_tensorflow()
    from ..models.export import export, load_model

    with quiet_stardist(2 if args.verbose else 1):  # StarDist's loading chatter, unless -v
        model = load_model(args.model_dir)
        path = export(model, out, to=args.to, force=args.force)
    tree = model.tree
    classes = f"{tree.n_classes} classes" if tree is not None else "no classes"
    print(f"exported {args.model_dir} ({classes}) as {args.to} to {path}")
    return 0
