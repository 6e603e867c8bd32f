"""``stardist_hier.normalization``: the one input normalisation of training and prediction (no TensorFlow)."""

import subprocess
import sys

import numpy as np
import pytest
from csbdeep.utils import normalize as csbdeep_normalize

from stardist_hier.errors import InputError
from stardist_hier.normalization import DEFAULT, KEY, LEGACY, Levels, Normalization, legacy_message, normalize
from stardist_hier.slides import ArrayReader, SlideArray


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    img = rng.integers(30, 230, (64, 72, 3)).astype(np.uint8)
    img[..., 2] //= 2  # channels with different ranges
    return img


def test_default_is_csbdeep_per_channel_percentiles_bit_for_bit(rgb):
    assert Normalization.from_config(None).to_config() == DEFAULT == LEGACY
    np.testing.assert_array_equal(normalize(rgb), csbdeep_normalize(rgb, 1, 99.8, axis=(0, 1)))
    joint = {"kind": "percentile", "axis": "joint"}
    np.testing.assert_array_equal(normalize(rgb, joint), csbdeep_normalize(rgb, 1, 99.8, axis=None))
    assert not np.array_equal(normalize(rgb), normalize(rgb, joint))
    grey = rgb[..., 0].astype(np.float32) * 3.7
    np.testing.assert_array_equal(normalize(grey), csbdeep_normalize(grey, 1, 99.8))
    np.testing.assert_array_equal(normalize(rgb, {"kind": "divide", "by": 255}),
                                  rgb.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(normalize(rgb, {"kind": "none"}), rgb.astype(np.float32))
    assert normalize(rgb).dtype == np.float32


def test_fit_on_a_mask_and_apply_to_regions(rgb):
    n = Normalization()
    mask = np.zeros(rgb.shape[:2], bool)
    mask[10:30, 5:50] = True
    lv = n.fit(rgb, mask=mask)
    np.testing.assert_allclose(lv.lo, np.percentile(rgb[10:30, 5:50], 1, axis=(0, 1)))
    np.testing.assert_allclose(lv.hi, np.percentile(rgb[10:30, 5:50], 99.8, axis=(0, 1)))
    assert n.fit(rgb, mask=np.zeros_like(mask)) == n.fit(rgb)  # no tissue: every pixel
    # fitted once, applied to any region: the region of the whole equals the whole's region
    whole = lv.apply(rgb)
    np.testing.assert_array_equal(lv.apply(rgb[5:20, 7:31]), whole[5:20, 7:31])
    with pytest.raises(ValueError, match="3 channels"):
        lv.apply(rgb[..., 0])
    # the lazy slide array applies the levels it is given (default: / 255)
    arr = SlideArray(ArrayReader(rgb), levels=lv)
    np.testing.assert_array_equal(arr[3:40, 2:50], whole[3:40, 2:50])
    np.testing.assert_array_equal(SlideArray(ArrayReader(rgb))[:, :], rgb.astype(np.float32) / np.float32(255))
    assert isinstance(lv, Levels)


@pytest.mark.parametrize("value, message", [
    ({"kind": "zscore"}, "kind must be one of percentile, divide, none"),
    ({"kind": "percentile", "pmin": 5, "pmax": 5}, "pmin .* must be below pmax"),
    ({"kind": "percentile", "pmax": 100.5}, "pmax must be a percentile between 0 and 100"),
    ({"kind": "percentile", "pmin": True}, "pmin must be a percentile"),
    ({"kind": "percentile", "axis": "channels"}, "axis must be one of per-channel, joint"),
    ({"kind": "divide", "by": -1}, "by must be a positive number"),
    ({"kind": "none", "by": 1}, "unknown key 'by' for kind 'none'"),
    ({"pmin": 1}, "kind must be one of"),
    ("percentile", "must be a mapping"),
])
def test_bad_values_name_the_key(value, message):
    with pytest.raises(InputError, match=f"^model.json: {KEY}: .*{message}"):
        Normalization.from_config(value, where=f"model.json: {KEY}")


def test_words_for_people_and_tools():
    n = Normalization()
    assert n.describe() == "percentiles 1 to 99.8 mapped to 0 and 1, each channel on its own"
    assert n.python().endswith("normalize(img, 1, 99.8, axis=(0, 1))")
    lines = [g for _, g in n.qupath()]
    assert ".normalizePercentiles(1, 99.8, true, 0.0)" in lines
    assert any(g.startswith(".preprocessGlobal(") and ".perChannel(true)" in g for g in lines)
    assert Normalization.from_config({"kind": "divide"}).qupath()[0][1] == f".inputScale({1 / 255!r})"
    msg = legacy_message("m/config.json")
    assert "\n" not in msg and msg.startswith("m/config.json has no 'hier_normalize'")


def test_import_does_not_load_tensorflow():
    code = "import sys, stardist_hier.normalization; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
