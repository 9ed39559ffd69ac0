"""word2vec binary vectors: an `N D` header line, then per record `token ` + D little-endian float32.

A token ends at its first space and is followed by exactly 4*D bytes. Records are found a chunk at
a time by one regex scan that reads only the tokens (see `find_records`), then the vectors wanted are
copied into the matrix in one gather. A newline before a token (the original word2vec tool and gensim
write one after each vector) is dropped, as gensim does.
"""
from __future__ import annotations

import functools
import mmap
import os
import re
from collections.abc import Set
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from ..errors import ReindexError
from ..io.streams import read_or_fail
from ._collect import Collector
from ._keep import Keep
from ._line import not_finite
from ._lines import share_in_keep, token_array, words_not_utf8

MAX_TOKEN_BYTES = 1 << 16
DENSE = 0.9  # with `keep`: read every record when keep holds at least this share of the header's count
SAMPLE_EVERY = 64  # while reading every record: the kept share of a chunk is checked on every 64th token
CHUNK_BYTES = 1 << 24  # 16 MB read at a time: the file is never held whole


def find_records(data: np.ndarray, record_bytes: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(token starts, token ends, where parsing stopped, whether each record began with a newline)
    for the whole records in the uint8 `data`.

    >>> find_records(np.frombuffer(b"a " + bytes(4) + b"\\nbc " + bytes(4), np.uint8), 4)
    (array([0, 7]), array([1, 9]), 14, array([False,  True]))
    """
    starts, ends = _scan_records(data, record_bytes)
    stop = int(ends[-1]) + 1 + record_bytes if len(ends) else 0
    newline = data[starts] == 10 if len(starts) else np.zeros(0, bool)
    led = newline.copy()
    while newline.any():  # the newline after a vector (or several) belongs to no token
        starts = starts + (newline & (starts < ends))
        newline &= (starts < ends) & (data[np.minimum(starts, len(data) - 1)] == 10)
    return starts, ends, stop, led


@functools.lru_cache(maxsize=8)
def _record_pattern(record_bytes: int) -> re.Pattern:
    """A record: a token (with the newlines before it) up to its first space, the space, then the vector."""
    return re.compile(rb"([^ ]{0,%d}) (?s:.{%d})" % (MAX_TOKEN_BYTES, record_bytes))


def _scan_records(data: np.ndarray, record_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(token starts, token ends) of the records back to back from byte 0, found by one regex scan that
    steps over each vector without reading it, so only the token bytes are looked at. It stops before
    a token with no space within MAX_TOKEN_BYTES: there the scan fails and next matches that token's
    last MAX_TOKEN_BYTES bytes, the first match of that length."""
    tokens = _record_pattern(record_bytes).findall(data)
    lengths = np.fromiter(map(len, tokens), np.int64, len(tokens))
    too_long = np.flatnonzero(lengths >= MAX_TOKEN_BYTES)
    lengths = lengths[:too_long[0]] if len(too_long) else lengths
    starts = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1] + 1 + record_bytes, out=starts[1:])
    ends = starts + lengths
    assert (data[ends] == 32).all()  # records back to back, by the argument above
    return starts, ends


