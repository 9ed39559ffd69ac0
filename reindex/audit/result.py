"""What an audit found: per matrix (embedding, head) the rows that changed, and whether they were expected."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .compare import Changes

#: The exit status of an audit that found changed rows outside the expected set.
CHANGED_EXIT_CODE = 3


@dataclass
class MatrixAudit:
    """One matrix. `tied` is "" (each side has its own), "both" (not compared: the embedding's rows),
    "BASE" or "TUNED" (that side's head is its embedding, compared as such); `changes` is None when
    nothing was compared."""

    name: str
    base_key: str | None
    tuned_key: str | None
    base_dtype: str | None = None
    tuned_dtype: str | None = None
    compared_in: str | None = None
    tied: str = ""
    changes: Changes | None = None
    only_in_tuned: int = 0
    only_in_base: int = 0
    unexpected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    never_changed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def cast(self) -> bool:
        """Whether one side was rounded to the other's coarser dtype before comparing."""
        return self.base_dtype != self.tuned_dtype


@dataclass
class AuditReport:
    """`reindex audit BASE TUNED`: `exit_code` is 0, or 3 when a row outside the expected set changed."""

    base: str
    tuned: str
    base_kind: str
    tuned_kind: str
    matched_by: str                  # "id" or "token"
    tolerance: float                 # as given
    tolerance_used: float            # as the tuned dtype holds it
    matrices: list[MatrixAudit]
    expected: np.ndarray | None      # TUNED row ids, None without --expect-trainable
    expect: list[str] = field(default_factory=list)
    tokens: list[str | None] | None = None     # TUNED's, naming its rows
    tokens_only_in_base: list[str] = field(default_factory=list)
    tokens_only_in_tuned: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return CHANGED_EXIT_CODE if any(m.unexpected.size for m in self.matrices) else 0

    def token(self, row: int) -> str | None:
        """The token of TUNED row `row`, or None."""
        tokens = self.tokens
        return tokens[row] if tokens is not None and 0 <= row < len(tokens) else None


def judge(matrix: MatrixAudit, expected: np.ndarray | None) -> None:
    """Fill in the changed rows outside `expected` and the expected rows that did not move at all."""
    changes = matrix.changes
    if changes is None:
        return
    if expected is None:
        matrix.unexpected = changes.changed
        return
    matrix.unexpected = changes.changed[~np.isin(changes.changed, expected)]


def never_changed(expected: np.ndarray, positions: np.ndarray, same: np.ndarray) -> np.ndarray:
    """Expected rows that were compared and found bit-identical: probably never trained."""
    return np.intersect1d(expected, positions[same])
