"""How often are the labels that ``stardist-hier harmonise`` infers right? (docs/RESULTS.md, "Harmonised labels")

A harmonised label is *inferred* where the target label set splits the given label: the
model's most probable target label among those compatible with the given one (leaf
probabilities averaged over the ground-truth nucleus, :func:`restricted_argmax`). It is
scored against the true label at the target set, next to two baselines on the same nuclei:

* **unconstrained**: the model's most probable target label, ignoring the given label
  (summed leaf probabilities, :func:`stardist_hier.classify.label_decisions`);
* **prior**: the label-frequency prior, no image: the target label most frequent among the
  *training* nuclei of the same dataset with the same given label (true labels at the
  target set). It is the best any image-blind rule can do with the class mix known.

Two studies, each printed as Markdown:

``synthetic``
    PanNuke-, MoNuSAC- and CoNSeP-like synthetic tiles (true leaf of every nucleus known,
    ``meta["leaves"]``). A small model is trained briefly on their training tiles, each at
    its own label set (the experiment runner; skipped when ``--model`` is given or
    ``OUT/model`` exists). On the test tiles every nucleus with a given label is read at
    every label set of the default taxonomy that splits it (and at ``leaves``), and scored
    where its true leaf has a label there::

        python benchmarks/harmonise_quality.py synthetic --out runs/harmonise_synthetic

``real``
    NuCLS tiles carry the same nuclei at ``nucls2`` (Tumor / Non-Tumor) and ``nucls4``.
    ``nucls4`` is inferred from ``nucls2`` with a model that never saw nucls4 labels and
    scored against the real ``nucls4`` labels: accuracy, per-class F1 and the confusion
    matrix, over the inferred nuclei (given Non-Tumor) and over all nuclei (Tumor ->
    tumor_any is coarsened, exact by the tree); the prior counts the train split::

        python benchmarks/harmonise_quality.py real --model runs/he_consep_nucls/model \\
            --data ../shared/data/nucls --split test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
METHODS = ("constrained", "unconstrained", "prior")


# ------------------------------------------------------------------ shared
def _load(folder):
    from stardist_hier.console import import_tensorflow, quiet_stardist
    from stardist_hier.predict.pipeline import load_model

    import_tensorflow()
    with quiet_stardist():
        return load_model(folder)


def _prior(pairs):
    """``{(given label, target label set): {target label: count}}`` from (given, target set, true label) triples."""
    out = defaultdict(Counter)
    for given, tname, truth in pairs:
        if truth is not None:
            out[(given, tname)][truth] += 1
    return out


def _prior_label(prior, given, target, candidates):
    """The most frequent candidate (ties and unseen: the first candidate in the target's order)."""
    c = prior.get((given, target.name), Counter())
    return max(candidates, key=lambda t: (c.get(t, 0), -target.labels.index(t)))


def _pct(k, n):
    return "n/a" if n == 0 else f"{100.0 * k / n:.1f}"


# ------------------------------------------------------------------ (a) synthetic
SYNTH = {"pannuke": 7, "monusac": 8, "consep": 9}  # generator -> seed


def _synthetic_config(args) -> dict:
    n = args.train + args.val + args.test
    return {
        "name": "harmonise_synthetic", "seed": args.seed, "taxonomy": "default",
        "model": {"n_rays": 16, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 16,
                  "net_conv_after_unet": 32, "train_patch_size": [args.size, args.size], "train_batch_size": 4,
                  "train_learning_rate": 0.003, "train_reduce_lr": None},
        "training": {"steps_per_epoch": args.steps, "tensorboard": False, "augment": False, "oversample": False},
        "datasets": {g: {"source": "synthetic", "generator": g, "n_tiles": n, "size": args.size, "seed": s,
                         "split": {"train": args.train, "val": args.val, "test": args.test}}
                     for g, s in SYNTH.items()},
        "episodes": [{"name": "all", "datasets": {g: 1 for g in SYNTH}, "epochs": args.epochs}],
        "tests": [{"name": g, "dataset": g} for g in SYNTH],
        "evaluation": {"convention": "conic", "overlays": 0},
    }


def synthetic(args) -> int:
    from stardist_hier import default_taxonomy
    from stardist_hier.classify import label_decisions
    from stardist_hier.datasets.harmonise import (instance_leaf_probabilities, instance_measurements,
                                                  restricted_argmax, translate)
    from stardist_hier.synthetic import generate_dataset
    from stardist_hier.tree import LabelSet

    tax = default_taxonomy()
    t0 = time.time()
    model_dir = Path(args.model) if args.model else Path(args.out) / "model"
    if not args.model and not (model_dir / "config.json").is_file():
        from stardist_hier.training.experiment import run_experiment

        import contextlib

        with contextlib.redirect_stdout(sys.stderr):  # the training log; stdout is the table
            run_experiment(_synthetic_config(args), Path(args.out), verbose=1)
    t_train = time.time() - t0
    model = _load(model_dir)
    # every label set that can split something, once (conic = lizard; the root-only sets never split)
    targets = [tax[n] for n in ("pannuke", "monusac", "consep", "consep4", "lizard", "nucls2", "nucls4")]
    targets.append(LabelSet.leaves_of(tax.tree))
    n = args.train + args.val + args.test
    train_pairs, scores = [], defaultdict(lambda: {"n": 0, "outside": 0, **{m: 0 for m in METHODS}})
    tiles = {g: generate_dataset(g, n, seed=s, size=args.size, taxonomy=tax) for g, s in SYNTH.items()}

    def truth_at(target, leaf):
        return next((lab for lab in target.labels if leaf in target.leaf_set(lab)), None)

    for g, samples in tiles.items():
        for s in samples[:args.train]:
            for iid, leaf in s.meta["leaves"].items():
                given = s.classes.get(int(iid))
                for t in targets:
                    train_pairs.append(((g, given), t.name, truth_at(t, leaf)))
    prior = _prior(train_pairs)
    for g, samples in tiles.items():
        src = tax[g]
        for s in samples[args.train + args.val:]:
            ids = instance_measurements(s.labels)["id"]
            lp = instance_leaf_probabilities(model, s.image, s.labels, mpp=s.meta.get("mpp"))
            for i, iid in enumerate(ids.tolist()):
                given = s.classes.get(int(iid))
                leaf = s.meta["leaves"][int(iid)]
                for t in targets:
                    tr = translate(given, src, t)
                    if tr.kind != "split":
                        continue
                    row = scores[t.name]
                    truth = truth_at(t, leaf)
                    if truth is None:  # the true leaf has no label at this set: nothing can be right
                        row["outside"] += 1
                        continue
                    row["n"] += 1
                    row["constrained"] += restricted_argmax(lp[i], tr.leaves, t)[0] == truth
                    row["unconstrained"] += label_decisions(lp[i][None], t)[0][0] == truth
                    row["prior"] += _prior_label(prior, (g, given), t, tr.candidates) == truth
    lines = [f"Synthetic: {args.test} test tiles {args.size}x{args.size} per dataset (PanNuke-, MoNuSAC-, "
             f"CoNSeP-like), model trained {args.epochs} epochs x {args.steps} steps on {args.train} tiles per "
             f"dataset ({t_train:.0f} s); accuracy (%) of the inferred labels, i.e. the nuclei whose given label "
             f"the target label set splits and whose true leaf has a label there (n); 'outside': such nuclei "
             f"whose true leaf has no label at the target set (not scored).", "",
             "| target label set | n | constrained | unconstrained argmax | label-frequency prior | outside |",
             "|---|---|---|---|---|---|"]
    tot = Counter()
    for t in targets:
        r = scores.get(t.name)
        if not r or r["n"] + r["outside"] == 0:
            continue
        tot.update(r)
        lines.append(f"| {t.name} | {r['n']} | " + " | ".join(_pct(r[m], r["n"]) for m in METHODS) +
                     f" | {r['outside']} |")
    lines.append("| **all** | " + f"{tot['n']} | " + " | ".join(_pct(tot[m], tot["n"]) for m in METHODS) +
                 f" | {tot['outside']} |")
    print("\n".join(lines))
    print(f"\n(total {time.time() - t0:.0f} s)", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ (b) real: NuCLS nucls2 -> nucls4
def _f1_table(pairs, labels):
    """Per-class F1 and the confusion matrix (rows truth, columns prediction)."""
    idx = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), np.int64)
    for truth, pred in pairs:
        cm[idx[truth], idx[pred]] += 1
    f1 = {}
    for i, lab in enumerate(labels):
        tp, fp, fn = cm[i, i], cm[:, i].sum() - cm[i, i], cm[i, :].sum() - cm[i, i]
        f1[lab] = float("nan") if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    return f1, cm


