"""`gather_rows` (the kept vectors sorted in their own memory) and `column_stats` (the init's statistics
a block at a time): each equal to the plain numpy expression it replaces."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reindex import rows as rows_module
from reindex.init import column_stats
from reindex.rows import gather_rows, owns_rows


def expected(matrix: np.ndarray, rows: np.ndarray, lead: int) -> np.ndarray:
    return np.concatenate([np.zeros((lead, matrix.shape[1]), matrix.dtype), matrix[rows]])


def test_worked_example_moves_rows_within_the_same_memory():
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3).copy()  # rows r0..r3: [0,1,2] ... [9,10,11]
    address = matrix.ctypes.data
    out = gather_rows(matrix, np.array([3, 1]), lead=1)          # pad row, then r3, then r1
    assert out.tolist() == [[0, 0, 0], [9, 10, 11], [3, 4, 5]]
    assert out.base is matrix and out.ctypes.data == address and out.flags.c_contiguous  # its leading rows


def test_the_only_view_of_an_array_is_moved_in_place_and_a_longer_result_is_new():
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)  # a view: its base is held by nothing else
    address = matrix.ctypes.data
    out = gather_rows(matrix, np.array([3, 2, 1, 0]))
    assert out is matrix and out.ctypes.data == address and out[:, 0].tolist() == [9, 6, 3, 0]
    longer = gather_rows(matrix, np.array([0, 1, 2, 3]), lead=1)  # 5 rows do not fit in 4
    assert longer.ctypes.data != address and longer[:, 0].tolist() == [0, 9, 6, 3, 0]


def test_a_view_or_in_place_false_leaves_the_matrix_alone():
    base = np.arange(12, dtype=np.float32).reshape(4, 3)
    before = base.copy()
    assert not owns_rows(base[1:])
    out = gather_rows(base[1:], np.array([2, 0]))
    assert out.tolist() == [before[3].tolist(), before[1].tolist()] and np.array_equal(base, before)
    out = gather_rows(base, np.array([3, 3, 0]), lead=2, in_place=False)
    assert np.array_equal(out, expected(before, np.array([3, 3, 0]), 2)) and np.array_equal(base, before)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.integers(1, 3), st.integers(0, 3), st.integers(1, 9), st.data())
def test_gather_rows_equals_numpy_take(num_rows, dim, lead, block_rows, data):
    """Any rows (repeated, missing, more than the matrix holds), any lead, any block size."""
    matrix = np.random.default_rng(num_rows * 7 + dim).standard_normal((num_rows, dim)).astype(np.float32)
    index = st.integers(0, num_rows - 1) if num_rows else st.nothing()
    rows = np.array(data.draw(st.lists(index, max_size=2 * num_rows + 3) if num_rows else st.just([])), np.int64)
    want = expected(matrix, rows, lead)
    saved = rows_module.BLOCK_BYTES
    rows_module.BLOCK_BYTES = block_rows * dim * 4
    try:
        got = gather_rows(matrix.copy(), rows, lead=lead)
    finally:
        rows_module.BLOCK_BYTES = saved
    assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("count, dim, block_bytes", [(2, 3, 8), (1000, 7, 200), (5000, 300, 1 << 22), (4097, 5, 64)])
def test_column_stats_are_numpys_float64_mean_and_std_to_the_bit(count, dim, block_bytes):
    rng = np.random.default_rng(count)
    matrix = (rng.standard_normal((count, dim)) * rng.uniform(1e-3, 1e3, dim) + 1e3).astype(np.float32)
    mean, std = column_stats(matrix, block_bytes=block_bytes)
    assert np.array_equal(mean, matrix.astype(np.float64).mean(axis=0))
    assert np.array_equal(std, matrix.astype(np.float64).std(axis=0))
    assert column_stats(matrix, std=False, block_bytes=block_bytes)[1] is None


def test_column_stats_of_no_rows_are_nan_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, std = column_stats(np.zeros((0, 3), np.float32))
    assert np.isnan(mean).all() and np.isnan(std).all() and mean.shape == std.shape == (3,)


def test_the_pad_row_uses_the_spare_rows_after_a_readers_matrix():
    """A reader allocates for the whole file and cuts its matrix to the rows it filled: the pad row
    (`lead`) goes into the spare rows after it, in the same memory, not into a copy."""
    def read() -> np.ndarray:
        buffer = np.empty((6, 2), dtype=np.float32)
        buffer[:] = np.arange(12).reshape(6, 2)
        return buffer[:4]   # the only view: the reader dropped `buffer`

    matrix = read()
    address = matrix.ctypes.data
    out = gather_rows(matrix, np.array([3, 0, 2, 1]), lead=1)
    assert out.ctypes.data == address and out.shape == (5, 2)
    assert out.tolist() == [[0, 0], [6, 7], [0, 1], [4, 5], [2, 3]]
    full = np.arange(8, dtype=np.float32).reshape(4, 2)   # no spare rows: a new array, the input untouched
    assert gather_rows(full, np.array([3, 0, 2, 1]), lead=1).tolist() == [[0, 0], [6, 7], [0, 1], [4, 5], [2, 3]]
    assert full.tolist() == np.arange(8, dtype=np.float32).reshape(4, 2).tolist()
