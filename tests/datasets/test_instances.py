import numpy as np
import pytest

from stardist_hier.datasets import DatasetError
from stardist_hier.datasets.instances import (as_label_image, keep_largest_component, majority_vote,
                                              relabel_sequential)


def test_relabel_sequential_large_ids():
    a = np.array([[0, 4_000_000_000], [17, 17]], np.uint32)
    new, old = relabel_sequential(a)
    np.testing.assert_array_equal(new, [[0, 2], [1, 1]])
    assert new.dtype == np.int32 and list(old) == [17, 4_000_000_000]


def test_majority_vote_ties_and_exclusion():
    ids = np.array([1, 1, 1, 2, 2, 3, 0])
    vals = np.array([5, 5, 6, 1, 2, 0, 9])
    assert majority_vote(ids, vals) == {1: 5, 2: None}
    assert majority_vote(ids, vals, exclude=()) == {1: 5, 2: None, 3: 0}


def test_keep_largest_component(rng):
    a = np.zeros((10, 10), np.int64)
    a[0:3, 0:3] = 4
    a[6:8, 6:8] = 4
    a[5, 0] = 2
    a[6, 1] = 2  # diagonal neighbours: one 8-connected component
    out, dropped, n = keep_largest_component(a)
    assert n == 1 and dropped.sum() == 4 and np.all(out[6:8, 6:8] == 0) and np.sum(out == 2) == 2


def test_as_label_image_checks():
    with pytest.raises(DatasetError, match="negative"):
        as_label_image(np.array([[-1]]), source="x")
    with pytest.raises(DatasetError, match="x"):
        as_label_image(np.zeros((2, 2, 2)), source="x")
    with pytest.raises(DatasetError, match="dtype"):
        as_label_image(np.array([["a"]]), source="x")
    assert as_label_image(np.array([[1.0]]), source="x").dtype == np.int64
