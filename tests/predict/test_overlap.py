"""The overlapped prediction pipeline (read-ahead, compiled forward, NMS threads): the serial loop's nuclei.

The overlapped pipeline (``read_ahead >= 1``) must return exactly the nuclei of the
serial loop (``read_ahead=0``: ``predict_instances`` per block, as StarDist's
``predict_instances_big``), on a slide and an image, with the tissue mask on and off,
in this process and in Dask workers; StarDist's OpenMP thread count for NMS is read
back where NMS runs.
"""

import threading

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.predict import Nuclei, PredictStats, plan_prediction, predict_nuclei
from stardist_hier.slides import OpenSlideReader, SyntheticSlide, write_pyramid_tiff

pytestmark = pytest.mark.slow  # uses the tiny trained model (trained once per session)

BLOCK = dict(block_size=160, min_overlap=32, context=24, prob_thresh=0.3)
TISSUE_END = 440  # level-0 column where glass starts (a block reaches past it only with its context)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    synth = SyntheticSlide((704, 896), seed=11, cell=48, radius=(8, 13), tissue=lambda r, c: c < TISSUE_END)
    path = tmp_path_factory.mktemp("overlap") / "wsi.tif"
    write_pyramid_tiff(path, synth, mpp=0.25, downsamples=(1, 4, 8), tile=128)
    return path


def _nuclei(model, plan, **kwargs):
    stats = PredictStats()
    chunks = list(predict_nuclei(model, plan, stats=stats, **kwargs))
    return Nuclei.concatenate(chunks) if chunks else None, stats


def _assert_same(a: Nuclei, b: Nuclei):
    assert len(a) == len(b)
    for name in ("ids", "coord", "points", "prob", "class_prob"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name  # bit for bit, not within a tolerance
    assert a.leaves() == b.leaves()


@pytest.mark.parametrize("tissue_mask", [False, True])
def test_overlapped_slide_equals_serial(tiny_model, slide_path, tissue_mask):
    with OpenSlideReader(slide_path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=tissue_mask, **BLOCK)
        serial, s0 = _nuclei(tiny_model, plan, read_ahead=0)
        assert serial is not None and len(serial) > 10 and s0.n_predicted > 4
        for read_ahead in (1, 3):
            got, s1 = _nuclei(tiny_model, plan, read_ahead=read_ahead)
            _assert_same(got, serial)
            assert (s1.n_blocks, s1.n_predicted, s1.n_skipped, s1.n_nuclei) == \
                (s0.n_blocks, s0.n_predicted, s0.n_skipped, s0.n_nuclei)
            assert s1.read_seconds > 0 and s1.forward_seconds > 0 and s1.nms_seconds > 0
        if tissue_mask:
            assert 0 < s0.n_skipped < s0.n_blocks  # the glass is skipped, the tissue is not


def test_overlapped_image_equals_serial(tiny_model):
    img = SyntheticSlide((360, 330), seed=5, cell=40, radius=(7, 12)).region(0, 0, 360, 330)
    plan = plan_prediction(tiny_model, img, **BLOCK)
    assert len(plan.blocks) >= 4
    serial, _ = _nuclei(tiny_model, plan, read_ahead=0)
    got, _ = _nuclei(tiny_model, plan, read_ahead=2)
    assert serial is not None and len(serial) > 5
    _assert_same(got, serial)


def test_tissue_test_uses_the_block_own_region_and_the_mask_is_computed_once(tiny_model, slide_path):
    from stardist_hier.models import _stardist_big_compat as big

    with OpenSlideReader(slide_path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=True, **BLOCK)
        mask = plan.mask
        assert plan.mask is mask and plan.thumb is plan.thumb  # computed once, kept
        s = plan.image.scale
        own_has = [mask.any_in(*(v * s for v in big.block_regions(b)[1])) for b in plan.blocks]
        read_has = [mask.any_in(*(v * s for v in big.block_regions(b)[0])) for b in plan.blocks]
        assert plan.keep == own_has
        # some block reaches tissue only with its context: sent to the network before, skipped now
        assert any(r and not o for r, o in zip(read_has, own_has))
        # and no nucleus is lost by skipping them: the same nuclei as without the mask
        masked, _ = _nuclei(tiny_model, plan, read_ahead=0)
        full, _ = _nuclei(tiny_model, plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK), read_ahead=0)
        _assert_same(masked, full)


def test_plan_image_is_normalised_with_the_input_levels_at_first_use(tiny_model, slide_path):
    with OpenSlideReader(slide_path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK)
        x = np.asarray(plan.image)  # the first use of the plan: prepared then
        raw = plan.image.read_uint8(0, 0, *plan.image.shape[:2])
        np.testing.assert_array_equal(x, plan.levels.apply(raw))
        assert not np.array_equal(x, raw.astype(np.float32) / 255)  # not the placeholder before fitting


def test_a_plan_for_validation_reads_no_thumbnail(tiny_model, slide_path, monkeypatch):
    import stardist_hier.slides as slides

    calls = []
    real = slides.thumbnail
    monkeypatch.setattr(slides, "thumbnail", lambda *a, **k: calls.append(1) or real(*a, **k))
    with OpenSlideReader(slide_path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=True, **BLOCK)
        assert calls == []
        assert plan.n_predicted < len(plan.blocks) and plan.levels is not None
        assert calls == [1]
        list(predict_nuclei(tiny_model, plan))
        assert calls == [1]


