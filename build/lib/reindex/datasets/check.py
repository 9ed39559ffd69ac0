"""Open a dataset and check its format, id columns and dtype without remapping it.

`build` runs this on every dataset before it parses the vector file (which can take minutes), so a
wrong `--column` or a float column fails in a second; the remap itself checks the same again.

    check_datasets([Path("train.parquet")], RemapSpec(np.arange(50_000)))
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ReindexError
from .core import RemapSpec, output_dtype
from .plan import detect_format

#: safetensors dtype names of integer tensors.
SAFETENSORS_INTEGERS = {"I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64",
                        "U8": "uint8", "U16": "uint16", "U32": "uint32", "U64": "uint64"}


def check_datasets(sources: Sequence[Path], spec: RemapSpec) -> None:
    """Check every dataset (see the module docstring); the first problem raises ReindexError."""
    for source in sources:
        check_dataset(Path(source), spec)


def check_dataset(source: Path, spec: RemapSpec) -> None:
    """Check one dataset's format, id columns and dtype by reading its header or schema."""
    kind = detect_format(source)
    if kind == "npy":
        _check_npy(source, spec)
    elif kind == "pt":
        from .pt import check_pt

        check_pt(source, spec)
    elif kind == "safetensors":
        _check_safetensors(source, spec)
    elif kind == "parquet":
        _check_parquet(source, spec)
    elif kind == "arrow":
        _check_ipc(source, spec)
    elif kind == "hf-dataset":
        from .hf import hf_arrow_files

        for path in hf_arrow_files(source):
            _check_ipc(path, spec)
    elif spec.tokens is None:
        raise ReindexError("text input needs the vocabulary's tokens", path=source)


def _check_npy(source: Path, spec: RemapSpec) -> None:
    from .npy import read_header

    with open(source, "rb") as f:
        shape, _, dtype, header_len = read_header(f, source)
    output_dtype(dtype, spec, path=source)
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if source.stat().st_size < expected:
        raise ReindexError(f"truncated .npy: {source.stat().st_size} bytes, the header promises {expected}",
                           path=source)


def _check_safetensors(source: Path, spec: RemapSpec) -> None:
    from safetensors import safe_open

    from .pt import check_keys

    try:
        with safe_open(str(source), framework="numpy") as f:
            keys = list(f.keys())
            check_keys(keys, spec, path=source)
            dtypes = {key: f.get_slice(key).get_dtype() for key in spec.columns}
    except ReindexError:
        raise
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise ReindexError(f"cannot read safetensors file: {e}", path=source) from e
    for key, dtype in dtypes.items():
        if dtype not in SAFETENSORS_INTEGERS:
            raise ReindexError(f"key {key!r}: ids must be integers, got {dtype}", path=source,
                               hint="pass token ids, not floats")
        output_dtype(np.dtype(SAFETENSORS_INTEGERS[dtype]), spec, path=source)


def _check_parquet(source: Path, spec: RemapSpec) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .arrow import output_schema

    try:
        schema = pq.read_schema(source)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        raise ReindexError(f"cannot read Parquet file: {e}", path=source) from e
    output_schema(schema, spec, path=source)


def _check_ipc(source: Path, spec: RemapSpec) -> None:
    from .arrow import output_schema
    from .ipc import check_one_ipc, open_ipc

    kind, reader = open_ipc(source)
    if kind == "arrow":
        check_one_ipc(source, kind, reader)
    output_schema(reader.schema, spec, path=source)
