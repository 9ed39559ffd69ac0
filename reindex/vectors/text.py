"""GloVe and word2vec/fastText text vectors, parsed a block of lines at a time.

A line is read from the right: its last `dim` space-separated fields are the numbers and whatever
precedes them (spaces included, as in GloVe 840B) is the token. `dim` comes from the `N D` header or,
without one, from the first lines: the number of fields most of them have after the token. A line with
fewer than `dim` numbers is an error; a line with more fields is a token containing spaces. Blank
lines are skipped; trailing spaces and CRLF endings are allowed. Quoting and NA detection are off.

Each block is parsed in a worker thread (`BlockReader.work`; pyarrow parses without the GIL) one of
two ways:
- whole: pyarrow parses every line of the block (`_csv`); with `keep`, rows whose first word is not
  kept are dropped, or, while nearly every line is kept, all rows go on and the collector drops the
  few `keep` lacks (a key per row would cost more than it saves);
- chosen: the lines are split in bulk and only those whose first word may be kept are gathered
  (`_lines`), so the numbers of the other lines are never read; the gathered lines of several
  blocks are parsed in one pyarrow call (a call costs ~1.5 ms with 300 columns, whatever the number
  of lines), by the same workers, while the file is read on.
With `keep`, the first lines and then each block's share of kept lines pick the way of the next.
The lines pyarrow leaves aside or must not be given (a token with spaces, a lone CR, bytes that are
not UTF-8) are parsed one by one.
"""
from __future__ import annotations

import collections
import itertools
import os
from collections.abc import Callable, Iterator, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReindexError
from . import _lines
from ._collect import Collector
from ._csv import CsvParser, CsvRows, bools, is_utf8, line_bytes, merge_rows, pool
from ._keep import Keep
from ._line import SAMPLE_LINES, find_dim, not_finite, parse_line
from ._lines import Lines, line_ends, line_text, lone_crs, not_utf8, split_lines
from ._open import WORKERS, read_ahead

DENSE = 0.5      # with `keep`: parse whole blocks while the last block kept at least this share of lines
ALL = 0.9        # ... and while it kept this share, hand every row to the collector (which keeps exactly
                 # `keep`): a key per row costs more than holding the few extra rows until the end
SAMPLE_EVERY = 8  # rows handed over unfiltered: the kept share is estimated from every 8th
BATCH_BYTES = 1 << 20  # chosen lines gathered before one pyarrow call
MAX_PARSING = 2  # batches parsed meanwhile: the file is read on, but not so far that batches pile up
NO_ROWS = CsvRows(pa.array([], pa.binary()), np.zeros((0, 0), np.float32), np.zeros(0, np.int64), -1)


@dataclass
class Parsed:
    """A block as a worker left it: pyarrow's rows, the block's line of each, and the lines left."""

    way: str                 # "whole" or "chosen"
    data: bytes              # the block
    lines: Lines | None      # the block split into lines (chosen), else split again when needed
    rows: CsvRows            # whole: pyarrow's rows; chosen: none yet
    index: np.ndarray        # int64: the line (0-based in the block) of each row; chosen: of each line chosen
    alone: np.ndarray        # int64, ascending: the lines to parse one by one
    num_lines: int
    blank: int = 0           # blank lines already left out
    wanted: np.ndarray | None = None  # whole, with `keep`: the rows that may be kept
    share: float | None = None        # with `keep`: the share of lines kept (estimated when unfiltered)
    unfiltered: bool = False          # whole, with `keep`: every row handed over
    selected: np.ndarray | None = None  # chosen: the chosen lines, back to back (uint8)


@dataclass
class Batch:
    """Chosen lines of consecutive blocks, for one pyarrow call."""

    data: list = field(default_factory=list)      # uint8 arrays of lines
    lines: list = field(default_factory=list)     # their line numbers
    alone: list = field(default_factory=list)     # (line number, text) of lines parsed one by one
    size: int = 0


