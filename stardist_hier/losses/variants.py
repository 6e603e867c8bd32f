"""How a loss scores a nucleus labelled with a coarse label: the ``variant`` option.

Every variant is a choice of the probability scored for a pixel whose label ``k``
covers the leaf set ``S_k`` of the sample's label set (cut); ``y`` is the full softmax
and ``L`` the leaves the label set covers (background included):

``"marginal"`` (default; Eq. 2 of Parulekar, Kanwat et al., BIOIMAGING 2024)
    ``P = sum_{j in S_k} y_j`` over the *full* softmax.
``"renormalised"`` (the authors' code)
    ``P = sum_{j in S_k} y_j / sum_{j in L} y_j``: probabilities renormalised over the
    leaves the dataset's label set covers before scoring. Equal to ``"marginal"`` for
    a dataset whose labels cover every leaf; otherwise mass on uncovered leaves is
    neither rewarded nor penalised.
``"ignore_coarse"``
    Pixels whose label covers more than one leaf are ignored by the class loss (the
    segmentation losses still see them): only leaf-level labels teach classes.
``"root"``
    Coarse labels are replaced by the root label: ``P = 1 - y_0`` (any nucleus), so a
    coarse label teaches "nucleus" only; leaf-level labels are scored as in ``"marginal"``.

The variant is an option of ``ce`` and ``focal_tversky`` (e.g. the config
``train_class_loss_options: {ce: {variant: renormalised}, focal_tversky: {variant:
renormalised}}``). ``"root"`` is defined for the per-pixel losses only (``ce`` and
``focal_tversky`` with ``form="pixel"``): in the per-region form the root is not a slot
of the sample's label set.
"""

from __future__ import annotations

__all__ = ["VARIANTS", "check_variant"]

#: names of the variants, the default first
VARIANTS = ("marginal", "renormalised", "ignore_coarse", "root")


def check_variant(variant) -> str:
    """``variant`` if it is one of :data:`VARIANTS`, else a ValueError naming them."""
    if variant not in VARIANTS:
        raise ValueError(f"class loss: variant must be one of {VARIANTS}, got {variant!r}")
    return variant
