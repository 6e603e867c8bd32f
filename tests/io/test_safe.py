"""Safe loading (:mod:`stardist_hier.io.safe`): YAML with bounds on size, depth and aliases, duplicate keys
refused (moved from tests/test_bad_structures.py, issue 17)."""

import time

import pytest

from stardist_hier.errors import InputError
from stardist_hier.io import load_yaml
from stardist_hier.io.safe import YAML_MAX_DEPTH, YAML_MAX_NODES


# ------------------------------------------------------------------------------ YAML
def test_yaml_alias_bomb_is_refused_quickly():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=f"more than {YAML_MAX_NODES} values once its aliases"):
        load_yaml(bomb, where="bomb.yaml")
    assert time.perf_counter() - t0 < 5


def test_yaml_aliases_within_bounds_still_work():
    assert load_yaml("base: &b {lr: 0.001, steps: 10}\nrun: *b\n") == {"base": {"lr": 0.001, "steps": 10},
                                                                     "run": {"lr": 0.001, "steps": 10}}
    big = {"x": list(range(50000))}
    import yaml

    assert load_yaml(yaml.safe_dump(big)) == big


def test_yaml_depth_and_size_are_bounded(tmp_path):
    with pytest.raises(InputError, match=f"nested more than {YAML_MAX_DEPTH} levels"):
        load_yaml("[" * 5000 + "]" * 5000, where="deep.yaml")  # no RecursionError either
    f = tmp_path / "huge.yaml"
    f.write_text("x: " + "a" * 6_000_000 + "\n")
    with pytest.raises(InputError, match=f"{f}: too large for a config file"):
        load_yaml(f)


def test_duplicate_key_message_is_bounded():
    key = "k" * 10000
    with pytest.raises(InputError) as e:
        load_yaml(f"{key}: 1\n{key}: 2\n")
    assert len(str(e.value)) < 200
