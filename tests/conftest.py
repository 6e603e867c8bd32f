"""Shared test fixtures. Real sample data lives in ../shared/data beside the project root."""

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """Path of ../shared/data; skips the test when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng():
    """A seeded local random generator."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def test_seed():
    """Seed offset for tests that train (``STARDIST_HIER_TEST_SEED``, default 0).

    Every test that trains a network takes its seeds from this offset, so the suite can
    be run under several seeds (see the README's developer notes).
    """
    import os

    return int(os.environ.get("STARDIST_HIER_TEST_SEED", "0"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, test_seed):
    """Folder of a tiny trained 3-channel model (``hier_mpp`` 0.5; trained by tests/predict/conftest.py's
    ``_train_tiny``, once per session for tests/predict and tests/commands)."""
    from tests.predict.conftest import _train_tiny

    base = tmp_path_factory.mktemp("models")
    _train_tiny(base, init_seed=test_seed)
    return base / "tiny"


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The tiny model, loaded from its folder."""
    from stardist_hier.predict.pipeline import load_model

    return load_model(tiny_model_dir)
