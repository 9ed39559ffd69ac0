"""Matching vocabulary tokens to the rows of a vector table: exactly, or through a fallback form.

Pure: token lists and arrays in, `Matched` out; no paths.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


@dataclass
class Matched:
    """For each original id: the row of its vector in `matrix`, or -1 (trainable)."""

    rows: np.ndarray              # int64 [V]
    matrix: np.ndarray            # float32 [N, D]
    lowercase: np.ndarray         # bool [V]: matched through the lowercase form
    stats: dict[str, Any] = field(default_factory=dict)
    old_order: np.ndarray | None = None   # expansion from a run: new original ids of old sorted ids
    pieces: Callable[[Sequence[str]], list[np.ndarray]] | None = None  # texts -> rows of their pieces (HF model)


def match_vectors(tokens: Sequence[str], found_tokens: Sequence[str], matrix: np.ndarray, *,
                  lowercase_fallback: bool = False) -> Matched:
    """Match vocabulary tokens to vector rows, exactly or (optionally) through their lowercase form.

    >>> m = match_vectors(["The", "cat", "dog"], ["cat", "the"], np.zeros((2, 1), np.float32),
    ...                   lowercase_fallback=True)
    >>> m.rows.tolist(), m.lowercase.tolist()
    ([1, 0, -1], [True, False, False])
    """
    row_of = {token: i for i, token in enumerate(found_tokens)}
    rows = np.fromiter((row_of.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
    lowercase = np.zeros(len(tokens), dtype=bool)
    if lowercase_fallback:
        for i in np.flatnonzero(rows < 0).tolist():
            row = row_of.get(tokens[i].lower(), -1)
            if row >= 0:
                rows[i] = row
                lowercase[i] = True
    return Matched(rows=rows, matrix=matrix, lowercase=lowercase)
