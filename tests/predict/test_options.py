"""PredictOptions: a prediction run's settings as one object, validated where it is built, its messages
naming parameters; the command line names its flags instead (issue 20 item 2)."""

from __future__ import annotations

import json
import pickle
import re

import pytest
from PIL import Image

from stardist_hier.cli import main
from stardist_hier.errors import InputError, ParameterError
from stardist_hier.predict import PredictOptions, predict_to_folder
from stardist_hier.predict.options import PLANNED, RECORDED
from stardist_hier.predict.runner import RECORD_NAME
from stardist_hier.slides import SyntheticSlide

BLOCK = dict(block_size=160, min_overlap=32, context=24)
pytestmark = pytest.mark.filterwarnings("ignore:images without a pixel size")  # PNGs at the model's pixel size


@pytest.mark.parametrize("kwargs, message", [
    (dict(abstain=0), "abstain 0: must be a number in (0, 1]"),
    (dict(abstain=1.5), "abstain 1.5: must be a number in (0, 1]"),
    (dict(prob_thresh=1), "prob_thresh 1: must be a number in (0, 1)"),
    (dict(nms_thresh=float("nan")), "nms_thresh nan: must be a number in (0, 1)"),
    (dict(mpp=0), "mpp 0: must be a number in (0, 100)"),
    (dict(mpp=True), "mpp True: must be a number in (0, 100)"),
    (dict(input_mpp=100), "input_mpp 100: must be a number in (0, 100)"),
    (dict(block_size=0), "block_size 0: must be positive"),
    (dict(block_size="big"), "block_size 'big': must be a whole number"),
    (dict(block_size=(256, 0)), "block_size (256, 0): must be positive"),
    (dict(min_overlap=-1), "min_overlap -1: must be non-negative"),
    (dict(min_overlap=1.5), "min_overlap 1.5: must be a whole number"),
    (dict(context=-8), "context -8: must be non-negative"),
    (dict(n_tiles=(2,)), "n_tiles (2,): give two whole numbers NY NX"),
    (dict(n_tiles=(0, 1)), "n_tiles (0, 1): must be positive"),
    (dict(read_ahead=-1), "read_ahead -1: must be non-negative"),
    (dict(nms_threads=0), "nms_threads 0: must be positive"),
])
def test_each_field_is_validated_naming_the_parameter(kwargs, message):
    with pytest.raises(ParameterError) as e:
        PredictOptions(**kwargs)
    assert str(e.value) == message
    assert isinstance(e.value, InputError) and e.value.names == (next(iter(kwargs)),)
    assert "--" not in str(e.value)


def test_valid_options_keep_their_values():
    o = PredictOptions(formats="csv", abstain=1, mpp=0.5, input_mpp=0.25, block_size="auto", n_tiles=[2, 2],
                       read_ahead=0, nms_threads=None)
    assert o.formats == ("csv",) and o.block_size == "auto" and o.read_ahead == 0
    assert list(o.recorded()) == list(RECORDED) and list(o.plan_kwargs()) == list(PLANNED)
    assert o.recorded()["mpp"] == 0.5 and o.plan_kwargs()["input_mpp"] == 0.25


def test_of_builds_replaces_and_refuses():
    base = PredictOptions(abstain=0.6, **BLOCK)
    assert PredictOptions.of(None, abstain=0.6, **BLOCK) == base
    assert PredictOptions.of(base) is base
    other = PredictOptions.of(base, abstain=0.7)
    assert other.abstain == 0.7 and other.block_size == 160 and base.abstain == 0.6
    with pytest.raises(ParameterError, match=r"^abstain 2"):  # a replaced field is validated too
        PredictOptions.of(base, abstain=2)
    with pytest.raises(TypeError, match="'abstian'"):
        PredictOptions.of(None, abstian=0.5)
    with pytest.raises(TypeError, match="PredictOptions"):
        PredictOptions.of({"abstain": 0.5})


def test_parameter_error_renamed_and_pickled():
    e = ParameterError(("block_size", "min_overlap", "context"), ": too small")
    assert str(e) == "block_size/min_overlap/context: too small"
    r = e.renamed({"block_size": "--block-size", "context": "--context"})
    assert str(r) == "--block-size/min_overlap/--context: too small" and isinstance(r, ParameterError)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ParameterError and str(back) == str(e) and back.names == e.names


