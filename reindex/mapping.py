"""The permutation: build it, invert it, apply it to id arrays. Arrays in, arrays out; no paths.

Sorted order puts every fixed token (one with a pretrained vector) first, then every trainable
token, each group in its original relative order (a stable partition).
"""
from __future__ import annotations

import numpy as np

from .errors import ReindexError


def build_permutation(is_fixed: np.ndarray, *, pad: int | None = None) -> np.ndarray:
    """Return `sorted_to_original` (int64) for a boolean mask over original ids.

    >>> build_permutation(np.array([False, True, False, True])).tolist()
    [1, 3, 0, 2]
    >>> build_permutation(np.array([False, True, False, True]), pad=2).tolist()
    [2, 1, 3, 0]
    """
    is_fixed = np.asarray(is_fixed, dtype=bool)
    if pad is not None:
        is_fixed = is_fixed.copy()
        is_fixed[pad] = False
    fixed = np.flatnonzero(is_fixed)
    trainable = np.flatnonzero(~is_fixed)
    if pad is not None:
        trainable = trainable[trainable != pad]
        head = np.array([pad], dtype=np.int64)
        return np.concatenate([head, fixed, trainable]).astype(np.int64, copy=False)
    return np.concatenate([fixed, trainable]).astype(np.int64, copy=False)


def invert_permutation(permutation: np.ndarray) -> np.ndarray:
    """Return the inverse permutation, so `inverse[permutation[i]] == i`.

    >>> invert_permutation(np.array([2, 0, 1])).tolist()
    [1, 2, 0]
    """
    permutation = np.asarray(permutation)
    inverse = np.empty(permutation.shape[0], dtype=np.int64)
    inverse[permutation] = np.arange(permutation.shape[0], dtype=np.int64)
    return inverse


def check_permutation(permutation: np.ndarray, *, what: str = "sorted_to_original") -> None:
    """Raise ReindexError unless `permutation` holds each of 0..n-1 exactly once."""
    permutation = np.asarray(permutation)
    n = permutation.shape[0]
    if permutation.ndim != 1 or not np.issubdtype(permutation.dtype, np.integer):
        raise ReindexError(f"{what} must be a 1-D integer array, got {permutation.dtype} {permutation.shape}")
    seen = np.zeros(n, dtype=bool)
    inside = (permutation >= 0) & (permutation < n)
    if not inside.all():
        i = int(np.flatnonzero(~inside)[0])
        raise ReindexError(f"{what}[{i}] = {int(permutation[i])} is outside [0, {n})")
    seen[permutation] = True
    if not seen.all():
        missing = int(np.flatnonzero(~seen)[0])
        raise ReindexError(f"{what} is not a permutation: {missing} never appears")


def id_dtype_for(vocab_size: int) -> np.dtype:
    """The smallest of int32/int64 that holds ids below `vocab_size`.

    >>> id_dtype_for(10).name, id_dtype_for(2**31 + 1).name
    ('int32', 'int64')
    """
    return np.dtype(np.int32) if vocab_size <= np.iinfo(np.int32).max + 1 else np.dtype(np.int64)


def check_dtype_fits(dtype: np.dtype, vocab_size: int, *, path: str | None = None) -> None:
    """Refuse an integer output dtype that cannot hold every id below `vocab_size`."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        raise ReindexError(f"ids must be integers, got {dtype}", path=path,
                           hint="pass token ids, not floats or strings")
    if vocab_size - 1 > np.iinfo(dtype).max:
        raise ReindexError(f"{dtype} cannot hold ids up to {vocab_size - 1}", path=path,
                           hint="use --id-dtype int32 or int64")


def first_out_of_range(ids: np.ndarray, vocab_size: int) -> tuple[int, int] | None:
    """Return (flat position, value) of the first id outside [0, vocab_size), or None.

    >>> first_out_of_range(np.array([[0, 1], [5, -1]]), 3)
    (2, 5)
    """
    flat = np.asarray(ids).reshape(-1)
    bad = (flat < 0) | (flat >= vocab_size)
    if not bad.any():
        return None
    position = int(np.argmax(bad))
    return position, int(flat[position])


def remap(ids: np.ndarray, table: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Return `table[ids]`, refusing ids outside [0, len(table)) with their position.

    `table` is `original_to_sorted` to encode and `sorted_to_original` to decode; its dtype is the
    output dtype. `out`, when given, receives the result (no allocation).

    >>> remap(np.array([[0, 2], [1, 0]]), np.array([2, 0, 1], dtype=np.int32)).tolist()
    [[2, 1], [0, 2]]
    """
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ReindexError(f"ids must be integers, got {ids.dtype}", hint="pass token ids, not floats")
    bad = first_out_of_range(ids, table.shape[0]) if ids.size else None
    if bad is not None:
        position, value = bad
        raise ReindexError(f"id {value} is outside the vocabulary [0, {table.shape[0]})",
                           position=_describe_position(ids.shape, position))
    # The bounds were checked above, so "clip" never clips: it only skips numpy's own
    # (slower, negative-wrapping) bounds handling.
    return np.take(table, ids, out=out, mode="clip")


def _describe_position(shape: tuple[int, ...], flat_position: int) -> str:
    """Name a flat position as an index: `_describe_position((2, 3), 4)` -> 'index [1, 1]'."""
    if len(shape) <= 1:
        return f"index {flat_position}"
    index = np.unravel_index(flat_position, shape)
    return "index [" + ", ".join(str(int(i)) for i in index) + "]"
