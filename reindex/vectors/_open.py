"""Open a vector file, undoing gzip/bz2/xz (found from magic bytes), and read it in large blocks."""
from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import lzma
import mmap
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterator, TypeVar

from ..errors import ReindexError

T = TypeVar("T")

WORKERS = max(1, min(os.cpu_count() or 1, 8))  # threads that parse blocks
IN_FLIGHT = WORKERS + 2  # buffers in the ring of `iter_line_blocks` (more than read_ahead holds)

BLOCK_BYTES = 1 << 22  # 4 MB: one thread parses a block; a few blocks in flight keep memory small
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def detect_compression(head: bytes) -> str | None:
    """The compression named by a file's first bytes, or None.

    >>> detect_compression(b"\\x1f\\x8b\\x08"), detect_compression(b"the 0.1")
    ('gzip', None)
    """
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return None


@contextlib.contextmanager
def open_stream(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, str | None]]:
    """Yield (decompressed binary stream, compression name) for `path`."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise ReindexError(f"cannot open vector file: {e.strerror or e}", path=path,
                           hint="check the --vectors path") from e
    with raw:
        compression = detect_compression(raw.read(6))
        raw.seek(0)
        if compression is None:
            yield raw, None
            return
        if compression == "gzip":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        else:
            stream = (bz2.BZ2File if compression == "bz2" else lzma.LZMAFile)(raw, "rb")
        with stream:
            yield stream, compression


def read_or_fail(stream: BinaryIO, size: int, *, path: str | os.PathLike, compression: str | None,
                 offset: int) -> bytes:
    """`stream.read(size)`, turning a truncated or corrupt compressed stream into ReindexError."""
    try:
        return stream.read(size)
    except STREAM_ERRORS as e:
        raise truncated(path, compression, offset, e) from e


def truncated(path: str | os.PathLike, compression: str | None, offset: int, e: Exception) -> ReindexError:
    """The error for a stream that ends early or does not decompress."""
    what = f"{compression} stream" if compression else "file"
    return ReindexError(f"truncated or corrupt {what} after {offset} decompressed bytes: {e}",
                        path=path, hint="re-download or re-compress the file")


def iter_line_blocks(stream: BinaryIO, *, first: bytes = b"", path: str | os.PathLike,
                     compression: str | None, block_bytes: int | None = None,
                     ring: int = IN_FLIGHT) -> Iterator[memoryview]:
    """Yield blocks of whole lines (each ends in b"\\n", except perhaps the file's last).

    `first` is data already read from the stream; it starts the first block. Each block is a view of
    a buffer read into once (no copy): the partial last line is carried to the next buffer. Buffers
    are reused in a ring of `ring`: a block must be dropped before `ring` more blocks are taken
    (`read_ahead` holds at most WORKERS + 1), so pages are faulted in once, not once per block.
    """
    size = max(block_bytes or BLOCK_BYTES, 1 << 10)
    carry, offset, eof = first, 0, False
    buffers: collections.deque = collections.deque()
    while True:
        need = max(size, 2 * len(carry))
        buf = buffers.popleft() if len(buffers) >= ring else None
        if buf is None or len(buf) < need:
            buf = new_buffer(need)
        buffers.append(buf)
        buf[:len(carry)] = carry
        filled = len(carry)
        while not eof and filled < len(buf):
            got = read_into(stream, memoryview(buf)[filled:], path=path, compression=compression,
                             offset=offset + filled)
            filled += got
            eof = got == 0
        end = filled if eof else buf.rfind(b"\n", 0, filled) + 1
        if end == 0 and not eof:  # one line longer than the buffer: read on into a larger one
            carry, size = buf[:filled], 2 * size
            continue
        if end == 0:
            return
        carry = buf[end:filled]
        offset += end
        yield memoryview(buf)[:end]


def new_buffer(size: int) -> mmap.mmap:
    """A writable buffer of `size` bytes with find/rfind, mapped anonymously.

    Not a bytearray: freed blocks of a few MB from malloc's heap are often not given back to the
    system (the heap fragments), and the peak memory would grow with the file, not the block.
    """
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)  # one fault, not one per page
    return mmap.mmap(-1, size, flags=flags)


def read_into(stream: BinaryIO, view: memoryview, *, path: str | os.PathLike, compression: str | None,
               offset: int) -> int:
    """`stream.readinto(view)`, turning a truncated or corrupt compressed stream into ReindexError."""
    try:
        return stream.readinto(view) or 0
    except STREAM_ERRORS as e:
        raise truncated(path, compression, offset, e) from e


def read_ahead(blocks: Iterator[T], read: Callable[[T], object]) -> Iterator[tuple[T, object]]:
    """(block, read(block)) in order, with `read` running on a few blocks ahead in worker threads.

    pyarrow releases the GIL while it parses, so the blocks are parsed in parallel while this thread
    reads the file and copies finished rows into the matrix; at most `workers + 1` blocks are in memory.
    """
    workers = WORKERS
    with ThreadPoolExecutor(workers, thread_name_prefix="reindex-vectors") as pool:
        pending: collections.deque = collections.deque()
        try:
            for block in blocks:
                pending.append((block, pool.submit(read, block)))
                if len(pending) > workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()
