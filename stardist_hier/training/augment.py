"""Training augmentation as in the paper, with class-aware oversampling (no TensorFlow).

The paper (section 4) uses random brightness, hue and saturation changes against
stain variability, and applies 90-degree rotations, flips and elastic deformations
more often to patches of the less populated classes.

StarDist calls its augmenter as ``augmenter(x, y) -> (x, y)`` on every training patch,
where ``y`` is the instance label patch: the class of a nucleus is not visible there.
Class awareness therefore comes from the sampler, in two parts:

1. :func:`rare_images` marks the training images that hold a nucleus of a rare label
   (a label with a small share of its dataset's nuclei), and
   :func:`oversampling_weights` turns the marks into sampling weights for
   :class:`~stardist_hier.training.DatasetMixer`, which then draws those images more often;
2. :class:`Augmenter` asks the mixer which image each patch comes from
   (:meth:`DatasetMixer.pop_image`) and uses the stronger geometric and elastic
   probabilities (``rare_p_*``) for patches of rare-class images.

Label patches stay integer: geometric transforms permute pixels, and the elastic
deformation samples labels with nearest-neighbour interpolation
(``scipy.ndimage.map_coordinates(order=0)``), so negative ignore values survive.
With ``backend="albumentations"`` (or ``"auto"`` when the package is installed) the
colour and elastic steps use albumentations instead; everything else is NumPy.
"""

from __future__ import annotations

import threading

import numpy as np
from scipy import ndimage

__all__ = ["Augmenter", "rare_labels", "rare_images", "oversampling_weights",
           "color_jitter", "random_rot_flip", "elastic_deform"]


#: Separates the per-batch augmentation seeds from the batch's patch-position seeds.
_AUGMENT_SEED_TAG = 0xA06

# ------------------------------------------------------------------ rare classes
def rare_labels(classes, label_sets, *, threshold: float = 0.1) -> dict:
    """Labels holding less than ``threshold`` of their label set's nuclei.

    Parameters
    ----------
    classes : sequence of dict
        Per image ``{instance id: label}`` (names or codes; ``None`` ignored).
    label_sets : sequence of LabelSet
        The label set of every image. Counts are pooled over images sharing a label set.
    threshold : float
        Share below which a label is rare. Labels of a set that never occur are not
        reported (they cannot be oversampled).

    Returns
    -------
    dict
        ``{label set name: frozenset of rare label names}``.
    """
    counts: dict = {}
    for cls, ls in zip(classes, label_sets):
        if cls is None or ls is None:
            continue
        c = counts.setdefault(ls.name, {})
        for lab in cls.values():
            if lab is None:
                continue
            name = ls.resolve(lab)
            if name is not None:
                c[name] = c.get(name, 0) + 1
    out = {}
    for name, c in counts.items():
        total = sum(c.values())
        out[name] = frozenset(k for k, v in c.items() if total > 0 and v / total < threshold)
    return out


def rare_images(classes, label_sets, *, threshold: float = 0.1) -> np.ndarray:
    """Boolean mask of the images that hold at least one nucleus of a rare label.

    See :func:`rare_labels` for the arguments.
    """
    rare = rare_labels(classes, label_sets, threshold=threshold)
    mask = np.zeros(len(classes), bool)
    for i, (cls, ls) in enumerate(zip(classes, label_sets)):
        if cls is None or ls is None:
            continue
        r = rare.get(ls.name, frozenset())
        mask[i] = any(lab is not None and ls.resolve(lab) in r for lab in cls.values())
    return mask


def oversampling_weights(rare_mask, factor: float = 2.0) -> np.ndarray:
    """Sampling weight per image: ``factor`` for rare-class images, 1 otherwise."""
    if not factor > 0:
        raise ValueError(f"oversampling factor must be positive, got {factor}")
    return np.where(np.asarray(rare_mask, bool), float(factor), 1.0)


# -------------------------------------------------------------------- transforms
def _as_hwc(x):
    x = np.asarray(x)
    return (x[..., None], True) if x.ndim == 2 else (x, False)


def color_jitter(x, rng, *, brightness=0.15, hue=0.04, saturation=0.15):
    """Random brightness, hue and saturation change of an image patch.

    RGB patches (3 channels) are rescaled to [0, 1] by their own range, changed in HSV
    (hue shifted by up to ``hue`` of a turn, saturation and value scaled by up to
    ``1 +- saturation`` / ``1 +- brightness``) and rescaled back. Other patches get the
    brightness change only. The HSV round trip is computed in float32 in one vectorised
    pass (the standard formulas, as scikit-image's ``rgb2hsv``/``hsv2rgb``, about 3x faster).
    """
    x = np.asarray(x, np.float32)
    b = rng.uniform(1 - brightness, 1 + brightness)
    if x.ndim != 3 or x.shape[-1] != 3:
        return (x * b).astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    scale = hi - lo if hi > lo else 1.0
    dh = rng.uniform(-hue, hue)
    ds = rng.uniform(1 - saturation, 1 + saturation)
    out = _hsv_change((x - lo) * np.float32(1 / scale), dh, ds, b)
    out *= np.float32(scale)
    out += np.float32(lo)
    return out


