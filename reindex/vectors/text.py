"""GloVe and word2vec/fastText text vectors, parsed a block of lines at a time.

A line is read from the right: its last `dim` space-separated fields are the numbers and whatever
precedes them (spaces included, as in GloVe 840B) is the token. `dim` comes from the `N D` header or,
without one, from the first lines: the number of fields most of them have after the token. A line with
fewer than `dim` numbers is an error; a line with more fields is a token containing spaces. Blank
lines are skipped; trailing spaces and CRLF endings are allowed. Quoting and NA detection are off.

Each block goes one of these ways (`BlockReader.work`, in worker threads):
- whole: pyarrow parses every line of the block (`_csv`); with `keep`, rows whose first word is not
  kept are dropped, or, while nearly every line is kept, all rows go on and the collector drops the
  few `keep` lacks (a key per row would cost more than it saves);
- chosen: the lines are split in bulk and only those whose first word may be kept are gathered
  (`_lines`), so the numbers of the other lines are never read; the gathered lines of several blocks
  are parsed together, off the main thread, while the file is read on.
With `keep`, the first lines and then each block's share of kept lines pick the way of the next.
"""
from __future__ import annotations

import collections
import itertools
import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from collections.abc import Iterator, Set
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReindexError
from ._collect import Collector
from ._csv import CsvParser, CsvRows, QuietUnraisable, complement, first_bad, pool, row_at, select_rows
from ._dim import SAMPLE_LINES, find_dim
from ._keep import Keep, looked_up_meanwhile
from ._line import not_finite, parse_line
from ._lines import (Lines, WordSet, blank_lines, first_word_lengths, line_ends, lone_cr_lines, lone_crs, not_utf8,
                     share_in_keep, split_lines, words_not_utf8)
from ._open import WORKERS, read_ahead

DENSE = 0.5      # with `keep`: parse whole blocks while the last block kept at least this share of lines
ALL = 0.9        # ... and while it kept this share, hand every row to the collector (which keeps exactly
                 # `keep`): a key per row costs more than holding the few extra rows until the end
SAMPLE_EVERY = 8  # rows handed over unfiltered: the kept share is estimated from every 8th
BATCH_BYTES = 1 << 20  # chosen lines gathered before one pyarrow call


@dataclass
class Whole:
    """A block parsed whole: pyarrow's rows, and with `keep` which of them may be kept."""

    data: memoryview | bytes
    rows: CsvRows
    wanted: np.ndarray | None
    share: float | None = None  # set when every row is handed over: the share of a sample that is wanted


@dataclass
class Chosen:
    """A block split into lines, and its chosen lines copied out (parsed later, with other blocks')."""

    lines: Lines
    blank: np.ndarray
    special: np.ndarray     # lines with a lone CR, parsed one by one
    chosen: np.ndarray      # int64 indexes of the lines for pyarrow
    selected: np.ndarray    # uint8: those lines, back to back


@dataclass
class Pending:
    """Chosen lines of consecutive blocks, parsed in one pyarrow call (a call costs ~0.6 ms with 300
    columns, whatever the number of lines)."""

    data: list = field(default_factory=list)      # uint8 arrays of lines
    lines: list = field(default_factory=list)     # their absolute line numbers
    special: list = field(default_factory=list)   # (line number, text) of lone-CR lines
    size: int = 0


