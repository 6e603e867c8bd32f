"""Parallel training input (:mod:`stardist_hier.models.input_pipeline`) is deterministic.

The kill/resume test (``test_kill_resume.py``) covers a resumed run with two input workers.
"""

import numpy as np
import pytest

from stardist_hier.errors import InputError
from stardist_hier.training import Augmenter, DatasetMixer, oversampling_weights, rare_images


def _source(model, data, *, seed=3, length=8, augment=True):
    from stardist_hier.models import _stardist_compat as compat

    mixer = DatasetMixer(data.groups, 2, seed=seed,
                         image_weights=oversampling_weights(rare_images(data.classes, data.label_sets, threshold=0.3)))
    mixer.set_datasets({"A": 1, "B": 2})
    aug = None
    if augment:
        aug = Augmenter(seed=seed, p_color=0.8, p_geometric=0.5, p_elastic=0.5, source=mixer,
                        rare=rare_images(data.classes, data.label_sets, threshold=0.3))
    cuts = model.encode(data.X, data.Y, data.classes, data.label_sets)
    return compat.StarDistData2DHier(data.X, data.Y, cuts, sampler=mixer, batch_size=2, augmenter=aug,
                                     length=length, **compat.data_kwargs(model.config))


def _flat(batches):
    return [a for (inputs, targets) in batches for a in (*inputs, *targets)]


def _batches(model, data, workers, **kw):
    from stardist_hier.models.input_pipeline import ParallelBatches

    src = _source(model, data, **kw)
    if workers == 0:  # the serial path: Keras iterating the data source itself
        return _flat(src[i] for i in range(len(src)))
    return _flat(ParallelBatches(src, workers=workers))


def test_parallel_batches_are_bit_identical_to_serial_and_between_runs(make_tiny_model, two_datasets):
    model = make_tiny_model(None)
    serial = _batches(model, two_datasets, 0)
    one = _batches(model, two_datasets, 1)
    three_a = _batches(model, two_datasets, 3)
    three_b = _batches(model, two_datasets, 3)
    assert len(serial) == len(three_a) == 8 * 4  # image, prob, dist, class target per batch
    for ref in (one, three_a, three_b):
        for a, b in zip(serial, ref):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert np.array_equal(a, b)
    # the batches do differ from one another and with the seed (augmentation and patches are random)
    assert not np.array_equal(serial[0], serial[4])
    other = _batches(model, two_datasets, 3, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(serial, other))


def test_parallel_batches_stop_early_and_report_errors(make_tiny_model, two_datasets):
    from stardist_hier.models.input_pipeline import ParallelBatches

    model = make_tiny_model(None)
    src = _source(model, two_datasets, length=50, augment=False)
    it = ParallelBatches(src, workers=2)
    next(it)
    it.close()
    with pytest.raises(StopIteration):
        next(it)

    class Broken:
        def __len__(self):
            return 3

        def batch(self, i):
            return [i]

        def batch_entropy(self, i):
            return [0, i]

        def make_batch(self, idx, entropy):
            if idx[0] == 1:
                raise ValueError("bad image 1")
            return idx

    it = ParallelBatches(Broken(), workers=2)
    assert next(it) == [0]
    with pytest.raises(ValueError, match="bad image 1"):
        next(it)
    it.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_input_workers_bad_values_are_refused_in_one_line(bad, make_tiny_model, two_datasets):
    from stardist_hier.models.input_pipeline import check_input_workers
    from stardist_hier.training import Episode, train_episodes

    with pytest.raises(InputError) as e:
        check_input_workers(bad)
    assert "\n" not in str(e.value) and "input_workers" in str(e.value)
    model = make_tiny_model(None)
    with pytest.raises(InputError, match="input_workers"):
        model.train(two_datasets.X, two_datasets.Y, (two_datasets.X, two_datasets.Y), input_workers=bad)
    with pytest.raises(InputError, match="input_workers"):
        train_episodes(model, two_datasets, [Episode("a", "A", 1)], steps_per_epoch=2, input_workers=bad)


def test_experiment_config_input_workers(tmp_path):
    import yaml

    from stardist_hier.training.experiment import ConfigError, load_config

    def cfg(**training):
        d = {"name": "x", "seed": 1,
             "model": {"n_rays": 8, "grid": [2, 2], "unet_n_depth": 2, "unet_n_filter_base": 8,
                       "train_patch_size": [64, 64], "train_batch_size": 2},
             "training": {"steps_per_epoch": 2, **training},
             "datasets": {"P": {"source": "synthetic", "generator": "pannuke", "n_tiles": 4, "size": 64, "seed": 1,
                                "split": {"train": 2, "val": 1, "test": 1}}},
             "episodes": [{"name": "a", "datasets": "P", "epochs": 1}]}
        f = tmp_path / "c.yaml"
        f.write_text(yaml.safe_dump(d))
        return load_config(f)

    two, one = cfg(input_workers=2), cfg()
    # the number of input threads does not change the batches: a run may resume with another
    assert two.fingerprint == one.fingerprint
    for bad in (0, 1.5, "2", True):
        with pytest.raises(ConfigError, match="input_workers") as e:
            cfg(input_workers=bad)
        assert "\n" not in str(e.value)