class BlockReader:
    """Turn blocks of whole lines into (tokens, rows, line numbers) for the collector."""

    def __init__(self, *, dim: int, trailing: bool, path: str | os.PathLike, origin: str,
                 keep: Keep | None, kept_share: float = 0.0, submit: Callable | None = None) -> None:
        self.dim, self.path, self.origin, self.keep, self.submit = dim, path, origin, keep, submit
        self.csv = CsvParser(dim=dim, trailing=trailing)
        self.kept_share = kept_share  # of the last block placed; read by workers to pick a way (a hint only)
        self.batch = Batch()

    def work(self, block: bytes) -> Parsed:
        """The part that needs no line number, run on several blocks at once (thread-safe)."""
        data = ended(block)
        share = self.kept_share
        if (self.keep is None or share >= DENSE) and not lone_crs(data) and is_utf8(data):
            rows = self.csv.parse(data)
            if rows is not None:
                num_lines = len(rows.tokens) + len(rows.odd)
                parsed = Parsed("whole", data, None, rows, np.delete(np.arange(num_lines), rows.odd), rows.odd, num_lines)
                if self.keep is not None and share >= ALL:
                    parsed.unfiltered = True
                    parsed.share = _lines.share_in_keep(rows.tokens[::SAMPLE_EVERY], self.keep.set, default=share)
                elif self.keep is not None:
                    parsed.wanted = self._wanted(rows.tokens)
                    parsed.share = float(parsed.wanted.mean()) if len(rows.tokens) else 0.0
                return parsed
        return self._choose(data)

    def _wanted(self, tokens: pa.Array) -> np.ndarray:
        """Bool per parsed row: its token may be kept (exact up to key collisions; bad UTF-8 kept,
        to be refused or decoded by the collector)."""
        assert self.keep is not None
        offsets = np.frombuffer(tokens.buffers()[1], np.int32)[tokens.offset:tokens.offset + len(tokens) + 1]
        data = np.frombuffer(tokens.buffers()[2] or b"", np.uint8)
        starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
        wanted = self.keep.words.contains(data, starts, lengths)
        bad = not_utf8(tokens)
        return wanted if bad is None else wanted | bad

    def _choose(self, data: bytes) -> Parsed:
        lines = split_lines(data)
        blank = _lines.blank_lines(lines)
        special = _lines.special_lines(lines) if lone_crs(data) else np.zeros(len(lines), bool)
        chosen = ~blank & ~special
        if self.keep is not None:  # a word that is not UTF-8 goes on: refused, or decoded and tested, at the end
            lengths = _lines.first_word_lengths(lines)
            candidate = self.keep.words.contains(lines.data, lines.offsets[:-1], lengths)
            bad = _lines.words_not_utf8(lines.data, lines.offsets[:-1], lengths)
            chosen &= candidate if bad is None else candidate | bad
        selected = pc.filter(lines.array, bools(chosen), memory_pool=pool())
        bad = not_utf8(selected)  # pyarrow fails on a line that is not UTF-8 when it does not parse it
        if bad is not None:
            special[np.flatnonzero(chosen)[bad]] = True
            chosen &= ~special
            selected = pc.filter(lines.array, bools(chosen), memory_pool=pool())
        index = np.flatnonzero(chosen)
        data_chosen = np.frombuffer(line_bytes(selected), np.uint8).copy() if len(index) else np.zeros(0, np.uint8)
        return Parsed("chosen", data, lines, NO_ROWS, index, np.flatnonzero(special), len(lines),
                      blank=int(blank.sum()), share=len(index) / max(len(lines), 1), selected=data_chosen)

    def place(self, parsed: Parsed, first_line: int) -> tuple[list, int, int]:
        """([((tokens, row pieces, line numbers), blank lines met), or a future of one] in file order,
        lines in the block, records in it before those blank lines)."""
        if parsed.share is not None:
            self.kept_share = parsed.share
        if parsed.way == "chosen":
            return self._queue(parsed, first_line), parsed.num_lines, parsed.num_lines - parsed.blank
        rows, wanted = parsed.rows, parsed.wanted
        check = self._wanted(rows.tokens) if parsed.unfiltered and rows.bad >= 0 else wanted
        alone = parsed.alone.tolist()
        if alone:
            lines = split_lines(parsed.data)
            alone = [(first_line + i, line_text(lines, i)) for i in alone]
        out = self._assemble(rows, first_line + parsed.index, alone, wanted=wanted, check=check)
        return self.flush() + [out], parsed.num_lines, parsed.num_lines

    def _queue(self, chosen: Parsed, first_line: int) -> list:
        """Add the chosen lines to the batch; hand the batch on once it holds BATCH_BYTES."""
        assert chosen.lines is not None and chosen.selected is not None
        batch = self.batch
        batch.data.append(chosen.selected)
        batch.lines.append(first_line + chosen.index)
        batch.alone += [(first_line + i, line_text(chosen.lines, i)) for i in chosen.alone.tolist()]
        batch.size += len(chosen.selected)
        return self.flush() if batch.size >= BATCH_BYTES else []

    def flush(self) -> list:
        """The batch, parsed by a worker when there is `submit` ([a future]), else here."""
        batch, self.batch = self.batch, Batch()
        if not batch.data and not batch.alone:
            return []
        return [self.submit(self._parse, batch)] if self.submit else [self._parse(batch)]

    def _parse(self, batch: Batch) -> tuple[tuple, int]:
        data = np.concatenate(batch.data) if batch.data else np.zeros(0, np.uint8)
        numbers = np.concatenate(batch.lines) if batch.lines else np.zeros(0, np.int64)
        rows = self.csv.parse(pa.py_buffer(data)) if len(numbers) else NO_ROWS
        odd = np.arange(len(numbers)) if rows is None else rows.odd  # None: pyarrow refused a number
        alone = batch.alone
        if len(odd):
            lines = split_lines(data)
            alone = alone + [(int(numbers[i]), line_text(lines, i)) for i in odd.tolist()]
        where = np.delete(numbers, odd)
        return self._assemble(rows or NO_ROWS, where, sorted(alone), wanted=None, check=None)

    def _assemble(self, rows: CsvRows, where: np.ndarray, alone: list[tuple[int, bytes]], *,
                  wanted: np.ndarray | None, check: np.ndarray | None) -> tuple[tuple, int]:
        """((tokens, row pieces, line numbers), blank lines) of pyarrow's `rows` (on lines `where`; those
        `wanted`, if given; a NaN in those `check` says, or in any, is an error) and of the lines
        `alone` ((line number, text), ascending), parsed one by one."""
        if rows.bad >= 0:
            bad = np.flatnonzero(~np.isfinite(rows.rows).all(axis=1) & (True if check is None else check))
            if len(bad):
                raise not_finite(rows.rows[bad[0]], path=self.path, line=int(where[bad[0]]))
        tokens, matrix = rows.tokens, rows.rows
        if wanted is not None and not wanted.all():
            tokens = pc.filter(tokens, pa.array(wanted), memory_pool=pool())
            matrix, where = matrix[wanted], where[wanted]
        more: tuple[list, list, list] = ([], [], [])
        blanks = 0
        for line, text in alone:
            if not text.strip(b" "):
                blanks += 1
            elif self.keep is None or b"\t" in text or self._may_keep(text):  # a TAB: see tab_separated
                parsed = parse_line(text, dim=self.dim, line=line, path=self.path, origin=self.origin)
                assert parsed is not None  # not blank
                for column, value in zip(more, (parsed[0], parsed[1], line), strict=True):
                    column.append(value)
        return merge_rows(tokens, matrix, where, *more), blanks

    def _may_keep(self, text: bytes) -> bool:
        """Whether the line's first word may be kept; a word that is not UTF-8 is, to be refused
        (strict) or decoded (replace/ignore) by the collector."""
        assert self.keep is not None
        word = text.split(b" ", 1)[0]
        return self.keep.words.may_contain(word) or not is_utf8(word)


