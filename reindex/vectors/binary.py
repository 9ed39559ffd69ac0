"""word2vec binary vectors: an `N D` header line, then per record `token ` + D little-endian float32.

Records are found one by one (a token ends at its first space and is followed by exactly 4*D
bytes), then every vector is copied out in one vectorised gather. A newline before a token (the
original word2vec tool and gensim write one after each vector) is dropped, as gensim does.
"""
from __future__ import annotations

import os
from collections.abc import Collection
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReindexError
from ._collect import Collector
from ._open import BLOCK_BYTES, read_or_fail
from .text import not_finite

MAX_TOKEN_BYTES = 1 << 16


def find_records(buf: bytes, start: int, record_bytes: int) -> tuple[list[bytes], list[int], int]:
    """(tokens, offsets of their vectors, where parsing stopped) for the whole records in `buf`.

    >>> find_records(b"a " + bytes(4) + b"\\nbc " + bytes(4), 0, 4)
    ([b'a', b'bc'], [2, 10], 14)
    """
    tokens: list[bytes] = []
    offsets: list[int] = []
    find, end, p = buf.find, len(buf), start
    while p < end:  # one short step per record: the vectors themselves are copied in `gather`
        space = find(b" ", p, p + MAX_TOKEN_BYTES)
        if space < 0 or space + 1 + record_bytes > end:
            break
        token = buf[p:space]
        if token[:1] == b"\n":
            token = token.lstrip(b"\n")
        tokens.append(token)
        offsets.append(space + 1)
        p = space + 1 + record_bytes
    return tokens, offsets, p


def token_starts(tokens: list[bytes], offsets: np.ndarray) -> np.ndarray:
    """Byte offset of each token from the offset of its vector."""
    return offsets - 1 - np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))


def gather(buf: bytes, offsets: np.ndarray, dim: int) -> np.ndarray:
    """Copy the float32 vectors starting at `offsets` of `buf` into a [len(offsets), dim] array."""
    if len(offsets) == 0:
        return np.zeros((0, dim), np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(np.frombuffer(buf, np.uint8), 4 * dim)
    return windows[offsets].view("<f4").astype(np.float32, copy=False)


def read_binary(stream: BinaryIO, first: bytes, *, path: str | os.PathLike, compression: str | None,
                header: tuple[int, int], header_bytes: int, keep: Collection[str] | None,
                lenient_unicode: bool) -> tuple[Collector, int]:
    """Parse records from `first` (data after the header) and the rest of `stream`."""
    count, dim = header
    record = 4 * dim
    wanted = None if keep is None else pa.array([t.encode("utf-8", "surrogatepass") for t in keep], pa.binary())
    collector = Collector(dim, capacity=min(count, 1 << 16))
    num_read, base, buf, eof = 0, header_bytes, first, False
    while True:
        tokens, offsets, stop = find_records(buf, 0, record)
        num_read += len(tokens)
        token_array = pa.array(tokens, pa.binary())
        chosen = np.array(offsets, dtype=np.int64)
        starts = token_starts(tokens, chosen)
        if wanted is not None:
            mask = pc.is_in(token_array, value_set=wanted)
            if lenient_unicode:
                mask = pc.or_(mask, pc.invert(pc.string_is_ascii(token_array.view(pa.string()))))
            mask = mask.to_numpy(zero_copy_only=False)
            token_array, chosen, starts = token_array.filter(pa.array(mask)), chosen[mask], starts[mask]
        rows = gather(buf, chosen, dim)
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise not_finite(rows[row], path=path, position=f"byte {base + int(starts[row])}")
        collector.add(token_array, rows, base + starts)
        rest = buf[stop:]
        if eof:
            break
        chunk = read_or_fail(stream, BLOCK_BYTES, path=path, compression=compression, offset=base + len(buf))
        eof = not chunk
        base += stop
        buf = rest + chunk
    _check_tail(rest, path=path, offset=base + stop, record=record, count=num_read)
    return collector, num_read


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
                           hint="is this really a word2vec binary file? try --format word2vec-text")
    raise ReindexError(f"truncated binary file: record {count + 1} needs {record} bytes of vector, "
                       f"only {len(rest) - space - 1} left", path=path, position=f"byte {offset}",
                       hint="the file was cut short; download it again")
