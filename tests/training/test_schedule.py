"""Two-episode schedules: the switch, the cuts of the batches, early stopping, best weights."""

import json

import numpy as np
import pytest

from stardist_hier.targets import split_target
from stardist_hier.training import Episode, ScheduleError, validate_schedule

pytestmark = pytest.mark.slow


def test_episode_validation():
    with pytest.raises(ScheduleError, match="'e'.*no dataset"):
        Episode.from_dict({"name": "e", "datasets": [], "epochs": 2})
    with pytest.raises(ScheduleError, match="'e'.*max_epochs"):
        Episode("e", "A", 0)
    with pytest.raises(ScheduleError, match="episode 'x' names unknown dataset 'C'"):
        validate_schedule([Episode("x", ["A", "C"], 1)], ["A", "B"])
    ep = Episode.from_dict({"name": "m", "datasets": {"A": 3, "B": 1}, "epochs": 4,
                            "early_stopping": {"patience": 2, "min_delta": 0.1}})
    assert ep.mixture == {"A": 3.0, "B": 1.0} and ep.patience == 2 and ep.min_delta == 0.1


def _record_batches(monkeypatch):
    """Record (batch index, class target) of every training batch StarDist builds."""
    from stardist_hier.models import _stardist_compat as compat

    seen = []
    original = compat.StarDistData2DHier.__getitem__

    def getitem(self, i):
        out = original(self, i)
        if self.sampler is not None:
            seen.append((int(i), np.asarray(out[1][2])))
        return out

    monkeypatch.setattr(compat.StarDistData2DHier, "__getitem__", getitem)
    return seen


def test_two_episodes_switch_cuts_early_stop_and_best_weights(two_datasets, tiny_model, taxonomy, tmp_path,
                                                              monkeypatch):
    from stardist_hier.training import EpisodeCallback, train_episodes

    seen = _record_batches(monkeypatch)
    snapshots = {}
    original_end = EpisodeCallback._end_episode

    def end_episode(self, k, *, stopped_early):
        snapshots[k] = (self.model.get_weights(), [w.copy() for w in self.best_weights])
        return original_end(self, k, stopped_early=stopped_early)

    monkeypatch.setattr(EpisodeCallback, "_end_episode", end_episode)
    spe = 3
    episodes = [Episode("pre", "A", 2),
                # min_delta huge: no epoch after the first improves -> early stop after 2 epochs of 5
                Episode("fine", "B", 5, patience=0, min_delta=1e9, keep_optimizer_state=False,
                        class_weights={"fibroblast": 3.0})]
    cb = train_episodes(tiny_model, two_datasets, episodes, steps_per_epoch=spe, seed=1,
                        history_path=tmp_path / "history.json", verbose=0)
    h = cb.history
    e0, e1 = h["episodes"]
    assert (e0["epochs_run"], e0["first_epoch"], e0["stopped_early"]) == (2, 0, False)
    assert (e1["epochs_run"], e1["first_epoch"], e1["stopped_early"], e1["restored_best"]) == (2, 2, True, True)
    assert e1["best_epoch"] == 2 and h["epochs_done"] == 4 and h["finished"]
    assert len(e1["val_loss_episode"]) == 2 and all(np.isfinite(e1["val_loss_episode"]))
    assert json.loads((tmp_path / "history.json").read_text())["epochs_done"] == 4

    # batches: epochs 0-1 carry PanNuke's cut, epochs 2-3 CoNSeP's with the episode's class weight
    pannuke, consep = taxonomy["pannuke"], taxonomy["consep"]
    C = taxonomy.tree.n_classes + 1
    fib = taxonomy.tree.leaf_index("fibroblast")
    by_epoch = {}
    for i, cls in seen:
        by_epoch.setdefault(i // spe, []).append(cls)
    assert sorted(k for k in by_epoch if k < 4) == [0, 1, 2, 3]
    for epoch in range(4):
        assert len(by_epoch[epoch]) == spe
        expected = pannuke if epoch < 2 else consep
        for cls in by_epoch[epoch]:
            assert cls.shape[-1] == 3 * C
            _, assignment, weights = split_target(cls)
            np.testing.assert_array_equal(assignment, np.broadcast_to(expected.leaf_assignment(), assignment.shape))
            assert np.all(weights[..., fib] == (3.0 if epoch >= 2 else 1.0))

    # episode 1 stopped early at its 2nd epoch: the weights of its 1st (best) epoch are restored
    before, best = snapshots[1]
    final = tiny_model.keras_model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, best))
    for a, b in zip(final, best):
        np.testing.assert_array_equal(a, b)
    # the fresh optimizer state at the switch: Adam counted only the second episode's steps
    assert int(tiny_model.keras_model.optimizer.iterations.numpy()) == 2 * spe


def test_reset_optimizer(tiny_model):
    from stardist_hier.training import reset_optimizer

    tiny_model.prepare_for_training()
    km = tiny_model.keras_model
    opt = km.optimizer
    opt.build(km.trainable_variables)
    for v in opt.variables:
        v.assign(np.ones(tuple(v.shape), v.dtype) * 3)
    reset_optimizer(opt, 1e-3)
    for v in opt.variables:
        if v is opt._learning_rate:
            assert np.isclose(float(v.numpy()), 1e-3)
        else:
            assert not np.any(np.asarray(v.numpy()))
