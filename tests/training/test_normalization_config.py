"""The experiment runner normalises its images with the model's ``hier_normalize`` (issue 17; no training)."""

import copy

import numpy as np
import pytest

from stardist_hier import synthetic
from stardist_hier.normalization import normalize
from stardist_hier.training.experiment import ConfigError, load_config, load_data

CFG = {
    "name": "norm",
    "seed": 0,
    "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8, "net_conv_after_unet": 16,
              "train_patch_size": [64, 64], "train_batch_size": 2},
    "training": {"steps_per_epoch": 2, "tensorboard": False},
    "datasets": {"C": {"source": "synthetic", "generator": "consep", "n_tiles": 4, "size": 96, "seed": 2,
                       "split": {"train": 2, "val": 1, "test": 1}}},
    "episodes": [{"name": "e", "datasets": "C", "epochs": 1}],
    "tests": [{"name": "C", "dataset": "C"}],
    "evaluation": {"overlays": 0},
}


def _images(cfg):
    return [s.image for s in synthetic.generate_dataset("consep", 4, seed=2, size=96, taxonomy=cfg.taxonomy)]


@pytest.mark.parametrize("value", [None, {"kind": "divide", "by": 255}, {"kind": "percentile", "axis": "joint"}])
def test_training_and_test_images_use_the_models_normalisation(value):
    raw = copy.deepcopy(CFG)
    if value is not None:
        raw["model"]["hier_normalize"] = value
    cfg = load_config(raw)
    data, tests = load_data(cfg, verbose=0)
    images = _images(cfg)
    for x, img in zip(data.X + data.val["C"].X + tests["C"].X, images):
        np.testing.assert_array_equal(x, normalize(img, value))
    if value == {"kind": "divide", "by": 255}:
        np.testing.assert_array_equal(data.X[0], images[0].astype(np.float32) / np.float32(255))


def test_bad_normalisation_names_the_key():
    raw = copy.deepcopy(CFG)
    raw["model"]["hier_normalize"] = {"kind": "percentile", "pmax": 101}
    with pytest.raises(ConfigError, match="model: hier_normalize: pmax must be a percentile between 0 and 100"):
        load_config(raw)
