"""Interrupted runs resume from the last completed epoch and end with the same number of epochs."""

import pytest

from stardist_hier.training import Episode

pytestmark = pytest.mark.slow


class Interrupt(Exception):
    pass


def _raise_after(n):
    from csbdeep.utils.tf import keras_import

    Callback = keras_import("callbacks", "Callback")

    class RaiseAfter(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= n:
                raise Interrupt(f"simulated interruption after epoch {epoch + 1}")

    return RaiseAfter()


def test_interrupted_schedule_resumes(two_datasets, make_tiny_model, tmp_path):
    from stardist_hier.training import Augmenter, train_episodes

    episodes = [Episode("pre", "A", 2), Episode("fine", {"A": 1, "B": 2}, 2, keep_optimizer_state=False)]
    ck = tmp_path / "ck"

    def model():
        return make_tiny_model(tmp_path)

    m = model()
    aug = Augmenter(seed=0)
    with pytest.raises(Interrupt):
        train_episodes(m, two_datasets, episodes, steps_per_epoch=2, seed=3, augmenter=aug, checkpoint_dir=ck,
                       callbacks=[_raise_after(3)], verbose=0)
    # the checkpoint holds 3 completed epochs (the 3rd one's end ran before the interruption)
    m2 = model()
    cb = train_episodes(m2, two_datasets, episodes, steps_per_epoch=2, seed=3, augmenter=Augmenter(seed=0),
                        checkpoint_dir=ck, verbose=0)
    h = cb.history
    assert h["finished"] and h["epochs_done"] == 4
    assert [e["epochs_run"] for e in h["episodes"]] == [2, 2]
    assert h["episodes"][1]["first_epoch"] == 2 and len(h["episodes"][1]["loss"]) == 2
    # the resumed fit ran exactly the one missing epoch
    assert int(m2.keras_model.optimizer.iterations.numpy()) == 2 * 2  # reset at the switch, 2 epochs since

    # a finished run does nothing more
    cb3 = train_episodes(model(), two_datasets, episodes, steps_per_epoch=2, seed=3, checkpoint_dir=ck, verbose=0)
    assert cb3.history["epochs_done"] == 4


def test_checkpoint_of_another_schedule_is_refused(two_datasets, make_tiny_model, tmp_path):
    from stardist_hier.training import CheckpointMismatch, train_episodes

    ck = tmp_path / "ck"
    m = make_tiny_model(None)
    train_episodes(m, two_datasets, [Episode("a", "A", 1)], steps_per_epoch=2, seed=0, checkpoint_dir=ck, verbose=0)
    with pytest.raises(CheckpointMismatch, match="another configuration"):
        train_episodes(m, two_datasets, [Episode("a", "B", 1)], steps_per_epoch=2, seed=0, checkpoint_dir=ck,
                       verbose=0)