def test_plan_prediction_takes_options_or_keywords(tiny_model):
    from stardist_hier.predict import plan_prediction

    img = SyntheticSlide((300, 260), seed=4).region(0, 0, 300, 260)
    by_kw = plan_prediction(tiny_model, img, prob_thresh=0.3, **BLOCK)
    by_obj = plan_prediction(tiny_model, img, options=PredictOptions(prob_thresh=0.3, **BLOCK))
    assert len(by_kw.blocks) > 1 and [repr(b) for b in by_kw.blocks] == [repr(b) for b in by_obj.blocks]
    assert by_kw.predict_kwargs == by_obj.predict_kwargs == {"prob_thresh": 0.3}
    assert by_kw.min_overlap == by_obj.min_overlap and by_kw.use_tissue_mask == by_obj.use_tissue_mask
    by_kw.close()
    by_obj.close()
    with pytest.raises(TypeError, match="'formats'"):  # not a planning option
        plan_prediction(tiny_model, img, formats=["csv"])
    with pytest.raises(ParameterError, match=r"^block_size/min_overlap/context: "):
        plan_prediction(tiny_model, img, block_size=64, min_overlap=32, context=24)


def _image(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(SyntheticSlide((96, 112), seed=5, cell=30, radius=(9, 13)).region(0, 0, 96, 112)).save(
        d / "a.png")
    return d / "a.png"


def test_options_object_and_keywords_give_the_same_record_and_outputs(tiny_model, tmp_path):
    img = _image(tmp_path)
    kw = dict(formats=["csv", "geojson"], label_sets=["pannuke"], abstain=0.6, prob_thresh=0.3, n_tiles=(1, 1),
              **BLOCK)
    s1 = predict_to_folder([img], model=tiny_model, out=tmp_path / "kw", **kw)
    s2 = predict_to_folder([img], model=tiny_model, out=tmp_path / "obj", options=PredictOptions(**kw))
    r1 = json.loads((tmp_path / "kw" / RECORD_NAME).read_text())
    r2 = json.loads((tmp_path / "obj" / RECORD_NAME).read_text())
    assert r1 == r2
    assert {k: r1["options"][k] for k in RECORDED} == json.loads(json.dumps(PredictOptions(**kw).recorded()))
    assert r1["options"]["label_sets"] == ["pannuke"]
    assert s1.stats.n_nuclei == s2.stats.n_nuclei > 0
    for name in ("a.csv", "a.geojson"):
        assert (tmp_path / "kw" / name).read_bytes() == (tmp_path / "obj" / name).read_bytes()
    # options with keywords replacing fields: what the folder records is the replaced value
    predict_to_folder([img], model=tiny_model, out=tmp_path / "mix", options=PredictOptions(**kw), abstain=0.7)
    assert json.loads((tmp_path / "mix" / RECORD_NAME).read_text())["options"]["abstain"] == 0.7


def test_library_names_parameters_the_command_line_names_flags(tiny_model, tiny_model_dir, tmp_path, capsys):
    img = _image(tmp_path)
    bad_blocks = dict(block_size=64, min_overlap=32, context=24)
    with pytest.raises(ParameterError) as e:
        predict_to_folder([img], model=tiny_model, out=tmp_path / "o", **bad_blocks)
    assert str(e.value).startswith("block_size/min_overlap/context: ") and "--" not in str(e.value).split(":")[0]
    with pytest.raises(ParameterError, match=r"^formats nope: unknown format"):
        predict_to_folder([img], model=tiny_model, out=tmp_path / "o", formats=["nope"])
    with pytest.raises(ParameterError, match=r"^label_sets nosuch: unknown label set"):
        predict_to_folder([img], model=tiny_model, out=tmp_path / "o", label_sets=["nosuch"])
    assert not (tmp_path / "o").exists()

    capsys.readouterr()
    rc = main(["predict", str(img), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--quiet",
               "--block-size", "64", "--min-overlap", "32", "--context", "24"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert re.match(r"stardist-hier predict: error: --block-size/--min-overlap/--context: block size 64 must exceed", err[0]), err
    rc = main(["predict", str(img), "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--quiet",
               "--label-set", "nosuch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "error: --label-set nosuch: unknown label set" in err[0], err
    assert not (tmp_path / "o").exists()
