"""Embedding matrices as audit sees them: tensors stacked by rows, read a slice at a time.

The tensors themselves (headers, `RowReader`) are `reindex.checkpoint.tensors`'; bfloat16 rows stay
as their bits (uint16) until `compare.to_float` widens them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..checkpoint.tensors import RAW, RowReader, Tensor


@dataclass(frozen=True)
class Matrix:
    """A [rows, dim] float matrix: tensors stacked by rows, rows named by position.

    `order[position]` is the stored row (a reindex run keeps rows in sorted order and names them by
    original id); `replaced` holds rows that another tensor overrides (a PEFT adapter's tokens).
    """

    parts: tuple[Tensor, ...]
    order: np.ndarray | None = None
    replaced: tuple[np.ndarray, np.ndarray, Tensor] | None = None   # sorted positions, their rows in the tensor

    @property
    def rows(self) -> int:
        return int(self.order.shape[0]) if self.order is not None else sum(t.rows for t in self.parts)

    @property
    def dim(self) -> int:
        return int(np.prod(self.parts[0].shape[1:], dtype=np.int64))

    @property
    def dtype(self) -> str:
        return self.parts[0].dtype

    @property
    def name(self) -> str:
        return " + ".join(t.key for t in self.parts)


def take(matrix: Matrix, positions: np.ndarray, reader: RowReader,
         cast: Callable[[np.ndarray, str, str], np.ndarray]) -> np.ndarray:
    """Rows `positions` of `matrix`, in its stored encoding; each run of consecutive rows is one read."""
    stored = positions if matrix.order is None else matrix.order[positions]
    out = np.empty((positions.shape[0], matrix.dim), dtype=RAW[matrix.dtype])
    breaks = np.flatnonzero(np.diff(stored) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks].tolist(), np.r_[breaks, stored.shape[0]].tolist(), strict=False):
        _read_stacked(matrix.parts, int(stored[lo]), int(stored[lo]) + hi - lo, out[lo:hi], reader)
    if matrix.replaced is not None:
        where, rows, tensor = matrix.replaced
        found = np.searchsorted(where, positions).clip(max=max(where.shape[0] - 1, 0))
        hit = np.flatnonzero(where[found] == positions) if where.shape[0] else found[:0]
        for i in hit.tolist():
            row = np.empty((1, matrix.dim), dtype=RAW[tensor.dtype])
            reader.read(tensor, int(rows[found[i]]), int(rows[found[i]]) + 1, row)
            out[i] = cast(row, tensor.dtype, matrix.dtype)[0]
    return out


def _read_stacked(parts: tuple[Tensor, ...], start: int, stop: int, out: np.ndarray, reader: RowReader) -> None:
    """Rows start..stop of tensors stacked by rows, across the seams between them."""
    base = 0
    for tensor in parts:
        lo, hi = max(start, base), min(stop, base + tensor.rows)
        if lo < hi:
            reader.read(tensor, lo - base, hi - base, out[lo - start:hi - start])
        base += tensor.rows
