"""Early stopping (issue 19): the best weights come back, and only trained datasets are validated on."""

import numpy as np
import pytest

from stardist_hier.training import Episode, MultiDataset
from stardist_hier.training.schedule import trained_datasets

from .conftest import make_part

pytestmark = pytest.mark.slow


def test_trained_datasets_in_episode_order():
    eps = [Episode("a", "B", 1), Episode("m", {"A": 1, "B": 2}, 1), Episode("c", ["C", "A"], 1)]
    assert trained_datasets(eps) == ["B", "A", "C"]


def test_early_stop_restores_best_and_validates_on_declared_datasets_only(taxonomy, tiny_model, monkeypatch,
                                                                          test_seed):
    from csbdeep.utils.tf import keras_import

    from stardist_hier.training import train_episodes

    Callback = keras_import("callbacks", "Callback")
    # T is read like the others but no episode trains on it (a test-only dataset)
    train = {k: make_part(taxonomy[ls], 3, s) for k, ls, s in (("A", "pannuke", 1), ("B", "consep", 2),
                                                                ("T", "consep", 3))}
    val = {k: make_part(taxonomy[ls], 2, s) for k, ls, s in (("A", "pannuke", 4), ("B", "consep", 5),
                                                              ("T", "consep", 6))}
    data = MultiDataset(train, val)
    asked = []
    original = MultiDataset.validation

    def validation(self, names=None):
        asked.append(tuple(self.names if names is None else names))
        return original(self, names)

    monkeypatch.setattr(MultiDataset, "validation", validation)
    seen_val = {}
    original_train = type(tiny_model).train

    def spy_train(self, X, Y, validation_data, **kw):
        seen_val["n"] = len(validation_data[0])
        seen_val["X"] = validation_data[0]
        return original_train(self, X, Y, validation_data, **kw)

    monkeypatch.setattr(type(tiny_model), "train", spy_train)

    after_epoch = {}

    class Record(Callback):  # the weights after each epoch's last batch, before any epoch-end restore
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            after_epoch[self.epoch] = [w.copy() for w in self.model.get_weights()]

    ended = {}

    def on_end(k, episode, eh):
        ended[k] = [w.copy() for w in tiny_model.keras_model.get_weights()]
        return {}

    # episode "a": min_delta huge, patience 0 -> only epoch 0 improves; stops after epoch 1, restores epoch 0
    episodes = [Episode("a", "A", 4, patience=0, min_delta=1e9, restore_best=True),
                Episode("ab", {"A": 1.0, "B": 1.0}, 1)]
    cb = train_episodes(tiny_model, data, episodes, steps_per_epoch=2, seed=test_seed, verbose=0,
                        callbacks=[Record()], on_episode_end=on_end)
    e0, e1 = cb.history["episodes"]
    assert (e0["epochs_run"], e0["stopped_early"], e0["restored_best"], e0["best_epoch"]) == (2, True, True, 0)
    assert e1["epochs_run"] == 1 and cb.history["finished"]
    # the weights episode "a" ended with are those after its best epoch (0), not its last (1)
    assert any(not np.array_equal(x, y) for x, y in zip(after_epoch[0], after_epoch[1]))
    for x, y in zip(ended[0], after_epoch[0]):
        np.testing.assert_array_equal(x, y)
    # each episode's early-stopping loss is on its own datasets; Keras' val_loss on the trained ones
    assert ("A",) in asked and ("A", "B") in asked
    assert all("T" not in names for names in asked), asked
    assert seen_val["n"] == len(val["A"].X) + len(val["B"].X)
    for x in seen_val["X"]:
        assert not any(x.shape == t.shape and np.array_equal(x, t) for t in val["T"].X)
