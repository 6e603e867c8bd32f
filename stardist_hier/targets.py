"""Per-sample cuts and the class-head training target (no TensorFlow).

The class head predicts ``C = n_classes + 1`` softmax channels (0 = background). Its
training target, ``y_true`` of the ``prob_class`` output, carries ``3 * C`` channels:

``[0, C)``
    The pixel's label set as a multi-hot row over the channels: for a pixel of a
    nucleus labelled ``k`` the ones are the leaves of ``k``; background pixels have a
    one in channel 0. This is StarDist's one-hot class target generalised to label
    sets, and keeps StarDist's convention that ``-1`` (in every channel) switches the
    pixel's loss off.
``[C, 2C)``
    The sample's *cut*: for every channel the 1-based index of the dataset label that
    covers it (0 for background, -1 for a leaf no label covers). Constant over pixels.
``[2C, 3C)``
    The loss weight of the label covering every channel (0 where uncovered).
    Constant over pixels.
``[3C, 3C + K)`` (only for a model with ``K > 1`` class heads)
    One-hot index of the class head that scores the sample (one head per dataset
    label set, ``Config2DHier.hier_class_heads``). Constant over pixels.

Because the cut travels with every sample, one batch may mix samples of different
datasets, and the losses (:mod:`stardist_hier.losses`) need only ``(y_true, y_pred)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tree import LabelSet, LabelSetError

__all__ = ["ImageCut", "encode_image", "class_target", "target_channels", "split_target"]


@dataclass(frozen=True)
class ImageCut:
    """Class information of one training image, ready for target generation.

    Attributes
    ----------
    label_of_id : ndarray of int32, (max_id + 1,)
        Label index (1-based in the label set) of every instance id; 0 for id 0
        (background) and for ids absent from the image; -1 for ignored instances.
    assignment : ndarray of int32, (C,)
        :meth:`LabelSet.leaf_assignment` of the image's label set.
    channel_weights : ndarray of float32, (C,)
        Loss weight of the label covering each channel (0 where uncovered).
    rows : ndarray of float32, (n_labels + 2, C)
        Multi-hot row of every label index (row 0 background), plus a last row of -1
        for ignored pixels.
    label_set : LabelSet
    """

    label_of_id: np.ndarray
    assignment: np.ndarray
    channel_weights: np.ndarray
    rows: np.ndarray
    label_set: LabelSet
    head: np.ndarray | None = None


def target_channels(n_classes: int, n_heads: int = 1) -> int:
    """Number of channels of the class target for ``n_classes`` leaves and ``n_heads`` class heads."""
    return 3 * (int(n_classes) + 1) + (int(n_heads) if int(n_heads) > 1 else 0)


def encode_image(labels: np.ndarray, classes, label_set: LabelSet, *, leaf_weights=None,
                 where: str = "image", heads=None) -> ImageCut:
    """Validate one image's instance classes and encode them for training.

    Parameters
    ----------
    labels : ndarray of int
        Instance label image (0 background, negative values: ignore regions).
    classes : dict
        Instance id -> label name or integer code of ``label_set`` (``None`` to ignore
        the instance). Every positive id of ``labels`` must have an entry.
    label_set : LabelSet
        The label set of the image's dataset.
    leaf_weights : array_like, optional
        Per-channel class weights (``n_classes + 1``), see :meth:`LabelSet.label_weights`.
    where : str
        Name of the image used in error messages (e.g. ``"image 3"``).
    heads : sequence of str, optional
        The model's class heads (label-set names, ``Config2DHier.hier_class_heads``);
        the image is scored by the head named like its label set. ``None``: one shared head.

    Raises
    ------
    LabelSetError
        Unknown label names or codes, instances missing from ``classes``.
    ValueError
        Non-integer label images.
    """
    if not isinstance(label_set, LabelSet):
        raise TypeError(f"{where}: label_set must be a LabelSet, got {type(label_set).__name__}")
    head = None
    if heads is not None and len(heads) > 1:
        heads = list(heads)
        if label_set.name not in heads:
            raise LabelSetError(f"{where}: label set {label_set.name!r} has no class head; the model's heads "
                                f"(hier_class_heads) are {heads}")
        head = np.zeros(len(heads), np.float32)
        head[heads.index(label_set.name)] = 1
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where}: label image must have an integer dtype, got {labels.dtype}")
    if not isinstance(classes, dict):
        raise TypeError(f"{where}: classes must be a dict {{instance id: label}}, got {type(classes).__name__}")
    classes = _int_keys(classes, where)
    ids = np.unique(labels[labels > 0])
    missing = [int(i) for i in ids if int(i) not in classes]
    if missing:
        raise LabelSetError(
            f"{where}: instance ids {missing[:10]}{' ...' if len(missing) > 10 else ''} have no class "
            f"(every positive id of the label image needs an entry; use None to ignore an instance)")
    # the table runs to the largest id in the image: entries of ids absent from it are checked
    # but need no row (an id of 10**12 would otherwise allocate terabytes)
    max_id = int(ids.max()) if len(ids) else 0
    label_of_id = np.zeros(max_id + 1, np.int32)
    for inst, lab in classes.items():
        if int(inst) <= 0:
            continue
        if int(inst) > max_id:
            if lab is not None:
                try:
                    label_set.index(lab)
                except LabelSetError as e:
                    raise LabelSetError(f"{where}, instance {int(inst)}: {e}") from None
            continue
        if lab is None:
            label_of_id[int(inst)] = -1
            continue
        try:
            k = label_set.index(lab)
        except LabelSetError as e:
            raise LabelSetError(f"{where}, instance {int(inst)}: {e}") from None
        label_of_id[int(inst)] = -1 if k is None else k
    w = label_set.label_weights(leaf_weights)
    a = label_set.leaf_assignment()
    cw = np.where(a >= 0, w[np.maximum(a, 0)], 0).astype(np.float32)
    m = label_set.membership_matrix()
    rows = np.concatenate([m, -np.ones((1, m.shape[1]), np.float32)], axis=0)
    return ImageCut(label_of_id=label_of_id, assignment=a, channel_weights=cw, rows=rows,
                    label_set=label_set, head=head)


def _int_keys(classes: dict, where: str) -> dict:
    """``classes`` with integer instance ids; digit strings (as JSON gives them) are converted."""
    out = {}
    for k, v in classes.items():
        if isinstance(k, str):
            s = k.strip()
            if not (s.isdigit() or (s[:1] in "+-" and s[1:].isdigit())):
                raise LabelSetError(f"{where}: instance id {k!r} is not an integer")
            i = int(s)
        elif isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            i = int(k)
        elif isinstance(k, (float, np.floating)) and float(k).is_integer():
            i = int(k)
        else:
            raise LabelSetError(f"{where}: instance id {k!r} is not an integer")
        if i in out:
            raise LabelSetError(f"{where}: instance id {i} is given twice ({k!r} and another key)")
        out[i] = v
    return out


def class_target(labels: np.ndarray, cut: ImageCut, *, out: np.ndarray | None = None) -> np.ndarray:
    """Class-head target ``(..., 3 * C [+ K])`` of a (patch of a) label image.

    Parameters
    ----------
    labels : ndarray of int
        Label patch at the resolution of the network output (negative: ignore).
    cut : ImageCut
        The encoding of the image the patch comes from.
    out : ndarray, optional
        Pre-allocated float32 output of the right shape.
    """
    C = cut.assignment.shape[0]
    K = 0 if cut.head is None else len(cut.head)
    labels = np.asarray(labels)
    if out is None:
        out = np.empty(labels.shape + (3 * C + K,), np.float32)
    ids = np.clip(labels, 0, len(cut.label_of_id) - 1)
    k = cut.label_of_id[ids]
    k[labels < 0] = -1
    # label index -1 selects the last row (all -1) of cut.rows
    out[..., :C] = cut.rows[k]
    out[..., C:2 * C] = cut.assignment
    out[..., 2 * C:3 * C] = cut.channel_weights
    if K:
        out[..., 3 * C:] = cut.head
    return out


def split_target(y_true: np.ndarray, n_channels: int | None = None):
    """NumPy helper: ``(membership, assignment, channel_weights)`` of a target array.

    ``n_channels`` (``C``): needed when the target carries a head block (``K > 1`` heads)."""
    C = y_true.shape[-1] // 3 if n_channels is None else int(n_channels)
    return y_true[..., :C], y_true[..., C:2 * C], y_true[..., 2 * C:3 * C]
