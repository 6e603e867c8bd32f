"""Spread of the trained-model test's accuracy over seeds and TensorFlow's CPU code paths.

Trains the tiny model of ``tests/models/test_model2d.py`` (two label sets, 250 steps) and
prints the PanNuke accuracy on its two validation images, as one JSON line. Used to set
the test's settings and margin (see the comment above ``TRAINED_SETTINGS`` there)::

    for s in 0 1 2 3; do for o in 0 1; do
      KSEED=$s TSEED=0 TF_ENABLE_ONEDNN_OPTS=$o CFG='{"unet_n_filter_base": 16, "net_conv_after_unet": 32}' \
        python benchmarks/seed_spread.py $s 3e-3 25 8
    done; done

Arguments: seed, learning rate, epochs (of 10 steps), images per label set. ``KSEED``:
weight-initialisation seed, ``TSEED``: patch-sampling seed, ``CFG``: config overrides (JSON).
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
from conftest import TAX, _make_images, _tiny_config  # noqa: E402

import keras  # noqa: E402

from stardist_hier import StarDist2DHier  # noqa: E402

seed, lr, epochs, nimg = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
PANNUKE, CONSEP4 = TAX["pannuke"], TAX["consep4"]
rng = np.random.default_rng(7)
Xa, Ya, Ca, La = _make_images(rng, nimg, PANNUKE)
Xb, Yb, Cb, Lb = _make_images(rng, nimg, CONSEP4)
keras.utils.set_random_seed(int(os.environ.get("KSEED", seed)))
m = StarDist2DHier(_tiny_config(train_learning_rate=lr, **json.loads(os.environ.get("CFG","{}"))), name=None, basedir=None)
ntr = nimg - 2
t = time.time()
h = m.train(Xa[:ntr] + Xb[:ntr], Ya[:ntr] + Yb[:ntr], validation_data=(Xa[ntr:] + Xb[ntr:], Ya[ntr:] + Yb[ntr:], Ca[ntr:] + Cb[ntr:], [PANNUKE] * 2 + [CONSEP4] * 2),
            classes=Ca[:ntr] + Cb[:ntr], label_sets=[PANNUKE] * ntr + [CONSEP4] * ntr, epochs=epochs, steps_per_epoch=10, seed=int(os.environ.get("TSEED", seed)), verbose=0)
m.thresholds = dict(prob=0.4, nms=0.3)
hits = []
for k in (ntr, ntr + 1):
    labels, res = m.predict_instances(Xa[k], label_sets=[PANNUKE])
    gt = Ya[k]
    for i, lab in enumerate(res["labels"]["pannuke"], start=1):
        ids, counts = np.unique(gt[labels == i], return_counts=True)
        if ids[np.argmax(counts)] > 0:
            hits.append(lab == Ca[k][ids[np.argmax(counts)]])
print(json.dumps(dict(seed=seed, lr=lr, onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS"), acc=float(np.mean(hits)), n=len(hits),
      cls=[round(x, 3) for x in h.history["prob_class_loss"][::5]], t=round(time.time()-t))))
