"""Score pretrained models on real test data, side by side, in one run (docs/MODELS.md).

Every model is scored on the same pixels with its own thresholds (tuned on validation tiles):

* **CoNSeP test split** (14 tiles 1000x1000, HoVer-Net's 4 merged classes, ``consep_merged``):
  binary PQ, DQ, SQ and AJI as HoVer-Net computes them (per tile, then the mean over tiles);
  detection F1 and per-class F1 under HoVer-Net's rule (centroids paired within 12 px;
  ``F_c = 2(TP_c+TN_c) / (2(TP_c+TN_c) + 2FP_c + 2FN_c + FP_d,c + FN_d,c)``,
  :func:`stardist_hier.metrics.detection_f1`); per-class PQ and mPQ+ (CoNIC, pooled);
* **NuCLS test tiles** (5 tiles 256x256) at ``nucls2`` and ``nucls4``: binary PQ, mPQ+, per-label PQ;
* **MoNuSeg** (one 1000x1000 tile, nuclei only): binary PQ and AJI (HoVer-Net's way);
* **time** per 1000x1000 CoNSeP tile (``predict_instances``, median over the test tiles, after one
  warm-up call), models interleaved tile by tile.

A model is ``NAME=SPEC`` where SPEC is a registered pretrained name, a ``StarDist2DHier`` folder, or
``stardist:FOLDER`` for a plain multi-class ``StarDist2D`` trained on CoNSeP's 4 merged classes
(class ids 1..4 = other, inflammatory, epithelial, spindle; scored on CoNSeP and, for nuclei only,
on NuCLS and MoNuSeg).

    python benchmarks/pretrained_eval.py he_consep_nucls=he_consep_nucls \\
        he_consep_only=runs/he_consep_only/model stardist_consep=stardist:runs/stardist_consep/stardist_consep \\
        --json docs/models/he_consep_nucls_eval.json --overlays docs/models/he_consep_nucls

Prints one Markdown table per test set; ``--json`` keeps every number, per tile too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONSEP4 = ("other", "inflammatory", "epithelial", "spindle")


# ------------------------------------------------------------------ models
class Scored:
    """One model behind one interface: ``predict(x) -> (labels, {id: leaf probs} or {id: class})``."""

    def __init__(self, name, spec):
        self.name, self.spec = name, spec
        if spec.startswith("stardist:"):
            from stardist.models import StarDist2D

            folder = Path(spec.split(":", 1)[1])
            self.model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
            self.hier = False
        else:
            from stardist_hier import StarDist2DHier

            p = Path(spec)
            self.model = (StarDist2DHier(None, name=p.name, basedir=str(p.parent)) if p.is_dir()
                          else StarDist2DHier.from_pretrained(spec))
            self.hier = True

    def predict(self, x):
        """Instances of a normalised image: labels and per-instance leaf probabilities (hier) or class names."""
        labels, res = self.model.predict_instances(x)
        ids = np.arange(1, len(res["points"]) + 1)
        if self.hier:
            return labels, {int(i): p for i, p in zip(ids, np.asarray(res["class_prob"]))}
        return labels, {int(i): CONSEP4[int(c) - 1] if int(c) >= 1 else None for i, c in zip(ids, res["class_id"])}

    def classes_at(self, probs, label_set):
        """``{id: label of label_set}`` (hier: summed leaf probabilities; plain: its CoNSeP class if the set is consep4)."""
        from stardist_hier.metrics.cut import collapse_predictions

        if self.hier:
            return collapse_predictions(probs, label_set)
        return dict(probs) if label_set.name == "consep4" else None


# ------------------------------------------------------------------ data
def load(data: Path):
    from stardist_hier.datasets import open_dataset
    from stardist_hier.training.data import normalize_image

    def tiles(name, path, **kw):
        return [(s.meta["name"], normalize_image(s.image), s) for s in open_dataset(name, path, **kw)]

    return {"consep": tiles("consep_merged", data / "consep", split="test"),
            "nucls2": tiles("nucls", data / "nucls", split="test", label_set="nucls2"),
            "nucls4": tiles("nucls", data / "nucls", split="test", label_set="nucls4"),
            "monuseg": tiles("monuseg", data / "monuseg", label_set="root")}


# ------------------------------------------------------------------ scores
def score_consep(m: Scored, tiles, preds, tax) -> dict:
    from stardist_hier.metrics import aji, detection_f1, evaluate_cut, pq_hovernet

    ls = tax["consep4"]
    gt = [s.labels for _, _, s in tiles]
    pred = [p[0] for p in preds]
    hv = pq_hovernet(gt, pred)
    out = {"pq": hv.pq, "dq": hv.dq, "sq": hv.sq, "aji": float(np.mean([aji(g, p) for g, p in zip(gt, pred)])),
           "per_tile_pq": [r.pq for r in hv.per_image]}
    gcls = [dict(s.classes) for _, _, s in tiles]
    pcls = [m.classes_at(p[1], ls) for p in preds]
    det = detection_f1(gt, pred, gcls, pcls, radius=12.0, classes=list(CONSEP4))
    out.update(f1_d=det.f1, precision_d=det.precision, recall_d=det.recall, accuracy=det.accuracy,
               f1_class=dict(det.per_type))
    if m.hier:
        rep = evaluate_cut(gt, pred, gcls, [p[1] for p in preds], label_set=ls, convention="conic")
    else:
        rep = evaluate_cut(gt, pred, gcls, pcls, label_set=ls, convention="conic")
    out.update(mpq_plus=rep.mpq, pq_class={k: v.pq for k, v in rep.per_class.items()}, bpq_conic=rep.pq)
    return out


def score_cut(m: Scored, tiles, preds, label_set) -> dict:
    from stardist_hier.metrics import evaluate_cut, pq_conic

    gt = [s.labels for _, _, s in tiles]
    pred = [p[0] for p in preds]
    if not m.hier:
        rep = pq_conic(gt, pred)
        return {"pq": rep.pq, "mpq_plus": float("nan"), "pq_class": {}}
    rep = evaluate_cut(gt, pred, [dict(s.classes) for _, _, s in tiles], [p[1] for p in preds],
                       label_set=label_set, convention="conic")
    return {"pq": rep.pq, "mpq_plus": rep.mpq, "pq_class": {k: v.pq for k, v in rep.per_class.items()}}


def score_root(tiles, preds) -> dict:
    from stardist_hier.metrics import aji, pq_hovernet

    gt = [np.clip(s.labels, 0, None) for _, _, s in tiles]
    pred = [p[0] for p in preds]
    hv = pq_hovernet(gt, pred)
    return {"pq": hv.pq, "dq": hv.dq, "sq": hv.sq, "aji": float(np.mean([aji(g, p) for g, p in zip(gt, pred)]))}


# ------------------------------------------------------------------ overlays
def overlays(m: Scored, tiles, preds, tax, folder: Path, *, n=2, crop=400):
    """Ground truth and prediction of the first ``n`` CoNSeP test tiles (a ``crop`` px window), coloured by class."""
    from stardist_hier.plotting import Panel, label_colors, overlay_figure, save_figure

    ls = tax["consep4"]
    colors = label_colors(ls)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (name, x, s), (labels, probs) in list(zip(tiles, preds))[:n]:
        win = (slice(300, 300 + crop), slice(300, 300 + crop))
        pred_cls = m.classes_at(probs, ls)
        fig = overlay_figure([Panel(np.clip(x[win], 0, 1), labels=s.labels[win], classes=dict(s.classes),
                                    title=f"CoNSeP {name}: ground truth"),
                              Panel(np.clip(x[win], 0, 1), labels=labels[win], classes=pred_cls,
                                    title=f"{m.name}: prediction")], colors=colors)
        written.append(save_figure(fig, folder / f"consep_{name}.png", dpi=90))
    return written


# ------------------------------------------------------------------ tables
def _f(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def tables(results: dict) -> str:
    names = list(results)
    lines = ["### CoNSeP test split (14 tiles; PQ/DQ/SQ/AJI per tile then mean, as HoVer-Net; F1 at 12 px)", "",
             "| model | PQ | DQ | SQ | AJI | F1_d | F1 other | F1 inflammatory | F1 epithelial | F1 spindle | "
             "mPQ+ | s / 1000² tile |", "|" + " --- |" * 12]
    for n in names:
        c = results[n]["consep"]
        fc = c["f1_class"]
        lines.append(f"| {n} | {_f(c['pq'])} | {_f(c['dq'])} | {_f(c['sq'])} | {_f(c['aji'])} | {_f(c['f1_d'])} | "
                     + " | ".join(_f(fc.get(k)) for k in CONSEP4)
                     + f" | {_f(c['mpq_plus'])} | {results[n]['seconds_per_tile']:.2f} |")
    lines += ["", "### CoNSeP per-class PQ (CoNIC, pooled over the 14 tiles)", "",
              "| model | " + " | ".join(CONSEP4) + " |", "|" + " --- |" * 5]
    for n in names:
        pc = results[n]["consep"]["pq_class"]
        lines.append(f"| {n} | " + " | ".join(_f(pc.get(k)) for k in CONSEP4) + " |")
    lines += ["", "### NuCLS test tiles (5 tiles; CoNIC PQ, pooled) and MoNuSeg (1 tile, nuclei only)", "",
              "| model | NuCLS PQ | nucls2 mPQ+ | nucls4 mPQ+ | MoNuSeg PQ | MoNuSeg AJI |", "|" + " --- |" * 6]
    for n in names:
        r = results[n]
        lines.append(f"| {n} | {_f(r['nucls2']['pq'])} | {_f(r['nucls2']['mpq_plus'])} | "
                     f"{_f(r['nucls4']['mpq_plus'])} | {_f(r['monuseg']['pq'])} | {_f(r['monuseg']['aji'])} |")
    for ls in ("nucls2", "nucls4"):
        labs = sorted({k for n in names for k in results[n][ls]["pq_class"]})
        if labs:
            lines += ["", f"### NuCLS per-label PQ at {ls}", "", "| model | " + " | ".join(labs) + " |",
                      "|" + " --- |" * (len(labs) + 1)]
            for n in names:
                pc = results[n][ls]["pq_class"]
                lines.append(f"| {n} | " + " | ".join(_f(pc.get(k)) for k in labs) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", metavar="NAME=SPEC")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--overlays", type=Path, help="folder for overlays of the first model")
    p.add_argument("--limit", type=int, help="score only the first N tiles of each set (smoke test)")
    args = p.parse_args(argv)

    from stardist_hier import default_taxonomy

    tax = default_taxonomy()
    models = [Scored(*s.split("=", 1)) for s in args.models]
    data = load(args.data)
    if args.limit:
        data = {k: v[:args.limit] for k, v in data.items()}
    preds = {m.name: {} for m in models}
    times = {m.name: [] for m in models}
    for m in models:  # warm-up (graph building) on one tile, not timed
        m.predict(data["consep"][0][1])
    for k, tiles in data.items():
        if k == "nucls4":  # same pixels as nucls2
            continue
        for _, x, _ in tiles:
            for m in models:  # interleaved: every model sees the same machine load
                t0 = time.perf_counter()
                preds[m.name].setdefault(k, []).append(m.predict(x))
                if k == "consep":
                    times[m.name].append(time.perf_counter() - t0)
    results = {}
    for m in models:
        pr = preds[m.name]
        results[m.name] = {"spec": m.spec, "seconds_per_tile": float(np.median(times[m.name])),
                           "seconds_per_tile_all": times[m.name],
                           "consep": score_consep(m, data["consep"], pr["consep"], tax),
                           "nucls2": score_cut(m, data["nucls2"], pr["nucls2"], tax["nucls2"]),
                           "nucls4": score_cut(m, data["nucls4"], pr["nucls2"], tax["nucls4"]),
                           "monuseg": score_root(data["monuseg"], pr["monuseg"]),
                           "n_tiles": {k: len(v) for k, v in data.items()}}
    print(tables(results))
    if args.overlays:
        for f in overlays(models[0], data["consep"], preds[models[0].name]["consep"], tax, args.overlays):
            print(f"overlay: {f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": "python benchmarks/pretrained_eval.py " + " ".join(args.models),
                                         "results": results}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
