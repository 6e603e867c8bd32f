"""Interrupted runs resume from the last completed epoch and end with the same number of epochs."""

import pytest

from stardist_hier.training import Episode

pytestmark = pytest.mark.slow


class Interrupt(Exception):
    pass


def _small_patch_model(tree):
    """The tests' tiny model with 32x32 patches of the 64x64 images (patch positions vary)."""
    from stardist_hier import Config2DHier, StarDist2DHier

    conf = Config2DHier(tree=tree, n_rays=8, grid=(2, 2), unet_n_depth=2, unet_n_filter_base=8,
                        net_conv_after_unet=16, train_patch_size=(32, 32), train_batch_size=2,
                        train_tensorboard=False)
    return StarDist2DHier(conf, name="small", basedir=None)


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


def test_batch_patches_depend_only_on_seed_and_global_step(two_datasets, taxonomy):
    """StarDist's patch positions come from NumPy's global generator; with a seeded mixer
    a batch is the same whatever that generator's state, and batch ``i`` of a fit that
    starts at global step ``s`` is batch ``s + i`` of an uninterrupted one."""
    import numpy as np

    from stardist_hier.models import _stardist_compat as compat
    from stardist_hier.training import DatasetMixer

    model = _small_patch_model(taxonomy.tree)
    d = two_datasets
    cuts = model.encode(d.X, d.Y, d.classes, d.label_sets)

    def batches(first_step, steps, mixer_state=None, noise=0):
        mixer = DatasetMixer(d.groups, 2, seed=4)
        mixer.set_datasets({"A": 1, "B": 1})
        if mixer_state is not None:
            mixer.load_state_dict(mixer_state)
        mixer.first_step = first_step
        gen = compat.StarDistData2DHier(d.X, d.Y, cuts, sampler=mixer, batch_size=2, length=10,
                                        **compat.data_kwargs(model.config))
        out = []
        for i in steps:
            np.random.seed(noise + i)  # whatever the global state, the batch is the same
            before = np.random.get_state()[1].copy()
            out.append(gen[i])
            assert np.array_equal(np.random.get_state()[1], before)  # and it is left alone
        return out, mixer

    full, _ = batches(0, range(4))
    head, mixer = batches(0, range(2), noise=100)
    tail, _ = batches(2, range(2), mixer_state=mixer.state_dict(), noise=200)

    def same(a, b):
        (xa,), ya = a
        (xb,), yb = b
        return np.array_equal(xa, xb) and all(np.array_equal(u, v) for u, v in zip(ya, yb))

    assert all(same(a, b) for a, b in zip(full, head + tail))
    assert not same(full[0], full[2])
    assert mixer.batch_seed(3) == [4, mixer.batch_seed(3)[1], 3]
    assert DatasetMixer(d.groups, 2, seed=None).batch_seed(0) is None


def test_reset_class_head_at_the_switch_survives_a_resume(two_datasets, make_tiny_model, tmp_path):
    """``reset_class_head``: the episode starts from the seeded fresh head; a run resumed
    inside that episode continues from its checkpointed head (it is not reset again)."""
    import numpy as np
    from csbdeep.utils.tf import keras_import

    from stardist_hier.training import train_episodes

    Callback = keras_import("callbacks", "Callback")
    episodes = [Episode("pre", "A", 1), Episode("fine", "B", 2, reset_class_head=True)]

    class Heads(Callback):
        def __init__(self):
            super().__init__()
            self.begin, self.end = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.begin.append([w.copy() for w in self.model.get_layer("prob_class").get_weights()])

        def on_epoch_end(self, epoch, logs=None):
            self.end.append([w.copy() for w in self.model.get_layer("prob_class").get_weights()])

    ref = make_tiny_model(None)
    ref.reset_class_head(seed=[3, 1])  # what the switch into episode 1 must produce
    want = ref.keras_model.get_layer("prob_class").get_weights()

    ck = tmp_path / "ck"
    rec = Heads()
    m = make_tiny_model(tmp_path / "a")
    with pytest.raises(Interrupt):
        train_episodes(m, two_datasets, episodes, steps_per_epoch=2, seed=3, checkpoint_dir=ck,
                       callbacks=[rec, _raise_after(2)], verbose=0)
    for a, b in zip(rec.begin[1], want):  # the first epoch of "fine" starts from the fresh head
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(rec.begin[0][0], want[0])  # ("pre" started from another head)
    assert not np.allclose(rec.end[1][0], want[0])  # ("fine" trained it for one epoch)
    rec2 = Heads()
    train_episodes(make_tiny_model(tmp_path / "b"), two_datasets, episodes, steps_per_epoch=2, seed=3,
                   checkpoint_dir=ck, callbacks=[rec2], verbose=0)
    assert len(rec2.begin) == 1  # only the missing epoch ran
    for a, b in zip(rec2.begin[0], rec.end[1]):  # resumed from the checkpoint, not reset again
        np.testing.assert_array_equal(a, b)


