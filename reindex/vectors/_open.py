"""Open a vector file, undoing gzip/bz2/xz/zstd (found from magic bytes), and read it in large blocks.

Archives (zip, tar, 7z) are refused: they hold files, not one stream. A `FileDigest` passed to
`open_stream` sees every byte of the file as it is read, so the file is hashed in the same pass.
"""
from __future__ import annotations

import bz2
import collections
import contextlib
import functools
import gzip
import lzma
import mmap
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterator, TypeVar

from ..errors import ReindexError
from ..io.compression import EXTRACT, HEAD_BYTES, detect_archive, detect_compression

T = TypeVar("T")

WORKERS = max(1, min(os.cpu_count() or 1, 8))  # threads that parse blocks
IN_FLIGHT = WORKERS + 2  # buffers in the ring of `iter_line_blocks` (more than read_ahead holds)

BLOCK_BYTES = 1 << 21  # 2 MB: one thread parses a block; the few blocks in flight are much of the memory
                       # when few lines are kept (4 MB: about 7% faster full parses, 28 MB more at the peak of a
                       # 2 GB file read for 5% of its lines)
STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def refuse_archive(head: bytes, *, path: str | os.PathLike, compression: str | None) -> None:
    """Raise for an archive: it holds files, and which one is meant is the user's choice."""
    kind = detect_archive(head)
    if kind is None:
        return
    what = f"a {compression}-compressed {kind} archive" if compression else f"a {kind} archive"
    raise ReindexError(f"this is {what}, not a vector file", path=path, position="byte 0",
                       hint=f"extract the vector file from it (e.g. `{EXTRACT[kind]}`) and pass that file")




class FileDigest:
    """sha256 and size of a file's raw bytes, fed by `open_stream` as they are read.

    `complete` is True once every byte of the file went through it.
    """

    def __init__(self) -> None:
        import hashlib

        self.sha256 = hashlib.sha256()
        self.size = 0
        self.complete = False

    def update(self, data) -> None:
        self.sha256.update(data)
        self.size += len(data)

    def record(self) -> dict:
        """{"size", "sha256"}, as the manifest records a file."""
        return {"size": self.size, "sha256": self.sha256.hexdigest()}


class _Tap:
    """A raw file that hands every byte it reads to a `FileDigest` (reads are sequential from 0)."""

    def __init__(self, raw: BinaryIO, digest: FileDigest) -> None:
        self.raw, self.digest = raw, digest

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def readinto(self, view) -> int:
        got = self.raw.readinto(view) or 0
        self.digest.update(memoryview(view)[:got])
        return got

    read1 = read

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:
        """Closing is the caller's business (the raw file's `with`)."""

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.raw.fileno()

    def drain(self) -> None:
        """Hash whatever the reader did not need (a decompressor may stop before the file ends)."""
        while chunk := self.raw.read(1 << 22):
            self.digest.update(chunk)
        self.digest.complete = True


class _Zstd:
    """pyarrow's zstd decompressor as a file with `read`/`readinto`, its errors as OSError."""

    def __init__(self, raw: BinaryIO) -> None:
        import pyarrow as pa

        self._pa = pa
        self.stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(None if size < 0 else size)
        except self._pa.ArrowException as e:
            raise OSError(f"zstd: {e}") from e

    def readinto(self, view) -> int:
        view = memoryview(view).cast("B")
        filled = 0
        while filled < len(view):  # fill the view (pyarrow returns one frame's worth at a time)
            try:
                got = self.stream.readinto(view[filled:])
            except self._pa.ArrowException as e:
                raise OSError(f"zstd: {e}") from e
            if not got:
                break
            filled += got
        return filled

    def __enter__(self) -> "_Zstd":
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()


@contextlib.contextmanager
def open_stream(path: str | os.PathLike, *, digest: FileDigest | None = None
                ) -> Iterator[tuple[BinaryIO, str | None]]:
    """Yield (decompressed binary stream, compression name) for `path`; refuse archives.

    With `digest`, every byte of the file is hashed as it is read (and the rest at the end).
    """
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise ReindexError(f"cannot open vector file: {e.strerror or e}", path=path,
                           hint="check the --vectors path") from e
    with raw:
        head = raw.read(HEAD_BYTES)
        raw.seek(0)
        compression = detect_compression(head)
        if compression is None:
            refuse_archive(head, path=path, compression=None)
        source = raw if digest is None else _Tap(raw, digest)
        if compression is None:
            yield source, None
        else:
            with _decompress(source, compression) as stream:
                yield stream, compression
        if digest is not None:
            source.drain()


def _decompress(source: BinaryIO, compression: str):
    if compression == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if compression == "zstd":
        return _Zstd(source)
    return (bz2.BZ2File if compression == "bz2" else lzma.LZMAFile)(source, "rb")


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
    first = b""  # the caller's first bytes are in `carry` now; this frame need not hold them too
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


def map_file(stream: BinaryIO) -> mmap.mmap | None:
    """The plain file behind `stream` mapped read-only (read straight from the page cache, with no
    copy into a buffer first), or None where it cannot be (a pipe, a filesystem without mmap).

    If another process truncates the file while it is mapped, reading the lost pages kills this
    process with SIGBUS (documented in docs/robustness.md)."""
    try:
        return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError):
        return None


def hash_through(mapped: mmap.mmap, stream, end: int) -> None:
    """The reader has taken the mapped file's bytes up to `end`: hash those not hashed yet (when the
    stream hashes what it reads) and move the file there, where `_Tap.drain` and the progress bar
    go on from."""
    tap = getattr(stream, "digest", None)
    if tap is not None and end > tap.size:
        with memoryview(mapped)[tap.size:end] as view:
            tap.update(view)
    try:
        stream.seek(end) if tap is None else stream.raw.seek(tap.size)
    except (OSError, AttributeError, ValueError):
        pass


def release(mapped: mmap.mmap, start: int, end: int) -> None:
    """Drop the whole pages of bytes start..end from this process (they stay in the page cache), so
    that the resident memory follows what is kept, not the file."""
    page = mmap.PAGESIZE
    first = -(-start // page) * page
    last = end // page * page
    if last > first and hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_DONTNEED, first, last - first)


MADV_POPULATE_READ = 22  # Linux 5.14: fault pages in, readable, without reading them one by one


def populate_while(mapped: mmap.mmap, start: int, busy: Callable[[], bool], *, limit: int) -> int:
    """Map in the pages of `mapped` from byte `start` a window at a time, without the GIL, while
    `busy()` (another thread's work that needs the GIL) and for at most `limit` bytes; returns the
    end of what was mapped (`start` where the kernel cannot do it). The reader's walk then finds
    those pages mapped: time it would spend in page faults is spent while it would wait anyway."""
    import ctypes

    import numpy as np

    madvise = _madvise()
    if madvise is None or not busy():
        return start
    with memoryview(mapped) as view:
        base = np.frombuffer(view, np.uint8, count=1).ctypes.data if len(view) else 0
    page = mmap.PAGESIZE
    at = start // page * page
    end = min(len(mapped), start + limit)
    while at < end and busy():
        n = min(1 << 24, end - at)
        if madvise(ctypes.c_void_p(base + at), ctypes.c_size_t(n), MADV_POPULATE_READ) != 0:
            break
        at += n
    return at


@functools.lru_cache(maxsize=1)
def _madvise():
    """libc's madvise through ctypes (which lets go of the GIL during the call), or None."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


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
