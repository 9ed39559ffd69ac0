"""Initial values of the trainable rows (`--init`).

Pure: the fixed block in, the trainable block out.
"""
from __future__ import annotations

import numpy as np

from .errors import UsageError

INITS = ("normal", "uniform", "zeros")


def init_trainable(count: int, fixed: np.ndarray, *, init: str = "normal", seed: int = 0) -> np.ndarray:
    """Initial trainable rows: per-dimension mean/std of the real fixed vectors (normal or uniform), or zeros.

    >>> init_trainable(2, np.ones((3, 4), np.float32), init="zeros").shape
    (2, 4)
    """
    dim = fixed.shape[1]
    if init not in INITS:
        raise UsageError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
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
