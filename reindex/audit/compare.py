"""Compare blocks of embedding rows: which rows differ, and by how much (numpy only, no files).

Rows arrive in their stored encoding (`checkpoint.tensors.RAW`: bfloat16 as its uint16 bits). Two blocks of
different dtypes are compared in the coarser one, the finer block rounded to it as torch would.

>>> base = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
>>> same, change = compare_rows(base, base + np.float32([[0, 0], [0, 0.5]]), "F32")
>>> same.tolist(), change.tolist()
([True, False], [0.0, 0.5])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checkpoint.tensors import RAW

PRECISION = ("BF16", "F16", "F32", "F64")   # coarsest first
#: Upper edges of the histogram bins of a row's change (its largest absolute element difference).
EDGES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, float("inf"))


def coarser(a: str, b: str) -> str:
    """The dtype both sides are compared in: `coarser("F32", "BF16") == "BF16"`."""
    return min(a, b, key=PRECISION.index)


def to_float(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Rows as numbers: float64 stays, the rest widen to float32 (bfloat16 bits shift into place).

    >>> to_float(np.array([[0x3F80, 0xC000]], dtype=np.uint16), "BF16").tolist()
    [[1.0, -2.0]]
    """
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw if raw.dtype == np.float64 else raw.astype(np.float32, copy=False)


def cast(raw: np.ndarray, source: str, target: str) -> np.ndarray:
    """Rows stored as `source` re-encoded as `target`, rounding to nearest even (torch's `.to`)."""
    if source == target:
        return raw
    values = to_float(raw, source)
    if target == "BF16":
        return _round_to_bfloat16(values.astype(np.float32, copy=False))
    return values.astype(RAW[target])


def _round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    bits = values.view(np.uint32)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():  # keep NaN a NaN (rounding up could carry it into an infinity), quiet as torch makes it
        rounded[nan] = ((bits[nan] >> 16) | np.uint32(0x40)).astype(np.uint16)
    return rounded


def _words(raw: np.ndarray) -> np.ndarray:
    """Each row's bits as unsigned words, 8 bytes at a time when the row allows: comparing is then cheap."""
    raw = np.ascontiguousarray(raw)
    width = 8 if (raw.shape[1] * raw.itemsize) % 8 == 0 else raw.itemsize
    return raw.view(np.dtype(f"<u{width}"))


def compare_rows(base: np.ndarray, tuned: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(bit-identical per row, largest absolute element change per row) of two blocks held as `dtype`.

    A NaN or an infinity that differs counts as an infinite change.
    """
    if base.shape != tuned.shape:
        raise ValueError(f"blocks of shapes {base.shape} and {tuned.shape}")
    n = base.shape[0]
    if base.ndim != 2 or base.shape[1] == 0:
        return np.ones(n, dtype=bool), np.zeros(n, dtype=np.float64)
    same = (_words(base) == _words(tuned)).all(axis=1)
    change = np.zeros(n, dtype=np.float64)
    differ = np.flatnonzero(~same)
    if differ.size:
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(to_float(tuned[differ], dtype).astype(np.float64) - to_float(base[differ], dtype))
        change[differ] = np.nan_to_num(diff, nan=np.inf).max(axis=1)
    return same, change


def in_dtype(value: float, dtype: str) -> float:
    """`value` as the dtype can hold it, so a tolerance is compared in the tuned file's dtype.

    >>> in_dtype(1e-3, "BF16")
    0.00099945068359375
    """
    return float(to_float(cast(np.array([[value]], dtype=np.float64), "F64", dtype), dtype)[0, 0])


@dataclass(frozen=True)
class Changes:
    """Rows changed beyond the tolerance, of one matrix: counts, the histogram and every changed row."""

    compared: int
    identical: int        # bit for bit
    within_tolerance: int
    changed: np.ndarray   # positions in TUNED, largest change first
    change: np.ndarray    # their largest absolute element change
    histogram: tuple[int, ...]   # rows that differ, by change, one count per bin of EDGES


def tally(positions: np.ndarray, same: np.ndarray, change: np.ndarray, *, tolerance: float) -> Changes:
    """Sum up one matrix: `positions[i]` (a TUNED row) is bit-identical if `same[i]`, else moved by `change[i]`.

    With tolerance 0 any bit that differs is a change (so is -0.0 against 0.0); above 0, a row is
    changed when some element moved by more than the tolerance.
    """
    differ = ~same
    changed = differ & (change > tolerance) if tolerance > 0 else differ
    order = np.argsort(-change[changed], kind="stable")
    bins = np.searchsorted(np.asarray(EDGES), change[differ], side="left")
    return Changes(compared=int(positions.shape[0]), identical=int(same.sum()),
                   within_tolerance=int(differ.sum() - changed.sum()),
                   changed=positions[changed][order], change=change[changed][order],
                   histogram=tuple(np.bincount(bins, minlength=len(EDGES)).tolist()))
