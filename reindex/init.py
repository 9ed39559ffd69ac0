"""Initial values of the trainable rows (`--init`), and the record of which rows came from which rule.

Pure: the fixed block (and, for `subwords`, the rows a fastText model gives) in, the trainable block out.
- normal / uniform: noise with the per-dimension mean and std of the real fixed vectors
- zeros
- mean: every row is the mean of the real fixed rows (transformers' `mean_resizing`, in effect)
- subwords: the row a fastText `.bin` gives the word from its character n-grams; a word with no
  row there (no n-gram: a model with maxn = 0 or bucket = 0, or the word `</s>`) falls back to normal
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import UsageError

INITS = ("normal", "uniform", "zeros", "mean", "subwords", "pieces")


def init_trainable(count: int, fixed: np.ndarray, *, init: str = "normal", seed: int = 0,
                   subwords: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Initial trainable rows (see `initialise`, which also says where each row came from).

    >>> init_trainable(2, np.ones((3, 4), np.float32), init="zeros").shape
    (2, 4)
    """
    return initialise(count, fixed, init=init, seed=seed, subwords=subwords)[0]


def initialise(count: int, fixed: np.ndarray, *, init: str = "normal", seed: int = 0,
               subwords: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(trainable rows, {rule: indices of the rows it gave}); `subwords` is (rows, has_ngrams) per row.

    >>> rows, source = initialise(2, np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), init="mean")
    >>> rows.tolist(), {k: v.tolist() for k, v in source.items()}
    ([[2.0, 3.0], [2.0, 3.0]], {'mean': [0, 1]})
    """
    if init not in INITS:
        raise UsageError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "pieces":
        raise UsageError("--init pieces needs the old model's tokenizer: use init_pieces",
                         hint="pass a Hugging Face model as --vectors")
    every = np.arange(count)
    if init == "zeros" or count == 0:
        return np.zeros((count, fixed.shape[1]), dtype=np.float32), {init: every}
    rng = np.random.default_rng(seed)
    if init == "mean" and fixed.shape[0] > 0:
        mean = column_stats(fixed, std=False)[0].astype(np.float32)
        return np.broadcast_to(mean, (count, fixed.shape[1])).copy(), {"mean": every}
    if init == "subwords":
        if subwords is None:
            raise UsageError("--init subwords needs the rows of a fastText model", hint="pass --subword-model FILE.bin")
        rows, found = np.array(subwords[0], dtype=np.float32), np.asarray(subwords[1], dtype=bool)
        missing = np.flatnonzero(~found)
        rows[missing] = _noise(len(missing), fixed, "normal", rng)
        return rows, {"subwords": np.flatnonzero(found), "normal": missing}
    kind = init if init != "mean" else "normal"  # a mean of no fixed rows: nn.Embedding's N(0, 1)
    return _noise(count, fixed, kind, rng), {kind: every}


def _noise(count: int, fixed: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """`count` rows of normal or uniform noise with the per-dimension mean and std of `fixed`."""
    dim = fixed.shape[1]
    if fixed.shape[0] >= 2:
        mean, std = column_stats(fixed)
        assert std is not None  # column_stats computes it unless told std=False
    else:  # nothing to learn the scale from: nn.Embedding's default N(0, 1)
        mean, std = np.zeros(dim), np.ones(dim)
    if kind == "normal":
        noise = rng.standard_normal((count, dim), dtype=np.float32)
    else:  # uniform with the same mean and std: U(-sqrt(3), sqrt(3)) has unit variance
        noise = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), (count, dim)).astype(np.float32)
    noise *= std.astype(np.float32)  # in place: no second and third copy of the rows
    noise += mean.astype(np.float32)
    return noise


def column_stats(matrix: np.ndarray, *, std: bool = True, block_bytes: int = 1 << 22
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-column float64 mean and std of a float32 matrix, equal to `matrix.astype(np.float64).mean(0)`
    and `.std(0)` to the bit, computed a few MB of rows at a time (not on a float64 copy of it all).

    >>> [a.tolist() for a in column_stats(np.array([[1, 2], [3, 6]], np.float32))]
    [[2.0, 4.0], [1.0, 2.0]]
    """
    count, dim = matrix.shape
    if count == 0:  # numpy's answer (NaN), without its warning
        return np.full(dim, np.nan), np.full(dim, np.nan) if std else None
    step = max(1, block_bytes // (8 * max(dim, 1)))

    def total(rows) -> np.ndarray:
        # numpy adds the rows of a column one after the other: the running total goes first in each
        # block, so the blocks add up in the order one whole-matrix sum would
        acc = np.zeros(dim)
        for start in range(0, count, step):
            acc = np.add.reduce(np.concatenate([acc[None], rows(start, min(start + step, count))]), axis=0)
        return acc

    mean = total(lambda a, b: matrix[a:b].astype(np.float64)) / count
    if not std:
        return mean, None

    def squares(a: int, b: int) -> np.ndarray:
        centred = matrix[a:b].astype(np.float64) - mean
        return np.multiply(centred, centred, out=centred)

    return mean, np.sqrt(total(squares) / count)


def init_pieces(pieces: Sequence[np.ndarray], matrix: np.ndarray, *, fallback: np.ndarray) -> np.ndarray:
    """Row i: the mean of `matrix[pieces[i]]` (the old rows of a new token's pieces), or `fallback` if none.

    >>> m = np.array([[1, 3], [3, 5]], np.float32)
    >>> init_pieces([np.array([0, 1]), np.array([], np.int64)], m, fallback=np.zeros(2, np.float32)).tolist()
    [[2.0, 4.0], [0.0, 0.0]]
    """
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    out = np.empty((len(pieces), matrix.shape[1]), dtype=np.float32)
    out[:] = fallback
    some = lengths > 0
    if some.any():
        rows: np.ndarray | list[int] = np.concatenate([np.asarray(p, dtype=np.int64) for p in pieces]) if len(pieces) else []
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[some]
        sums = np.add.reduceat(matrix[rows].astype(np.float64), starts, axis=0)
        out[some] = sums / lengths[some, None]
    return out
def describe_sources(sources: dict[str, np.ndarray], *, first: int) -> dict[str, dict]:
    """The manifest's record: per rule, its row count and the sorted ids it gave as [start, stop) ranges.

    `first` is the sorted id of trainable row 0 (the number of fixed rows).
    >>> describe_sources({"subwords": np.array([0, 1, 3]), "normal": np.array([2])}, first=10)
    {'normal': {'rows': 1, 'sorted_ids': [[12, 13]]}, 'subwords': {'rows': 3, 'sorted_ids': [[10, 12], [13, 14]]}}
    """
    return {kind: {"rows": int(len(rows)), "sorted_ids": id_ranges(np.asarray(rows, np.int64) + first)}
            for kind, rows in sorted(sources.items()) if len(rows)}


def id_ranges(ids: np.ndarray) -> list[list[int]]:
    """Ascending ids as [start, stop) ranges.

    >>> id_ranges(np.array([3, 4, 5, 9]))
    [[3, 6], [9, 10]]
    """
    if len(ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = ids[np.concatenate([[0], breaks])]
    stops = ids[np.concatenate([breaks - 1, [len(ids) - 1]])] + 1
    return [[int(a), int(b)] for a, b in zip(starts, stops)]