class BlockReader:
    """Turn blocks of whole lines into (tokens, rows, line numbers) for the collector."""

    def __init__(self, *, dim: int, trailing: bool, path: str | os.PathLike, origin: str,
                 keep: Keep | None, kept_share: float = 0.0, executor: Executor | None = None) -> None:
        self.dim, self.path, self.origin, self.keep, self.executor = dim, path, origin, keep, executor
        self._words_lock = threading.Lock()
        self.csv = CsvParser(dim=dim, trailing=trailing)
        self.kept_share = kept_share  # of the last block placed; read by workers to pick a way (a hint only)
        self.pending = Pending()

    def work(self, block: memoryview) -> Whole | Chosen:
        """The part that needs no line number, run on several blocks at once (thread-safe)."""
        data = ended(block)
        share = self.kept_share
        if (self.keep is None or share >= DENSE) and not lone_crs(data):
            rows = self.csv.parse(data)
            if rows is not None:
                if self.keep is None:
                    return Whole(data, rows, None)
                if share >= ALL:
                    return Whole(data, rows, None, share=share_in_keep(rows.tokens, self.keep.set, every=SAMPLE_EVERY, default=share))
                return Whole(data, rows, self._wanted(rows.tokens))
        return self._choose(data)

    @property
    def words(self) -> WordSet:
        """The key test of `keep`, built when a block first needs it (reading every row needs none)."""
        with self._words_lock:  # cached by `keep`, built once even when workers ask at the same time
            return self.keep.words

    def _wanted(self, tokens: pa.Array) -> np.ndarray:
        """Bool per parsed row: its token may be kept (exact up to key collisions; bad UTF-8 kept,
        to be refused or decoded by the collector)."""
        offsets = np.frombuffer(tokens.buffers()[1], np.int32)[tokens.offset:tokens.offset + len(tokens) + 1]
        data = np.frombuffer(tokens.buffers()[2] or b"", np.uint8)
        starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
        wanted = self.words.contains(data, starts, lengths)
        bad = not_utf8(tokens)
        return wanted if bad is None else wanted | bad

    def _choose(self, data) -> Chosen:
        lines = split_lines(data)
        blank = blank_lines(lines)
        special = lone_cr_lines(lines) if lone_crs(data) else np.zeros(len(lines), bool)
        chosen = ~blank & ~special
        if self.keep is not None:
            lengths = first_word_lengths(lines)
            candidate = self.words.contains(lines.data, lines.offsets[:-1], lengths)
            bad = words_not_utf8(lines.data, lines.offsets[:-1], lengths)
            chosen &= candidate if bad is None else candidate | bad
        index = np.flatnonzero(chosen)
        selected = np.zeros(0, np.uint8)
        if len(index):
            selected = np.frombuffer(_buffer(pc.filter(lines.array, _bools(chosen), memory_pool=pool())), np.uint8)
        return Chosen(lines, blank, special, index, selected.copy())

    def place(self, result: Whole | Chosen, first_line: int) -> tuple[list, int, int]:
        """([(tokens, row pieces, line numbers)] in file order, lines in the block, records in it)."""
        if isinstance(result, Whole):
            out, records = self.flush()
            tokens, parts, where, num_lines, more = self._place_whole(result, first_line)
            return out + [(tokens, parts, where)], num_lines, records + more
        return self._place_chosen(result, first_line)

    def _place_whole(self, whole: Whole, first_line: int):
        rows, wanted = whole.rows, whole.wanted
        num_lines = len(rows.tokens) + len(rows.odd)
        index = complement(rows.odd, num_lines)
        if rows.bad >= 0:
            check = wanted if whole.share is None or self.keep is None else self._wanted(rows.tokens)
            bad = rows.bad if check is None else first_bad(rows.parts, check)
            if bad >= 0:
                raise not_finite(row_at(rows.parts, bad), path=self.path, line=first_line + int(index[bad]))
        tokens, parts = rows.tokens, rows.parts
        if whole.share is not None:  # every row goes on; the collector drops those `keep` lacks
            self.kept_share = whole.share
        elif wanted is not None:
            self.kept_share = float(wanted.mean()) if len(wanted) else 0.0
            tokens = pc.filter(tokens, pa.array(wanted), memory_pool=pool())
            parts, index = select_rows(parts, wanted), index[wanted]
        records = len(rows.tokens)
        extra = ([], [], [])
        if len(rows.odd):
            lines = split_lines(whole.data)
            texts = [_text(lines, i) for i in rows.odd.tolist()]
            extra, blanks = self._one_by_one(texts, rows.odd, first_line)
            records += len(texts) - blanks
        return self._merge(tokens, parts, first_line + index, extra, num_lines, records)

    def _place_chosen(self, chosen: Chosen, first_line: int) -> tuple[list, int, int]:
        """Queue the chosen lines; parse the queue once it holds a pyarrow block's worth."""
        self.kept_share = len(chosen.chosen) / max(len(chosen.lines), 1)
        pending = self.pending
        pending.data.append(chosen.selected)
        pending.lines.append(first_line + chosen.chosen)
        pending.special += [(first_line + i, _text(chosen.lines, i)) for i in np.flatnonzero(chosen.special).tolist()]
        pending.size += len(chosen.selected)
        records = int(np.count_nonzero(~chosen.blank))
        if pending.size < BATCH_BYTES:
            return [], len(chosen.lines), records
        out, more = self.flush()
        return out, len(chosen.lines), records + more

    def flush(self) -> tuple[list, int]:
        """Parse the queued lines: ([(tokens, row pieces, line numbers)], minus the blank ones met);
        with an `executor`, ([a future of that pair], 0), so the main thread reads on meanwhile."""
        pending, self.pending = self.pending, Pending()
        if not pending.data and not pending.special:
            return [], 0
        if self.executor is not None:
            return [self.executor.submit(self._parse_pending, pending)], 0
        return self._parse_pending(pending)

    def _parse_pending(self, pending: Pending) -> tuple[list, int]:
        data = np.concatenate(pending.data) if pending.data else np.zeros(0, np.uint8)
        absolute = np.concatenate(pending.lines) if pending.lines else np.zeros(0, np.int64)
        rows = self.csv.parse(pa.py_buffer(data)) if len(absolute) else CsvRows(
            pa.array([], pa.binary()), [], np.zeros(0, np.int64), -1)
        if rows is None:  # pyarrow refused a number or bytes: every chosen line on its own
            odd, tokens, parts, where = np.arange(len(absolute)), pa.array([], pa.binary()), [], absolute[:0]
        else:
            where = absolute[complement(rows.odd, len(absolute))]
            if rows.bad >= 0:
                raise not_finite(row_at(rows.parts, rows.bad), path=self.path, line=int(where[rows.bad]))
            odd, tokens, parts = rows.odd, rows.tokens, rows.parts
        lines = split_lines(data) if len(odd) else None
        found = [(int(absolute[i]), _text(lines, i)) for i in odd.tolist()] + pending.special
        found.sort()
        extra, blanks = self._one_by_one([t for _, t in found], np.array([n for n, _ in found], np.int64), 0)
        # pyarrow's allocator keeps freed pages for reuse; with `keep` the memory should follow what
        # is kept, not the blocks read
        pool().release_unused()
        tokens, parts, where, _, _ = self._merge(tokens, parts, where, extra, 0, 0)
        return [(tokens, parts, where)], -blanks

    def _one_by_one(self, texts: list[bytes], index: np.ndarray, first_line: int):
        """Parse lines one by one (those the keep test cannot rule out); returns the parsed
        (tokens, rows, line numbers) and how many lines were blank."""
        tokens, rows, where, blanks = [], [], [], 0
        for text, i in zip(texts, index.tolist()):
            if not text.strip(b" "):
                blanks += 1
                continue
            if self.keep is not None and not self._may_keep(text):
                continue
            parsed = parse_line(text, dim=self.dim, line=first_line + i, path=self.path, origin=self.origin)
            tokens.append(parsed[0]); rows.append(parsed[1]); where.append(first_line + i)
        return (tokens, rows, where), blanks

    def _may_keep(self, text: bytes) -> bool:
        word = text.split(b" ", 1)[0]
        if self.words.may_contain(word):
            return True
        try:
            word.decode("utf-8")
        except UnicodeDecodeError:
            return True  # refused (strict) or decoded (replace/ignore) by the collector
        return False

    def _merge(self, tokens: pa.Array, parts: list[np.ndarray], where: np.ndarray, extra, num_lines: int,
               records: int):
        """Put the lines parsed one by one among pyarrow's rows, in line order (as positioned pieces)."""
        more_tokens, more_rows, more_where = extra
        if not more_tokens:
            return tokens, parts, where, num_lines, records
        all_where = np.concatenate([where, np.array(more_where, np.int64)])
        order = np.argsort(all_where, kind="stable")
        at = np.empty(len(order), np.int64)
        at[order] = np.arange(len(order))
        pieces, start = [], 0
        for part in parts:
            pieces.append((at[start:start + len(part)], part))
            start += len(part)
        pieces.append((at[start:], np.stack(more_rows)))
        all_tokens = pa.concat_arrays([tokens.cast(pa.binary()), pa.array(more_tokens, pa.binary())])
        return all_tokens.take(pa.array(order)), pieces, all_where[order], num_lines, records


