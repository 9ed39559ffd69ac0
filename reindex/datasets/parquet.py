"""Parquet files: streamed by record batch; row groups, schema, metadata and codec are kept.

Memory follows the batch and the row-group budget, not the file. The input is read page by page
(`pre_buffer=False`, a 1 MiB read buffer: pyarrow's default pre-buffers a row group's column
chunks whole). On output, pyarrow ends a row group at the end of every write call
(`ParquetWriter.write_batch` calls `write_table`; the C++ writer's buffered row groups are not
exposed, apache/arrow#36280), so an output row group is held in memory until it is written.
An input row group whose remapped output fits `ROW_GROUP_BYTES` is written as one row group, as
it was; a larger one is written as the fewest equal row groups that fit, so every boundary of the
input is still a boundary of the output and no row group is held whole.
"""
from __future__ import annotations

import contextlib
import functools
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from ..errors import ReindexError
from .arrow import output_schema, remap_batch
from .core import FileReport, RemapSpec

#: Decoded bytes per record batch read. Small batches keep the reader's and the gather's
#: temporaries small (measured on 75-id rows: 20 MB batches peaked 140 MB higher than 1 MB ones,
#: at the same speed). Rows per batch follow the row length seen in the previous row groups;
#: row group 0 is read `FIRST_BATCH_ROWS` at a time.
BATCH_BYTES = 2 << 20
FIRST_BATCH_ROWS = 1024
#: Decoded bytes of remapped output held for one output row group (see the module docstring).
#: 128 MiB (Spark's default row-group size) keeps `reindex build` near 400 MB resident on row
#: groups of any size; Hugging Face's 1,000-row groups are kept whole, pyarrow's default 1Mi rows
#: of 75-id rows (300 MB) become 3 (measured: docs/scale.md, "Memory").
ROW_GROUP_BYTES = 128 << 20
#: Read buffer per column chunk.
READ_BUFFER = 1 << 20


def remap_parquet(source: Path, output: Path, spec: RemapSpec, *, batch_bytes: int = BATCH_BYTES,
                  row_group_bytes: int = ROW_GROUP_BYTES) -> FileReport:
    """Remap the id columns of a Parquet file into `output`, row group by row group.

    remap_parquet(Path("train.parquet"), Path("out/train.parquet"), spec).num_rows
    1000000
    """
    import pyarrow.parquet as pq

    writer = None
    try:
        pf = pq.ParquetFile(source, pre_buffer=False, buffer_size=READ_BUFFER)
        schema = output_schema(pf.schema_arrow, spec, path=source)
        output.parent.mkdir(parents=True, exist_ok=True)
        num_ids = row = written = 0
        for group in range(pf.num_row_groups):
            batch_rows = FIRST_BATCH_ROWS if not written else max(1, min(1 << 20, batch_bytes * row // written))
            batches = _remapped(pf, group, spec, schema, source=source, first_row=row, batch_rows=batch_rows)
            # The row count is asked for only once a batch of the group was read: see _codec.
            for piece in split_row_group(batches, functools.partial(_group_rows, pf, group),
                                         budget=row_group_bytes):
                table = pa.Table.from_batches(piece, schema=schema)
                del piece
                num_ids += count_ids(table, spec.columns)
                row += table.num_rows
                written += table.nbytes
                if writer is None:  # opened once row group 0 has been read: see _codec
                    writer = pq.ParquetWriter(output, schema, compression=_codec(pf, rows=row))
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                del table  # freed before the next row group is read
        if writer is None:
            writer = pq.ParquetWriter(output, schema, compression="snappy")
        writer.close()
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # names that are not UTF-8 too
        if writer is not None:
            with contextlib.suppress(Exception):  # the output is discarded anyway
                writer.close()
        raise ReindexError(f"cannot read Parquet file: {e}", path=source) from e
    return FileReport(source, output, "parquet", num_ids, row)


def _remapped(pf, group: int, spec: RemapSpec, schema: pa.Schema, *, source: Path, first_row: int,
              batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches of one row group, remapped; errors name rows counted from the file's start."""
    row = first_row
    # One thread: as fast on ~2 MB batches, and the peak is steady (163 MB on a test file, against
    # 183-211 MB from run to run with column-parallel decoding). Files run in parallel instead.
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[group], use_threads=False):
        yield remap_batch(batch, spec, path=source, first_row=row, schema=schema)
        row += batch.num_rows


def _group_rows(pf: Any, group: int) -> int:
    return pf.metadata.row_group(group).num_rows


def split_row_group(batches: Iterable[pa.RecordBatch], group_rows: Callable[[], int], *,
                    budget: int) -> Iterator[list[pa.RecordBatch]]:
    """Cut one row group's batches into output row groups of at most about `budget` bytes.

    The number of pieces is estimated from the first batch (bytes per row x `group_rows()`), for
    equal pieces of 80% of the budget; a piece that reaches the budget anyway (rows much longer
    than the first batch's) is cut there. Always yields at least one (maybe empty) piece.

    >>> b = pa.record_batch({"x": pa.array(range(10), pa.int64())})      # 80 bytes
    >>> [sum(p.num_rows for p in piece) for piece in split_row_group([b], lambda: 10, budget=40)]
    [3, 3, 4]
    """
    held: list[pa.RecordBatch] = []
    held_bytes = seen = yielded = 0
    cut = None  # the row (counted in the group) where the current piece ends
    for batch in batches:
        if cut is None:
            total = max(group_rows(), batch.num_rows)
            pieces = max(1, math.ceil(total * batch.nbytes / max(1, batch.num_rows) / (0.8 * budget)))
            piece = 1
            cut = max(1, total // pieces)  # piece k ends at row k * total // pieces
        while batch.num_rows:
            part = batch.slice(0, cut - seen)
            batch = batch.slice(part.num_rows)
            held.append(part)
            seen += part.num_rows
            held_bytes += part.nbytes
            if seen >= cut or held_bytes >= budget:
                yield held
                held, held_bytes, yielded = [], 0, yielded + 1
                while cut <= seen:
                    piece += 1
                    cut = max(cut + 1, piece * total // pieces)
    if held or not yielded:
        yield held


def _codec(pf, *, rows: int) -> str:
    """The input's compression (of its first column chunk), so the output is about the same size.

    Asked only after row group 0 was read (`rows` > 0): pyarrow's metadata accessors let a C++
    exception escape and abort the process on a damaged column chunk (a bad codec number, a
    histogram of the wrong size), while reading the row group reports the same damage as an error.
    """
    if rows == 0 or pf.num_row_groups == 0 or pf.metadata.num_columns == 0:
        return "snappy"
    codec = pf.metadata.row_group(0).column(0).compression.lower()
    return "none" if codec == "uncompressed" else codec


def count_ids(data: pa.Table | pa.RecordBatch, columns: tuple[str, ...]) -> int:
    """Non-null ids in the id columns (nested lists counted to the leaves)."""
    total = 0
    for name in columns:
        column = data.column(name)
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for arr in chunks:
            while not pa.types.is_integer(arr.type):
                arr = arr.flatten()  # here dropping values under null lists is what is wanted
            total += len(arr) - arr.null_count
    return total