def _weights_by_part(keras_model):
    """``(class head weights, every other weight)`` as copies."""
    from stardist_hier.models._stardist_compat import class_head_layers

    head = {id(l) for l in class_head_layers(keras_model)}
    h = [w.copy() for l in keras_model.layers if id(l) in head for w in l.get_weights()]
    t = [w.copy() for l in keras_model.layers if id(l) not in head for w in l.get_weights()]
    return h, t


def test_freeze_trunk_trains_only_the_class_head_and_survives_a_resume(two_datasets, make_tiny_model, tmp_path):
    """``freeze_trunk``: during the episode only the class head changes; the next episode
    trains everything again; a run resumed inside the frozen episode stays frozen, and
    the optimizer keeps one state slot per variable throughout."""
    import numpy as np
    from csbdeep.utils.tf import keras_import

    from stardist_hier.training import train_episodes

    Callback = keras_import("callbacks", "Callback")
    episodes = [Episode("pre", "A", 1), Episode("warm", "B", 2, freeze_trunk=True, reset_class_head=True),
                Episode("fine", "B", 1)]

    class Parts(Callback):
        def __init__(self):
            super().__init__()
            self.begin, self.end = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.begin.append(_weights_by_part(self.model))

        def on_epoch_end(self, epoch, logs=None):
            self.end.append(_weights_by_part(self.model))

    def changed(a, b):
        return any(not np.array_equal(u, v) for u, v in zip(a, b))

    rec = Parts()
    m = make_tiny_model(tmp_path / "a")
    n_opt = None
    ck = tmp_path / "ck"
    with pytest.raises(Interrupt):
        train_episodes(m, two_datasets, episodes, steps_per_epoch=2, seed=5, checkpoint_dir=ck,
                       callbacks=[rec, _raise_after(2)], verbose=0)
    n_opt = len(m.keras_model.optimizer.variables)
    assert changed(rec.begin[0][1], rec.end[0][1])  # "pre" trains the trunk
    assert changed(rec.begin[1][0], rec.end[1][0])  # "warm" trains the head ...
    assert not changed(rec.begin[1][1], rec.end[1][1])  # ... and nothing else
    rec2 = Parts()
    m2 = make_tiny_model(tmp_path / "b")
    train_episodes(m2, two_datasets, episodes, steps_per_epoch=2, seed=5, checkpoint_dir=ck,
                   callbacks=[rec2], verbose=0)
    assert len(rec2.begin) == 2  # the second "warm" epoch, then "fine"
    assert changed(rec2.begin[0][0], rec2.end[0][0]) and not changed(rec2.begin[0][1], rec2.end[0][1])
    assert changed(rec2.begin[1][1], rec2.end[1][1])  # "fine" trains the trunk again
    assert len(m2.keras_model.optimizer.variables) == n_opt
    assert all(l.trainable for l in m2.keras_model.layers)  # unfrozen after training


def test_freeze_trunk_is_read_from_configs_and_kept_out_of_old_fingerprints():
    from stardist_hier.training.schedule import Episode as E

    assert E.from_dict({"name": "w", "datasets": "A", "epochs": 1, "freeze_trunk": True}).freeze_trunk
    assert "freeze_trunk" not in E("w", "A", 1).to_dict()  # older fingerprints hold
