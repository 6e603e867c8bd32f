"""Slide readers, the lazy resampled view and the tissue mask (no TensorFlow)."""

import sys

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.slides import (ArrayReader, OpenSlideReader, SlideArray, SyntheticSlide, TiffSlideReader,
                                  open_input, open_slide, tissue_mask, write_pyramid_tiff)

H, W = 600, 520


def _half_glass(rows, cols):
    return cols < W / 2


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    """A 3-level pyramidal tiled TIFF at 0.25 um/px, right half blank glass."""
    synth = SyntheticSlide((H, W), seed=5, tissue=_half_glass)
    path = tmp_path_factory.mktemp("slides") / "half.tif"
    write_pyramid_tiff(path, synth, mpp=0.25, downsamples=(1, 2, 4), tile=128)
    return path, synth.region(0, 0, H, W)


@pytest.mark.parametrize("cls", [OpenSlideReader, TiffSlideReader])
def test_pyramid_tiff_levels_mpp_and_pixels(slide_file, cls):
    path, full = slide_file
    with cls(path) as r:
        assert r.level_shapes == ((H, W), (H // 2, W // 2), (H // 4, W // 4))
        assert r.level_downsamples == pytest.approx((1, 2, 4))
        assert r.mpp == pytest.approx(0.25)
        assert r.channels == 3 and r.is_slide
        np.testing.assert_array_equal(r.read(0, 100, 37, 50, 61), full[100:150, 37:98])
        lvl1 = r.read(1, 0, 0, H // 2, W // 2)
        expect = np.rint(full.astype(np.float32).reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3)))
        np.testing.assert_array_equal(lvl1, expect.astype(np.uint8))


def test_open_input_picks_slide_or_image(slide_file, tmp_path):
    from PIL import Image
    import tifffile

    path, full = slide_file
    with open_input(path) as r:
        assert r.is_slide
    Image.fromarray(full[:64, :64]).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "b.tif", full[:64, :64], resolution=(1e4 / 0.5, 1e4 / 0.5),
                     resolutionunit="CENTIMETER")
    a, b = open_input(tmp_path / "a.png"), open_input(tmp_path / "b.tif")
    assert isinstance(a, ArrayReader) and isinstance(b, ArrayReader) and not a.is_slide
    assert a.mpp is None and b.mpp == pytest.approx(0.5)
    np.testing.assert_array_equal(b.read(0, 0, 0, 64, 64), full[:64, :64])
    (tmp_path / "c.bmp").write_bytes(b"x")
    with pytest.raises(InputError, match="c.bmp"):
        open_input(tmp_path / "c.bmp")


def test_tiffslide_fallback_and_missing_openslide(slide_file, tmp_path, monkeypatch):
    path, _ = slide_file
    monkeypatch.setitem(sys.modules, "openslide", None)  # import openslide -> ImportError
    with open_slide(path) as r:
        assert isinstance(r, TiffSlideReader)
    (tmp_path / "x.ndpi").write_bytes(b"not a slide")
    with pytest.raises(InputError, match=r"stardist-hier\[slides\]"):
        open_slide(tmp_path / "x.ndpi")


def test_truncated_slide_is_an_input_error(slide_file, tmp_path):
    path, _ = slide_file
    data = path.read_bytes()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.tif"):
        r = open_input(bad)
        r.probe()


@pytest.mark.parametrize("downsample", [1.0, 1.5, 2.0, 3.3, 0.75])
def test_slide_array_regions_equal_cut_of_full_read(slide_file, downsample):
    path, full = slide_file
    with OpenSlideReader(path) as r:
        a = SlideArray(r, downsample=downsample)
        assert a.scale == pytest.approx(downsample)
        whole = np.asarray(a)
        assert whole.shape == a.shape and whole.dtype == np.float32
        for t, l, h, w in [(0, 0, 17, 23), (31, 45, 64, 40), (a.shape[0] - 9, a.shape[1] - 11, 9, 11)]:
            np.testing.assert_array_equal(a[t:t + h, l:l + w], whole[t:t + h, l:l + w])
        if downsample == 2.0:
            assert a.level == 1 and a.factor == 1.0
        if downsample == 3.3:
            assert a.level == 1 and a.factor == pytest.approx(1.65)
    # resampling keeps the mean colour (area averaging)
    if downsample > 1:
        assert abs(whole.mean() * 255 - full.astype(np.float64).mean()) < 3


def test_tissue_mask_finds_the_tissue_half(slide_file):
    path, _ = slide_file
    with OpenSlideReader(path) as r:
        m = tissue_mask(r, dilate=0)
        assert m.scale == pytest.approx((4, 4))
        h, w = m.mask.shape
        assert m.mask[:, : w // 2 - 2].mean() > 0.95
        assert not m.mask[:, w // 2 + 2:].any()
        assert m.any_in(0, 0, 10, 10) and not m.any_in(0, W - 100, H, W)


def test_blank_slide_has_no_tissue():
    r = ArrayReader(np.full((64, 64, 3), 240, np.uint8), is_slide=True)
    assert not tissue_mask(r).mask.any()