def gather(data: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    """Copy the float32 vectors starting at byte `offsets` of `data` into the rows of `out`."""
    if len(offsets) == 0:
        return
    windows = np.lib.stride_tricks.sliding_window_view(data, out.shape[1] * 4)
    raw = out.view(np.uint8)
    for at in range(0, len(offsets), 1024):  # (np.take with out= is slow on a window view) cache-sized steps
        raw[at:at + 1024] = windows[offsets[at:at + 1024]]
    if not out.dtype.isnative:  # pragma: no cover - big-endian hosts
        out[:] = out.view("<f4")


def read_binary(stream: BinaryIO, first: bytes, *, path: str | os.PathLike, compression: str | None,
                header: tuple[int, int], header_bytes: int, keep: Keep | None,
                size_hint: int | None = None,
                limit: int | None = None) -> tuple[Collector, int]:
    """Parse records from `first` (data after the header) and the rest of `stream` (the first `limit`)."""
    count, dim = header
    if limit is not None:  # --limit: the first `limit` records, as if the header said so
        count = min(count, limit)
    record = 4 * dim
    # With `keep`, the collector keeps exactly its words at the end (one `pc.index_in`); here each
    # token's key is tested against a bitmap, so that the vectors of most other tokens are never
    # copied. When most records are likely kept, the key test costs more than it saves: every record
    # is read. A sample of each chunk checks that guess: when fewer than half its records are kept
    # (a vocabulary as large as the file that shares few of its words), the reader turns to the key
    # test, so the matrix never holds the file.
    dense = keep is not None and len(keep) >= DENSE * count
    capacity = min(count, size_hint // record + 16) if size_hint is not None else min(count, 1 << 16)
    if keep is not None and not dense:  # the kept rows and the bitmap's false matches (never resident unless used)
        capacity = min(capacity, len(keep) + count // 32 + 1024)
    collector = Collector(dim, capacity=capacity)
    return _read_records(stream, first, collector, path=path, compression=compression, count=count,
                         record=record, header_bytes=header_bytes, keep=keep, dense=dense, limit=limit)


def _read_records(stream: BinaryIO, first: bytes, collector: Collector, *, path: str | os.PathLike,
                  compression: str | None, count: int, record: int, header_bytes: int, keep: Keep | None,
                  dense: bool, limit: int | None) -> tuple[Collector, int]:
    num_read, base, buf, eof, lines = 0, header_bytes, memoryview(first), False, None
    chunks = Chunks(stream, path=path, compression=compression)
    if chunks.fd is not None:
        buf, eof = chunks.next(b"", base, grow=False)
    while True:
        data = np.frombuffer(buf, np.uint8)
        starts, ends, stop, led = find_records(data, record)
        if limit is not None and num_read + len(starts) >= count:  # --limit: stop at the count-th record
            keep_n = count - num_read
            stop = int(ends[keep_n - 1]) + 1 + record if keep_n else 0
            starts, ends, led, eof = starts[:keep_n], ends[:keep_n], led[:keep_n], True
        if num_read == 0:
            _check_byte_order(data, ends[:SAMPLE_EVERY], record=record, path=path, base=base)
        lines = _check_alignment(led, starts, num_read, lines, count=count, record=record, path=path, base=base)
        num_read += len(starts)
        sampled = token_array(data, starts[::SAMPLE_EVERY], ends[::SAMPLE_EVERY]) if dense else None
        if keep is not None and sampled is not None and share_in_keep(sampled, keep.set, default=1.0) < 0.5:
            dense = False  # from this chunk on
        if keep is not None and not dense:
            mask = keep.words.contains(data, starts, ends - starts, confirm=False)
            bad = words_not_utf8(data, starts, ends - starts)  # refused (strict) or decoded by the collector
            if bad is not None:
                mask |= bad
            starts, ends = starts[mask], ends[mask]
        tokens = token_array(data, starts, ends)
        out = collector.reserve(len(starts))
        gather(data, ends + 1, out)
        _check_finite(out, starts, tokens, keep=None if keep is None else keep.set, path=path, base=base)
        collector.commit(tokens, base + starts)
        rest = bytes(buf[stop:])
        base += stop
        del data, out
        buf.release()
        if eof:
            break
        buf, eof = chunks.next(rest, base, grow=stop == 0)
    chunks.close(base)
    if limit is None or num_read < limit:
        _check_tail(rest, path=path, offset=base, record=record, count=num_read)
    if num_read < count:
        raise ReindexError(f"the header says {count} vectors but the file ends after {num_read} records",
                           path=path, position=f"byte {base}", hint="the file was cut short; download it again")
    return collector, num_read


def _check_alignment(led: np.ndarray, starts: np.ndarray, done: int, lines: bool | None, *, count: int,
                     record: int, path: str | os.PathLike, base: int) -> bool | None:
    """Refuse records past the header's count, and (when record 2 starts on a new line, as gensim and
    the word2vec tool write them) a record that does not: the one before it was too short or too long,
    so every record after it would be read out of alignment. Returns whether records start on new lines."""
    if done + len(starts) > count:
        k = count - done
        raise ReindexError(f"the header says {count} vectors but record {count + 1} follows", path=path,
                           position=f"byte {base + int(starts[k]) - int(led[k])}",
                           hint=f"a record is longer or shorter than a token, a space and {record} bytes, "
                                "or the header's count is wrong")
    if lines is None and done + len(starts) >= 2:
        lines = bool(led[1 - done])
    if lines:
        first = max(1 - done, 0)
        wrong = np.flatnonzero(~led[first:])
        if len(wrong):
            k = first + int(wrong[0])
            raise ReindexError(f"record {done + k + 1} does not start on a new line as the records before it "
                               f"do: record {done + k} is shorter or longer than a token, a space and "
                               f"{record} bytes", path=path,
                               position=f"byte {base + int(starts[k])}",
                               hint="the file is damaged (a record one number short or long); export it again")
    return lines


def plain_file(stream: BinaryIO) -> tuple[int | None, int]:
    """(descriptor, size) of the file behind `stream` when it can be mapped, else (None, 0)."""
    try:
        return stream.fileno(), os.fstat(stream.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None, 0


class Chunks:
    """The rest of the file a chunk at a time. A plain file is memory-mapped a window at a time (read
    straight from the page cache, with no copy; each window unmapped once used, so resident memory
    follows the window, and its bytes hashed first when the stream hashes what it reads); any other
    stream is read a chunk at a time."""

    def __init__(self, stream: BinaryIO, *, path: str | os.PathLike, compression: str | None) -> None:
        self.stream, self.path, self.compression = stream, path, compression
        self.window: mmap.mmap | None = None
        self.start = self.span = 0
        self.digest = getattr(stream, "digest", None)  # a `_Tap`'s: hashes the bytes read
        self.fd, self.size = plain_file(stream) if compression is None else (None, 0)

    def next(self, rest: bytes, base: int, *, grow: bool) -> tuple[memoryview, bool]:
        """The bytes from `base` (after `rest`, the unused end of the chunk before), and whether they
        reach the end; `grow`: no whole record fitted in the chunk before, so this one is larger."""
        self.span = 2 * self.span if grow else CHUNK_BYTES
        if self.fd is None:
            return self._read(rest, base)
        self.close(base)
        self.start = base - base % mmap.ALLOCATIONGRANULARITY
        end = min(base + self.span, self.size)
        if end <= base:
            return memoryview(b""), True
        self.window = mmap.mmap(self.fd, end - self.start, access=mmap.ACCESS_READ, offset=self.start)
        return memoryview(self.window)[base - self.start:], end == self.size

    def close(self, end: int) -> None:
        """Done with the window up to byte `end`: hash what the stream has not, unmap it, and move
        the file there (where the progress bar and `_Tap.drain` go on from)."""
        if self.window is None:
            return
        if self.digest is not None and end > self.digest.size:
            with memoryview(self.window)[self.digest.size - self.start:end - self.start] as view:
                self.digest.update(view)
        self.window.close()
        self.window = None
        raw = self.stream if self.digest is None else self.stream.raw  # type: ignore[attr-defined]
        raw.seek(end if self.digest is None else self.digest.size)

    def _read(self, rest: bytes, base: int) -> tuple[memoryview, bool]:
        more = read_or_fail(self.stream, self.span, path=self.path, compression=self.compression,
                            offset=base + len(rest))
        return memoryview(rest + more), not more


def _check_finite(rows: np.ndarray, starts: np.ndarray, tokens: pa.Array, *, keep: Set[str] | None,
                  path: str | os.PathLike, base: int) -> None:
    """Refuse NaN and Inf, naming the byte offset of the record; with `keep`, only in kept records
    (the others' numbers are not checked, whichever way they were read)."""
    if len(rows) == 0 or (np.isfinite(rows.min()) and np.isfinite(rows.max())):
        return
    for row in np.flatnonzero(~np.isfinite(rows).all(axis=1)).tolist():
        if keep is None or tokens[row].as_py().decode("utf-8", "replace") in keep:
            raise not_finite(rows[row], path=path, position=f"byte {base + int(starts[row])}")


def _check_byte_order(data: np.ndarray, ends: np.ndarray, *, record: int, path: str | os.PathLike,
                      base: int) -> None:
    """Refuse a file whose first records' floats are mostly implausible (denormal, huge, NaN) as written,
    little-endian, but ordinary byte-swapped: gensim and the word2vec tool define no big-endian option."""
    if len(ends) == 0:
        return
    rows = np.empty((len(ends), record // 4), np.float32)
    gather(data, ends + 1, rows)
    swapped = rows.byteswap()
    if _ordinary(rows) < 0.5 and _ordinary(swapped) >= 0.9:
        raise ReindexError(f"the floats look big-endian: record 1 holds {rows[0, 0]:.3g} as written (little-endian), "
                           f"{swapped[0, 0]:.3g} byte-swapped; word2vec binary files are little-endian", path=path,
                           position=f"byte {base + int(ends[0]) + 1}",
                           hint="convert the vectors, e.g. numpy.fromfile(..., dtype='>f4') then "
                                "numpy.ndarray.byteswap, and write the file again")


def _ordinary(rows: np.ndarray) -> float:
    """The share of values that word vectors hold: zero, or 1e-12 <= |x| <= 1e6."""
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.abs(rows)
        return float(((size == 0) | ((size >= 1e-12) & (size <= 1e6))).mean())


def _check_tail(rest: bytes, *, path: str | os.PathLike, offset: int, record: int, count: int) -> None:
    """Refuse leftover bytes that are not just whitespace: a record cut short."""
    if not rest.strip():
        return
    offset += len(rest) - len(rest.lstrip(b"\n"))
    rest = rest.lstrip(b"\n")
    space = rest.find(b" ", 0, MAX_TOKEN_BYTES)
    if space < 0:
        raise ReindexError(f"no space ends the token of record {count + 1} within "
                           f"{min(len(rest), MAX_TOKEN_BYTES)} bytes", path=path, position=f"byte {offset}",
                           hint="is this really a word2vec binary file? try --vectors-format word2vec-text")
    raise ReindexError(f"truncated binary file: record {count + 1} needs {record} bytes of vector, "
                       f"only {len(rest) - space - 1} left", path=path, position=f"byte {offset}",
                       hint="the file was cut short; download it again")
