"""Open a vector file, undoing gzip/bz2/xz/zstd (found from magic bytes), and read it in large blocks.

Archives (zip, tar, 7z) are refused: they hold files, not one stream. A `FileDigest` passed to
`open_stream` sees every byte of the file as it is read, so the file is hashed in the same pass.
"""
from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import lzma
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Callable, Iterator, TypeVar

from ..errors import ReindexError
from ..io.compression import EXTRACT, HEAD_BYTES, detect_archive, detect_compression

T = TypeVar("T")
R = TypeVar("R")

WORKERS = max(1, min(os.cpu_count() or 1, 8))  # threads that parse blocks

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
    """sha256 and size of a file's raw bytes, fed by `open_stream` as they are read."""

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

    def __enter__(self) -> _Zstd:
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()


@contextlib.contextmanager
def open_stream(path: str | os.PathLike, *, digest: FileDigest | None = None
                ) -> Iterator[tuple[BinaryIO, str | None]]:
    """Yield (decompressed binary stream, compression name) for `path`; refuse archives."""
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
        source: Any = raw if digest is None else _Tap(raw, digest)
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
