"""Arrow IPC files (`.arrow` / `.feather` v2, random-access format) and streams, batch by batch."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..errors import ReindexError
from .arrow import output_schema, remap_batch
from .core import FileReport, RemapSpec
from .parquet import count_ids


def open_ipc(source: Path) -> tuple[str, object]:
    """("arrow", file reader) or ("arrow-stream", stream reader); read from a file, not a map,
    so pages of the input do not pile up in the resident set."""
    try:
        return "arrow", pa.ipc.open_file(pa.OSFile(str(source)))
    except (pa.ArrowException, OSError, UnicodeDecodeError):  # then try it as a stream
        pass
    try:
        return "arrow-stream", pa.ipc.open_stream(pa.OSFile(str(source)))
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # names that are not UTF-8 too
        raise ReindexError(f"not an Arrow IPC file or stream: {e}", path=source,
                           hint="Feather v1 files are not supported; rewrite them with pyarrow.feather") from e


def remap_ipc(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap an Arrow IPC file or stream into the same format (batch boundaries kept).

    remap_ipc(Path("data-00000-of-00001.arrow"), Path("out/x.arrow"), spec).format
    'arrow-stream'
    """
    kind, reader = open_ipc(source)
    try:
        schema = output_schema(reader.schema, spec, path=source)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if kind == "arrow" else reader
        output.parent.mkdir(parents=True, exist_ok=True)
        new = pa.ipc.new_file if kind == "arrow" else pa.ipc.new_stream
        num_ids = row = 0
        with new(str(output), schema) as writer:
            for batch in batches:
                validate(batch, spec.columns)
                remapped = remap_batch(batch, spec, path=source, first_row=row, schema=schema)
                num_ids += count_ids(remapped, spec.columns)
                row += batch.num_rows
                writer.write_batch(remapped)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # names that are not UTF-8 too
        raise ReindexError(f"cannot read Arrow {kind} data: {e}", path=source) from e
    return FileReport(source, output, kind, num_ids, row)


def validate(batch: pa.RecordBatch, columns: tuple[str, ...]) -> None:
    """Refuse a batch whose buffers disagree with its lengths or offsets (the IPC reader does not check).

    Sizes are checked for every column (cheap); offsets and values fully for the id columns only.
    """
    batch.validate()
    for name in columns:
        index = batch.schema.get_field_index(name)
        if index >= 0:
            batch.column(index).validate(full=True)