def real(args) -> int:
    from stardist_hier import default_taxonomy
    from stardist_hier.classify import label_decisions
    from stardist_hier.datasets import open_dataset
    from stardist_hier.datasets.harmonise import check_model, harmonise, open_source

    tax = default_taxonomy()
    t0 = time.time()
    coarse, fine = tax["nucls2"], tax["nucls4"]
    check_model(args.model, tax)
    model = _load(args.model)
    # the label-frequency prior: nucls4 among the train split's nuclei of each nucls2 label
    c_train = open_dataset("nucls", args.data, label_set="nucls2", split="train")
    f_train = open_dataset("nucls", args.data, label_set="nucls4", split="train")
    pairs = []
    for sc, sf in zip(c_train, f_train):
        pairs += [(sc.classes.get(k), "nucls4", sf.classes.get(k)) for k in sc.classes if sc.classes.get(k)]
    prior = _prior(pairs)
    src = open_source("nucls", args.data, label_set="nucls2", split=args.split)
    res = harmonise([src], ["nucls4"], model=model)
    truth_reader = open_dataset("nucls", args.data, label_set="nucls4", split=args.split)
    truth = {(s.meta["name"], k): v for s in truth_reader for k, v in s.classes.items()}
    # the unconstrained argmax needs the leaf probabilities again (harmonise keeps only its decision)
    from stardist_hier.datasets.harmonise import instance_leaf_probabilities, instance_measurements, translate

    unconstrained = {}
    for s in src.samples:
        ids = instance_measurements(s.labels)["id"]
        lp = instance_leaf_probabilities(model, s.image, s.labels)
        for k, p in zip(ids.tolist(), lp):
            unconstrained[(s.meta["name"], k)] = label_decisions(p[None], fine)[0][0]
    out = defaultdict(list)  # (subset, method) -> [(truth, prediction)]
    n_unknown = Counter()
    for r in res.rows:
        key = (r["image"], r["id"])
        t, given = truth.get(key), r["given_label"]
        if given is None or t is None:
            n_unknown["no nucls2 label" if given is None else "no nucls4 label"] += 1
            continue
        tr = translate(given, coarse, fine)
        preds = {"constrained": r["label_nucls4"], "unconstrained": unconstrained[key],
                 "prior": tr.label if tr.kind in ("given", "coarsened")
                 else _prior_label(prior, given, fine, tr.candidates)}
        subsets = ["all"] + (["inferred"] if r["provenance_nucls4"] == "inferred" else [])
        for sub in subsets:
            for m, p in preds.items():
                out[(sub, m)].append((t, p))
    # how far the two annotations of the same nuclei agree: nucls4 coarsened to nucls2 against the real nucls2
    agree = [(fine.leaf_set(truth[(r["image"], r["id"])]) <= coarse.leaf_set(r["given_label"]))
             for r in res.rows if r["given_label"] and truth.get((r["image"], r["id"]))]
    labels = list(fine.labels)
    subsets = (("inferred", "inferred (given Non-Tumor, which nucls4 splits)"),
               ("all", "all (Tumor -> tumor_any coarsened, Non-Tumor inferred)"))
    lines = [f"NuCLS `{args.split}` split ({len(src.samples)} tiles): nucls4 inferred from nucls2 with model "
             f"`{args.model}`, scored against the real nucls4 labels; prior from the train split. "
             f"Not scored: {dict(n_unknown)}. Annotation agreement: the real nucls4 label coarsened to nucls2 "
             f"equals the real nucls2 label for {sum(agree)} of {len(agree)} nuclei ({_pct(sum(agree), len(agree))}%).",
             "",
             "| nuclei | n | method | accuracy (%) | " + " | ".join(f"F1 {lab}" for lab in labels) + " | macro F1 |",
             "|---" * (len(labels) + 5) + "|"]
    cms = {}
    for sub, what in subsets:
        for m in METHODS:
            pairs_m = out[(sub, m)]
            f1, cms[(sub, m)] = _f1_table(pairs_m, labels)
            acc = sum(a == b for a, b in pairs_m)
            vals = [v for v in f1.values() if not np.isnan(v)]
            lines.append(f"| {what} | {len(pairs_m)} | {m} | {_pct(acc, len(pairs_m))} | " +
                         " | ".join("n/a" if np.isnan(v) else f"{v:.3f}" for v in f1.values()) +
                         f" | {np.mean(vals) if vals else float('nan'):.3f} |")
    short = "/".join(lab.split("_")[0] for lab in labels)
    lines += ["", f"Confusion matrices, all nuclei: row = true nucls4 label, cell = predicted counts ({short})", "",
              "| true | n | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 2) + "|"]
    for i, lab in enumerate(labels):
        lines.append(f"| {lab} | {int(cms[('all', METHODS[0])][i].sum())} | " +
                     " | ".join(" / ".join(str(v) for v in cms[("all", m)][i]) for m in METHODS) + " |")
    print("\n".join(lines))
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="study", required=True)
    p = sub.add_parser("synthetic", help="synthetic tiles, true leaves known; trains a small model first")
    p.add_argument("--out", default="runs/harmonise_synthetic", help="run folder of the small model")
    p.add_argument("--model", help="use this model folder instead of training one")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, default=20, help="steps per epoch")
    p.add_argument("--size", type=int, default=128, help="tile size")
    p.add_argument("--train", type=int, default=24, help="training tiles per dataset")
    p.add_argument("--val", type=int, default=4, help="validation tiles per dataset")
    p.add_argument("--test", type=int, default=12, help="test tiles per dataset")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("real", help="NuCLS: infer nucls4 from nucls2 and score against the real nucls4")
    p.add_argument("--model", required=True, help="a StarDist2DHier folder that never saw nucls4 labels")
    p.add_argument("--data", default=str(DATA / "nucls"), help="the NuCLS folder")
    p.add_argument("--split", default="test", choices=("train", "test"))
    args = ap.parse_args(argv)
    return synthetic(args) if args.study == "synthetic" else real(args)


if __name__ == "__main__":
    sys.exit(main())
