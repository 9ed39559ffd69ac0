""".npy files: streamed chunk by chunk with the header copied verbatim, so memory stays flat.

Reading with `readinto` into one reused buffer (instead of a memory map) keeps the peak resident
size at a few chunks: a memory map's touched pages count towards the process's RSS until unmapped.
Writes run on a second thread while the next chunk is gathered (both release the GIL).
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from io import BufferedReader
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import ReindexError
from ..io.npyfile import header_bytes, save_npy  # noqa: F401  (save_npy: public here too)
from .core import (
    CHUNK_IDS,
    FileReport,
    OutOfRange,
    RemapSpec,
    add_counts,
    describe_index,
    gather,
    out_of_range_error,
    output_dtype,
    table_as,
)


def read_header(f: BinaryIO, path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of an open .npy file, refusing pickles."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except Exception as e:  # numpy raises ValueError, SyntaxError, TokenError... on damaged headers
        raise ReindexError(f"not a valid .npy file: {e}", path=path) from e
    if dtype.hasobject or dtype.fields is not None:
        raise ReindexError(f"ids must be integers, got {dtype}", path=path,
                           hint="object/structured .npy files are refused (no unpickling)")
    return tuple(shape), bool(fortran), dtype, f.tell()


def remap_npy(source: Path, output: Path, spec: RemapSpec, *, chunk: int = CHUNK_IDS) -> FileReport:
    """Remap a .npy file to `output`; same header (shape, order, dtype unless `spec.id_dtype`).

    remap_npy(Path("ids.npy"), Path("out/ids.npy"), spec).num_ids
    75000000
    """
    with open(source, "rb") as f:
        shape, fortran, dtype, header_len = read_header(f, source)
        out_dtype = output_dtype(dtype, spec, path=source)
        size = int(np.prod(shape, dtype=np.int64))
        expected = header_len + size * dtype.itemsize
        actual = source.stat().st_size
        if actual < expected:
            raise ReindexError(f"truncated .npy: {actual} bytes, the header promises {expected}",
                               path=source)
        f.seek(0)
        # Same dtype: copy the header byte for byte, so `invert` after `remap` is byte-identical.
        header = f.read(header_len) if out_dtype == dtype else header_bytes(shape, fortran, out_dtype)
        f.seek(header_len)
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "wb") as g:
            g.write(header)
            _stream(f, g, size, dtype, out_dtype, spec, chunk=chunk,
                    describe=lambda i: describe_index(shape, i, fortran=fortran), path=source)
    return FileReport(source, output, "npy", size, shape[0] if shape else 1)


def _stream(f: BufferedReader, g: BinaryIO, size: int, dtype: np.dtype, out_dtype: np.dtype,
            spec: RemapSpec, *, chunk: int, describe, path: Path) -> None:
    """Read, gather and write `size` ids, double-buffering the output so writes overlap."""
    chunk = max(1, min(chunk, size))
    table = table_as(spec.table, out_dtype)
    in_buffers = [np.empty(chunk, dtype), np.empty(chunk, dtype)]
    out_buffers = [np.empty(chunk, out_dtype), np.empty(chunk, out_dtype)]
    scratch = np.empty(chunk, np.intp) if dtype != np.intp else None
    starts = range(0, size, chunk)

    def read(i: int) -> np.ndarray:
        ids = in_buffers[i % 2][: min(chunk, size - starts[i])]
        f.readinto(ids.data.cast("B"))
        return ids

    written: Future | None = None
    with ThreadPoolExecutor(2, thread_name_prefix="npy-io") as io_pool:
        # Reads, gathers and writes of neighbouring chunks overlap; two buffers each suffice as
        # every stage waits for the one before it on the same buffer.
        reading = io_pool.submit(read, 0) if size else None
        for i, start in enumerate(starts):
            assert reading is not None  # submitted for every start: before the loop, then one ahead
            ids = reading.result()
            reading = io_pool.submit(read, i + 1) if i + 1 < len(starts) else None
            out = out_buffers[i % 2][: ids.shape[0]]
            try:
                skipped = gather(ids, table, out, scratch=scratch, ignore=spec.ignore)
            except OutOfRange as e:
                raise out_of_range_error(e.value, spec.vocab_size, path=path,
                                         position=describe(start + e.index)) from None
            add_counts(spec.counts, out, skipped)
            if written is not None:
                written.result()
            written = io_pool.submit(g.write, out.data.cast("B"))
        if written is not None:
            written.result()
