"""Whitespace-tokenized text (one sequence per line) -> Parquet with a list<int32> `input_ids` column.

Words are looked up in `spec.tokens` with `pyarrow.compute.index_in`, a batch of lines at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ReindexError
from .arrow import numpy_to_arrow
from .core import FileReport, RemapSpec, add_counts, gather, output_dtype, table_as

#: Bytes of lines read per batch (one Parquet row group each).
BATCH_BYTES = 1 << 24


def remap_text(source: Path, output: Path, spec: RemapSpec, *, batch_bytes: int = BATCH_BYTES) -> FileReport:
    """Look up every word of `source` and write `output` as Parquet (column `input_ids`).

    remap_text(Path("a.txt"), Path("out/a.parquet"), RemapSpec(t, tokens=words, unk="<unk>"))
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if spec.tokens is None:
        raise ReindexError("text input needs the vocabulary's tokens", path=source,
                           hint="pass RemapSpec(tokens=...) in input-id order")
    out_dtype = output_dtype(np.dtype(np.int32), spec, path=source)  # same rules as every other format
    vocabulary = pa.array(list(spec.tokens), pa.string())
    unk_id = _unk_id(spec.tokens, spec.unk, source)
    table = table_as(spec.table, out_dtype)
    out_type = pa.list_(pa.from_numpy_dtype(out_dtype))
    schema = pa.schema([("input_ids", out_type)], metadata={"reindex.source": source.name})
    output.parent.mkdir(parents=True, exist_ok=True)
    line = num_ids = 0
    with open(source, "rb") as f, pq.ParquetWriter(output, schema) as writer:
        while lines := f.readlines(batch_bytes):
            ids, offsets = _lookup(lines, vocabulary, unk_id, path=source, first_line=line + 1)
            out = np.empty(ids.shape[0], out_dtype)
            gather(ids, table, out, check=False)  # index_in only returns ids in [0, V)
            add_counts(spec.counts, out)
            column = pa.ListArray.from_arrays(numpy_to_arrow(offsets.astype(np.int32), pa.int32()),
                                              numpy_to_arrow(out, out_type.value_type), type=out_type)
            writer.write_table(pa.table([column], schema=schema))
            line, num_ids = line + len(lines), num_ids + out.shape[0]
    return FileReport(source, output, "text", num_ids, line)


def _unk_id(tokens: Sequence[str], unk: str | None, path: Path) -> int | None:
    if unk is None:
        return None
    try:
        return list(tokens).index(unk)
    except ValueError:
        raise ReindexError(f"the unknown-word token {unk!r} is not in the vocabulary", path=path,
                           hint="add it to the vocabulary or pass another --unk") from None


def _lookup(lines: list[bytes], vocabulary, unk_id: int | None, *, path: Path,
            first_line: int) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, list offsets) of a batch of lines; unknown words -> unk_id or an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array(lines, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        bad = next(i for i, raw in enumerate(lines) if not _is_utf8(raw))
        raise ReindexError("not valid UTF-8", path=path, line=first_line + bad) from None
    text = pc.utf8_trim_whitespace(text)
    words = pc.utf8_split_whitespace(text)
    offsets, values = words.offsets.to_numpy(), words.values
    blank = pc.equal(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
    if blank.any():
        # A blank line splits into one empty word: drop it so the line becomes an empty list.
        values = values.filter(pc.greater(pc.binary_length(values), 0))
        offsets = np.concatenate([[0], np.cumsum(np.diff(offsets) - blank)])
    ids = pc.index_in(values, value_set=vocabulary)
    if ids.null_count:
        if unk_id is None:
            index = int(np.argmax(ids.is_null().to_numpy(zero_copy_only=False)))
            row = int(np.searchsorted(offsets, index, side="right")) - 1
            raise ReindexError(f"unknown word {values[index].as_py()!r}", path=path,
                               line=first_line + row, hint="add it to the vocabulary or pass --unk")
        ids = pc.fill_null(ids, unk_id)
    return ids.to_numpy(), offsets - offsets[0]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
