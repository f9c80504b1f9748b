"""Run-length encoding of region masks: exact round trip, documented row-major format."""
from __future__ import annotations

import numpy as np
import pytest

from labelaudit.store.rle import decode_mask, encode_mask


def test_documented_example_is_row_major():
    mask = np.array([[0, 1, 1], [1, 0, 0]], bool)
    assert encode_mask(mask) == "1 3 2"
    # column-major would read 0,1,1,0,1,0 -> "1 2 1 1 1": the transpose must differ
    assert encode_mask(mask.T) == "1 2 1 1 1"


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (5, 7), (64, 48)])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_random_masks_round_trip(shape, density):
    rng = np.random.default_rng(abs(hash((shape, density))) % 2**32)
    for _ in range(5):
        mask = rng.random(shape) < density
        out = decode_mask(encode_mask(mask), shape)
        assert out.dtype == bool and out.shape == shape
        np.testing.assert_array_equal(out, mask)


def _single(shape, idx):
    m = np.zeros(shape, bool)
    m[idx] = True
    return m


@pytest.mark.parametrize("mask, expected", [
    (np.zeros((3, 4), bool), "12"),
    (np.ones((3, 4), bool), "0 12"),
    (_single((3, 4), (0, 0)), "0 1 11"),
    (_single((3, 4), (2, 3)), "11 1"),
    (_single((3, 4), (1, 2)), "6 1 5"),
    (np.array([[1, 0, 1, 1, 0]], bool), "0 1 1 2 1"),
    (np.array([[0], [1], [1]], bool), "1 2"),
])
def test_edge_cases_exact_strings(mask, expected):
    assert encode_mask(mask) == expected
    np.testing.assert_array_equal(decode_mask(expected, mask.shape), mask)


def test_empty_shape_and_non_bool_input():
    assert encode_mask(np.zeros((0, 5), bool)) == ""
    assert decode_mask("", (0, 5)).shape == (0, 5)
    labels = np.array([[0, 3, 3], [7, 0, 0]], np.uint8)  # nonzero = set
    assert encode_mask(labels) == "1 3 2"


def test_wrong_shape_or_bad_input_is_refused():
    with pytest.raises(ValueError, match="sum to 12"):
        decode_mask("12", (3, 5))
    with pytest.raises(ValueError, match="2-D"):
        encode_mask(np.zeros((2, 2, 2), bool))
