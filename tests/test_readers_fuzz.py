"""Fuzz every reader on random and mutated bytes; only ReindexError may escape.

Readers: `read_vocab` (lines, token<TAB>count, JSON), `read_vectors` (GloVe text, word2vec text,
word2vec binary, each plain and gzip/bz2/xz compressed, compressed before or after the damage) and
`remap_dataset` (.npy, .pt, .safetensors, Parquet, Arrow IPC file and stream).

CI runs a modest budget; a longer session (docs/robustness.md) runs with

    REINDEX_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_readers_fuzz.py -q
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reindex.errors import ReindexError

EXAMPLES = int(os.environ.get("REINDEX_FUZZ_EXAMPLES", "100"))
# CI: a fixed seed, so a run is reproducible; the long session (more examples) draws at random.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=EXAMPLES <= 200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- mutations

@st.composite
def mutated(draw, base: bytes) -> bytes:
    """`base` after 1-4 random edits: flip a bit, overwrite, insert, delete a span, or truncate."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0, 9, 10, 13, 32, 34, 45, 46, 48, 101, 123, 127, 128, 192, 255]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12) | st.sampled_from(
                [b" ", b"\n", b"\r\n", b"\t", b"nan", b"1e39", b"-", b"\xc3", b"\xef\xbb\xbf", b"{", b"\x00" * 8]))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


def inputs(base: bytes, *, magic: bytes = b"") -> st.SearchStrategy[bytes]:
    """Mutations of a valid file, random bytes, and random bytes behind the format's magic."""
    return st.one_of(mutated(base), mutated(base), st.binary(max_size=300),
                     st.binary(max_size=300).map(lambda b: magic + b))


def only_reindex_errors(call: Callable[[], object]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except ReindexError as e:
        assert "\n" not in str(e)   # the CLI prints it as one line


def in_temp(name: str, data: bytes, call: Callable[[Path], object]) -> None:
    with tempfile.TemporaryDirectory(prefix="reindex-fuzz-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        only_reindex_errors(lambda: call(path))


# ---------------------------------------------------------------- vocabularies

VOCABS = {
    "vocab.txt": b"<pad>\nthe\ncat\nnew york\nnan\n",
    "counts.txt": b"the\t10\ncat\t5\ndog\t3\n",
    "vocab.json": json.dumps({"<pad>": 0, "the": 1, "cat": 2, "caf\u00e9": 3}).encode(),
}


@FUZZ
@given(st.sampled_from(sorted(VOCABS)).flatmap(lambda name: st.tuples(st.just(name), inputs(VOCABS[name]))))
def test_read_vocab(case):
    from reindex.vocab import read_vocab

    name, data = case
    in_temp(name, data, read_vocab)


# ---------------------------------------------------------------- vectors

VECS = {"the": [1.0, 2.0, 3.0], "cat": [0.5, -1.0, 2.5], "new york": [1.0, 0.0, -1.0], "caf\u00e9": [4, 5, 6]}


def glove() -> bytes:
    return "".join(f"{t} {' '.join(repr(float(v)) for v in vec)}\n" for t, vec in VECS.items()).encode()


def w2v_text() -> bytes:
    rows = {t: v for t, v in VECS.items() if " " not in t}
    return f"{len(rows)} 3\n".encode() + "".join(f"{t} {' '.join(map(str, v))}\n" for t, v in rows.items()).encode()


def w2v_binary() -> bytes:
    rows = {t: v for t, v in VECS.items() if " " not in t}
    return f"{len(rows)} 3\n".encode() + b"".join(t.encode() + b" " + struct.pack("<3f", *v) + b"\n"
                                                  for t, v in rows.items())


VECTOR_FILES = {"v.txt": glove(), "v.vec": w2v_text(), "v.bin": w2v_binary()}
COMPRESS = {"": lambda b: b, ".gz": lambda b: gzip.compress(b, mtime=0), ".bz2": bz2.compress,
            ".xz": lzma.compress}


@st.composite
def vector_files(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(VECTOR_FILES)))
    suffix = draw(st.sampled_from(sorted(COMPRESS)))
    compress = COMPRESS[suffix]
    base = VECTOR_FILES[name]
    where = draw(st.sampled_from(["inside", "outside"]))
    if where == "inside":  # valid compression of damaged content
        data = compress(draw(inputs(base)))
    else:                  # damaged compressed stream
        data = draw(inputs(compress(base), magic=compress(b"")[:4]))
    return name + suffix, data


@FUZZ
@given(file=vector_files(),
       keep=st.sampled_from([None, frozenset({"the", "cat", "new york", "caf\u00e9"}), frozenset({"zzz"})]),
       format=st.sampled_from([None, None, "glove", "word2vec-text", "word2vec-binary"]),
       duplicates=st.sampled_from(["first", "last", "error"]),
       unicode_errors=st.sampled_from(["strict", "replace", "ignore"]))
def test_read_vectors(file, keep, format, duplicates, unicode_errors):
    from reindex.vectors import read_vectors

    name, data = file

    def read(path: Path) -> None:
        v = read_vectors(path, keep=keep, format=format, duplicates=duplicates, unicode_errors=unicode_errors)
        # What comes back is what the contract promises, not just "no crash".
        assert v.matrix.dtype == np.float32 and v.matrix.shape == (len(v.tokens), v.dim)
        assert np.isfinite(v.matrix).all()
        assert len(set(v.tokens)) == len(v.tokens)
        if keep is not None:
            assert set(v.tokens) <= keep
    in_temp(name, data, read)


# ---------------------------------------------------------------- datasets

V = 50
IDS = np.arange(24, dtype=np.int64).reshape(4, 6) * 2


def npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, IDS)
    return buffer.getvalue()


