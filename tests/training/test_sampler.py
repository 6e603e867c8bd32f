"""DatasetMixer: mixed batches keep every sample's cut; weights and oversampling."""

import threading

import numpy as np
import pytest

from stardist_hier.targets import split_target
from stardist_hier.training import DatasetMixer, oversampling_weights


def test_mixed_batch_carries_each_samples_cut(two_datasets, tiny_model, taxonomy):
    from stardist_hier.models import _stardist_compat as compat

    d = two_datasets
    cuts = tiny_model.encode(d.X, d.Y, d.classes, d.label_sets)
    mixer = DatasetMixer(d.groups, 8, seed=0)
    mixer.set_datasets({"A": 1, "B": 1})
    gen = compat.StarDistData2DHier(d.X, d.Y, cuts, sampler=mixer, batch_size=8, length=10,
                                    **compat.data_kwargs(tiny_model.config))
    both = 0
    for i in range(4):
        _, (_, _, cls) = gen[i]
        drawn = gen._local.idx  # the indices the mixer returned for this batch
        assert len(drawn) == 8
        _, assignment, _ = split_target(cls)
        for s, k in enumerate(drawn):
            expected = d.label_sets[k].leaf_assignment()
            np.testing.assert_array_equal(assignment[s], np.broadcast_to(expected, assignment[s].shape))
        names = {("A" if k in d.groups["A"] else "B") for k in drawn}
        both += names == {"A", "B"}
    assert both >= 3  # batches really mix the two datasets


def test_mixing_weights_and_oversampling():
    groups = {"A": np.arange(0, 10), "B": np.arange(10, 20)}
    mixer = DatasetMixer(groups, 10, seed=3)
    mixer.set_datasets({"A": 0.8, "B": 0.2})
    idx = np.concatenate([mixer(i) for i in range(200)])
    share_a = np.isin(idx, groups["A"]).mean()
    assert 0.77 < share_a < 0.83

    # equal weights: every image of a dataset equally often (shuffled walk)
    mixer = DatasetMixer(groups, 10, seed=3)
    mixer.set_datasets("B")
    idx = np.concatenate([mixer(i) for i in range(30)])
    assert np.all(np.bincount(idx - 10, minlength=10) == 30)

    # class-aware oversampling: rare images (weight 3) drawn about 3x as often as the others
    rare = np.zeros(20, bool)
    rare[[0, 1]] = True
    over = DatasetMixer(groups, 10, seed=4, image_weights=oversampling_weights(rare, 3.0))
    idx = np.concatenate([over(i) for i in range(400)])
    counts = np.bincount(idx, minlength=20)[:10]
    ratio = counts[:2].mean() / counts[2:].mean()
    assert 2.5 < ratio < 3.5


def test_state_roundtrip_and_errors():
    groups = {"A": [0, 1, 2], "B": [3, 4]}
    m1 = DatasetMixer(groups, 4, seed=5)
    m1.set_datasets(["A", "B"])
    [m1(i) for i in range(3)]
    state = m1.state_dict()
    m2 = DatasetMixer(groups, 4, seed=99)
    m2.load_state_dict(state)
    for i in range(5):
        np.testing.assert_array_equal(m1(i), m2(i))
    with pytest.raises(KeyError, match="unknown dataset 'C'"):
        m1.set_datasets("C")
    with pytest.raises(ValueError, match="has no training images"):
        DatasetMixer({"A": []}, 2)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 2"):
        m1.arm(1)


def test_armed_mixer_waits_for_release():
    m = DatasetMixer({"A": [0, 1, 2]}, 2, seed=0)
    m.arm(2)
    m(0), m(1)  # epoch 0 is always released
    got = []
    t = threading.Thread(target=lambda: got.append(m(2)))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # batch 2 (epoch 1) waits
    m.release(1)
    t.join(2)
    assert got and not t.is_alive()
    with pytest.raises(RuntimeError, match="main thread"):
        m(4)  # epoch 2, not released, asked from the main thread: an error, not a deadlock
    m.close()
    assert len(m(4)) == 2