@pytest.mark.parametrize("nms_threads", [1, 2])
def test_nms_thread_setting_is_in_force_where_nms_runs(tiny_model, slide_path, nms_threads):
    """Read back with threadpoolctl in the thread that runs NMS, whatever that thread's own default."""
    from stardist_hier.predict.overlap import openmp_threads_in_this_thread

    default = openmp_threads_in_this_thread()
    assert default is not None  # StarDist's OpenMP runtime is loaded (by the model)
    found = {}

    def consume(read_ahead):  # a fresh thread, as a Dask task thread
        with OpenSlideReader(slide_path) as reader:
            plan = plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK)
            stats = PredictStats()
            list(predict_nuclei(tiny_model, plan, stats=stats, read_ahead=read_ahead, nms_threads=nms_threads))
        found[read_ahead] = (stats.nms_threads, openmp_threads_in_this_thread())

    for read_ahead in (0, 2):
        t = threading.Thread(target=consume, args=(read_ahead,))
        t.start()
        t.join()
        during, after = found[read_ahead]
        assert during == nms_threads
        assert after == default  # put back when the block is done
    assert openmp_threads_in_this_thread() == default


def test_bad_pipeline_options_are_refused(tiny_model):
    img = SyntheticSlide((200, 200), seed=1).region(0, 0, 200, 200)
    plan = plan_prediction(tiny_model, img, **BLOCK)
    for kw, name in ((dict(read_ahead=-1), "read_ahead"), (dict(nms_threads=0), "nms_threads"),
                     (dict(read_ahead=1.5), "read_ahead")):
        with pytest.raises(InputError, match=name):
            list(predict_nuclei(tiny_model, plan, **kw))


def test_a_failure_in_the_reader_thread_reaches_the_caller(tiny_model, tmp_path):
    data_dir = tmp_path / "s"
    data_dir.mkdir()
    synth = SyntheticSlide((512, 512), seed=2, cell=48, radius=(8, 13))
    path = write_pyramid_tiff(data_dir / "wsi.tif", synth, mpp=0.25, downsamples=(1, 4), tile=128)
    reader = OpenSlideReader(path)
    plan = plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK)
    plan.prepare()
    reader.close()  # every read from now on fails
    with pytest.raises(Exception) as e:
        list(predict_nuclei(tiny_model, plan, read_ahead=2))
    assert not any(t.name.startswith("stardist-hier-") for t in threading.enumerate())  # threads ended
    assert e.type is not StopIteration


def test_closing_early_stops_the_threads(tiny_model, slide_path):
    with OpenSlideReader(slide_path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=False, **BLOCK)
        gen = predict_nuclei(tiny_model, plan, read_ahead=2)
        first = next(gen)
        assert len(first) > 0
        gen.close()
    assert not any(t.name.startswith("stardist-hier-") for t in threading.enumerate())


def test_compiled_forward_equals_keras_predict(tiny_model, rng):
    from stardist_hier.models import _stardist_big_compat as big

    km = tiny_model.keras_model
    x = rng.random((1, 96, 128, 3), dtype=np.float32)
    want = km.predict(x, verbose=0)
    with big.compiled_predict(tiny_model):
        got = km.predict(x, verbose=0)
        again = km.predict(x.astype(np.float64), verbose=0)  # cast as Keras casts
    assert "predict" not in vars(km)  # put back
    assert len(got) == len(want)
    for a, b, c in zip(got, want, again):
        assert a.dtype == b.dtype and np.array_equal(a, b) and np.array_equal(c, b)


# ------------------------------------------------------------------ in Dask workers
@pytest.mark.parametrize("workers", [1, 2])
def test_dask_workers_write_the_serial_nuclei_with_nms_threads_set(tiny_model, tiny_model_dir, slide_path,
                                                                   tmp_path, workers):
    pytest.importorskip("distributed")
    pq = pytest.importorskip("pyarrow.parquet")
    from stardist_hier.predict.distributed import predict_distributed
    from stardist_hier.predict.runner import resolve_label_sets
    from stardist_hier.predict.writers import ParquetWriter

    second = tmp_path / "in" / "wsi_b.tif"
    second.parent.mkdir()
    second.write_bytes(slide_path.read_bytes())
    inputs = [slide_path, second]
    out = tmp_path / "out"
    s = predict_distributed(inputs, model=tiny_model_dir, out=out, workers=workers, formats=["parquet"], **BLOCK)
    assert (s.n_predicted, s.n_failed) == (2, 0), s.table()
    assert all(r.nms_threads == 1 for r in s.results)  # the pipeline's default, read back in the worker

    # the reference: the serial loop in this process, through the same writer
    sets = resolve_label_sets(tiny_model, None)
    ref = tmp_path / "ref"
    ref.mkdir()
    kw = dict(BLOCK)
    with OpenSlideReader(slide_path) as reader:
        plan = plan_prediction(tiny_model, reader, tissue_mask=True, **kw)
        with ParquetWriter(ref / "wsi", label_sets=sets, tree=tiny_model.tree, mpp=plan.input_mpp,
                           image_shape=plan.shape) as w:
            for chunk in predict_nuclei(tiny_model, plan, read_ahead=0):
                w.write(chunk)
    want = pq.read_table(ref / "wsi.parquet")
    assert want.num_rows > 10
    for name in ("wsi.parquet", "wsi_b.parquet"):
        assert pq.read_table(out / name).equals(want), name
