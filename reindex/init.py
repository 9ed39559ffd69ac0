"""Initial values of the trainable rows (`--init`).

Pure: the fixed block in, the trainable block out.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import UsageError

INITS = ("normal", "uniform", "zeros", "pieces")


def init_trainable(count: int, fixed: np.ndarray, *, init: str = "normal", seed: int = 0) -> np.ndarray:
    """Initial trainable rows: per-dimension mean/std of the real fixed vectors (normal or uniform), or zeros.

    >>> init_trainable(2, np.ones((3, 4), np.float32), init="zeros").shape
    (2, 4)
    """
    dim = fixed.shape[1]
    if init not in INITS:
        raise UsageError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "pieces":
        raise UsageError("--init pieces needs the old model's tokenizer: use init_pieces",
                         hint="pass a Hugging Face model as --vectors")
    if init == "zeros" or count == 0:
        return np.zeros((count, dim), dtype=np.float32)
    if fixed.shape[0] >= 2:
        stats = fixed.astype(np.float64)
        mean, std = stats.mean(axis=0), stats.std(axis=0)
    else:  # nothing to learn the scale from: nn.Embedding's default N(0, 1)
        mean, std = np.zeros(dim), np.ones(dim)
    rng = np.random.default_rng(seed)
    if init == "normal":
        noise = rng.standard_normal((count, dim), dtype=np.float32)
    else:  # uniform with the same mean and std: U(-sqrt(3), sqrt(3)) has unit variance
        noise = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), (count, dim)).astype(np.float32)
    return (noise * std.astype(np.float32) + mean.astype(np.float32)).astype(np.float32)


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
        rows = np.concatenate([np.asarray(p, dtype=np.int64) for p in pieces]) if len(pieces) else []
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[some]
        sums = np.add.reduceat(matrix[rows].astype(np.float64), starts, axis=0)
        out[some] = sums / lengths[some, None]
    return out
