"""Tensors of safetensors files: their headers, and rows read a slice at a time straight from the file.

The safetensors layout is an 8-byte little-endian header length, a JSON header of
`{key: {"dtype", "shape", "data_offsets"}}`, then the tensors' bytes. Rows are read here with
`readinto` into one buffer per slice rather than through `safe_open(...).get_slice`: numpy has no
bfloat16 (safetensors' numpy view refuses BF16 tensors), torch costs 225 MB and 1.5 s to import,
most of the 300 MB an audit may use, and a memory map would count every page read as resident.
A bfloat16 row is kept as its bits (uint16) until `read_rows` widens it.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReindexError

RAW = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}   # safetensors dtype -> how rows are held
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
             "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_MAX_HEADER = 100 << 20   # as safetensors itself refuses


@dataclass(frozen=True)
class Tensor:
    """Where one tensor's bytes lie: `offset` is the file position of its first byte."""

    file: Path
    key: str
    dtype: str
    shape: tuple[int, ...]
    offset: int

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 0

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * _ITEMSIZE.get(self.dtype, 0)


def read_header(path: Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file, checked against the file's size; raises ReindexError naming it."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            length = int.from_bytes(f.read(8), "little") if size >= 8 else -1
            if not 0 < length <= min(size - 8, _MAX_HEADER):
                raise ReindexError("not a safetensors file (bad header length)", path=path)
            header = json.loads(f.read(length))
    except OSError as e:
        raise ReindexError(f"cannot read: {e.strerror or e}", path=path) from e
    except (ValueError, RecursionError) as e:
        raise ReindexError(f"not a safetensors file (header is not JSON: {e})", path=path) from e
    if not isinstance(header, dict):
        raise ReindexError("not a safetensors file (header is not a JSON object)", path=path)
    return {key: _tensor(path, key, entry, 8 + length, size) for key, entry in header.items()
            if key != "__metadata__"}


def read_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors file ({} when it has none)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 0 < length <= min(os.fstat(f.fileno()).st_size - 8, _MAX_HEADER):
            raise ReindexError("not a safetensors file (bad header length)", path=path)
        header = json.loads(f.read(length))
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _tensor(path: Path, key: str, entry: Any, start: int, size: int) -> Tensor:
    try:
        dtype, shape, (begin, end) = entry["dtype"], tuple(int(n) for n in entry["shape"]), entry["data_offsets"]
        expected = int(np.prod(shape, dtype=np.int64)) * _ITEMSIZE[dtype]
    except (TypeError, KeyError, ValueError) as e:
        raise ReindexError(f"not a safetensors file (bad entry for {key!r}: {e!r})", path=path) from e
    if end - begin != expected or start + end > size or begin < 0:
        raise ReindexError(f"tensor {key!r} needs bytes {begin}..{end} after the header but the file holds "
                           f"{size - start}", path=path, hint="the file is truncated; copy it again")
    return Tensor(file=path, key=key, dtype=dtype, shape=shape, offset=start + begin)


class RowReader:
    """Open files, reused across slices: `reader.read(tensor, 10, 20, out)` fills `out` with rows 10..19."""

    def __init__(self) -> None:
        self._files: dict[Path, io.FileIO] = {}

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def read(self, tensor: Tensor, start: int, stop: int, out: np.ndarray) -> None:
        f = self._files.get(tensor.file)
        if f is None:
            try:
                f = self._files[tensor.file] = io.FileIO(tensor.file, "rb")
            except OSError as e:
                raise ReindexError(f"cannot read: {e.strerror or e}", path=tensor.file) from e
        f.seek(tensor.offset + start * tensor.row_bytes)
        view, done = out.data.cast("B"), 0
        while done < view.nbytes:
            got = f.readinto(view[done:])
            if not got:
                raise ReindexError(f"tensor {tensor.key!r} ends early", path=tensor.file,
                                   hint="the file is truncated; copy it again")
            done += got


FLOAT32_MAX = float(np.finfo(np.float32).max)


def fit_float32(array: np.ndarray, *, key: str, path: str | os.PathLike, hint: str) -> np.ndarray:
    """`array` (a matrix of rows, or one row) as float32, refusing NaN, infinities and values float32
    cannot hold (an fp64 1e39), naming the tensor `key`, its first bad row and the value as stored.

    Every reader of float rows checks them here. The cast may overflow (that is what is looked for),
    so numpy's warning is silenced for it alone.
    >>> fit_float32(np.array([[1.0, 2.0]]), key="weight", path="w", hint="").dtype
    dtype('float32')
    """
    array = np.asarray(array)
    with np.errstate(over="ignore", invalid="ignore"):
        narrow = array.astype(np.float32, copy=False)
    if narrow.size == 0 or (np.isfinite(narrow.min()) and np.isfinite(narrow.max())):
        return narrow
    flat = int(np.flatnonzero(~np.isfinite(narrow.reshape(-1)))[0])
    row = flat // max(1, int(np.prod(array.shape[1:], dtype=np.int64)))
    raise ReindexError(f"`{key}` row {row} holds {float(array.reshape(-1)[flat])!r}; values must be finite and "
                       f"within float32's range (|x| <= {FLOAT32_MAX:.4g})", path=path, hint=hint)


def read_rows(tensor: Tensor, count: int) -> np.ndarray:
    """The first `count` rows of a [rows, dim] float tensor as float32 C-contiguous (no torch, no mmap),
    refusing a value float32 cannot hold. A bfloat16 row's bits shift into place as float32's top half."""
    raw = np.empty((count, int(np.prod(tensor.shape[1:], dtype=np.int64))), dtype=RAW[tensor.dtype])
    with RowReader() as reader:
        reader.read(tensor, 0, count, raw)
    values = (raw.astype(np.uint32) << 16).view(np.float32) if tensor.dtype == "BF16" else raw
    return np.ascontiguousarray(fit_float32(values, key=tensor.key, path=tensor.file,
                                            hint="the checkpoint holds a diverged or damaged row"))
