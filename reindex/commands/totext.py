"""`invert --to-text`: a dataset of ids -> text, a line per row, its tokens joined by single spaces.

    to_text(report, tokens, columns=["input_ids"])   # out/x.parquet -> out/x.txt (the ids file removed)
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ReindexError, UsageError

TEXT_FORMATS = ("npy", "pt", "safetensors", "parquet", "arrow")


def check_text_inputs(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse, before anything is written, inputs that --to-text cannot read back."""
    from ..datasets.plan import detect_format

    for source, _ in pairs:
        kind = detect_format(source)
        if kind not in TEXT_FORMATS:
            raise UsageError(f"--to-text reads {', '.join(TEXT_FORMATS)} files, not {kind}", path=source,
                             hint="invert without --to-text")


def rows_of(path: Path, kind: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, row offsets) of one id column of a written dataset."""
    if kind in ("parquet", "arrow"):
        import pyarrow as pa

        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=[column])
        else:
            from ..datasets.ipc import open_ipc

            _, reader = open_ipc(path)
            table = reader.read_all().select([column])
        array = table.column(column).combine_chunks()
        if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
                or pa.types.is_fixed_size_list(array.type):
            if pa.types.is_fixed_size_list(array.type):
                size = array.type.list_size
                offsets = np.arange(len(array) + 1, dtype=np.int64) * size
                return array.flatten().to_numpy(zero_copy_only=False), offsets
            offsets = array.offsets.to_numpy().astype(np.int64)
            return array.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]], offsets - offsets[0]
        ids = array.to_numpy(zero_copy_only=False)
        return ids, np.arange(len(ids) + 1, dtype=np.int64)
    return _array_rows(_load_array(path, kind, column))


def _load_array(path: Path, kind: str, column: str) -> np.ndarray:
    if kind == "npy":
        return np.load(path, mmap_mode="r")
    if kind == "safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))[column]
    import torch

    loaded = torch.load(path, map_location="cpu", weights_only=True)
    tensor = loaded[column] if isinstance(loaded, dict) else loaded
    return tensor.numpy()


def _array_rows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D array is a row per line; any other shape is one line."""
    rows = ids.reshape(ids.shape[0], -1) if ids.ndim >= 2 else ids.reshape(1, -1)
    width = rows.shape[1]
    return np.ascontiguousarray(rows).reshape(-1), np.arange(rows.shape[0] + 1, dtype=np.int64) * width


def to_text(report: Any, tokens: Sequence[str], *, columns: Sequence[str], ignore: Sequence[int] = ()) -> Any:
    """Replace the dataset `report.output` (ids in the order of `tokens`) by `<name>.txt`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = columns[0]
    ids, offsets = rows_of(report.output, report.format.removesuffix("-stream"), column)
    keep = np.ones(len(ids), dtype=bool) if not ignore else ~np.isin(ids, list(ignore))
    if not keep.all():  # --ignore-index ids have no token: they are left out of the line
        offsets = np.concatenate([[0], np.cumsum(keep)])[offsets]
        ids = ids[keep]
    if len(ids) and (ids.min() < 0 or ids.max() >= len(tokens)):
        raise ReindexError(f"id {int(ids[(ids < 0) | (ids >= len(tokens))][0])} is outside the vocabulary",
                           path=report.source, hint="is this file in sorted ids of this run?")
    words = pa.array(tokens, pa.string()).take(pa.array(ids.astype(np.int64)))
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), words), " ")
    output = report.output.with_suffix(".txt")
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        for line in lines.to_pylist():
            f.write(line)
            f.write("\n")
    if output != report.output:
        report.output.unlink()
    return replace(report, output=output, format="text")
