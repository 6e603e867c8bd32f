"""Constants and the ``config.json`` reader shared by the model, its export and transfer modules.

A leaf module of :mod:`stardist_hier.models` (no TensorFlow, no StarDist), so that
:mod:`.model2d`, :mod:`.export` and :mod:`.transfer` share them without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import normalization
from ..errors import ModelFolderError

__all__ = ["HIER_DEFAULTS", "NORMALIZATION_FILE", "read_config_json"]

#: stardist-hier's own ``config.json`` keys and their defaults (everything else is StarDist's).
HIER_DEFAULTS = dict(
    hier_tree=None,
    train_class_loss={"ce": 1.0, "focal_tversky": 1.0},
    train_class_loss_options={"focal_tversky": {"alpha": 0.7, "gamma": 0.75, "form": "pixel"}},
    predict_class_aggregate="mean",
    hier_mpp=None,
    hier_distribute=None,
    hier_class_heads=None,
    hier_normalize=normalization.DEFAULT,
)

#: File of an export holding the model's input normalisation (see :mod:`.export`).
NORMALIZATION_FILE = "normalization.json"


def read_config_json(folder: Path, *, what: str = "model folder") -> dict:
    """The ``config.json`` of a model folder as a dict; :class:`ModelFolderError` naming the folder or file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{what} {folder} does not exist or is not a folder")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelFolderError(f"{what} {folder} has no config.json")
    try:
        d = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFolderError(f"{config} is truncated or not valid JSON ({e})") from None
    except RecursionError:
        raise ModelFolderError(f"{config} is nested too deeply to be a model config") from None
    except OSError as e:
        raise ModelFolderError(f"{config} cannot be read ({e.strerror or e})") from None
    if not isinstance(d, dict):
        raise ModelFolderError(f"{config} must hold a JSON object, got {type(d).__name__}")
    return d
