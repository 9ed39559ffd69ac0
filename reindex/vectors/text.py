"""GloVe and word2vec/fastText text vectors, parsed a block at a time by pyarrow's CSV reader.

A line is read from the right: its last `dim` space-separated fields are the numbers and whatever
precedes them (spaces included, as in GloVe 840B) is the token. `dim` comes from the `N D` header or,
without one, from the first line (whose token must not contain a space). A line with fewer than
`dim` numbers is an error; a line with more fields is a token containing spaces. Blank lines are
skipped; trailing spaces and CRLF endings are allowed. Quoting and NA detection are off.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..errors import ReindexError
from ._collect import Collector
from ._format import NUMBER as _NUMBER

Parsed = tuple[pa.Array, np.ndarray, np.ndarray, int, int]  # tokens, rows, lines, lines seen, records


def parse_line(text: bytes, *, dim: int, line: int, path: str | os.PathLike,
               origin: str) -> tuple[bytes, np.ndarray] | None:
    """Parse one line (no terminator) into (token, float32 vector); None for a blank line.

    >>> parse_line(b"New York 1 2", dim=2, line=1, path="v", origin="")
    (b'New York', array([1., 2.], dtype=float32))
    """
    text = text.rstrip(b" ")
    if not text:
        return None
    parts = text.rsplit(b" ", dim)
    if len(parts) <= dim:
        raise ReindexError(f"expected a token and {dim} numbers, found {len(parts)} fields", path=path,
                           line=line, hint=f"every line needs {dim} numbers{origin}")
    for field in parts[1:]:
        if not _NUMBER.fullmatch(field):
            raise ReindexError(f"field {field[:40]!r} is not a number", path=path, line=line,
                               hint=f"the last {dim} fields of a line must be numbers")
    values = np.array([float(field) for field in parts[1:]], dtype=np.float32)
    if not np.isfinite(values).all():
        raise not_finite(values, path=path, line=line)
    return parts[0], values


def not_finite(values: np.ndarray, *, path: str | os.PathLike, line: int | None = None,
               position: str | None = None) -> ReindexError:
    """The error for a vector holding NaN or Inf (or a number too large for float32)."""
    field = int(np.flatnonzero(~np.isfinite(values))[0])
    return ReindexError(f"vector has {values[field]} at number {field + 1}", path=path, line=line,
                        position=position, hint="fix or remove that vector; NaN and Inf are not allowed")


class TextParser:
    """Parse blocks of whole lines into (tokens, rows, line numbers, lines consumed)."""

    def __init__(self, *, dim: int, path: str | os.PathLike, origin: str,
                 candidates: pa.Array | None = None, lenient_unicode: bool = False,
                 collector: Collector | None = None) -> None:
        self.dim, self.path, self.origin, self.collector = dim, path, origin, collector
        self.candidates, self.lenient = candidates, lenient_unicode
        self.read_options = pcsv.ReadOptions(column_names=[f"f{i}" for i in range(dim + 1)],
                                             block_size=1 << 20)
        self.convert_options = pcsv.ConvertOptions(
            column_types={"f0": pa.binary(), **{f"f{i}": pa.float32() for i in range(1, dim + 1)}},
            null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False)

    def parse(self, block: bytes, first_line: int) -> Parsed:
        """Parse `block` whose first line has number `first_line`."""
        if not block.endswith(b"\n"):
            block += b"\n"
        if self.candidates is None and _is_plain(block):
            parsed = self._parse_plain(block, first_line)
            if parsed is not None:
                return parsed
        return self._parse_lines(block, first_line)

    def _parse_plain(self, block: bytes, first_line: int) -> Parsed | None:
        """The fast path: one CSV read of the whole block; None when the block needs `_parse_lines`."""
        odd: list[str] = []
        try:
            table = self._read_csv(block, odd)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
        num_lines = table.num_rows + len(odd)  # blank lines are kept (and come back in `odd`)
        # With no odd line the rows are final: write them straight into the collector's matrix.
        out = self.collector.reserve(table.num_rows) if self.collector is not None and not odd else None
        tokens, rows = _columns(table, self.dim, out=out)
        lines = first_line + np.arange(table.num_rows)
        if odd:
            starts = _locate_lines(block, odd)
            if starts is None:
                return None
            odd_index = _line_indexes(block, starts)
            is_odd = np.zeros(num_lines, dtype=bool)
            is_odd[odd_index] = True
            lines = first_line + np.flatnonzero(~is_odd)
            texts = [block[s:block.index(b"\n", s)].removesuffix(b"\r") for s in starts]
            tokens, rows, lines = self._merge(tokens, rows, lines, texts, first_line + odd_index)
        return self._checked(tokens, rows, lines, num_lines)

    def _parse_lines(self, block: bytes, first_line: int) -> Parsed:
        """The general path: split lines with numpy, CSV-parse the regular ones, the rest one by one."""
        data = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(data == 10) + 1
        offsets = np.concatenate([np.zeros(1, np.int64), ends])
        lengths = np.diff(offsets)
        blank = (lengths == 1) | ((lengths == 2) & (data[ends - 2] == 13))
        special = np.zeros(len(ends), dtype=bool)
        if b"\r" in block:
            cr = np.flatnonzero(data == 13)
            lone = cr[data[cr + 1] != 10]  # a CR not before LF: pyarrow would end the line there
            special[np.searchsorted(ends, lone, side="right")] = True
        lines = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends),
                                                 [None, pa.py_buffer(offsets), pa.py_buffer(block)])
        chosen = ~blank & ~special
        if self.candidates is not None:
            chosen &= self._candidate_mask(lines)
        chosen_index = np.flatnonzero(chosen)
        selected = lines.filter(pa.array(chosen))
        spaces = pc.count_substring(selected, " ").to_numpy(zero_copy_only=False)
        regular = spaces == self.dim
        regular_lines = selected.filter(pa.array(regular))
        line_of = first_line + chosen_index[regular]
        odd_index = np.concatenate([chosen_index[~regular], np.flatnonzero(special)])
        texts = [block[offsets[i]:offsets[i + 1]].rstrip(b"\n").removesuffix(b"\r") for i in odd_index]
        tokens, rows = pa.array([], pa.binary()), np.zeros((0, self.dim), np.float32)
        if len(regular_lines):
            tokens, rows = self._read_regular(_data_buffer(regular_lines), line_of)
        tokens, rows, lines_out = self._merge(tokens, rows, line_of, texts, first_line + odd_index)
        skipped = len(odd_index) - (len(lines_out) - len(line_of))  # whitespace-only lines
        return self._checked(tokens, rows, lines_out, len(ends), int(np.count_nonzero(~blank)) - skipped)

    def _read_regular(self, buffer: pa.Buffer, line_of: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        """CSV-parse lines that all have exactly `dim` spaces; explain any failure line by line."""
        odd: list[str] = []
        try:
            table = self._read_csv(buffer, odd)
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            self._explain(buffer.to_pybytes(), line_of)
            raise ReindexError(f"cannot parse vectors: {e}", path=self.path, line=int(line_of[0])) from e
        if odd:  # cannot happen: every regular line has exactly `dim` spaces
            raise ReindexError("internal error: pyarrow skipped a regular line", path=self.path)
        return _columns(table, self.dim)

    def _candidate_mask(self, lines: pa.Array) -> np.ndarray:
        """Lines whose first word could start a kept token (a cheap superset, checked exactly later)."""
        first_words = pc.list_element(pc.split_pattern(lines, " ", max_splits=1), 0)
        mask = pc.is_in(first_words, value_set=self.candidates)
        if self.lenient:  # a token with bad UTF-8 may decode (with replace/ignore) to a kept one
            mask = pc.or_(mask, pc.invert(pc.string_is_ascii(first_words.cast(pa.large_binary()).view(pa.large_string()))))
        return mask.to_numpy(zero_copy_only=False)

    def _read_csv(self, buf, odd: list[bytes]) -> pa.Table:
        def collect(row) -> str:
            odd.append(row.text)
            return "skip"

        parse_options = pcsv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False,
                                          newlines_in_values=False, ignore_empty_lines=False,
                                          invalid_row_handler=collect)
        hook, sys.unraisablehook = sys.unraisablehook, _quiet  # pyarrow reports a non-UTF-8 row there
        try:
            return pcsv.read_csv(pa.BufferReader(buf), read_options=self.read_options,
                                 parse_options=parse_options, convert_options=self.convert_options)
        finally:
            sys.unraisablehook = hook

    def _explain(self, data: bytes, line_of: np.ndarray) -> None:
        """Find, line by line, the line pyarrow refused and raise its precise error."""
        for i, text in enumerate(data.split(b"\n")[:len(line_of)]):
            parse_line(text.removesuffix(b"\r"), dim=self.dim, line=int(line_of[i]), path=self.path,
                       origin=self.origin)

    def _merge(self, tokens: pa.Array, rows: np.ndarray, lines: np.ndarray, texts: list[bytes],
               text_lines: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """Parse `texts` one by one and merge them with the CSV rows in line order."""
        more_tokens, more_rows, more_lines = [], [], []
        for text, line in zip(texts, text_lines.tolist()):
            parsed = parse_line(text, dim=self.dim, line=line, path=self.path, origin=self.origin)
            if parsed is not None:
                more_tokens.append(parsed[0]); more_rows.append(parsed[1]); more_lines.append(line)
        if not more_tokens:
            return tokens, rows, lines
        all_lines = np.concatenate([np.asarray(lines, np.int64), np.array(more_lines, np.int64)])
        order = np.argsort(all_lines, kind="stable")
        all_tokens = pa.concat_arrays([tokens, pa.array(more_tokens, pa.binary())]).take(pa.array(order))
        all_rows = np.concatenate([rows, np.stack(more_rows)])[order]
        return all_tokens, all_rows, all_lines[order]

    def _checked(self, tokens: pa.Array, rows: np.ndarray, lines: np.ndarray, num_lines: int,
                 num_records: int | None = None) -> Parsed:
        bad = ~np.isfinite(rows).all(axis=1) if rows.size else np.zeros(0, bool)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise not_finite(rows[row], path=self.path, line=int(lines[row]))
        return tokens, rows, lines, num_lines, len(tokens) if num_records is None else num_records


def _quiet(unraisable) -> None:
    """Drop the UnicodeDecodeError pyarrow raises for a non-UTF-8 skipped row; we re-parse the block."""


def _is_plain(block: bytes) -> bool:
    """True unless a CR stands alone (pyarrow would end a line there); blank lines are found later."""
    if b"\r" in block:
        return block.count(b"\r") == block.count(b"\r\n")
    return True


def _columns(table: pa.Table, dim: int, out: np.ndarray | None = None) -> tuple[pa.Array, np.ndarray]:
    """(token bytes, float32 [rows, dim]) from a CSV table, written into `out` when given."""
    if table.num_rows == 0:
        return pa.array([], pa.binary()), np.zeros((0, dim), np.float32)
    tokens = table.column(0).combine_chunks()
    batches = table.drop_columns(["f0"]).to_batches()  # one per ~1 MB parse chunk: cache-friendly
    rows = np.concatenate([np.asarray(b.to_tensor(row_major=True)) for b in batches if b.num_rows], out=out)
    return tokens, rows


def _data_buffer(lines: pa.Array) -> pa.Buffer:
    """The bytes of a (filtered) binary array of whole lines, back to back."""
    if len(lines) == 0:
        return pa.py_buffer(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _locate_lines(block: bytes, texts: list[str]) -> list[int] | None:
    """Byte offsets of the lines equal to `texts` (pyarrow's skipped rows), or None if unsure.

    pyarrow reports skipped rows roughly in file order, so each search starts where the last ended.
    """
    starts: set[int] = set()
    at = 0
    for text in texts:
        needle = text.encode("utf-8")
        if not needle.strip(b" "):
            return None  # a blank line: left to the general path, which finds them all at once
        found = _find_line(block, needle, at)
        if found is None or found in starts:
            found = _find_line(block, needle, 0, skip=starts)
            if found is None:
                return None
        starts.add(found)
        at = found + len(needle)
    return sorted(starts)


def _find_line(block: bytes, needle: bytes, at: int, skip: set[int] = frozenset()) -> int | None:
    """Offset of the first whole line equal to `needle` at or after `at`, not in `skip`."""
    at = block.find(needle, at)
    while at >= 0:
        end = at + len(needle)
        if (at == 0 or block[at - 1] == 10) and block[end:end + 1] in (b"\n", b"\r") and at not in skip:
            return at
        at = block.find(needle, at + 1)
    return None


def _line_indexes(block: bytes, starts: list[int]) -> np.ndarray:
    """The 0-based line index of each (ascending) byte offset."""
    data = np.frombuffer(block, dtype=np.uint8, count=starts[-1])
    counts = [np.count_nonzero(data[a:b] == 10) for a, b in zip([0] + starts[:-1], starts)]
    return np.cumsum(counts, dtype=np.int64)


def read_text(blocks: Iterator[bytes], *, path: str | os.PathLike, header: tuple[int, int] | None,
              keep: Collection[str] | None, lenient_unicode: bool) -> tuple[Collector, int]:
    """Parse every block after the first line check; return (collector, records read).

    `blocks` starts at the first data line (the header, if any, already removed).
    """
    first_line = 2 if header else 1
    block = next(blocks, b"")
    head = block[:block.find(b"\n")] if b"\n" in block else block
    head = head.removesuffix(b"\r")
    fields = len(head.rstrip(b" ").split(b" ")) - 1
    if header:
        dim, origin = header[1], f", as the header on line 1 says"
        if head.strip() and fields < dim:
            raise ReindexError(f"dimension mismatch: the header says {dim} but line 2 has {fields} numbers",
                               path=path, line=2, hint="fix the header's second number")
    else:
        dim, origin = fields, " (the dimension of line 1)"
        if dim < 1:
            raise ReindexError("line 1 has no numbers after the token", path=path, line=1,
                               hint="expected `token v1 ... vD`; is this a vocabulary, not vectors?")
    trailing = head.endswith(b" ")
    candidates = None
    if keep is not None:
        words = {token.encode("utf-8", "surrogatepass").split(b" ", 1)[0] for token in keep}
        candidates = pa.array(sorted(words), pa.large_binary())
    collector = Collector(dim, capacity=min(header[0] if header else 1 << 16, 1 << 16))
    parser = TextParser(dim=dim, path=path, origin=origin, candidates=candidates,
                        lenient_unicode=lenient_unicode, collector=collector)
    num_read = 0
    while block:
        if trailing:
            block = block.replace(b" \n", b"\n").replace(b" \r\n", b"\r\n")
        tokens, rows, lines, num_lines, num_records = parser.parse(block, first_line)
        first_line += num_lines
        num_read += num_records
        collector.add(tokens, rows, lines)
        block = next(blocks, b"")
    return collector, num_read

