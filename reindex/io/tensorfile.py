"""Write safetensors files byte-for-byte reproducibly.

safetensors serialises `__metadata__` from a hash map, so two saves of the same tensors and metadata
can differ in header order (safetensors issue #584), and the older versions this project accepts copy
every tensor into bytes before writing (safetensors issue #564: twice the memory of the tensors). `save_safetensors`
writes the format itself: the 8-byte little-endian header length, the JSON header with sorted keys,
then each array's bytes straight from its memory, in the order safetensors lays them out. Files that
other writers made get their header rewritten by `canonicalize` instead. `safetensors_errors` is the
one place a safetensors file that cannot be read becomes a one-line error.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ReindexError


def canonical_header(header: dict) -> bytes:
    """The header as compact JSON with sorted keys, space-padded to a multiple of 8 bytes.

    >>> canonical_header({"b": 1, "a": {"d": 2, "c": 3}})
    b'{"a":{"c":3,"d":2},"b":1}       '
    """
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text + b" " * (-len(text) % 8)


#: numpy dtype -> safetensors dtype, in the rank safetensors gives them: its writer lays tensors out
#: from the highest rank down, and by name within a rank.
DTYPES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "uint16": "U16", "float16": "F16",
          "int32": "I32", "uint32": "U32", "float32": "F32", "float64": "F64", "int64": "I64", "uint64": "U64"}
WRITE_BYTES = 1 << 26  # per write call: far under the ~2 GB one system call takes


def save_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray],
                     metadata: dict[str, str] | None = None) -> None:
    """The bytes of `safetensors.numpy.save_file` + `canonicalize`, each tensor written from its own memory.

    save_safetensors("e.safetensors", {"fixed": np.zeros((2, 3), np.float32)}, metadata={"format": "x"})
    """
    rank = {name: i for i, name in enumerate(DTYPES)}
    arrays = {}
    for key, array in tensors.items():
        array = np.asarray(array)
        if array.dtype.name not in DTYPES:
            raise TypeError(f"tensor {key!r}: safetensors has no dtype for numpy {array.dtype}")
        arrays[key] = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
    order = sorted(arrays, key=lambda key: (-rank[arrays[key].dtype.name], key))
    header: dict = {} if metadata is None else {"__metadata__": metadata}
    offset = 0
    for key in order:
        array = arrays[key]
        header[key] = {"dtype": DTYPES[array.dtype.name], "shape": list(array.shape),
                       "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    head = canonical_header(header)
    with open(path, "wb") as f:  # created with the mode the umask gives a new file
        f.write(struct.pack("<Q", len(head)) + head)
        for key in order:
            data = arrays[key].reshape(-1).view(np.uint8)
            for start in range(0, len(data), WRITE_BYTES):
                f.write(data[start:start + WRITE_BYTES].data)  # .data: the memoryview, no copy


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


@contextlib.contextmanager
def safetensors_errors(path: str | os.PathLike) -> Iterator[None]:
    """Any error the safetensors library raises inside the block (its own types, for a corrupt header or a
    cut file) as one `ReindexError` naming `path`; a `ReindexError` raised inside passes unchanged."""
    try:
        yield
    except ReindexError:
        raise
    except Exception as e:
        raise ReindexError(f"cannot read safetensors file: {e}", path=path) from e
