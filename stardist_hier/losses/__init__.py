"""Hierarchy-aware class losses for the StarDist class head (TensorFlow).

Every loss takes ``(y_true, y_pred)`` where ``y_true`` is the packed target of
:mod:`stardist_hier.targets` (it carries each sample's cut) and ``y_pred`` the
``prob_class`` softmax. :data:`REGISTRY` maps config names to loss factories.
``ce`` and ``focal_tversky`` take a ``variant`` option (:mod:`.variants`): how coarse
labels are scored (exact marginal, renormalised over the dataset's labels, ignored, or
replaced by the root).
"""

from .adapted import dice, focal_crossentropy, label_set_loss
from .combined import combine
from .focal_tversky import focal_tversky
from .labelset_ce import labelset_crossentropy
from ._label_space import LabelSpace, label_space
from .variants import VARIANTS

__all__ = ["REGISTRY", "build_class_loss", "labelset_crossentropy", "focal_tversky", "dice",
           "focal_crossentropy", "label_set_loss", "combine", "LabelSpace", "label_space", "VARIANTS"]

#: config name -> (factory, names of its keyword options)
REGISTRY = {
    "ce": (labelset_crossentropy, ("variant",)),
    "focal_tversky": (focal_tversky, ("alpha", "gamma", "form", "variant")),
    "dice": (dice, ()),
    "focal_ce": (focal_crossentropy, ("gamma",)),
}


def build_class_loss(weights: dict, options: dict | None = None):
    """Build the class-head loss from ``{name: weight}`` and ``{name: {option: value}}``.

    Raises
    ------
    ValueError
        Unknown loss names or options, non-positive weights, empty combination.
    """
    if not weights:
        raise ValueError("class loss: at least one loss with a positive weight is needed")
    options = dict(options or {})
    losses = {}
    for name in weights:
        if name not in REGISTRY:
            raise ValueError(f"class loss: unknown loss {name!r}; known: {', '.join(REGISTRY)}")
        factory, allowed = REGISTRY[name]
        opts = dict(options.get(name) or {})
        bad = set(opts) - set(allowed)
        if bad:
            raise ValueError(f"class loss {name!r}: unknown options {sorted(bad)}; allowed: {list(allowed)}")
        losses[name] = factory(**opts)
    for name in options:
        if name not in weights:
            raise ValueError(f"class loss: options given for {name!r}, which is not in the combination")
    return combine(losses, dict(weights))
