"""Gather the rows of a matrix in place: `matrix[rows]`, with a few MB of scratch, not a second matrix.

`build` keeps the vectors it read in one matrix, in file order; the run stores them in sorted order.
`np.take` would hold both orders at once (twice the kept vectors); `gather_rows` moves the rows
within the matrix's own memory, a block of destination rows at a time. Pure: arrays in, arrays out.
"""
from __future__ import annotations

import sys

import numpy as np

#: Bytes of rows moved per step: a few MB of scratch whatever the matrix's size.
BLOCK_BYTES = 1 << 22


def owns_rows(matrix: np.ndarray) -> bool:
    """True if `gather_rows` may move the rows of `matrix` in place without any other array seeing it:
    a writeable C-contiguous matrix that owns its memory, or the only view of an array no one else holds
    (a reader's matrix cut to the rows it filled).

    >>> owns_rows(np.zeros((3, 2))), owns_rows(np.zeros((3, 2))[1:])
    (True, True)
    >>> m = np.zeros((3, 2)); owns_rows(m[1:])
    False
    """
    if not (matrix.ndim == 2 and matrix.flags.writeable and matrix.flags.c_contiguous):
        return False
    if matrix.base is None:
        return bool(matrix.flags.owndata)
    # numpy points every view at the array that owns the memory: 2 references are this view's and the call's
    return isinstance(matrix.base, np.ndarray) and matrix.base.base is None and sys.getrefcount(matrix.base) == 2


def gather_rows(matrix: np.ndarray, rows: np.ndarray, *, lead: int = 0, in_place: bool = True) -> np.ndarray:
    """`[zeros(lead); matrix[rows]]`. With `in_place` (the caller gives `matrix` up), made within the
    memory of `matrix` when no other array sees it and the result has no more rows than it: the result
    is then `matrix` or its leading rows. Otherwise a new array.

    `rows` may repeat a row and may be longer than `matrix`; the result is C-contiguous either way.
    >>> m = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> gather_rows(m, np.array([2, 0, 2]), lead=1).ravel().tolist()
    [0.0, 2.0, 0.0, 2.0]
    """
    rows = np.asarray(rows, dtype=np.int64)
    total, (size, dim) = lead + len(rows), matrix.shape
    owned = in_place and owns_rows(matrix)
    if owned and size < total:
        matrix = _spare_rows(matrix, total)  # a second view of the same memory: checked once, above
        size = len(matrix)
    if not (owned and total <= size):
        out = np.empty((total, dim), dtype=matrix.dtype)
        out[:lead] = 0
        np.take(matrix, rows, axis=0, out=out[lead:])
        return out
    unique, first = np.unique(rows, return_index=True)  # a repeated row moves once, then is copied
    source = np.full(size, -1, dtype=np.int64)  # source[d]: the row that ends at d
    source[lead + first] = unique
    used = np.zeros(size, dtype=bool)
    used[unique] = True
    source[source < 0] = np.flatnonzero(~used)  # the other destinations take the unused rows
    _permute(matrix, source, block=max(1, BLOCK_BYTES // max(matrix[:1].nbytes, 1)))
    again = np.ones(len(rows), dtype=bool)
    again[first] = False
    for chunk in np.array_split(np.flatnonzero(again), max(1, int(again.sum()) // 4096)):
        matrix[lead + chunk] = matrix[lead + first[np.searchsorted(unique, rows[chunk])]]
    matrix[:lead] = 0
    return matrix if total == size else matrix[:total]


def _spare_rows(matrix: np.ndarray, total: int) -> np.ndarray:
    """`matrix` grown to `total` rows into the unused rows after it, when it leads a larger array it
    is the only view of (a reader allocates for the whole file and cuts its matrix to the rows it
    filled): the pad row `lead` adds needs no copy. Else `matrix`.

    >>> bigger = np.zeros((4, 2)); _spare_rows(bigger[:2], 3).shape
    (3, 2)
    """
    base = matrix.base
    if (isinstance(base, np.ndarray) and base.ndim == 2 and base.shape[1:] == matrix.shape[1:]
            and len(base) >= total and base.dtype == matrix.dtype and base.ctypes.data == matrix.ctypes.data):
        return base[:total]
    return matrix


def _permute(matrix: np.ndarray, source: np.ndarray, *, block: int) -> None:
    """`matrix[:] = matrix[source]` in place, for a permutation `source`, `block` rows at a time.

    Before each block, the rows not yet placed fill positions start.. exactly. The block's rows are
    copied out; the rows still needed that sit in the block move to the positions just copied from
    beyond it; then the block is written.
    """
    size = len(source)
    where = np.arange(size, dtype=np.int64)   # where[r]: the position holding row r now
    held = np.arange(size, dtype=np.int64)    # held[p]: the row at position p (-1: free)
    for start in range(0, size, block):
        stop = min(start + block, size)
        taken = where[source[start:stop]]
        rows = matrix[taken]
        held[taken] = -1
        stay = start + np.flatnonzero(held[start:stop] >= 0)
        free = taken[taken >= stop]
        matrix[free] = matrix[stay]
        held[free] = held[stay]
        where[held[free]] = free
        matrix[start:stop] = rows