def pt_bytes() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"input_ids": torch.from_numpy(IDS), "label": torch.zeros(4, dtype=torch.int64)}, buffer)
    return buffer.getvalue()


def safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    return save({"input_ids": IDS.astype(np.int32), "label": np.zeros(4, np.int8)}, metadata={"k": "v"})


def _table():
    import pyarrow as pa

    return pa.table({"input_ids": pa.array([[1, 2, 3], None, [4, None, 49]], pa.list_(pa.int32())),
                     "label": pa.array([0, 1, 2], pa.int8())})


def parquet_bytes() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(_table(), sink, row_group_size=2)
    return sink.getvalue().to_pybytes()


def arrow_bytes(stream: bool) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    new = pa.ipc.new_stream if stream else pa.ipc.new_file
    table = _table()
    with new(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=2):
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


DATASETS = {
    "ids.npy": (npy_bytes, b"\x93NUMPY"),
    "ids.pt": (pt_bytes, b"PK\x03\x04"),
    "ids.safetensors": (safetensors_bytes, b""),
    "ids.parquet": (parquet_bytes, b"PAR1"),
    "ids.arrow": (lambda: arrow_bytes(False), b"ARROW1"),
    "stream.arrow": (lambda: arrow_bytes(True), b"\xff\xff\xff\xff"),
}


def _dataset_strategy(name: str) -> st.SearchStrategy:
    make, magic = DATASETS[name]
    return inputs(make(), magic=magic)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_remap_dataset(name):
    from reindex.datasets import RemapSpec, remap_dataset

    table = np.arange(V, dtype=np.int64)[::-1].copy()

    @FUZZ
    @given(data=_dataset_strategy(name), id_dtype=st.sampled_from([None, "int32", "int64"]))
    def run(data, id_dtype):
        spec = RemapSpec(table=table, columns=("input_ids",), id_dtype=id_dtype, counts=np.zeros(V, np.int64))

        def remap(path: Path) -> None:
            report = remap_dataset(path, path.parent / "out" / path.name, spec)
            assert report.num_ids >= 0
            assert spec.counts.sum() == report.num_ids   # counted once, and only on success
        in_temp(name, data, remap)

    run()


# ---------------------------------------------------------------- what the fuzzing found, pinned

def _replace_first(data: bytes, old: bytes, new: bytes) -> bytes:
    i = data.index(old)
    return data[:i] + new + data[i + len(old):]


FOUND = [
    # pyarrow raises UnicodeDecodeError (not an ArrowException) for a column name that is not UTF-8
    ("parquet column name not UTF-8", "x.parquet",
     lambda: _replace_first(parquet_bytes(), b"\x07element", b"\x07\xe5lement")),
    ("arrow stream field name not UTF-8", "x.arrow", lambda: _replace_first(arrow_bytes(True), b"label", b"\xe5abel")),
    ("arrow file field name not UTF-8", "x.arrow", lambda: _replace_first(arrow_bytes(False), b"label", b"\xe5abel")),
]


@pytest.mark.parametrize("name, file, make", FOUND, ids=[f[0] for f in FOUND])
def test_found_by_fuzzing(name, file, make):
    from reindex.datasets import RemapSpec, remap_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file
        path.write_bytes(make())
        try:
            remap_dataset(path, Path(tmp) / "out" / file, RemapSpec(np.arange(V)))
        except ReindexError as e:
            assert file in str(e)


CHILD = """
import sys
from pathlib import Path
import numpy as np
from reindex.datasets import RemapSpec, remap_dataset
from reindex.errors import ReindexError
try:
    remap_dataset(Path(sys.argv[1]), Path(sys.argv[2]) / Path(sys.argv[1]).name, RemapSpec(np.arange(50)))
    print("ok")
except ReindexError as e:
    print("ReindexError:", e)
"""


@pytest.mark.parametrize("path", sorted((Path(__file__).parent / "fuzz_found").glob("*")), ids=lambda p: p.name)
def test_found_by_fuzzing_is_a_reindex_error(path, tmp_path):
    """The files the long fuzz session found (docs/robustness.md), each now a one-line ReindexError.

    parquet-*: pyarrow aborted the process (a C++ exception through a metadata accessor), so each
    runs in a child process: if it regressed, the abort would take the test run down with it.
    arrow-*: batches whose buffers disagree with their lengths; npy-timedelta: numpy calls
    timedelta64 an integer type.
    """
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path)], capture_output=True,
                            text=True, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith("ReindexError: ") and path.name in result.stdout
