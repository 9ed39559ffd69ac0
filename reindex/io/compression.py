"""The one table of compression and archive magic bytes, read by every reader that opens a user's file.

    >>> detect_compression(b"\\x1f\\x8b\\x08"), detect_compression(b"(\\xb5/\\xfd"), detect_compression(b"the 0.1")
    ('gzip', 'zstd', None)
"""
from __future__ import annotations

#: The first bytes of each compressed stream, by the name `open_stream` and the vocabulary reader use.
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
#: The first bytes of archives, which hold files rather than one stream (tar is found at byte 257).
ARCHIVES = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"))
#: How to unpack each archive, for the hint of the error that refuses it.
EXTRACT = {"zip": "unzip FILE", "tar": "tar -xf FILE", "7z": "7z x FILE"}
HEAD_BYTES = 512  # enough for a tar header's "ustar" at byte 257


def detect_compression(head: bytes) -> str | None:
    """The compression named by a file's first bytes, or None."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return None


def detect_archive(head: bytes) -> str | None:
    """'zip', 'tar' or '7z' when the first bytes (after any compression) start an archive.

    >>> detect_archive(b"PK\\x03\\x04"), detect_archive(bytes(257) + b"ustar\\x0000"), detect_archive(b"a 1")
    ('zip', 'tar', None)
    """
    for magic, name in ARCHIVES:
        if head.startswith(magic):
            return name
    return "tar" if head[257:262] == b"ustar" else None
