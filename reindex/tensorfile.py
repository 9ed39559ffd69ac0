"""Write safetensors files byte-for-byte reproducibly.

safetensors serialises `__metadata__` from a hash map, so two saves of the same tensors and metadata
can differ in header order (safetensors issue #584). We let safetensors write the file, then rewrite
its JSON header with sorted keys; tensor offsets are relative to the data section, so they stay valid.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np


def canonical_header(header: dict) -> bytes:
    """The header as compact JSON with sorted keys, space-padded to a multiple of 8 bytes.

    >>> canonical_header({"b": 1, "a": {"d": 2, "c": 3}})
    b'{"a":{"c":3,"d":2},"b":1}       '
    """
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text + b" " * (-len(text) % 8)


def save_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray],
                     metadata: dict[str, str] | None = None) -> None:
    """`safetensors.numpy.save_file`, with a canonical header so equal inputs give equal bytes."""
    from safetensors.numpy import save_file

    from .atomic import as_new_file

    save_file(tensors, str(path), metadata=metadata)
    as_new_file(path)  # safetensors creates the file 0600; other users may read it if the umask says so
    canonicalize(path)


def canonicalize(path: str | os.PathLike) -> None:
    """Rewrite the header of a safetensors file (written by any framework) with sorted keys."""
    path = Path(path)
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = canonical_header(json.loads(f.read(length)))
        if len(header) == length:
            f.seek(8)
            f.write(header)
            return
    # Rare: escaping made the header a different length. Copy the data section behind the new header.
    rewritten = path.with_name(path.name + ".canonical")
    with open(path, "rb") as src, open(rewritten, "wb") as dst:
        src.seek(8 + length)
        dst.write(struct.pack("<Q", len(header)) + header)
        shutil.copyfileobj(src, dst, 1 << 24)
    os.replace(rewritten, path)
