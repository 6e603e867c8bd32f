"""Real data: NuCLS tiles with two label sets, with and without MoNuSeg as root-labelled extra data.

Reads the real samples in ``../shared/data`` (never copied into the repository):

* NuCLS train tiles, each used twice: with the 2-class label set (``nucls2``: Tumor /
  Non-Tumor, from the segmentation masks) and with the 4-super-class label set
  (``nucls4``, from the detection points assigned to the instances);
* optionally the MoNuSeg image, every nucleus labelled only with the root ("nucleus").

Tests on the 5 NuCLS test tiles at both label sets: binary PQ, mPQ+ and per-label PQ
(CoNIC convention, pooled over the test tiles). Run from the project root:

    python examples/nucls_monuseg.py [--seeds 0 1] [--epochs 30] [--out runs/nucls]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load():
    from stardist_hier.datasets import MoNuSeg, NuCLS

    if not (DATA / "nucls").is_dir() or not (DATA / "monuseg").is_dir():
        sys.exit(f"real samples not found under {DATA} (expected nucls/ and monuseg/)")
    train = [s for ls in ("nucls2", "nucls4") for s in NuCLS(DATA / "nucls", split="train", label_set=ls)]
    test = {ls: list(NuCLS(DATA / "nucls", split="test", label_set=ls)) for ls in ("nucls2", "nucls4")}
    monuseg = list(MoNuSeg(DATA / "monuseg"))
    return train, test, monuseg


def train_and_test(train, test, *, seed, epochs, steps, taxonomy):
    import keras

    from stardist_hier import Config2DHier, StarDist2DHier
    from stardist_hier.metrics import evaluate_cut

    keras.utils.set_random_seed(seed)
    conf = Config2DHier(tree=taxonomy.tree, n_channel_in=3, n_rays=32, grid=(2, 2), unet_n_depth=3,
                        unet_n_filter_base=16, net_conv_after_unet=64, train_patch_size=(128, 128),
                        train_batch_size=4, train_learning_rate=1e-3, train_tensorboard=False,
                        train_reduce_lr=None)
    model = StarDist2DHier(conf, name=None, basedir=None)
    norm = lambda s: s.image.astype(np.float32) / 255.0  # noqa: E731
    val = test["nucls2"]  # thresholds are tuned on segmentation only; the test reuses them (5 tiles only)
    model.train([norm(s) for s in train], [s.training_labels() for s in train],
                validation_data=([norm(s) for s in val], [s.training_labels() for s in val],
                                 [dict(s.classes) for s in val], taxonomy["nucls2"]),
                classes=[dict(s.classes) for s in train], label_sets=[taxonomy[s.label_set] for s in train],
                epochs=epochs, steps_per_epoch=steps, seed=seed, verbose=0)
    model.optimize_thresholds([norm(s) for s in val], [s.labels for s in val], nms_threshs=[0.3, 0.4],
                              iou_threshs=[0.5], predict_kwargs=dict(show_tile_progress=False), save_to_json=False)
    results = {}
    for ls, samples in test.items():
        preds, probs = [], []
        for s in samples:
            lab, res = model.predict_instances(norm(s), show_tile_progress=False)
            preds.append(lab)
            probs.append(res["class_prob"])
        rep = evaluate_cut([s.labels for s in samples], preds, [dict(s.classes) for s in samples], probs,
                           label_set=taxonomy[ls], convention="conic")
        results[ls] = dict(pq=rep.pq, mpq=rep.mpq, per_class={k: v.pq for k, v in rep.per_class.items()})
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="runs/nucls")
    args = ap.parse_args(argv)
    from stardist_hier import default_taxonomy

    taxonomy = default_taxonomy()
    train, test, monuseg = load()
    print(f"NuCLS train: {len(train)} tile-label-set pairs; MoNuSeg: {len(monuseg)} image "
          f"({sum(len(s.classes) for s in monuseg)} nuclei, root labels)")
    t0 = time.time()
    table = {}
    for name, data in (("NuCLS (2 label sets)", train), ("NuCLS + MoNuSeg (root)", train + monuseg)):
        table[name] = [train_and_test(data, test, seed=s, epochs=args.epochs, steps=args.steps,
                                      taxonomy=taxonomy) for s in args.seeds]
        print(f"{name}: done ({time.time() - t0:.0f} s)")
    lines = []
    for ls in ("nucls2", "nucls4"):
        labels = list(taxonomy[ls].labels)
        head = ["training data", "test label set", "PQ", "mPQ+"] + [f"PQ {lab}" for lab in labels]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, runs in table.items():
            f = lambda vals: f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}"  # noqa: E731
            cells = [name, ls, f([r[ls]["pq"] for r in runs]), f([r[ls]["mpq"] for r in runs])]
            cells += [f([r[ls]["per_class"].get(lab, np.nan) for r in runs]) for lab in labels]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    print()
    print(text)
    print(f"seeds {args.seeds}, {args.epochs} epochs x {args.steps} steps, mean ± std; CoNIC convention on the "
          f"5 NuCLS test tiles ({time.time() - t0:.0f} s)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
