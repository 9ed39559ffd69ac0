"""Arrow IPC files (`.arrow` / `.feather` v2, random-access format) and streams, batch by batch."""
from __future__ import annotations

import struct
from pathlib import Path

import pyarrow as pa

from ..errors import ReindexError
from ..io.inputfile import check_regular
from .arrow import output_schema, remap_batch
from .core import FileReport, RemapSpec
from .parquet import count_ids


def open_ipc(source: Path) -> tuple[str, pa.ipc.RecordBatchFileReader | pa.ipc.RecordBatchStreamReader]:
    """("arrow", file reader) or ("arrow-stream", stream reader); read from a file, not a map,
    so pages of the input do not pile up in the resident set."""
    check_regular(source, what="an Arrow")  # a FIFO listed in a `save_to_disk` folder would block
    try:
        return "arrow", pa.ipc.open_file(pa.OSFile(str(source)))
    except (pa.ArrowException, OSError, UnicodeDecodeError):  # then try it as a stream
        pass
    try:
        stream = pa.OSFile(str(source))
        reader = pa.ipc.open_stream(stream)
        reader.stream = stream  # kept for `check_one_ipc`: where the stream ended
        return "arrow-stream", reader
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # names that are not UTF-8 too
        raise ReindexError(f"not an Arrow IPC file or stream: {e}", path=source,
                           hint="Feather v1 files are not supported; rewrite them with pyarrow.feather") from e


def remap_ipc(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap an Arrow IPC file or stream into the same format (batch boundaries kept).

    remap_ipc(Path("data-00000-of-00001.arrow"), Path("out/x.arrow"), spec).format
    'arrow-stream'
    """
    kind, reader = open_ipc(source)
    if kind == "arrow":
        check_one_ipc(source, kind, reader)  # before reading: a second file's footer misleads the reader
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
        if kind == "arrow-stream":
            check_one_ipc(source, kind, reader)
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


def check_one_ipc(source: Path, kind: str,
                  reader: pa.ipc.RecordBatchFileReader | pa.ipc.RecordBatchStreamReader) -> None:
    """Refuse bytes after the end of the one IPC stream (or file) just read: pyarrow stops at the
    first end-of-stream marker, so a second stream concatenated behind it would be lost silently."""
    size = source.stat().st_size
    if kind == "arrow-stream":
        end = reader.stream.tell()
        what = "a second Arrow IPC stream (or other data)"
    else:
        try:
            end = _file_end(source)
        except (pa.ArrowException, OSError, struct.error) as e:
            raise ReindexError(f"cannot read Arrow file: {e}", path=source) from e
        what = "more data than one Arrow IPC file (a second file concatenated?)"
    if end != size:
        raise ReindexError(f"{what} starts at byte {end} of {size}", path=source,
                           hint="reindex reads one stream per file: write all batches as one stream, "
                                "or split the file at that byte")


def _file_end(source: Path) -> int:
    """Where the first IPC file in `source` ends: its message stream (walked through a memory map,
    bodies never touched), then its footer, the footer's length (int32) and the closing "ARROW1"."""
    import mmap

    with pa.memory_map(str(source)) as mm:
        mm.seek(8)  # "ARROW1" and padding
        for _ in pa.ipc.MessageReader.open_stream(mm):
            pass
        stream_end = mm.tell()
    with open(source, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        # The first "ARROW1" after the stream whose preceding length reaches back to the stream's
        # end closes the first file (the footer itself is a flatbuffer of unknown length).
        at = data.find(b"ARROW1", stream_end)
        while at >= 0:
            if at - 4 >= stream_end and struct.unpack_from("<i", data, at - 4)[0] == at - 4 - stream_end:
                return at + 6
            at = data.find(b"ARROW1", at + 1)
    return stream_end