def ended(block: bytes) -> bytes:
    """The block, ending in a newline (a copy only for a file's last line without one)."""
    return block if block.endswith(b"\n") else block + b"\n"


def read_text(blocks: Iterator[bytes], *, path: str | os.PathLike, header: tuple[int, int] | None,
              keep: Keep | None, size_hint: int | None = None) -> tuple[Collector, int]:
    """Parse every block; return (collector, records read)."""
    first_line = 2 if header else 1
    block = next(blocks, None)
    if block is None:
        return Collector(header[1] if header else 1, capacity=16), 0
    head = b"\n".join(block.split(b"\n", SAMPLE_LINES)[:SAMPLE_LINES])
    dim, origin, trailing = find_dim(head, header, path=path, first_line=first_line)
    collector = Collector(dim, capacity=_capacity(block, header, size_hint, keep))
    num_read, queue = 0, collections.deque[object]()
    # one thread per block read ahead and per batch being parsed: a block never waits behind a batch
    with ThreadPoolExecutor(WORKERS + MAX_PARSING, thread_name_prefix="reindex-vectors") as workers:
        reader = BlockReader(dim=dim, trailing=trailing, path=path, origin=origin, keep=keep, submit=workers.submit,
                             kept_share=0.0 if keep is None else _share_kept(head, keep.set, dim=dim))
        try:
            for _, parsed in read_ahead(itertools.chain([block], blocks), reader.work, workers=workers):
                items, num_lines, records = reader.place(parsed, first_line)
                queue.extend(items)
                num_read += records - _drain(queue, collector, wait=False)
                first_line += num_lines
            queue.extend(reader.flush())
            num_read -= _drain(queue, collector, wait=True)
        except ReindexError:
            _drain(queue, collector, wait=True)  # an earlier line's error, still being parsed, comes first
            raise
    pool().release_unused()  # the blocks' memory, kept by the threads' heaps, before the caller goes on
    return collector, num_read


