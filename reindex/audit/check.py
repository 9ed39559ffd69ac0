"""`audit(BASE, TUNED)`: stream both embeddings (and heads) a slice of rows at a time and compare them."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import progress
from ..checkpoint.tensors import RAW, RowReader
from ..errors import ReindexError, UsageError
from .align import Alignment, align, by_id
from .compare import cast, coarser, compare_rows, in_dtype, tally
from .expect import expected_rows
from .peft import is_adapter, open_adapter
from .result import AuditReport, MatrixAudit, judge, never_changed
from .sources import Source, open_source
from .tensors import Matrix, take

#: Bytes of rows read per side at a time: large enough that reading runs at disk speed.
SLICE_BYTES = 16 << 20


def audit(base: str | os.PathLike, tuned: str | os.PathLike, *, key: str | None = None,
          head_key: str | None = None, tokenizer: str | os.PathLike | None = None,
          expect: Sequence[str] | None = None, tolerance: float = 0.0,
          slice_bytes: int = SLICE_BYTES) -> AuditReport:
    """Which embedding and head rows of TUNED differ from BASE, and are they the expected ones?

    report = audit("llama-base/", "llama-tuned/", expect=["added"])
    report.exit_code      # 0: nothing outside the expected rows changed; 3: something did
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise UsageError(f"--tolerance must be a number >= 0, got {tolerance}")
    if is_adapter(Path(base)):
        raise UsageError("BASE is a PEFT adapter", path=base, hint="pass the model it was trained on as BASE")
    base_source = open_source(base, key=key, head_key=head_key)
    if is_adapter(Path(tuned)):
        tuned_source = open_adapter(Path(tuned), base_source, tokenizer=None if tokenizer is None else Path(tokenizer))
    else:
        tuned_source = open_source(tuned, key=key, head_key=head_key, tokenizer=tokenizer)
    alignment = align(base_source.tokens, tuned_source.tokens, base_rows=base_source.embedding.rows,
                      tuned_rows=tuned_source.embedding.rows)
    expected = expected_rows(expect, tuned=tuned_source, base=base_source) if expect else None
    report = AuditReport(base=str(base), tuned=str(tuned), base_kind=base_source.kind, tuned_kind=tuned_source.kind,
                         matched_by=alignment.by, tolerance=tolerance,
                         tolerance_used=in_dtype(tolerance, tuned_source.embedding.dtype), matrices=[],
                         expected=expected, expect=list(expect or ()), tokens=tuned_source.tokens,
                         tokens_only_in_base=alignment.tokens_only_in_base,
                         tokens_only_in_tuned=alignment.tokens_only_in_tuned)
    with RowReader() as reader:
        report.matrices.append(_audit_matrix("embedding", base_source.embedding, tuned_source.embedding,
                                             alignment, reader, report, slice_bytes=slice_bytes))
        report.matrices.append(_audit_head(base_source, tuned_source, alignment, reader, report,
                                           slice_bytes=slice_bytes))
    _explain(report, alignment)
    return report


def _audit_head(base: Source, tuned: Source, alignment: Alignment, reader: RowReader, report: AuditReport, *,
                slice_bytes: int) -> MatrixAudit:
    if base.tied and tuned.tied:
        return MatrixAudit("head", None, None, tied="both")
    base_head = base.embedding if base.tied else base.head
    tuned_head = tuned.embedding if tuned.tied else tuned.head
    if base_head is None or tuned_head is None:
        side = "BASE" if base_head is None else "TUNED"
        report.notes.append(f"head: {side} has no output head and does not tie one, so no head is compared")
        return MatrixAudit("head", None if base_head is None else base_head.name,
                           None if tuned_head is None else tuned_head.name)
    if (base_head.rows, tuned_head.rows) != (base.embedding.rows, tuned.embedding.rows):
        alignment = by_id(base_head.rows, tuned_head.rows)
        report.notes.append("head: its rows differ in number from the embedding's, so they are compared by id")
    matrix = _audit_matrix("head", base_head, tuned_head, alignment, reader, report, slice_bytes=slice_bytes)
    matrix.tied = "BASE" if base.tied else "TUNED" if tuned.tied else ""
    return matrix


def _audit_matrix(name: str, base: Matrix, tuned: Matrix, alignment: Alignment, reader: RowReader,
                  report: AuditReport, *, slice_bytes: int) -> MatrixAudit:
    if base.dim != tuned.dim:
        raise ReindexError(f"{name}: BASE rows have {base.dim} values ({base.name}) but TUNED rows {tuned.dim} "
                           f"({tuned.name})", path=report.tuned, hint="audit a fine-tune of this BASE")
    dtype = coarser(base.dtype, tuned.dtype)
    same, change = _stream(base, tuned, alignment, reader, dtype=dtype, slice_bytes=slice_bytes, name=name)
    changes = tally(alignment.tuned, same, change, tolerance=report.tolerance_used)
    matrix = MatrixAudit(name, base.name, tuned.name, base_dtype=base.dtype, tuned_dtype=tuned.dtype,
                         compared_in=dtype, changes=changes, only_in_tuned=int(alignment.only_in_tuned.shape[0]),
                         only_in_base=int(alignment.only_in_base.shape[0]))
    judge(matrix, report.expected)
    if report.expected is not None:
        matrix.never_changed = never_changed(report.expected, alignment.tuned, same)
    return matrix


def _stream(base: Matrix, tuned: Matrix, alignment: Alignment, reader: RowReader, *, dtype: str,
            slice_bytes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(bit-identical, largest change) of every pair, reading `slice_bytes` of each side at a time."""
    count = alignment.tuned.shape[0]
    same, change = np.empty(count, dtype=bool), np.empty(count, dtype=np.float64)
    widest = max(np.dtype(RAW[base.dtype]).itemsize, np.dtype(RAW[tuned.dtype]).itemsize)
    step = max(1, slice_bytes // max(1, tuned.dim * widest))
    with progress.step(f"comparing {name} rows", total=count, unit="rows") as advance:
        for lo in range(0, count, step):
            hi = min(lo + step, count)
            base_rows = cast(take(base, alignment.base[lo:hi], reader, cast), base.dtype, dtype)
            tuned_rows = cast(take(tuned, alignment.tuned[lo:hi], reader, cast), tuned.dtype, dtype)
            same[lo:hi], change[lo:hi] = compare_rows(base_rows, tuned_rows, dtype)
            advance(hi - lo)
    return same, change


def _explain(report: AuditReport, alignment: Alignment) -> None:
    """The notes that say how the rows were compared, and the warnings a CI log should show."""
    for matrix in report.matrices:
        if matrix.changes is not None and matrix.cast:
            report.notes.append(f"{matrix.name}: BASE is {matrix.base_dtype} and TUNED {matrix.tuned_dtype}; "
                                f"compared after rounding both to {matrix.compared_in}")
        if matrix.never_changed.size:
            first = int(matrix.never_changed[0])
            report.warnings.append(f"{matrix.name}: {matrix.never_changed.size} expected row(s) did not change at all "
                                   f"(e.g. id {first} {report.token(first)!r}): were they trained?")
    if alignment.by == "token":
        report.notes.append(f"the tokenizers differ, so rows are matched by token string "
                            f"({len(alignment.tokens_only_in_base)} token(s) only in BASE, "
                            f"{len(alignment.tokens_only_in_tuned)} only in TUNED)")
        if alignment.unnamed:
            report.notes.append(f"{alignment.unnamed} row(s) without a token were not compared")