def _hsv_change(rgb, dh, ds, dv):
    """``hsv2rgb`` of ``rgb2hsv(rgb)`` with hue + ``dh`` (turns), saturation and value times
    ``ds`` and ``dv`` (clipped to [0, 1]); ``rgb`` float32 in [0, 1], shape ``(..., 3)``."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    has_c = c > 0
    cc = np.where(has_c, c, np.float32(1))
    h = np.where(v == r, ((g - b) / cc) % 6, np.where(v == g, (b - r) / cc + 2, (r - g) / cc + 4))
    h = np.where(has_c, h, np.float32(0))
    s = np.where(v > 0, c / np.where(v > 0, v, np.float32(1)), np.float32(0))
    h = (h + np.float32(6 * dh)) % 6
    s = np.clip(s * np.float32(ds), 0, 1)
    v = np.clip(v * np.float32(dv), 0, 1)
    k = (h[..., None] + np.array([5, 3, 1], np.float32)) % 6
    f = np.clip(np.minimum(k, 4 - k), 0, 1)
    return (v[..., None] * (1 - s[..., None] * f)).astype(np.float32, copy=False)


def random_rot_flip(x, y, rng):
    """The same random 90-degree rotation and flip of an image and its label patch."""
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k, axes=(0, 1))
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def elastic_deform(x, y, rng, *, alpha=6.0, sigma=8.0):
    """Elastic deformation of an image (linear interpolation) and its labels (nearest).

    A random displacement field, Gaussian-smoothed with ``sigma`` pixels and scaled to
    about ``alpha`` pixels, moves image and labels alike (``mode="reflect"`` at the
    border for both). Labels keep their dtype and values.
    """
    shape = y.shape
    d = [ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma, mode="constant") for _ in range(2)]
    norm = max(np.abs(d[0]).max(), np.abs(d[1]).max(), 1e-12)
    dy, dx = (alpha / norm) * d[0], (alpha / norm) * d[1]
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    coords = np.array([yy + dy, xx + dx])
    xh, squeeze = _as_hwc(x)
    out = np.stack([ndimage.map_coordinates(xh[..., c], coords, order=1, mode="reflect")
                    for c in range(xh.shape[-1])], axis=-1).astype(np.float32)
    y2 = ndimage.map_coordinates(y, coords, order=0, mode="reflect").astype(y.dtype, copy=False)
    return (out[..., 0] if squeeze else out), y2


def _albumentations():
    try:
        import albumentations as A  # noqa: N812
    except ImportError:
        return None
    return A


# --------------------------------------------------------------------- augmenter
class Augmenter:
    """StarDist augmenter ``(x, y) -> (x, y)`` with class-aware probabilities.

    Parameters
    ----------
    seed : int or None
        Seed of the augmenter's own :class:`numpy.random.Generator`.
    p_color : float
        Probability of :func:`color_jitter` (every patch).
    p_geometric, rare_p_geometric : float
        Probability of :func:`random_rot_flip` for ordinary and rare-class patches.
    p_elastic, rare_p_elastic : float
        Probability of :func:`elastic_deform` for ordinary and rare-class patches.
    brightness, hue, saturation : float
        Ranges of :func:`color_jitter`.
    elastic_alpha, elastic_sigma : float
        Strength and smoothness (pixels) of :func:`elastic_deform`.
    rare : array_like of bool, optional
        Rare-class mark of every training image (:func:`rare_images`).
    source : DatasetMixer, optional
        The sampler, asked which image each patch comes from (:meth:`DatasetMixer.pop_image`).
        Without ``rare`` and ``source`` every patch counts as ordinary.
    backend : {"numpy", "auto", "albumentations"}
        Implementation of the colour and elastic steps: NumPy/scikit-image/SciPy
        (default, the same on every machine), albumentations (``ColorJitter``,
        ``ElasticTransform`` with nearest-neighbour masks), or ``"auto"``:
        albumentations when it is installed.

    Attributes
    ----------
    counts : dict
        Number of patches seen and transformed, split by ordinary/rare (for checks).
    """

    def __init__(self, *, seed=None, p_color=0.8, p_geometric=0.5, rare_p_geometric=1.0, p_elastic=0.1,
                 rare_p_elastic=0.5, brightness=0.15, hue=0.04, saturation=0.15, elastic_alpha=6.0,
                 elastic_sigma=8.0, rare=None, source=None, backend="numpy"):
        for k, v in dict(p_color=p_color, p_geometric=p_geometric, rare_p_geometric=rare_p_geometric,
                         p_elastic=p_elastic, rare_p_elastic=rare_p_elastic).items():
            if not 0 <= v <= 1:
                raise ValueError(f"Augmenter: {k} must be a probability in [0, 1], got {v}")
        if backend not in ("auto", "numpy", "albumentations"):
            raise ValueError(f"Augmenter: backend must be 'auto', 'numpy' or 'albumentations', got {backend!r}")
        A = _albumentations() if backend != "numpy" else None
        if backend == "albumentations" and A is None:
            raise ImportError("Augmenter(backend='albumentations'): albumentations is not installed")
        self._A = A
        self.backend = "albumentations" if A is not None else "numpy"
        self.rng = np.random.default_rng(seed)
        self.p_color = p_color
        self.p = {False: (p_geometric, p_elastic), True: (rare_p_geometric, rare_p_elastic)}
        self.color_kw = dict(brightness=brightness, hue=hue, saturation=saturation)
        self.elastic_kw = dict(alpha=elastic_alpha, sigma=elastic_sigma)
        self.rare = None if rare is None else np.asarray(rare, bool)
        self.source = source
        self.counts = {"patches": [0, 0], "geometric": [0, 0], "elastic": [0, 0]}
        self._count_lock = threading.Lock()

    def is_rare(self) -> bool:
        """Whether the next patch comes from a rare-class image (asks the sampler)."""
        if self.rare is None or self.source is None:
            return False
        k = self.source.pop_image()
        return bool(k is not None and 0 <= k < len(self.rare) and self.rare[k])

    def __call__(self, x, y, *, rare=None):
        rare = self.is_rare() if rare is None else bool(rare)
        p_geo, p_el = self.p[rare]
        r = int(rare)
        self.counts["patches"][r] += 1
        if self.rng.random() < self.p_color:
            x = self._color(x)
        if self.rng.random() < p_geo:
            x, y = random_rot_flip(x, y, self.rng)
            self.counts["geometric"][r] += 1
        if self.rng.random() < p_el:
            x, y = self._elastic(x, y)
            self.counts["elastic"][r] += 1
        return x, y

    def for_batch(self, entropy, images):
        """An augmenter for one batch, with its own generator seeded from ``entropy``.

        Used by the training data when the sampler gives every batch seed entropy
        (:meth:`DatasetMixer.batch_seed`): the batch's augmentation is then a pure function
        of ``(entropy, images)``, whichever input thread builds it and in whatever order
        (parallel input, resuming). ``images`` are the batch's image indices, in patch
        order (they give the rare-class marks; the sampler is not asked).

        Returns
        -------
        callable
            ``(x, y) -> (x, y)``, to be called once per patch, in order.
        """
        key = [int(v) for v in np.atleast_1d(entropy)] + [_AUGMENT_SEED_TAG]
        rng = np.random.default_rng(np.random.SeedSequence(key))
        marks = [False if self.rare is None else bool(0 <= int(k) < len(self.rare) and self.rare[int(k)])
                 for k in images]
        it = iter(marks)

        def augment(x, y):
            return self._apply(x, y, next(it, False), rng)

        return augment

    def _apply(self, x, y, rare, rng):
        p_geo, p_el = self.p[rare]
        done = [False, False]
        if rng.random() < self.p_color:
            x = self._color(x, rng)
        if rng.random() < p_geo:
            x, y = random_rot_flip(x, y, rng)
            done[0] = True
        if rng.random() < p_el:
            x, y = self._elastic(x, y, rng)
            done[1] = True
        r = int(rare)
        with self._count_lock:
            self.counts["patches"][r] += 1
            self.counts["geometric"][r] += done[0]
            self.counts["elastic"][r] += done[1]
        return x, y

    def _color(self, x, rng=None):
        rng = self.rng if rng is None else rng
        if self._A is None:
            return color_jitter(x, rng, **self.color_kw)
        x = np.asarray(x, np.float32)
        lo, hi = float(x.min()), float(x.max())
        scale = hi - lo if hi > lo else 1.0
        kw = self.color_kw
        t = self._A.ColorJitter(brightness=kw["brightness"], contrast=0, saturation=kw["saturation"],
                                hue=kw["hue"], p=1.0)
        t.set_random_seed(int(rng.integers(2 ** 31)))
        xh, squeeze = _as_hwc((x - lo) / scale)
        if xh.shape[-1] != 3:
            return color_jitter(x, rng, **self.color_kw)
        out = t(image=np.ascontiguousarray(xh, np.float32))["image"] * scale + lo
        return out.astype(np.float32)

    def _elastic(self, x, y, rng=None):
        rng = self.rng if rng is None else rng
        if self._A is None:
            return elastic_deform(x, y, rng, **self.elastic_kw)
        # albumentations scales a Gaussian-smoothed uniform field by alpha; its maximum is
        # about 0.5 / sigma, so this alpha gives about the same largest displacement
        a, s = self.elastic_kw["alpha"], self.elastic_kw["sigma"]
        t = self._A.ElasticTransform(alpha=2.0 * a * s, sigma=s, p=1.0)
        t.set_random_seed(int(rng.integers(2 ** 31)))
        out = t(image=np.ascontiguousarray(x, np.float32), mask=np.ascontiguousarray(y, np.int32))
        return out["image"].astype(np.float32), out["mask"].astype(y.dtype, copy=False)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "counts": {k: list(v) for k, v in self.counts.items()}}

    def load_state_dict(self, state: dict):
        self.rng.bit_generator.state = state["rng"]
        self.counts = {k: list(v) for k, v in state.get("counts", self.counts).items()}
