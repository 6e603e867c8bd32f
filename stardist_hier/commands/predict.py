"""``stardist-hier predict``: nuclei and their classes on images, folders and whole-slide images.

A thin layer over :mod:`stardist_hier.predict.pipeline` (prediction) and
:mod:`stardist_hier.predict.writers` (output formats).
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "Predict nuclei and classes on images, folders of images and whole-slide images."

DESCRIPTION = """\
Predict nuclei and their classes on images (PNG, JPEG, TIFF), folders of images and
whole-slide images (.svs, pyramidal .tif/.tiff, .ndpi, .mrxs: whatever OpenSlide reads;
pip install 'stardist-hier[slides]'; tiffslide is the fallback for TIFF and SVS).

Slides are read at the pyramid level closest to the model's training pixel size
(--mpp, default the model's config hier_mpp) and resampled to it; a slide that does
not state its pixel size needs --input-mpp. Plain images are resampled only when both
their pixel size (TIFF resolution tags or --input-mpp) and the model's are known, and
are otherwise predicted as they are. Blocks of blank glass are skipped (tissue mask
by Otsu's threshold on saturation; --no-tissue-mask turns it off).

Pixels are normalised as the model was trained (hier_normalize in its config.json,
default percentiles 1 to 99.8 per channel): over the whole image for an image, once per
slide from the tissue of a low-resolution level for a slide, never per block.

--label-set NAME reports classes at a dataset's label set; where the leaves that none
of its labels covers hold more probability than any label, the class is "outside label
set" (the outside probability is a column and a measurement of its own). With
--abstain P, a label whose probability given a nucleus is below P becomes "uncertain".

Outputs are named by input stem: OUT/<stem>.geojson, OUT/<stem>.csv, OUT/<stem>.tif and
<stem>.json (labels), OUT/overlay/<stem>.png; each is written under a temporary name and
renamed when complete. Every input and option is checked before anything is written; an
output never replaces an input or lands outside OUT. --resume skips inputs whose outputs
all exist. While predict writes, OUT is locked (a second predict into it is refused), and
OUT/.stardist-hier-predict.json records the model and options the outputs were made with:
a later run into OUT with other options is refused, naming what differs.

With --workers N (a local Dask cluster of N processes) or --scheduler ADDRESS (an
existing Dask cluster: dask-jobqueue, dask-kubernetes), every input is one Dask task
and every worker loads the model once (pip install 'stardist-hier[distributed]').
Options and the output folder are still checked first; an input that fails (a corrupt
slide) is listed with its error in the table printed at the end and the others go on.
Exit code: 0 all inputs done, 1 some failed (rerun with --resume to retry them only),
2 bad arguments. See docs/SCALING.md.
"""

_FORMATS_HINT = "geojson, csv, parquet, labels, overlay"

#: The flag of each prediction option (the library's messages name the parameter, the command line its flag).
FLAGS = {"formats": "--format", "label_sets": "--label-set", "taxonomy": "--taxonomy", "abstain": "--abstain",
         "mpp": "--mpp", "input_mpp": "--input-mpp", "tissue_mask": "--no-tissue-mask", "block_size": "--block-size",
         "min_overlap": "--min-overlap", "context": "--context", "n_tiles": "--n-tiles",
         "prob_thresh": "--prob-thresh", "nms_thresh": "--nms-thresh", "backend": "--backend"}


def add_arguments(parser) -> None:
    from ..predict.pipeline import DEFAULT_BLOCK_SIZE, DEFAULT_MIN_OVERLAP
    from ._args import block_size, non_negative_int, open_unit_interval, pixel_size, positive_int, unit_interval

    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="image, slide or folder of images/slides")
    parser.add_argument("--model", required=True, metavar="DIR|NAME",
                        help="model folder, or the name of a pretrained model (stardist-hier models list); "
                             "a folder wins over a name")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--format", nargs="+", default=["geojson"], metavar="FMT",
                        help=f"output formats, several at once ({_FORMATS_HINT}; default geojson); "
                             "labels: images only")
    parser.add_argument("--label-set", action="append", default=None, metavar="NAME",
                        help="also report classes at this label set (repeatable; default the tree's leaves); "
                             "'outside label set' where leaves it does not cover win")
    parser.add_argument("--taxonomy", type=Path, metavar="FILE",
                        help="taxonomy file (JSON/YAML) holding the label sets; default the built-in one")
    parser.add_argument("--abstain", type=unit_interval, metavar="P",
                        help="also report the deepest tree node whose probability reaches P (0 < P <= 1), and "
                             "'uncertain' at every label set where the label's probability is below P")
    parser.add_argument("--mpp", type=pixel_size, metavar="UM",
                        help="pixel size the model was trained at, microns per pixel (default the model's hier_mpp)")
    parser.add_argument("--input-mpp", "--slide-mpp", dest="input_mpp", type=pixel_size, metavar="UM",
                        help="pixel size of the inputs' full resolution, overriding their metadata "
                             "(needed for slides that do not state it)")
    parser.add_argument("--no-tissue-mask", dest="tissue_mask", action="store_false",
                        help="predict every block of a slide, glass included")
    parser.add_argument("--block-size", type=block_size, default=DEFAULT_BLOCK_SIZE, metavar="PX|auto",
                        help="block size at the model's pixel size (default auto: the largest of 512 to 4096 px "
                             "whose memory estimate stays within 3 GiB for this model)")
    parser.add_argument("--min-overlap", type=non_negative_int, default=DEFAULT_MIN_OVERLAP, metavar="PX",
                        help=f"overlap of blocks; must exceed the largest nucleus (default {DEFAULT_MIN_OVERLAP})")
    parser.add_argument("--context", type=non_negative_int, metavar="PX",
                        help="context around blocks, discarded (default the network's receptive field)")
    parser.add_argument("--n-tiles", type=positive_int, nargs=2, metavar=("NY", "NX"),
                        help="split every block into NY x NX tiles for the network (memory)")
    parser.add_argument("--prob-thresh", type=open_unit_interval, metavar="P",
                        help="object probability threshold, in (0, 1) (default the model's)")
    parser.add_argument("--nms-thresh", type=open_unit_interval, metavar="T",
                        help="non-maximum suppression overlap threshold, in (0, 1) (default the model's)")
    parser.add_argument("--backend", choices=("openslide", "tiffslide"),
                        help="slide reader (default OpenSlide, tiffslide when OpenSlide is missing)")
    parser.add_argument("--resume", action="store_true", help="skip inputs whose outputs all exist")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show StarDist's own status lines")
    parser.add_argument("--workers", type=positive_int, metavar="N",
                        help="run on Dask: start a local cluster of N worker processes, one input per task "
                             "(pip install 'stardist-hier[distributed]'); exit code 1 when some inputs failed")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on the existing Dask cluster at ADDRESS (e.g. tcp://HOST:8786; "
                             "dask-jobqueue, dask-kubernetes) instead of --workers")


def run(args) -> int:
    from ..console import import_tensorflow, quiet_stardist
    from ..errors import ParameterError
    from ..models.pretrained import resolve_model
    from ..predict import PredictOptions, predict_to_folder

    args.model = resolve_model(args.model, what="--model")  # a folder, or a registered name (fetched if need be)
    try:
        options = PredictOptions(
            formats=args.format, label_sets=args.label_set, taxonomy=args.taxonomy, abstain=args.abstain,
            mpp=args.mpp, input_mpp=args.input_mpp, tissue_mask=args.tissue_mask, block_size=args.block_size,
            min_overlap=args.min_overlap, context=args.context, n_tiles=args.n_tiles, prob_thresh=args.prob_thresh,
            nms_thresh=args.nms_thresh, backend=args.backend)
        import_tensorflow()  # TensorFlow's start-up notices held back
        if args.workers is not None or args.scheduler is not None:
            return _run_distributed(args, options)
        with quiet_stardist(2 if args.verbose else 1):  # StarDist's status prints unless -v
            summary = predict_to_folder(args.inputs, model=args.model, out=args.out, options=options,
                                        resume=args.resume, progress=not args.quiet)  # a bar on a terminal
    except ParameterError as e:
        raise e.renamed(FLAGS) from None
    print(summary.line())
    return 0


def _run_distributed(args, options) -> int:
    """On Dask (stardist_hier.predict.distributed): per-input table, exit code 1 when some inputs failed."""
    from ..predict.distributed import predict_distributed

    summary = predict_distributed(
        args.inputs, model=args.model, out=args.out, workers=args.workers, scheduler=args.scheduler,
        options=options, resume=args.resume, progress=not args.quiet, log=lambda s: print(s, file=sys.stderr))
    print(summary.table())
    print(summary.line())
    return 1 if summary.n_failed else 0
