"""The seams between stardist-hier and StarDist's internals (models/_stardist_compat.py)."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import stardist  # noqa: E402

from stardist_hier import StarDist2DHier, default_taxonomy  # noqa: E402
from stardist_hier.models import _stardist_compat as compat  # noqa: E402
from stardist_hier.targets import encode_image, split_target  # noqa: E402

TAX = default_taxonomy()


def test_pinned_stardist_version():
    assert stardist.__version__ in compat.SUPPORTED_STARDIST


@pytest.fixture
def data(rng, make_images):
    X, Y, C, _ = make_images(rng, 3, TAX["pannuke"], size=64)
    Xb, Yb, Cb, _ = make_images(rng, 2, TAX["monusac"], size=64)
    # an ignore region in one image
    Yb[0][:8, :8] = -1
    sets = [TAX["pannuke"]] * 3 + [TAX["monusac"]] * 2
    cuts = [encode_image(y, c, ls) for y, c, ls in zip(Y + Yb, C + Cb, sets)]
    return X + Xb, Y + Yb, cuts, sets


def make_gen(data, tiny_config, **kw):
    X, Y, cuts, _ = data
    conf = tiny_config(train_patch_size=(32, 32), train_foreground_only=0.0)
    return compat.StarDistData2DHier(X, Y, cuts, batch_size=5, length=4, **compat.data_kwargs(conf), **kw)


def test_generator_outputs_and_cut_per_sample(data, tiny_config):
    calls = []

    def sampler(i):
        calls.append(i)
        return np.array([4, 0, 3, 1, 2])

    gen = make_gen(data, tiny_config, sampler=sampler)
    (x,), (prob, dist, cls) = gen[0]
    assert calls == [0]
    assert x.shape == (5, 32, 32, 1) and prob.shape[:3] == cls.shape[:3] == (5, 16, 16)
    assert cls.shape[-1] == 3 * 14
    member, assign, weight = split_target(cls)
    for b, k in enumerate([4, 0, 3, 1, 2]):
        np.testing.assert_array_equal(assign[b, 0, 0], data[3][k].leaf_assignment())
        assert np.all(assign[b] == assign[b, :1, :1])
    # background pixels of prob are background in the class target, foreground are not
    fg = (prob[..., 0] > 0) & (member[..., 0] >= 0)
    assert np.all(member[..., 0][fg] == 0) and np.all(member[..., 0][(prob[..., 0] == 0) & (member[..., 0] >= 0)] == 1)


def test_generator_ignores_negative_labels(data, tiny_config):
    X, Y, cuts, sets = data
    conf = tiny_config(train_patch_size=(64, 64), train_foreground_only=0.0)
    gen = compat.StarDistData2DHier([X[3]], [Y[3]], [cuts[3]], batch_size=1, length=1, **compat.data_kwargs(conf))
    (_,), (prob, _, cls) = gen[0]
    member = split_target(cls)[0]
    assert np.all(member[0, :4, :4] == -1) and np.all(prob[0, :4, :4, 0] == -1)


def test_generator_sees_augmented_labels(data, tiny_config):
    X, Y, cuts, _ = data
    conf = tiny_config(train_patch_size=(64, 64), train_foreground_only=0.0, grid=(1, 1))
    kw = compat.data_kwargs(conf)
    plain = compat.StarDistData2DHier([X[0]], [Y[0]], [cuts[0]], batch_size=1, length=1, **kw)[0]
    flip = compat.StarDistData2DHier([X[0]], [Y[0]], [cuts[0]], batch_size=1, length=1,
                                     augmenter=lambda x, y: (x[:, ::-1], y[:, ::-1]), **kw)[0]
    np.testing.assert_array_equal(flip[1][2][0], plain[1][2][0][:, ::-1])
    np.testing.assert_array_equal(flip[1][0][0], plain[1][0][0][:, ::-1])


def test_compile_replaces_only_class_loss(tiny_config):
    model = StarDist2DHier(tiny_config(), name=None, basedir=None)
    model.prepare_for_training()
    losses = model.keras_model.loss
    assert len(losses) == 3
    assert losses[0].__name__ == "prob_loss" and losses[1].__name__ == "dist_loss"
    assert losses[2].__name__ == "combined_class_loss"
    assert "compile" not in vars(model.keras_model), "the compile interception must be removed"
