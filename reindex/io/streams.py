"""Read a user's file as one stream: gzip, bz2, xz and zstd undone (found from magic bytes, not the
suffix), archives (zip, tar, 7z) refused, and every raw byte optionally hashed as it is read.

Archives hold files, not one stream, and which one is meant is the user's choice. A `FileDigest`
passed to `open_stream` sees every byte of the file, so a file is hashed in the same pass that
parses it. `what` and `hint` name the caller's kind of file and flag in the messages.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import zlib
from typing import Any, BinaryIO, Iterator

from ..errors import ReindexError
from .compression import EXTRACT, HEAD_BYTES, detect_archive, detect_compression

STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def refuse_archive(head: bytes, *, path: str | os.PathLike, compression: str | None, what: str) -> None:
    """Raise for an archive: it holds files, and which one is meant is the user's choice."""
    kind = detect_archive(head)
    if kind is None:
        return
    found = f"a {compression}-compressed {kind} archive" if compression else f"a {kind} archive"
    raise ReindexError(f"this is {found}, not a {what}", path=path, position="byte 0",
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
def open_stream(path: str | os.PathLike, *, what: str, hint: str, digest: FileDigest | None = None
                ) -> Iterator[tuple[BinaryIO, str | None]]:
    """Yield (decompressed binary stream, compression name) for `path`; refuse archives."""
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise ReindexError(f"cannot open {what}: {e.strerror or e}", path=path, hint=hint) from e
    with raw:
        head = raw.read(HEAD_BYTES)
        raw.seek(0)
        compression = detect_compression(head)
        if compression is None:
            refuse_archive(head, path=path, compression=None, what=what)
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
