"""Dataset readers/writers, format by format: values, round trips, kept structure, refusals."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reindex.datasets import RemapSpec, remap_dataset, remap_record_batch
from reindex.errors import ReindexError
from reindex.mapping import invert_permutation

# Worked by hand: original id -> sorted id.
TABLE = np.array([2, 0, 3, 1], dtype=np.int64)
INVERSE = invert_permutation(TABLE)


def remap(src: Path, out: Path, table=TABLE, **kw):
    return remap_dataset(src, out, RemapSpec(table, **kw))


# --- .npy -------------------------------------------------------------------------------------

def test_npy_worked_example(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[0, 1], [2, 3]], dtype=np.int32))
    report = remap(tmp_path / "a.npy", tmp_path / "out" / "a.npy")
    result = np.load(tmp_path / "out" / "a.npy")
    assert result.tolist() == [[2, 0], [3, 1]] and result.dtype == np.int32
    assert (report.format, report.num_ids, report.num_rows) == ("npy", 4, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), vocab=st.integers(1, 50), dtype=st.sampled_from(["<i8", "<i4", ">i8", "<u2", "<i2"]),
       fortran=st.booleans(), chunk=st.integers(1, 7))
def test_npy_property_and_byte_identical_inverse(tmp_path_factory, data, vocab, dtype, fortran, chunk):
    from reindex.datasets.npy import remap_npy

    tmp = tmp_path_factory.mktemp("npy")
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    ids = data.draw(hnp.arrays(np.dtype(dtype), shape, elements=st.integers(0, vocab - 1)))
    ids = np.asfortranarray(ids) if fortran else ids
    table = np.random.default_rng(vocab).permutation(vocab)
    np.save(tmp / "x.npy", ids)
    remap_npy(tmp / "x.npy", tmp / "y.npy", RemapSpec(table), chunk=chunk)
    out = np.load(tmp / "y.npy")
    assert out.dtype == ids.dtype and out.shape == ids.shape
    np.testing.assert_array_equal(out, table[ids])
    remap_npy(tmp / "y.npy", tmp / "z.npy", RemapSpec(invert_permutation(table)), chunk=chunk)
    assert (tmp / "z.npy").read_bytes() == (tmp / "x.npy").read_bytes()


def test_npy_id_dtype_and_too_small_dtype(tmp_path):
    np.save(tmp_path / "a.npy", np.array([0, 3], dtype=np.int64))
    remap(tmp_path / "a.npy", tmp_path / "b.npy", id_dtype="int32")
    assert np.load(tmp_path / "b.npy").dtype == np.int32
    np.save(tmp_path / "c.npy", np.array([0, 3], dtype=np.int8))
    with pytest.raises(ReindexError, match=r"c.npy: int8 cannot hold ids up to 299 \(use --id-dtype"):
        remap(tmp_path / "c.npy", tmp_path / "d.npy", table=np.arange(300))


def test_npy_out_of_range_and_negative_named_with_position(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[0, 1], [4, 2]]))
    with pytest.raises(ReindexError, match=r"a.npy: at index \[1, 0\]: id 4 is outside the vocabulary \[0, 4\)"):
        remap(tmp_path / "a.npy", tmp_path / "b.npy")
    np.save(tmp_path / "n.npy", np.array([0, 1, 2, -1]))
    with pytest.raises(ReindexError, match=r"at index 3: id -1 is outside"):
        remap(tmp_path / "n.npy", tmp_path / "m.npy")


def test_npy_float_and_pickled_object_refused(tmp_path):
    np.save(tmp_path / "f.npy", np.array([0.0, 1.0]))
    with pytest.raises(ReindexError, match="ids must be integers, got float64"):
        remap(tmp_path / "f.npy", tmp_path / "g.npy")
    np.save(tmp_path / "o.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ReindexError, match="ids must be integers"):
        remap(tmp_path / "o.npy", tmp_path / "p.npy")


def test_npy_truncated_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4))
    (tmp_path / "t.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-3])
    with pytest.raises(ReindexError, match="truncated .npy"):
        remap(tmp_path / "t.npy", tmp_path / "u.npy")


def test_counts_are_bincount_of_output_ids(tmp_path):
    np.save(tmp_path / "a.npy", np.array([0, 0, 3, 1]))
    counts = np.zeros(4, np.int64)
    remap(tmp_path / "a.npy", tmp_path / "b.npy", counts=counts)
    assert counts.tolist() == [1, 1, 2, 0]  # sorted ids 2, 2, 1, 0


# --- .pt and .safetensors -----------------------------------------------------------------------

def test_pt_tensor_and_dict(tmp_path):
    torch.save(torch.tensor([[0, 3], [1, 2]]), tmp_path / "t.pt")
    remap(tmp_path / "t.pt", tmp_path / "o" / "t.pt")
    assert torch.load(tmp_path / "o" / "t.pt").tolist() == [[2, 1], [0, 3]]
    labels = torch.tensor([5.0, 6.0])
    torch.save({"input_ids": torch.tensor([0, 1], dtype=torch.int32), "labels": labels}, tmp_path / "d.pt")
    report = remap(tmp_path / "d.pt", tmp_path / "o" / "d.pt")
    got = torch.load(tmp_path / "o" / "d.pt")
    assert got["input_ids"].tolist() == [2, 0] and got["input_ids"].dtype == torch.int32
    assert torch.equal(got["labels"], labels) and report.num_ids == 2


def test_pt_round_trip_and_errors(tmp_path):
    x = torch.randint(0, 4, (5, 3))
    torch.save({"input_ids": x, "mask": torch.ones(5, 3)}, tmp_path / "a.pt")
    remap(tmp_path / "a.pt", tmp_path / "b.pt", columns=("input_ids",))
    remap(tmp_path / "b.pt", tmp_path / "c.pt", table=INVERSE)
    assert torch.equal(torch.load(tmp_path / "c.pt")["input_ids"], x)
    with pytest.raises(ReindexError, match=r"no key 'ids'; the file has keys \['input_ids', 'mask'\]"):
        remap(tmp_path / "a.pt", tmp_path / "d.pt", columns=("ids",))
    with pytest.raises(ReindexError, match="key 'mask': ids must be integers"):
        remap(tmp_path / "a.pt", tmp_path / "d.pt", columns=("mask",))
    torch.save({"input_ids": torch.tensor([[0, 1], [1, 9]])}, tmp_path / "bad.pt")
    with pytest.raises(ReindexError, match=r"at key 'input_ids', index \[1, 1\]: id 9 is outside"):
        remap(tmp_path / "bad.pt", tmp_path / "e.pt")


class Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pt_with_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"input_ids": torch.tensor([0]), "x": Evil(str(marker))}, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(ReindexError, match="pickled code is refused"):
        remap(tmp_path / "evil.pt", tmp_path / "out.pt")
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_safetensors_keeps_other_tensors_and_metadata(tmp_path):
    from safetensors.torch import load_file, safe_open, save_file

    mask = torch.ones(2, 2, dtype=torch.bfloat16)
    save_file({"input_ids": torch.tensor([[0, 1], [2, 3]]), "mask": mask}, str(tmp_path / "a.safetensors"),
              metadata={"source": "unit"})
    report = remap(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    got = load_file(str(tmp_path / "b.safetensors"))
    assert got["input_ids"].tolist() == [[2, 0], [3, 1]] and torch.equal(got["mask"], mask)
    with safe_open(str(tmp_path / "b.safetensors"), framework="pt") as f:
        assert f.metadata() == {"source": "unit"}
    assert report.format == "safetensors"
    with pytest.raises(ReindexError, match="no key 'ids'"):
        remap(tmp_path / "a.safetensors", tmp_path / "c.safetensors", columns=("ids",))


# --- Arrow batches, Parquet, IPC ---------------------------------------------------------------

def test_record_batch_nulls_and_hidden_values():
    # Row 1 is a null list whose slot still covers the value 99 (out of range): it is hidden.
    values = pa.array([0, 1, 99, 3, None], pa.int64())
    lists = pa.ListArray.from_arrays(pa.array([0, 2, 3, 5], pa.int32()), values,
                                     mask=pa.array([False, True, False]))
    batch = pa.record_batch({"input_ids": lists, "n": pa.array([1, 2, 3])})
    out = remap_record_batch(batch, RemapSpec(TABLE))
    assert out["input_ids"].to_pylist() == [[2, 0], None, [1, None]]
    assert out["n"].to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("kind", ["list", "large_list", "fixed_size_list", "int", "sliced"])
def test_record_batch_list_kinds(kind):
    base = [[0, 1], [2, 3], [3, 0]]
    if kind == "int":
        arr, expect = pa.array([0, 3, None], pa.int16()), [2, 1, None]
    elif kind == "fixed_size_list":
        arr, expect = pa.array(base, pa.list_(pa.int32(), 2)), [[2, 0], [3, 1], [1, 2]]
    elif kind == "sliced":
        arr, expect = pa.array([[1]] + base, pa.list_(pa.int64())).slice(1), [[2, 0], [3, 1], [1, 2]]
    else:
        t = pa.large_list(pa.int64()) if kind == "large_list" else pa.list_(pa.int64())
        arr, expect = pa.array(base, t), [[2, 0], [3, 1], [1, 2]]
    out = remap_record_batch(pa.record_batch({"input_ids": arr}), RemapSpec(TABLE))
    assert out["input_ids"].to_pylist() == expect and out["input_ids"].type == arr.type


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=5)),
                     max_size=12), large=st.booleans(), start=st.integers(0, 3))
def test_record_batch_property(rows, large, start):
    t = pa.large_list(pa.int32()) if large else pa.list_(pa.int32())
    arr = pa.array([[9]] * start + rows, t).slice(start)  # a sliced array: offsets not at 0
    out = remap_record_batch(pa.record_batch({"input_ids": arr}), RemapSpec(TABLE))
    expect = [None if r is None else [None if v is None else int(TABLE[v]) for v in r] for r in rows]
    assert out["input_ids"].to_pylist() == expect


def test_record_batch_errors_name_row_column_and_value():
    batch = pa.record_batch({"input_ids": pa.array([[0], [1, 2, 7]]), "x": pa.array([1, 2])})
    with pytest.raises(ReindexError, match=r"^f.parquet: at row 1, column 'input_ids', element 2: id 7 is outside"):
        remap_record_batch(batch, RemapSpec(TABLE), where="f.parquet")
    neg = pa.record_batch({"input_ids": pa.array([0, -3])})
    with pytest.raises(ReindexError, match=r"at row 1, column 'input_ids': id -3 is outside"):
        remap_record_batch(neg, RemapSpec(TABLE))
    with pytest.raises(ReindexError, match=r"no column 'ids'; the columns are \['input_ids', 'x'\]"):
        remap_record_batch(batch, RemapSpec(TABLE, columns=("ids",)))
    floats = pa.record_batch({"input_ids": pa.array([[0.5]])})
    with pytest.raises(ReindexError, match="has type list<item: double>; ids must be integers"):
        remap_record_batch(floats, RemapSpec(TABLE))
    with pytest.raises(ReindexError, match="int8 cannot hold ids up to 299"):
        remap_record_batch(pa.record_batch({"input_ids": pa.array([1], pa.int8())}), RemapSpec(np.arange(300)))


def _parquet(path: Path, rows, *, groups: int = 2) -> pa.Table:
    table = pa.table({"input_ids": pa.array(rows, pa.list_(pa.int32())), "label": list(range(len(rows)))})
    table = table.replace_schema_metadata({"origin": "test"})
    pq.write_table(table, path, row_group_size=groups, compression="zstd")
    return table


def test_parquet_keeps_row_groups_schema_metadata_and_round_trips(tmp_path):
    rows = [[0, 1], None, [], [3, None, 2], [1]]
    original = _parquet(tmp_path / "a.parquet", rows)
    report = remap(tmp_path / "a.parquet", tmp_path / "o" / "a.parquet")
    pf = pq.ParquetFile(tmp_path / "o" / "a.parquet")
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [2, 2, 1]
    # (Parquet itself renames the list item field to 'element'; compare with the input as read.)
    assert pf.schema_arrow.equals(pq.read_schema(tmp_path / "a.parquet"), check_metadata=True)
    assert pf.schema_arrow.metadata[b"origin"] == b"test"
    assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
    assert pf.read()["input_ids"].to_pylist() == [[2, 0], None, [], [1, None, 3], [0]]
    assert (report.num_rows, report.num_ids) == (5, 5)
    remap(tmp_path / "o" / "a.parquet", tmp_path / "back.parquet", table=INVERSE)
    assert pq.read_table(tmp_path / "back.parquet").equals(original)


def test_parquet_id_dtype_and_bad_row_position(tmp_path):
    _parquet(tmp_path / "a.parquet", [[0], [1], [2], [3, 4]])
    remap(tmp_path / "a.parquet", tmp_path / "b.parquet", table=np.arange(5), id_dtype="int64")
    assert pq.read_schema(tmp_path / "b.parquet").field("input_ids").type == pa.list_(pa.int64())
    with pytest.raises(ReindexError, match=r"a.parquet: at row 3, column 'input_ids', element 1: id 4"):
        remap(tmp_path / "a.parquet", tmp_path / "c.parquet")


@pytest.mark.parametrize("stream", [False, True])
def test_arrow_ipc_file_and_stream(tmp_path, stream):
    table = pa.table({"input_ids": pa.array([[0, 1], None, [2, 3]]), "t": ["a", "b", "c"]})
    new = pa.ipc.new_stream if stream else pa.ipc.new_file
    with new(str(tmp_path / "a.arrow"), table.schema) as w:
        w.write_table(table, max_chunksize=2)
    report = remap(tmp_path / "a.arrow", tmp_path / "b.arrow")
    open_ = pa.ipc.open_stream if stream else pa.ipc.open_file
    got = open_(str(tmp_path / "b.arrow")).read_all()
    assert got["input_ids"].to_pylist() == [[2, 0], None, [3, 1]] and got["t"].to_pylist() == ["a", "b", "c"]
    assert report.format == ("arrow-stream" if stream else "arrow") and report.num_rows == 3


def test_import_stays_light():
    code = "import sys, reindex.datasets; print('torch' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