def ended(block: memoryview) -> memoryview | bytes:
    """The block, ending in a newline (a copy only for a file's last line without one)."""
    if len(block) and block[len(block) - 1] == 10:
        return block
    return bytes(block) + b"\n"


def _buffer(lines: pa.Array) -> pa.Buffer:
    """The bytes of a filtered large_binary array of whole lines, back to back (no copy)."""
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _bools(mask: np.ndarray) -> pa.Array:
    """A numpy bool mask as an Arrow boolean array (bit-packed; `pa.array` would import pandas)."""
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(np.packbits(mask, bitorder="little"))])


def _text(lines: Lines, i: int) -> bytes:
    """Line i without its line ending."""
    return bytes(lines.data[lines.offsets[i]:lines.offsets[i + 1]]).rstrip(b"\n").removesuffix(b"\r")


def read_text(blocks: Iterator[memoryview], *, path: str | os.PathLike, header: tuple[int, int] | None,
              keep: Keep | None,
              size_hint: int | None = None) -> tuple[Collector, int]:
    """Parse every block; return (collector, records read).

    `blocks` starts at the first data line (the header, if any, already removed); `size_hint` is the
    number of bytes they hold, when known, to size the matrix once. Invalid UTF-8 tokens are kept
    for the collector to refuse or decode, whatever `unicode_errors` says.
    """
    first_line = 2 if header else 1
    block = next(blocks, None)
    if block is None:
        return Collector(header[1] if header else 1, capacity=16), 0
    ends = line_ends(np.frombuffer(block, np.uint8))
    head = bytes(block[:ends[SAMPLE_LINES - 1] + 1 if len(ends) >= SAMPLE_LINES else len(block)])
    dim, origin, trailing = find_dim(head, header, path=path, first_line=first_line)
    collector = Collector(dim, capacity=_capacity(block, header, size_hint, keep))
    reader = BlockReader(dim=dim, trailing=trailing, path=path, origin=origin, keep=keep,
                         kept_share=0.0 if keep is None else _share_kept(head, keep.set, dim=dim))
    placed = Placed(collector)
    rows = collector.matrix.shape[0]  # the estimate of the file's records (or of the kept ones)
    with QuietUnraisable(), ThreadPoolExecutor(WORKERS, thread_name_prefix="reindex-chosen") as executor, \
            looked_up_meanwhile(collector, keep, rows=rows):
        reader.executor = executor
        try:
            for _, result in read_ahead(itertools.chain([block], blocks), reader.work):
                out, num_lines, records = reader.place(result, first_line)
                placed.add(out, records, wait=False)
                first_line += num_lines
            out, records = reader.flush()
            placed.add(out, records, wait=True)
        except ReindexError:
            placed.add([], 0, wait=True)  # an earlier line's error, still being parsed, comes first
            raise
    pool().release_unused()  # the blocks' memory, kept by the threads' heaps, before the caller goes on
    return collector, placed.num_read


