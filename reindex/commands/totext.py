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


def check_text_inputs(pairs: Sequence[tuple[Path, Path]], columns: Sequence[str]) -> None:
    """Refuse, before anything is written, what --to-text cannot write: a second column, a format it cannot
    read back, two inputs that would both become the same `<name>.txt` (`a.npy` and `a.pt`)."""
    from ..datasets.plan import detect_format

    if len(columns) > 1:
        raise UsageError(f"--to-text writes one column as text, got --column {' --column '.join(columns)}",
                         hint="invert once per column, each into its own --out")
    seen: dict[Path, Path] = {}
    for source, output in pairs:
        kind = detect_format(source)
        if kind not in TEXT_FORMATS:
            raise UsageError(f"--to-text reads {', '.join(TEXT_FORMATS)} files, not {kind}", path=source,
                             hint="invert without --to-text")
        text = output.with_suffix(".txt")
        if text in seen:
            raise UsageError(f"{seen[text]} and {source} would both be written to {text}",
                             hint="rename one of them or invert them in separate calls")
        seen[text] = source


def rows_of(path: Path, kind: str, column: str, *, source: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, row offsets) of one id column of a written dataset; `source` names it in errors."""
    if kind in ("parquet", "arrow"):
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=[column])
        else:
            from ..datasets.ipc import open_ipc

            _, reader = open_ipc(path)
            table = reader.read_all().select([column])
        return _arrow_rows(table.column(column).combine_chunks(), source or path, column)
    return _array_rows(_load_array(path, kind, column))


def _arrow_rows(array: Any, where: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column is a row per line, a column of single ids a line each; nulls and nested lists are
    refused at their row, since no line can say what they hold."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def refuse(row: int, what: str, hint: str = "drop or fill that row, or invert without --to-text") -> ReindexError:
        return ReindexError(f"column {column!r} {what}: --to-text writes a line of tokens per row", path=where,
                            position=f"row {row}", hint=hint)

    if array.null_count:
        raise refuse(int(pc.index(array.is_null(), True).as_py()), "is null")
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)
            or pa.types.is_fixed_size_list(array.type)):
        ids = array.to_numpy(zero_copy_only=False)
        return ids, np.arange(len(ids) + 1, dtype=np.int64)
    if pa.types.is_fixed_size_list(array.type):
        offsets = np.arange(len(array) + 1, dtype=np.int64) * array.type.list_size
        values = array.flatten()
    else:
        offsets = array.offsets.to_numpy().astype(np.int64)
        values = array.values.slice(offsets[0], offsets[-1] - offsets[0])
        offsets = offsets - offsets[0]
    if not pa.types.is_integer(values.type):
        first = int(np.argmax(np.diff(offsets) > 0)) if len(values) else 0
        nested = pa.types.is_list(values.type) or pa.types.is_large_list(values.type) \
            or pa.types.is_fixed_size_list(values.type)
        raise refuse(first, "holds nested lists, not ids" if nested else f"holds {values.type} values, not ids",
                     hint="invert without --to-text")
    if values.null_count:
        flat = int(pc.index(values.is_null(), True).as_py())
        raise refuse(int(np.searchsorted(offsets, flat, side="right")) - 1, "holds a null id")
    return values.to_numpy(zero_copy_only=False), offsets


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
    ids, offsets = rows_of(report.output, report.format.removesuffix("-stream"), column, source=report.source)
    keep = np.ones(len(ids), dtype=bool) if not ignore else ~np.isin(ids, list(ignore))
    if not keep.all():  # --ignore-index ids have no token: they are left out of the line
        offsets = np.concatenate([[0], np.cumsum(keep)])[offsets]
        ids = ids[keep]
    if len(ids) and (ids.min() < 0 or ids.max() >= len(tokens)):
        raise ReindexError(f"id {int(ids[(ids < 0) | (ids >= len(tokens))][0])} is outside the vocabulary",
                           path=report.source, hint="is this file in sorted ids of this run?")
    words = pa.array(tokens, pa.string()).take(pa.array(ids.astype(np.int64)))
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), words), " ")
    if lines.null_count:  # never written as "None": every null was refused above, so this is a bug
        raise ReindexError("a row became no line of text", path=report.source)
    output = report.output.with_suffix(".txt")
    with open(output, "w", encoding="utf-8", newline="\n") as f:
        for line in lines.to_pylist():
            f.write(line)
            f.write("\n")
    if output != report.output:
        report.output.unlink()
    return replace(report, output=output, format="text")
