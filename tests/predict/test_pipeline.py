"""Streaming prediction: equal to StarDist's predict_instances_big, tissue mask, tile borders, resampling."""

import subprocess
import sys

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.predict import Nuclei, PredictStats, plan_prediction, predict_all, predict_nuclei
from stardist_hier.slides import ArrayReader, OpenSlideReader, SyntheticSlide, write_pyramid_tiff

pytestmark = pytest.mark.slow  # trains the tiny model once per session (~40 s on 2 cores)

BLOCK = dict(block_size=160, min_overlap=32, context=24)
H0, W0 = 1024, 896           # level-0 size of the slide (0.25 um/px): 512 x 448 at the model's 0.5 um/px
TISSUE_END = 500             # level-0 column where glass starts


def _tissue(rows, cols):
    return cols < TISSUE_END


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    synth = SyntheticSlide((H0, W0), seed=21, cell=48, radius=(8, 13), tissue=_tissue)
    path = tmp_path_factory.mktemp("slide") / "wsi.tif"
    write_pyramid_tiff(path, synth, mpp=0.25, downsamples=(1, 4, 8), tile=128)
    return path, synth


def _chunks(model, plan):
    return list(predict_nuclei(model, plan))


def test_slide_equals_predict_instances_big_and_mask_skips_glass(tiny_model, slide):
    path, _ = slide
    with OpenSlideReader(path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK)
        assert plan.image.level == 0 and plan.image.scale == pytest.approx(2.0)
        assert plan.image.shape == (H0 // 2, W0 // 2, 3)
        stats = PredictStats()
        chunks = list(predict_nuclei(tiny_model, plan, stats=stats))
        assert stats.n_predicted == len(plan.blocks) and stats.n_skipped == 0 and len(chunks) > 1
        got = Nuclei.concatenate(chunks)
        assert len(got) > 20
        np.testing.assert_array_equal(got.ids, np.arange(1, len(got) + 1))

        # the same pixels, held in memory, through StarDist's own block-wise prediction
        pixels = np.asarray(plan.image)
        _, res = tiny_model.predict_instances_big(pixels, "YXC", labels_out=False, show_progress=False, **BLOCK)
        s, o = plan.image.scale, plan.image.offset
        assert len(res["prob"]) == len(got)
        np.testing.assert_array_equal(got.prob, res["prob"].astype(np.float32))
        np.testing.assert_allclose(got.points, res["points"] * s + o, atol=1e-3)
        np.testing.assert_allclose(got.coord, res["coord"] * s + o, atol=1e-3)
        np.testing.assert_array_equal(got.class_prob, np.asarray(res["class_prob"], np.float32))
        assert got.leaves() == list(res["class_name"])

        # with the tissue mask: blocks over glass are never sent to the network
        masked = plan_prediction(tiny_model, reader, tissue_mask=True, **BLOCK)
        starts = [b.slice_read("YX")[1].start * s for b in masked.blocks]
        expected = sum(x < TISSUE_END for x in starts)
        assert all(abs(x - TISSUE_END) > 16 for x in starts)  # no block at the mask's dilated edge
        assert 0 < expected < len(masked.blocks)
        stats = PredictStats()
        kept = list(predict_nuclei(tiny_model, masked, stats=stats))
        assert stats.n_predicted == expected
        assert stats.n_skipped == len(masked.blocks) - expected
        # the trained model finds nothing on glass: the same nuclei as without the mask
        np.testing.assert_array_equal(Nuclei.concatenate(kept).coord, got.coord)


def test_slide_coordinates_are_level0(tiny_model, slide):
    """Predicted centres (resampled 2x) land on the synthetic nuclei in level-0 pixels."""
    path, synth = slide
    with OpenSlideReader(path) as reader:
        got = predict_all(tiny_model, reader, **BLOCK)
    c = synth.cell
    truth = np.array([(y, x) for y, x, _ in synth._cell_nuclei(0, H0 // c + 1, 0, W0 // c + 1)
                      if x < TISSUE_END - 16 and y < H0 and x < W0])
    d = np.sqrt(((got.points[:, None, :] - truth[None]) ** 2).sum(-1)).min(axis=1)
    assert np.mean(d < 4) > 0.7
    assert got.mpp == pytest.approx(0.25)


def test_nuclei_crossing_block_borders_appear_once(tiny_model):
    synth = SyntheticSlide((400, 400), seed=4, cell=24, radius=(4, 7))
    img = synth.region(0, 0, 400, 400)
    plan = plan_prediction(tiny_model, img, **BLOCK)
    assert len(plan.blocks) >= 9
    got = Nuclei.concatenate(_chunks(tiny_model, plan))
    # no nucleus twice: star centres of distinct nuclei are far apart
    d = np.sqrt(((got.points[:, None] - got.points[None]) ** 2).sum(-1)) + np.eye(len(got)) * 1e9
    assert d.min() > 3
    # the nuclei cut by a border between two blocks' write regions are found, once each
    borders = sorted({b.slice_write("YX")[0].stop for b in plan.blocks} - {400})
    truth = [(y, x, r) for y, x, r in synth._cell_nuclei(0, 400 // 24 + 1, 0, 400 // 24 + 1)
             if y + r < 400 and x + r < 400]
    crossing = [(y, x) for y, x, r in truth if any(abs(y - b) < r - 1 for b in borders)]
    assert len(crossing) >= 10
    hits = [int(np.sum(np.hypot(*(got.points - np.array([y, x])).T) < 4)) for y, x in crossing]
    assert max(hits) == 1 and np.mean(hits) > 0.7


def test_image_plan_validation(tiny_model):
    grey = np.zeros((64, 64), np.uint8)
    with pytest.raises(InputError, match="1 channel.*expects 3"):
        plan_prediction(tiny_model, grey)
    glass = ArrayReader(np.full((256, 256, 3), 240, np.uint8), is_slide=True)
    with pytest.raises(InputError, match="--input-mpp"):
        plan_prediction(tiny_model, glass)
    glass.mpp = 0.5
    plan = plan_prediction(tiny_model, glass, **BLOCK)
    assert plan.n_predicted == 0  # all glass: nothing goes to the network
    assert len(predict_all(tiny_model, glass, **BLOCK)) == 0
    with pytest.raises(InputError, match="--mpp"):
        plan_prediction(tiny_model, glass, mpp=-1)


def test_small_image_single_block_equals_predict_instances(tiny_model):
    img = SyntheticSlide((100, 90), seed=2).region(0, 0, 100, 90)
    got = predict_all(tiny_model, img)
    _, res = tiny_model.predict_instances(img.astype(np.float32) / 255)
    np.testing.assert_allclose(got.coord, res["coord"], atol=1e-4)
    np.testing.assert_array_equal(got.class_prob, np.asarray(res["class_prob"], np.float32))


def test_import_does_not_load_tensorflow():
    code = ("import sys, stardist_hier.predict, stardist_hier.slides, stardist_hier.commands.predict; "
            "assert 'tensorflow' not in sys.modules and 'openslide' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
