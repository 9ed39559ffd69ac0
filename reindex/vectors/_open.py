"""A vector file's stream (opened by `reindex.io.streams`) in large blocks of whole lines, read ahead on threads."""
from __future__ import annotations

import collections
import os
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterator, TypeVar

from ..io.streams import read_or_fail

T = TypeVar("T")
R = TypeVar("R")

WORKERS = max(1, min(os.cpu_count() or 1, 8))  # threads that parse blocks

BLOCK_BYTES = 1 << 21  # 2 MB: one thread parses a block; the few blocks in flight are much of the memory
                       # when few lines are kept (4 MB: about 7% faster full parses, 28 MB more at the peak of a
                       # 2 GB file read for 5% of its lines)


def iter_line_blocks(stream: BinaryIO, *, first: bytes = b"", path: str | os.PathLike,
                     compression: str | None, block_bytes: int | None = None) -> Iterator[bytes]:
    """Yield blocks of whole lines (each ends in b"\\n", except perhaps the file's last)."""
    size = max(block_bytes or BLOCK_BYTES, 1 << 10)
    carry, offset = bytes(first), 0
    first = b""  # the caller's first bytes are in `carry` now; this frame need not hold them too
    while True:
        chunk = read_or_fail(stream, size, path=path, compression=compression, offset=offset + len(carry))
        if not chunk:
            if carry:
                yield carry
            return
        end = chunk.rfind(b"\n") + 1
        if end == 0:  # one line longer than the block: read on
            carry += chunk
            continue
        block = chunk if not carry and end == len(chunk) else b"".join((carry, memoryview(chunk)[:end]))
        carry = chunk[end:]
        del chunk
        offset += len(block)
        yield block
        del block


def read_ahead(blocks: Iterator[T], read: Callable[[T], R], *, workers: ThreadPoolExecutor,
               ahead: int = WORKERS) -> Iterator[tuple[T, R]]:
    """(block, read(block)) in order, with `read` running on `ahead` blocks ahead in `workers`."""
    pending: collections.deque = collections.deque()
    try:
        for block in blocks:
            pending.append((block, workers.submit(read, block)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        for _, future in pending:
            future.cancel()