def _drain(queue: collections.deque, collector: Collector, *, wait: bool) -> int:
    """Hand the rows parsed to the collector, in file order; returns the blank lines they held. Waits
    for a batch still being parsed when `wait` or when more than MAX_PARSING are."""
    blanks = 0
    parsing = sum(isinstance(item, Future) for item in queue)
    while queue and (wait or parsing > MAX_PARSING or not isinstance(queue[0], Future) or queue[0].done()):
        item = queue.popleft()
        if isinstance(item, Future):
            parsing -= 1
            try:
                item = item.result()
            except BaseException:
                queue.clear()  # what follows is later in the file: its errors must not replace this one
                raise
        rows, blank = item
        collector.extend(*rows)
        blanks += blank
    return blanks


def _share_kept(head: bytes, keep: Set[str], *, dim: int) -> float:
    """The share of the first lines whose token is in `keep`: how the first blocks are read."""
    tokens = [line.rstrip(" \r").rsplit(" ", dim)[0] for line in head.decode("utf-8", "replace").split("\n")]
    tokens = [t for t in tokens if t.strip(" ")]
    return sum(map(keep.__contains__, tokens)) / len(tokens) if tokens else 0.0


def _capacity(block: bytes, header: tuple[int, int] | None, size_hint: int | None,
              keep: Keep | None) -> int:
    """Rows to allocate at first: the whole file's, estimated from the first block's mean line length."""
    guess = header[0] if header else 1 << 16
    if size_hint:
        lines = len(line_ends(np.frombuffer(block, np.uint8))) or 1
        guess = int(size_hint * lines / len(block) * 1.05) + 1024
        if header:
            guess = min(max(header[0], 16), guess)
    if keep is not None:  # the kept rows and the key test's false matches (rows past them are never resident)
        guess = min(guess, len(keep) + guess // 32 + 1024)
    return max(guess, 16)
