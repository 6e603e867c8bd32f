"""Block size from the model: the memory estimate per block and ``block_size="auto"``."""

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.predict import plan_prediction
from stardist_hier.predict.blocks import CANDIDATES, auto_block_size, block_memory

pytestmark = pytest.mark.slow  # uses the tiny trained model (trained once per session)


def test_activation_count_is_that_of_a_real_forward(tiny_model, rng):
    """The symbolic count equals the sizes of every layer output of a real forward pass."""
    import keras

    from stardist_hier.models import _stardist_big_compat as big

    km = tiny_model.keras_model
    layers = [la for la in km.layers if not isinstance(la, keras.layers.InputLayer)]
    every = keras.Model(km.inputs, [la.output for la in layers])
    x = rng.random((1, 96, 64, 3), dtype=np.float32)
    outs = every([x], training=False)
    assert big.activation_elements(tiny_model, (96, 64)) == sum(int(np.prod(o.shape)) for o in outs)


def test_block_memory_grows_with_the_pixels_read(tiny_model):
    from stardist_hier.models import _stardist_big_compat as big

    # the context: the network's receptive field (measured on its weights), grid-divisible, larger axis
    grid = big.axes_div_by(tiny_model, "YX")
    c = max(big.grid_divisible(g, int(v)) for g, v in zip(grid, big.axes_tile_overlap(tiny_model, "YX")))
    a, b = block_memory(tiny_model, 1024), block_memory(tiny_model, 2048)
    assert b / a == pytest.approx(((2048 + 2 * c) / (1024 + 2 * c)) ** 2, rel=1e-6)
    # at least the float32 input of the blocks in flight and the network's first layer output
    n = 1024 + 2 * c
    assert a > n * n * 4 * (3 * 4 + 16)
    assert block_memory(tiny_model, 1024, read_ahead=4) - a == pytest.approx(n * n * 4 * 3 * 2, abs=8)


def test_auto_block_size_is_the_largest_that_fits(tiny_model):
    need = {b: block_memory(tiny_model, b) for b in CANDIDATES}
    assert auto_block_size(tiny_model, memory=need[2048]) == 2048
    assert auto_block_size(tiny_model, memory=need[2048] - 1) == 1536
    assert auto_block_size(tiny_model, memory=10 * need[max(CANDIDATES)]) == max(CANDIDATES)
    # a candidate too small for the overlap and context is never chosen
    assert auto_block_size(tiny_model, min_overlap=600, memory=need[1024]) == 1024
    with pytest.raises(InputError, match="block_size='auto'.*MiB"):
        auto_block_size(tiny_model, memory=need[512] - 1)


def test_plan_with_auto_block_size(tiny_model):
    from stardist_hier.slides import SyntheticSlide

    img = SyntheticSlide((300, 2600), seed=1).region(0, 0, 300, 2600)
    plan = plan_prediction(tiny_model, img, block_size="auto", input_mpp=0.5)
    chosen = auto_block_size(tiny_model)
    widths = {b.blocks[1].size for b in plan.blocks}
    assert chosen in widths and len(plan.blocks) >= 2


def test_auto_is_the_default_block_size(tiny_model):
    """Without a block size, prediction plans the blocks ``block_size="auto"`` plans (the model's choice)."""
    from stardist_hier.predict.options import PredictOptions
    from stardist_hier.slides import SyntheticSlide

    assert PredictOptions().block_size == "auto"
    img = SyntheticSlide((300, 2600), seed=1).region(0, 0, 300, 2600)
    default = plan_prediction(tiny_model, img, input_mpp=0.5)
    auto = plan_prediction(tiny_model, img, block_size="auto", input_mpp=0.5)
    assert [b.blocks[1].size for b in default.blocks] == [b.blocks[1].size for b in auto.blocks]
    assert auto_block_size(tiny_model) in {b.blocks[1].size for b in default.blocks}
