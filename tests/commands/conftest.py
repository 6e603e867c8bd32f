"""Fixtures of the command tests: the synthetic dataset folders of tests/datasets/conftest.py
(the tiny model, ``tiny_model_dir``, is a session fixture of tests/conftest.py)."""

from tests.datasets.conftest import consep_root, native, pannuke_root  # noqa: F401 - fixtures
