"""Parquet files: streamed by record batch; row groups, schema, metadata and codec are kept."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pyarrow as pa

from ..errors import ReindexError
from .arrow import output_schema, remap_batch
from .core import FileReport, RemapSpec

#: Rows per record batch read; one row group's remapped output is held until it is written.
BATCH_ROWS = 1 << 16


def remap_parquet(source: Path, output: Path, spec: RemapSpec, *, batch_rows: int = BATCH_ROWS) -> FileReport:
    """Remap the id columns of a Parquet file into `output`, one output row group per input one.

    >>> remap_parquet(Path("train.parquet"), Path("out/train.parquet"), spec).num_rows  # doctest: +SKIP
    1000000
    """
    import pyarrow.parquet as pq

    writer = None
    try:
        pf = pq.ParquetFile(source)
        schema = output_schema(pf.schema_arrow, spec, path=source)
        output.parent.mkdir(parents=True, exist_ok=True)
        num_ids = row = 0
        for group in range(pf.num_row_groups):
            # pyarrow can only end a row group at the end of a write, so one row group's
            # output is collected (the input is read a batch at a time).
            batches = []
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[group]):
                batches.append(remap_batch(batch, spec, path=source, first_row=row, schema=schema))
                row += batch.num_rows
            table = pa.Table.from_batches(batches, schema=schema)
            num_ids += count_ids(table, spec.columns)
            if writer is None:  # opened once row group 0 has been read: see _codec
                writer = pq.ParquetWriter(output, schema, compression=_codec(pf, rows=row))
            writer.write_table(table, row_group_size=max(1, table.num_rows))
        if writer is None:
            writer = pq.ParquetWriter(output, schema, compression="snappy")
        writer.close()
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # names that are not UTF-8 too
        if writer is not None:
            with contextlib.suppress(Exception):  # the output is discarded anyway
                writer.close()
        raise ReindexError(f"cannot read Parquet file: {e}", path=source) from e
    return FileReport(source, output, "parquet", num_ids, row)


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
