"""An experiment's data: every dataset read and split into train, validation and test parts."""

from __future__ import annotations

import numpy as np

from ...tree import LabelSetError
from ..data import MultiDataset, Part
from .config import ConfigError, ExperimentConfig, _mapping, _split_counts

LEAVES = "leaves"


def load_data(cfg: ExperimentConfig, *, verbose=1):
    """Read every dataset; return ``(MultiDataset, {dataset: test Part})``.

    For a test set with ``truth: leaves`` the dict also holds ``(dataset, "leaves")``: the
    test split with the generator's true leaf of every nucleus (:func:`leaf_truth_part`).
    """
    from ...console import progress
    from ...normalization import KEY

    norm = cfg.model.get(KEY)  # the model's input normalisation (None: the default), as in its config.json
    train, val, test = {}, {}, {}
    for name, spec in progress(cfg.datasets.items(), total=len(cfg.datasets), desc="datasets", verbose=verbose, leave=False):
        where = f"dataset {name!r}"
        o = spec.options
        if spec.source == "synthetic":
            from ... import synthetic

            samples = synthetic.generate_dataset(o["generator"], o["n_tiles"], seed=o.get("seed", cfg.seed),
                                                 size=o.get("size", 256), taxonomy=cfg.taxonomy,
                                                 domain=o.get("domain"))
            counts = _split_counts(o.get("split"), len(samples), where)
            pools = {"train": samples[:counts["train"]],
                     "val": samples[counts["train"]:counts["train"] + counts["val"]],
                     "test": samples[counts["train"] + counts["val"]:][:counts["test"]]}
        else:
            pools = _registry_pools(name, o, spec, cfg, where)
        parts = {}
        for k, ss in pools.items():
            try:
                parts[k] = Part.from_samples(ss, cfg.taxonomy, label_set=spec.label_set,
                                             normalize=True if norm is None else norm)
            except (LabelSetError, KeyError) as e:
                raise ConfigError(f"{where}: {e}") from None
            if parts[k].X and parts[k].X[0].ndim != 3 or any(x.shape[-1] != 3 for x in parts[k].X):
                raise ConfigError(f"{where}: images must be RGB (H, W, 3)")
        train[name], val[name], test[name] = parts["train"], parts["val"], parts["test"]
        if any(t.dataset == name and t.truth == LEAVES for t in cfg.tests):
            try:
                test[(name, LEAVES)] = leaf_truth_part(pools["test"], cfg.taxonomy, like=parts["test"],
                                                       normalization=norm)
            except ValueError as e:
                raise ConfigError(f"{where}: {e}") from None
    _check_patch_size(cfg, train, val)
    return MultiDataset(train, val), test


def _check_patch_size(cfg: ExperimentConfig, train: dict, val: dict) -> None:
    """Every image a patch is cut from (training and validation parts of the datasets the episodes
    train on) must be at least ``model: train_patch_size``; checked before the run folder is written.

    Raises
    ------
    ConfigError
        Naming the dataset, the part, the image's size and the patch size.
    """
    patch = cfg.model.get("train_patch_size") or (256, 256)  # StarDist's Config2D default
    patch = tuple(int(p) for p in (patch if isinstance(patch, (list, tuple)) else (patch, patch)))
    trained = {d for ep in cfg.episodes for d in ep.dataset_names}
    for what, parts in (("training", train), ("validation", val)):
        for name in sorted(trained, key=str):
            part = parts.get(name)
            for i, y in enumerate(getattr(part, "Y", None) or []):
                shape = tuple(np.shape(y)[:2])
                if shape[0] < patch[0] or shape[1] < patch[1]:
                    raise ConfigError(f"dataset {name!r}: {what} image {i} is {shape[0]} x {shape[1]} px, smaller "
                                      f"than model: train_patch_size {list(patch)}; give a smaller patch size (or "
                                      f"the dataset's patch_size option)")


def leaf_truth_part(samples, taxonomy, *, like: Part | None = None, normalization=None) -> Part:
    """The samples scored against their true leaves (``meta["leaves"]``), at the label set ``leaves``.

    Every nucleus the generator drew counts, with its true leaf, also those that the
    dataset's label set does not cover (ignored in its labels: their pixels are in
    ``ignore``); ignore pixels that belong to no such nucleus stay ignored (-1). Instance
    ids are those of ``sample.labels`` (after any renumbering by the generator), which
    ``meta["leaves"]`` uses. ``like``: the same samples' :class:`Part` (its normalised
    images and names are reused); ``normalization``: the model's ``hier_normalize`` otherwise.
    """
    leaves_ls = taxonomy[LEAVES]
    X, Y, C, N = [], [], [], []
    for i, s in enumerate(samples):
        truth = s.meta.get("leaves")
        if truth is None:
            raise ValueError("truth: leaves needs samples with meta['leaves'] (synthetic data)")
        truth = {int(k): v for k, v in truth.items()}
        y = np.asarray(s.labels).astype(np.int32, copy=True)
        ids = np.unique(y[y > 0])
        missing = [int(k) for k in ids if int(k) not in truth]
        if missing:
            raise ValueError(f"image {i}: instances {missing[:5]} have no true leaf in meta['leaves']")
        if s.ignore is not None:
            y[np.asarray(s.ignore, bool) & (y <= 0)] = -1  # ignored pixels of no known nucleus
        C.append({int(k): truth[int(k)] for k in ids})
        Y.append(y)
    if like is not None:
        X, N = list(like.X), list(like.names)
    else:
        from ..data import normalize_image

        X = [normalize_image(s.image, normalization=normalization) for s in samples]
    return Part(X, Y, C, [leaves_ls] * len(Y), N)


def _registry_pools(name, o, spec, cfg, where) -> dict:
    from ...datasets import extract_patches, open_dataset

    def read(split):
        # any bad file or option ends as a ConfigError naming the dataset entry (and the file)
        out = []
        limit = o.get("limit")
        try:
            ds = open_dataset(o.get("dataset", name), o["path"], label_set=spec.label_set.name, split=split,
                              **dict(o.get("options") or {}))
            for s in ds:
                out.extend(extract_patches(s, size=o["patch_size"]) if o.get("patch_size") else [s])
                if limit is not None and len(out) >= limit:
                    break
        except (ValueError, TypeError, KeyError, OSError, NotImplementedError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            raise ConfigError(f"{where}: {msg}") from None
        return out[:limit] if limit is not None else out

    pool = read(o.get("split"))
    rng = np.random.default_rng(o.get("seed", cfg.seed))
    order = rng.permutation(len(pool))
    pool = [pool[i] for i in order]
    fr = _mapping(o.get("split_fractions"), f"{where}: split_fractions")
    if o.get("test_split") is not None:
        test = read(o["test_split"])
        n_val = max(1, int(round(float(fr.get("val", 0.2)) * len(pool))))
        pools = {"train": pool[n_val:], "val": pool[:n_val], "test": test}
    else:
        c = _split_counts({"val": float(fr.get("val", 0.2)), "test": float(fr.get("test", 0.2))}, len(pool), where)
        pools = {"val": pool[:c["val"]], "test": pool[c["val"]:c["val"] + c["test"]],
                 "train": pool[c["val"] + c["test"]:]}
    for k, v in pools.items():
        if not v:
            raise ConfigError(f"{where}: the {k} part is empty")
    return pools
