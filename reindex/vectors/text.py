"""GloVe and word2vec/fastText text vectors, parsed a block at a time by pyarrow's CSV reader.

A line is read from the right: its last `dim` space-separated fields are the numbers and whatever
precedes them (spaces included, as in GloVe 840B) is the token. `dim` comes from the `N D` header or,
without one, from the first line (whose token must not contain a space). A line with fewer than
`dim` numbers is an error; a line with more fields is a token containing spaces. Blank lines are
skipped; trailing spaces and CRLF endings are allowed. Quoting and NA detection are off.
"""
from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Collection, Iterator
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ..errors import ReindexError
from ._collect import Collector
from ._format import NUMBER as _NUMBER
from ._open import read_ahead

Parsed = tuple[pa.Array, np.ndarray, np.ndarray, int, int]  # tokens, rows, lines, lines seen, records
# a block's CSV rows: tokens, float32 rows, first row with NaN/Inf (or -1), refused rows (number, text)
Plain = tuple[pa.Array, np.ndarray, int, list[tuple[int, str]]]


class Lines(NamedTuple):
    """A block split into lines, with the lines chosen for parsing (see `TextParser._split`)."""

    data: memoryview | bytes
    offsets: np.ndarray    # line i is data[offsets[i]:offsets[i + 1]]
    lines: pa.Array        # the same lines as a large_binary array (no copy)
    blank: np.ndarray      # bool per line
    special: np.ndarray    # bool per line: a lone CR inside, parsed one by one
    chosen: np.ndarray     # bool per line: neither blank nor special (and a candidate, with `keep`)


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
                 collector: Collector, trailing: bool = False) -> None:
        self.dim, self.path, self.origin, self.collector = dim, path, origin, collector
        self.candidates, self.lenient, self.trailing = candidates, lenient_unicode, trailing
        self.read_options = _read_options(dim)
        self.convert_options = _convert_options(dim)
        # A file whose lines end in a space (fastText) has one more, empty, field: read it, then drop it
        self.plain_read_options = _read_options(dim + trailing)
        self.plain_convert_options = _convert_options(dim, include=dim + 1 if trailing else None)

    def read(self, block: memoryview) -> Plain | Lines | None:
        """The part of parsing that needs no line number, run on blocks in parallel (thread-safe).

        With `keep`: the lines split and the candidates chosen. Otherwise the fast path's CSV read
        (None if it does not apply): one block is parsed by one thread, so pyarrow numbers the rows
        it refuses (tokens with spaces) and no search is needed to put them back in place.
        """
        if self.candidates is not None:
            return self._split(self._data(block))
        if not _is_plain(block):
            return None
        odd: list[tuple[int, str]] = []

        def collect(row) -> str:
            odd.append((row.number, row.text))
            return "skip"

        parse_options = pcsv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False,
                                          newlines_in_values=False, ignore_empty_lines=False,
                                          invalid_row_handler=collect)
        try:
            table = pcsv.read_csv(pa.BufferReader(pa.py_buffer(block)), parse_options=parse_options,
                                  read_options=self.plain_read_options, convert_options=self.plain_convert_options)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None  # a blank line or a token that is not UTF-8: left to `_parse_lines`
        rows = np.empty((table.num_rows, self.dim), np.float32)  # the transpose, here in parallel
        tokens, bad = _write_rows(table, rows)
        return tokens, rows, bad, odd

    def place(self, block: memoryview, plain: Plain | Lines | None, first_line: int) -> Parsed:
        """Finish `read`'s work: write the fast path's rows into the collector's matrix, or parse
        the chosen lines by the general path."""
        if isinstance(plain, Lines):
            parsed = self._parse_lines(plain, first_line)
            # pyarrow's allocator keeps freed pages for reuse; with `keep` the memory should follow
            # what is kept, not the blocks read
            pa.default_memory_pool().release_unused()
            return parsed
        if plain is None or any(n is None or not text.strip(" ") for n, text in plain[-1]):
            return self._parse_lines(self._split(self._data(block)), first_line)
        tokens, rows, bad, odd = plain
        num_lines = len(rows) + len(odd)
        odd.sort()
        odd_index = np.array([n - 1 for n, _ in odd], dtype=np.int64)
        odd_parsed = [parse_line(text.encode("utf-8"), dim=self.dim, line=first_line + n - 1, path=self.path,
                                 origin=self.origin) for n, text in odd]
        out = self.collector.reserve(num_lines)  # every odd line is a record: blank ones went above
        good = None
        if odd:
            good = np.ones(num_lines, dtype=bool)
            good[odd_index] = False
            good = np.flatnonzero(good)
            out[odd_index] = np.stack([v for _, v in odd_parsed])
        if bad >= 0:
            raise not_finite(rows[bad], path=self.path, line=first_line + (bad if good is None else int(good[bad])))
        if good is None:
            out[:] = rows
        else:
            out[good] = rows
        if odd:
            order = np.empty(num_lines, dtype=np.int64)
            order[good] = np.arange(len(good))
            order[odd_index] = len(good) + np.arange(len(odd_index))
            tokens = pa.concat_arrays([tokens, pa.array([t for t, _ in odd_parsed], pa.binary())]).take(order)
        return tokens, out, first_line + np.arange(num_lines), num_lines, num_lines

    def _data(self, block: memoryview) -> memoryview | bytes:
        """The block, ending in a newline, without the spaces that end lines (a copy only if needed)."""
        if block[len(block) - 1] == 10 and not self.trailing:
            return block
        data = bytes(block) if block[len(block) - 1] == 10 else bytes(block) + b"\n"
        if self.trailing:
            data = data.replace(b" \n", b"\n").replace(b" \r\n", b"\r\n")
        return data

    def _split(self, block: memoryview | bytes) -> Lines:
        """Split lines with numpy; choose the non-blank ones (and, with `keep`, the candidates)."""
        data = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(data == 10) + 1
        offsets = np.concatenate([np.zeros(1, np.int64), ends])
        lengths = np.diff(offsets)
        blank = (lengths == 1) | ((lengths == 2) & (data[ends - 2] == 13))
        special = np.zeros(len(ends), dtype=bool)
        if _has_cr(block):
            cr = np.flatnonzero(data == 13)
            lone = cr[data[cr + 1] != 10]  # a CR not before LF: pyarrow would end the line there
            special[np.searchsorted(ends, lone, side="right")] = True
        lines = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends),
                                                 [None, pa.py_buffer(offsets), pa.py_buffer(block)])
        chosen = ~blank & ~special
        if self.candidates is not None:
            chosen &= self._candidate_mask(data, offsets)
        return Lines(block, offsets, lines, blank, special, chosen)

    def _parse_lines(self, split: Lines, first_line: int) -> Parsed:
        """The general path: CSV-parse the chosen lines with `dim` spaces, the rest one by one."""
        block, offsets, lines, blank, special, chosen = split
        ends = offsets[1:]
        chosen_index = np.flatnonzero(chosen)
        selected = lines.filter(pa.array(chosen))
        spaces = pc.count_substring(selected, " ").to_numpy(zero_copy_only=False)
        regular = spaces == self.dim
        regular_lines = selected.filter(pa.array(regular))
        line_of = first_line + chosen_index[regular]
        odd_index = np.concatenate([chosen_index[~regular], np.flatnonzero(special)])
        texts = [bytes(block[offsets[i]:offsets[i + 1]]).rstrip(b"\n").removesuffix(b"\r") for i in odd_index]
        tokens, rows = pa.array([], pa.binary()), np.zeros((0, self.dim), np.float32)
        if len(regular_lines):
            tokens, rows = self._read_regular(_data_buffer(regular_lines), line_of)
        tokens, rows, lines_out = self._merge(tokens, rows, line_of, texts, first_line + odd_index)
        skipped = len(odd_index) - (len(lines_out) - len(line_of))  # whitespace-only lines
        return tokens, rows, lines_out, len(ends), int(np.count_nonzero(~blank)) - skipped

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
        rows = np.empty((table.num_rows, self.dim), np.float32)
        tokens, bad = _write_rows(table, rows)
        if bad >= 0:
            raise not_finite(rows[bad], path=self.path, line=int(line_of[bad]))
        return tokens, rows

    def _candidate_mask(self, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Lines whose first word could start a kept token (a cheap superset, checked exactly later)."""
        first_words = _first_words(data, offsets)
        mask = pc.is_in(first_words, value_set=self.candidates)
        beyond_ascii = pc.invert(pc.string_is_ascii(first_words.cast(pa.large_binary()).view(pa.large_string())))
        if self.lenient:  # a token with bad UTF-8 may decode (with replace/ignore) to a kept one
            mask = pc.or_(mask, beyond_ascii)
        elif pc.any(beyond_ascii).as_py() and not _valid_utf8(first_words.filter(beyond_ascii)):
            mask = pc.or_(mask, beyond_ascii)  # strict: parse them, so the bad bytes get their error
        return mask.to_numpy(zero_copy_only=False)

    def _read_csv(self, buf, odd: list[str]) -> pa.Table:
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


def _quiet(unraisable) -> None:
    """Drop the UnicodeDecodeError pyarrow raises for a non-UTF-8 skipped row; we re-parse the block."""


def _read_options(columns: int) -> pcsv.ReadOptions:
    """Single-threaded: each block is already parsed in a worker thread of its own."""
    return pcsv.ReadOptions(column_names=[f"f{i}" for i in range(columns + 1)], block_size=1 << 20,
                            use_threads=False)


def _convert_options(dim: int, *, include: int | None = None) -> pcsv.ConvertOptions:
    """Token as bytes (decoded once at the end), numbers as float32; `include`: the first columns only."""
    return pcsv.ConvertOptions(
        column_types={"f0": pa.binary(), **{f"f{i}": pa.float32() for i in range(1, dim + 1)}},
        null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
        include_columns=None if include is None else [f"f{i}" for i in range(include)])


def _has_cr(block: memoryview | bytes) -> bool:
    """Whether a CR is in the block (a view of an mmap, searched in place, or bytes)."""
    return (block.obj.find(b"\r", 0, len(block)) if isinstance(block, memoryview) else block.find(b"\r")) >= 0


def _is_plain(block: memoryview) -> bool:
    """True unless a CR stands alone (pyarrow would end a line there); blank lines are found later."""
    if _has_cr(block):
        data = bytes(block)
        return data.count(b"\r") == data.count(b"\r\n")
    return True


def _write_rows(table: pa.Table, out: np.ndarray) -> tuple[pa.Array, int]:
    """Write the table's float columns into `out`; return (the tokens, first row with NaN/Inf or -1).

    One ~1 MB record batch at a time, checked for NaN/Inf while it is still in cache.
    """
    r, bad = 0, -1
    for batch in table.drop_columns(["f0"]).to_batches():
        n = batch.num_rows
        if n == 0:
            continue
        rows = np.asarray(batch.to_tensor(row_major=True))
        if bad < 0 and not (np.isfinite(rows.min()) and np.isfinite(rows.max())):
            bad = r + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        out[r:r + n] = rows
        r += n
    return (table.column(0).combine_chunks() if table.num_rows else pa.array([], pa.binary())), bad


def _first_words(data: np.ndarray, offsets: np.ndarray, window: int = 64) -> pa.Array:
    """Each line's bytes before its first space (the whole line but its line ending, if it has none).

    Only the first `window` bytes of each line are looked at (a line longer than that with no space
    there is searched on its own), so the cost follows the number of lines, not of bytes.
    """
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    near = data[np.minimum(starts[:, None] + np.arange(window), len(data) - 1)] == 32
    stop = np.where(near.any(axis=1), near.argmax(axis=1), window)
    stop = np.where(stop < lengths, stop, lengths)  # a space past the line's end belongs to the next
    # A line with no space is all token: without its line ending, so a vocabulary token alone on a
    # line is chosen (and refused for its missing numbers) instead of skipped.
    alone = (stop == lengths) & (lengths > 0)
    for ending in (10, 13):
        cut = alone & (stop > 0) & (data[np.maximum(starts + stop - 1, 0)] == ending)
        stop = stop - cut
    for i in np.flatnonzero((stop == window) & (lengths > window)):
        found = bytes(data[starts[i]:ends[i]]).find(b" ")
        stop[i] = found if found >= 0 else lengths[i]
    word_offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(stop, out=word_offsets[1:])
    index = np.repeat(starts - word_offsets[:-1], stop) + np.arange(word_offsets[-1])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts),
                                            [None, pa.py_buffer(word_offsets), pa.py_buffer(data[index])])


def _valid_utf8(words: pa.Array) -> bool:
    """Whether every word decodes as UTF-8 (pyarrow validates on the cast)."""
    try:
        words.cast(pa.large_binary()).cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _data_buffer(lines: pa.Array) -> pa.Buffer:
    """The bytes of a (filtered) binary array of whole lines, back to back."""
    if len(lines) == 0:
        return pa.py_buffer(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def read_text(blocks: Iterator[memoryview], *, path: str | os.PathLike, header: tuple[int, int] | None,
              keep: Collection[str] | None, lenient_unicode: bool,
              size_hint: int | None = None) -> tuple[Collector, int]:
    """Parse every block after the first line check; return (collector, records read).

    `blocks` starts at the first data line (the header, if any, already removed); `size_hint` is the
    number of bytes they hold, when known, to size the matrix once.
    """
    first_line = 2 if header else 1
    block = next(blocks, None)
    if block is None:
        return Collector(header[1] if header else 1, capacity=16), 0
    newline = block.obj.find(b"\n", 0, len(block))
    head = bytes(block[:newline if newline >= 0 else len(block)]).removesuffix(b"\r")
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
    candidates = None
    if keep is not None:
        words = {token.encode("utf-8", "surrogatepass").split(b" ", 1)[0] for token in keep}
        candidates = pa.array(sorted(words), pa.large_binary())
    collector = Collector(dim, capacity=_capacity(block, header, size_hint, keep))
    parser = TextParser(dim=dim, path=path, origin=origin, candidates=candidates, trailing=head.endswith(b" "),
                        lenient_unicode=lenient_unicode, collector=collector)
    num_read = 0
    hook, sys.unraisablehook = sys.unraisablehook, _quiet  # pyarrow reports a non-UTF-8 row there
    try:
        for block, plain in read_ahead(itertools.chain([block], blocks), parser.read):
            tokens, rows, lines, num_lines, num_records = parser.place(block, plain, first_line)
            first_line += num_lines
            num_read += num_records
            collector.add(tokens, rows, lines)
            del rows  # a view of the collector's matrix, which the next block may move
    finally:
        sys.unraisablehook = hook
    return collector, num_read


def _capacity(block: memoryview, header: tuple[int, int] | None, size_hint: int | None,
              keep: Collection[str] | None) -> int:
    """Rows to allocate at first: the whole file's, estimated from the first block's mean line length.

    Pages never written are never resident, so a generous estimate costs no memory; the matrix grows
    (with mremap, no copy) if the estimate was short and shrinks at the end.
    """
    if keep is not None:
        return min(len(keep), 1 << 16)
    guess = header[0] if header else 1 << 16
    if size_hint:
        lines = int(np.count_nonzero(np.frombuffer(block, np.uint8) == 10)) or 1
        guess = int(size_hint * lines / len(block) * 1.05) + 1024
        if header:
            guess = min(max(header[0], 16), guess)
    return guess
