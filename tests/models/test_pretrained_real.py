"""The shipped pretrained model on real tissue: one CoNSeP test tile (``../shared/data/consep``).

The nucleus count on ``test_1`` (865 annotated nuclei) was measured at 485 with
``TF_ENABLE_ONEDNN_OPTS=0`` and ``=1`` on the development machine (identical); the range allows
for other CPUs' rounding. ``predict --model NAME`` on the same pixels must find exactly the nuclei
of the API with the model's own normalisation.
"""

import json

import numpy as np
import pytest

from stardist_hier.cli import main

NAME = "he_consep_nucls"
COUNT_TEST_1 = (470, 500)  # measured 485 (oneDNN on and off)


@pytest.fixture(scope="module")
def model():
    from stardist_hier import StarDist2DHier
    from stardist_hier.models import pretrained

    if pretrained.cached_folder(pretrained.get_model_details(NAME)) is None:
        pytest.skip(f"the shipped model folder stardist_hier/pretrained/{NAME}/ is not in this checkout")
    return StarDist2DHier.from_pretrained(NAME)


@pytest.fixture(scope="module")
def tile(shared_data_module):
    from stardist_hier.datasets import open_dataset

    root = shared_data_module / "consep"
    if not root.is_dir():
        pytest.skip(f"CoNSeP sample data not found at {root}")
    ds = open_dataset("consep_merged", root, split="test")
    return ds[ds.names().index("test_1")]


@pytest.fixture(scope="module")
def shared_data_module():
    from pathlib import Path

    data = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not data.is_dir():
        pytest.skip(f"real sample data not found at {data}")
    return data


@pytest.fixture(scope="module")
def api_result(model, tile):
    return model.predict_instances(tile.image, normalize=True)


def test_from_pretrained_finds_the_measured_number_of_nuclei(model, tile, api_result):
    labels, res = api_result
    n = len(res["points"])
    assert COUNT_TEST_1[0] <= n <= COUNT_TEST_1[1], n
    assert labels.max() == n and labels.shape == tile.labels.shape
    # every nucleus gets a class at CoNSeP's label set; the tile is mostly epithelium and inflammation
    from stardist_hier import default_taxonomy
    from stardist_hier.metrics import collapse_predictions

    cls = collapse_predictions(np.asarray(res["class_prob"]), default_taxonomy()["consep4"], ids=np.arange(1, n + 1))
    counts = {c: list(cls.values()).count(c) for c in set(cls.values())}
    assert counts.get("epithelial", 0) + counts.get("inflammatory", 0) > n / 2, counts
    # the model's own normalisation, applied by hand, gives the same nuclei
    labels2, _ = model.predict_instances(model.normalize(tile.image))
    np.testing.assert_array_equal(labels, labels2)


def test_predict_command_with_the_registered_name(api_result, tile, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "test_1.png"
    Image.fromarray(np.asarray(tile.image)).save(img)
    out = tmp_path / "pred"
    rc = main(["predict", str(img), "--model", NAME, "--input-mpp", "0.25", "--format", "geojson", "csv",
               "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    features = json.loads((out / "test_1.geojson").read_text())["features"]
    rows = (out / "test_1.csv").read_text().strip().splitlines()[1:]
    _, res = api_result
    assert len(features) == len(rows) == len(res["points"])
    names = {f["properties"]["classification"]["name"] for f in features}
    assert names and names <= {"epithelial", "epithelial_tumor", "epithelial_normal", "inflammatory", "lymphocyte",
                                "plasma_cell", "neutrophil", "eosinophil", "macrophage", "fibroblast", "muscle",
                                "endothelial", "adipocyte", "necrotic", "other_cell", "connective", "other",
                                "nucleus"}, names
