"""Open a vector file, undoing gzip/bz2/xz (found from magic bytes), and read it in large blocks."""
from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import zlib
from typing import BinaryIO, Iterator

from ..errors import ReindexError

BLOCK_BYTES = 1 << 25  # 32 MB: large enough for pyarrow's threads, small enough for the memory cap
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
                     compression: str | None, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Yield blocks of whole lines (each ends in b"\\n", except perhaps the file's last).

    `first` is data already read from the stream; it starts the first block.
    """
    offset, block = 0, first
    while True:
        if not block:
            block = read_or_fail(stream, block_bytes, path=path, compression=compression, offset=offset)
            if not block:
                return
        if not block.endswith(b"\n"):
            try:
                block += stream.readline()
            except STREAM_ERRORS as e:
                raise truncated(path, compression, offset + len(block), e) from e
        offset += len(block)
        yield block
        block = b""
