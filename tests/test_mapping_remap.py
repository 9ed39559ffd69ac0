"""`remap` on numpy arrays and torch tensors: same values, exact errors, `out=`, and light imports."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from reindex import mapping
from reindex.errors import ReindexError
from reindex.mapping import CHUNK_IDS, first_out_of_range, remap

TABLE = np.array([2, 0, 3, 1], dtype=np.int64)   # worked by hand: 0->2, 1->0, 2->3, 3->1


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("in_dtype", ["int32", "int64", "int16", "uint8"])
@pytest.mark.parametrize("out_dtype", ["int32", "int64"])
def test_values_and_dtypes(kind, in_dtype, out_dtype):
    ids = np.array([[3, 0], [1, 2], [2, 2]], dtype=in_dtype)
    if kind == "torch":
        ids = torch.from_numpy(ids)
    got = remap(ids, TABLE, dtype=out_dtype)
    assert type(got) is type(ids)
    assert str(got.dtype).removeprefix("torch.") == out_dtype
    assert got.tolist() == [[1, 2], [0, 3], [3, 3]]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_out_is_filled_and_returned(kind):
    ids = np.arange(4).repeat(3).reshape(4, 3)
    out = np.full((4, 3), -7, dtype=np.int32)
    if kind == "torch":
        ids, out = torch.from_numpy(ids), torch.from_numpy(out)
    assert remap(ids, TABLE, out=out) is out
    assert out.tolist() == [[2] * 3, [0] * 3, [3] * 3, [1] * 3]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [-1, 4, 2**40])
def test_first_bad_id_is_named_with_its_index(kind, bad):
    # The bad id sits in the third numpy chunk and is followed by another bad one: the first is named.
    ids = np.zeros((3, CHUNK_IDS), dtype=np.int64)
    ids[2, 5], ids[2, 9] = bad, 99
    if kind == "torch":
        ids = torch.from_numpy(ids)
    with pytest.raises(ReindexError, match=rf"^at index \[2, 5\]: id {bad} is outside the vocabulary \[0, 4\)$"):
        remap(ids, TABLE)
    assert first_out_of_range(np.asarray(ids), 4) == (2 * CHUNK_IDS + 5, bad)


def test_threads_find_the_first_bad_id_too(monkeypatch):
    monkeypatch.setattr(mapping, "PARALLEL_IDS", CHUNK_IDS)  # split even this small input
    ids = np.zeros(5 * CHUNK_IDS + 3, dtype=np.int32)
    ids[4 * CHUNK_IDS + 1], ids[CHUNK_IDS + 2] = -5, 77  # the later thread finds its bad id first
    with pytest.raises(ReindexError, match=rf"^at index {CHUNK_IDS + 2}: id 77 is outside"):
        remap(ids, TABLE)
    ids[:] = 3
    assert (remap(ids, TABLE) == 1).all()


def test_non_contiguous_and_large_inputs_match_fancy_indexing():
    rng = np.random.default_rng(0)
    table = rng.permutation(1000)
    ids = rng.integers(0, 1000, (3 * CHUNK_IDS + 11, 2))[:, ::-1]  # a strided view
    assert np.array_equal(remap(ids, table), table[ids])
    assert torch.equal(remap(torch.from_numpy(ids.copy()).t(), table), torch.from_numpy(table[ids].T.copy()))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_refusals(kind):
    floats = np.zeros(3, np.float32)
    wrong_out = np.empty(2, np.int64)
    if kind == "torch":
        floats, wrong_out = torch.from_numpy(floats), torch.from_numpy(wrong_out)
    with pytest.raises(ReindexError, match="ids must be integers, got"):
        remap(floats, TABLE)
    with pytest.raises(ReindexError, match="out must be a"):
        remap(np.zeros(3, np.int64) if kind == "numpy" else torch.zeros(3, dtype=torch.int64), TABLE,
              out=wrong_out)
    with pytest.raises(ReindexError, match="int8 cannot hold ids up to 299"):
        remap(np.zeros(3, np.int64) if kind == "numpy" else torch.zeros(3, dtype=torch.int64),
              np.arange(300), dtype="int8")


def test_empty_ids():
    assert remap(np.zeros((0, 5), np.int64), TABLE).shape == (0, 5)
    assert remap(torch.zeros((0, 5), dtype=torch.int64), TABLE).shape == (0, 5)


@pytest.mark.parametrize("module, heavy", [
    ("reindex", ("torch", "pyarrow", "rich", "pandas", "numpy")),
    ("reindex.cli", ("torch", "pyarrow", "rich", "pandas", "numpy")),   # `reindex --help` needs none
    ("reindex.mapping", ("torch", "pyarrow", "rich", "pandas")),
])
def test_import_stays_light(module, heavy):
    # Torch takes 0.5-2.5 s to import, pyarrow 0.1-0.3 s, numpy 0.05-0.3 s: every command would pay it.
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == []


def test_run_keeps_one_converted_table_per_kind_and_dtype():
    from reindex.run import Run

    order = np.array([1, 3, 0, 2])                      # sorted_to_original; original_to_sorted = TABLE
    run = Run(path=None, sorted_to_original=order, num_fixed=2, num_trainable=2, dim=1, manifest={}, metadata={})
    ids = np.array([[3, 0], [1, 2]])
    for _ in range(2):  # the second round uses the kept tables
        assert run.to_sorted(ids).tolist() == [[1, 2], [0, 3]]
        assert run.to_sorted(torch.from_numpy(ids), dtype=torch.int32).dtype == torch.int32
        assert run.to_original(run.to_sorted(torch.from_numpy(ids), dtype="int32")).tolist() == ids.tolist()
        assert run.to_sorted(ids.astype(np.int32)).dtype == np.int32
    assert len(run._lookups) == 5
