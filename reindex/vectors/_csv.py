"""The block parser: pyarrow's CSV reader over a buffer of whole lines, numbers read as float32.

Lines with exactly `dim` numbers after a one-word token become rows; pyarrow hands every other line
(a token with spaces, too few fields, a blank line) to `invalid_row_handler`, which only notes its
number, for the one-line-at-a-time fallback. Only UTF-8 buffers are given: pyarrow decodes the text
of a line it hands over, and a line that is not UTF-8 would fail inside its callback. Quoting and NA
detection are off, so `"quoted`, `nan` and `NA` are tokens like any other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

MIN_BLOCK = 1 << 20  # pyarrow's parsing unit; a line longer than it needs a larger one


def pool() -> pa.MemoryPool:
    """The allocator for the reader's short-lived Arrow buffers: the system's, which gives freed
    blocks back at once (the default mimalloc pool keeps them per thread, so the resident memory
    would follow the blocks read rather than the vectors kept)."""
    return pa.system_memory_pool()


@dataclass
class CsvRows:
    """What pyarrow made of a buffer: rows in order, and the 0-based numbers of the lines it left."""

    tokens: pa.Array           # binary, one per row
    rows: np.ndarray           # float32 [len(tokens), dim], row-major
    odd: np.ndarray            # int64 line numbers (0-based, in the buffer) pyarrow did not parse
    bad: int                   # first row holding NaN or Inf, or -1


class CsvParser:
    """Parse buffers of lines holding `dim` numbers (plus a trailing space each, if `trailing`)."""

    def __init__(self, *, dim: int, trailing: bool) -> None:
        self.dim, self.trailing = dim, trailing
        columns = dim + 1 + trailing  # a line ending in a space has one more, empty, field
        self.names = [f"f{i}" for i in range(columns)]
        self.convert_options = pcsv.ConvertOptions(
            column_types={"f0": pa.binary(), **{f"f{i}": pa.float32() for i in range(1, dim + 1)}},
            null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
            include_columns=self.names[:dim + 1])

    def parse(self, buffer) -> CsvRows | None:
        """Rows of the buffer (which ends in a newline); None when pyarrow refuses a number or bytes."""
        odd: list[int] = []

        def note(row) -> str:
            odd.append(row.number - 1)
            return "skip"

        parse_options = pcsv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False,
                                          newlines_in_values=False, ignore_empty_lines=False,
                                          invalid_row_handler=note)
        # One block per buffer: a line of any length fits, and row numbers are exact (single thread;
        # the buffers themselves are parsed in parallel by the caller).
        read_options = pcsv.ReadOptions(column_names=self.names, use_threads=False,
                                        block_size=max(MIN_BLOCK, len(buffer) + 1))
        try:
            table = pcsv.read_csv(pa.BufferReader(buffer), read_options=read_options,
                                  parse_options=parse_options, convert_options=self.convert_options,
                                  memory_pool=pool())
        except pa.ArrowInvalid:
            return None  # a field that is not a number
        parts, bad = to_rows(table)
        tokens = pa.array([], pa.binary())
        if table.num_rows:
            tokens = table.column(0).combine_chunks(memory_pool=pool())
        return CsvRows(tokens, parts, np.array(sorted(odd), np.int64), bad)


def to_rows(table: pa.Table) -> tuple[np.ndarray, int]:
    """The float columns as one row-major float32 matrix (a buffer is one block, so one record batch),
    and its first row holding NaN or Inf, or -1."""
    batches = [np.asarray(b.to_tensor(row_major=True, memory_pool=pool()))
               for b in table.drop_columns(["f0"]).to_batches() if b.num_rows]
    rows = batches[0] if len(batches) == 1 else np.concatenate(batches or [np.zeros((0, table.num_columns - 1))])
    if len(rows) and not (np.isfinite(rows.min()) and np.isfinite(rows.max())):
        return rows, int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
    return rows, -1


def is_utf8(buffer) -> bool:
    """Whether the bytes are valid UTF-8 (one vectorised check).

    >>> is_utf8(b"caf\\xc3\\xa9 1\\n"), is_utf8(b"b\\xff 1\\n")
    (True, False)
    """
    data = pa.py_buffer(buffer)
    offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, data).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def merge_rows(tokens: pa.Array, matrix: np.ndarray, where: np.ndarray, more_tokens: list, more_rows: list,
           more_where: list) -> tuple[pa.Array, list, np.ndarray]:
    """(tokens, row pieces, line numbers) of pyarrow's rows and the lines parsed one by one, in line
    order: each piece an array of rows, or (positions, rows) for the collector to put in place."""
    if not more_tokens:
        return tokens, [matrix], where
    all_where = np.concatenate([where, np.array(more_where, np.int64)])
    order = np.argsort(all_where, kind="stable")
    at = np.empty(len(order), np.int64)
    at[order] = np.arange(len(order))
    pieces = [(at[:len(matrix)], matrix)] if len(matrix) else []
    all_tokens = pa.concat_arrays([tokens.cast(pa.binary()), pa.array(more_tokens, pa.binary())])
    return all_tokens.take(pa.array(order)), pieces + [(at[len(matrix):], np.stack(more_rows))], all_where[order]


def line_bytes(lines: pa.Array) -> pa.Buffer:
    """The bytes of a filtered large_binary array of whole lines, back to back (no copy)."""
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def bools(mask: np.ndarray) -> pa.Array:
    """A numpy bool mask as an Arrow boolean array (bit-packed; `pa.array` would import pandas)."""
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))])