class Placed:
    """Rows for the collector, in file order; some still being parsed (futures), added once done.

    At most MAX_PARSING batches wait to be parsed: the file is read on meanwhile, but never so far
    ahead that the batches read and not yet parsed pile up in memory.
    """

    MAX_PARSING = 2

    def __init__(self, collector: Collector) -> None:
        self.collector, self.queue, self.num_read = collector, collections.deque(), 0

    def add(self, out: list, records: int, *, wait: bool) -> None:
        self.num_read += records
        self.queue.extend(out)
        queue = self.queue
        parsing = sum(isinstance(item, Future) for item in queue)
        while queue and (wait or parsing > self.MAX_PARSING or not isinstance(queue[0], Future)
                         or queue[0].done()):
            parsing -= isinstance(queue[0], Future)
            item = queue.popleft()
            if isinstance(item, Future):
                try:
                    triples, more = item.result()
                except BaseException:
                    queue.clear()  # what follows is later in the file: its errors must not replace this one
                    raise
                self.num_read += more
            else:
                triples = [item]
            for tokens, parts, where in triples:
                self.collector.extend(tokens, parts, where)


def _share_kept(head: bytes, keep: Set[str], *, dim: int) -> float:
    """The share of the first lines whose token is in `keep`: how the first blocks are read."""
    tokens = [line.rstrip(" \r").rsplit(" ", dim)[0] for line in head.decode("utf-8", "replace").split("\n")]
    tokens = [t for t in tokens if t.strip(" ")]
    return sum(map(keep.__contains__, tokens)) / len(tokens) if tokens else 0.0


def _capacity(block: memoryview, header: tuple[int, int] | None, size_hint: int | None,
              keep: Keep | None) -> int:
    """Rows to allocate at first: the whole file's, estimated from the first block's mean line length.

    Pages never written are never resident, so a generous estimate costs no memory; the matrix grows
    (with mremap, no copy) if the estimate was short and shrinks at the end.
    """
    guess = header[0] if header else 1 << 16
    if size_hint:
        lines = len(line_ends(np.frombuffer(block, np.uint8))) or 1
        guess = int(size_hint * lines / len(block) * 1.05) + 1024
        if header:
            guess = min(max(header[0], 16), guess)
    if keep is not None:  # the kept rows and the key test's false matches (rows past them are never resident)
        guess = min(guess, len(keep) + guess // 32 + 1024)
    return max(guess, 16)
