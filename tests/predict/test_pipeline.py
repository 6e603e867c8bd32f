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


def test_slide_coordinates_are_level0(tiny_model, tmp_path):
    """Model pixels map to level-0 pixels exactly as the pipeline maps nuclei (scale, offset).

    Independent of what the network has learnt: dark dots at known level-0 positions are
    read through the resampled slide view (0.25 um/px slide, model at 0.5 um/px) and their
    centroids, mapped with the plan's ``scale`` and ``offset`` (the mapping every nucleus
    goes through, see the equality test above), land on the known positions.
    """
    from scipy import ndimage

    rng = np.random.default_rng(5)
    H, W = 512, 384
    img = np.full((H, W, 3), 235, np.uint8)
    yy, xx = np.mgrid[:H, :W]
    centres = np.column_stack([rng.uniform(40, H - 40, 6), rng.uniform(40, W - 40, 6)])
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 10 ** 2] = 30
    path = write_pyramid_tiff(tmp_path / "dots.tif", img, mpp=0.25, downsamples=(1, 4), tile=128)
    with OpenSlideReader(path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK)
        assert plan.image.scale == pytest.approx(2.0) and plan.input_mpp == pytest.approx(0.25)
        pix = np.asarray(plan.image)[..., 0].astype(np.float64)  # the network's input (normalised)
    dark = pix.max() - pix
    lab, n = ndimage.label(dark > 0.1 * dark.max())
    assert n == len(centres)
    found = np.array(ndimage.center_of_mass(dark, lab, range(1, n + 1))) * plan.image.scale + plan.image.offset
    d = np.sqrt(((found[:, None] - centres[None]) ** 2).sum(-1)).min(axis=1)
    assert d.max() < 0.6, d  # disc rasterisation: well under one level-0 pixel


def test_nuclei_crossing_block_borders_appear_once(tiny_model):
    """Nuclei cut by the border between two blocks are kept by exactly one block.

    Compared with the same model on the whole image in one block: every nucleus of the
    whole-image prediction that crosses a block border is matched by at most one nucleus
    of the block-wise prediction (never two), and no two block-wise nuclei overlap.
    """
    from shapely.geometry import Polygon

    synth = SyntheticSlide((400, 400), seed=4, cell=24, radius=(4, 7))
    img = synth.region(0, 0, 400, 400)
    plan = plan_prediction(tiny_model, img, **BLOCK)
    assert len(plan.blocks) >= 9
    got = Nuclei.concatenate(_chunks(tiny_model, plan))
    whole = predict_all(tiny_model, img, block_size=512, min_overlap=32, context=24)
    assert len(got) >= 20 and len(whole) >= 20

    def polys(n):
        return [Polygon(np.asarray(c)[::-1].T).buffer(0) for c in n.coord]

    pg, pw = polys(got), polys(whole)

    def iou(a, b):
        u = a.union(b).area
        return a.intersection(b).area / u if u else 0.0

    # no nucleus twice: block-wise nuclei never overlap much (a duplicate has IoU ~ 1)
    for i in range(len(pg)):
        for j in range(i + 1, len(pg)):
            if pg[i].distance(pg[j]) == 0:
                assert iou(pg[i], pg[j]) < 0.5, (i, j)
    # nuclei crossing a border between blocks' write regions: found once, never twice
    borders_y = sorted({b.slice_write("YX")[0].stop for b in plan.blocks} - {400})
    borders_x = sorted({b.slice_write("YX")[1].stop for b in plan.blocks} - {400})
    crossing = [k for k, c in enumerate(whole.coord)
                if any(c[0].min() < b < c[0].max() for b in borders_y)
                or any(c[1].min() < b < c[1].max() for b in borders_x)]
    assert len(crossing) >= 10
    matches = [sum(iou(pw[k], q) > 0.5 for q in pg) for k in crossing]
    assert max(matches) == 1
    assert np.mean(matches) >= 0.8, matches


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
    with pytest.raises(InputError, match="^mpp"):
        plan_prediction(tiny_model, glass, mpp=-1)


def test_small_image_single_block_equals_predict_instances(tiny_model):
    img = SyntheticSlide((100, 90), seed=2).region(0, 0, 100, 90)
    got = predict_all(tiny_model, img)
    _, res = tiny_model.predict_instances(img, normalize=True)  # the model's own normalisation, as the pipeline
    np.testing.assert_allclose(got.coord, res["coord"], atol=1e-4)
    np.testing.assert_array_equal(got.class_prob, np.asarray(res["class_prob"], np.float32))


def test_import_does_not_load_tensorflow():
    code = ("import sys, stardist_hier.predict, stardist_hier.slides, stardist_hier.commands.predict; "
            "assert 'tensorflow' not in sys.modules and 'openslide' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
