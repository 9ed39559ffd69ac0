"""Issue 19, item 12: `Run.to_sorted` / `Run.to_original` take ids of every integer dtype of numpy and
torch (uint16/32/64 tensors included), Python lists (an empty one included), with any integer output
dtype; every refusal is a `ReindexError`, or a `KeyError` where Python users expect one.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from reindex.errors import ReindexError
from reindex.mapping import INTEGER_DTYPES
from reindex.run import load_run

from _runs import make_run

IDS = [[1, 5, 0], [39, 7, 12]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "run"
    make_run(path, vocab_size=40)
    return load_run(path)


def expected(run, method: str, ids) -> np.ndarray:
    table = run.original_to_sorted if method == "to_sorted" else run.sorted_to_original
    return table[np.asarray(ids, dtype=np.int64)]


@pytest.mark.parametrize("method", ["to_sorted", "to_original"])
@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_every_integer_dtype_of_ids_maps_and_keeps_its_dtype(run, method, dtype, kind):
    ids = np.array(IDS, dtype=dtype) if kind == "numpy" else torch.tensor(IDS, dtype=getattr(torch, dtype))
    result = getattr(run, method)(ids)
    assert type(result) is type(ids) and result.dtype == ids.dtype and tuple(result.shape) == (2, 3)
    assert np.array_equal(np.array(result.tolist()), expected(run, method, IDS))   # tolist: torch has no uint32 numpy()
    assert np.array_equal(np.asarray(getattr(run, "to_original" if method == "to_sorted" else "to_sorted")(
        result).tolist()), IDS)   # the round trip


@pytest.mark.parametrize("out_dtype", INTEGER_DTYPES)
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_every_integer_output_dtype_and_out_buffer(run, out_dtype, kind):
    ids: Any
    dtype: Any
    out: Any
    if kind == "numpy":
        ids, dtype, out = np.array(IDS), out_dtype, np.empty((2, 3), dtype=out_dtype)
    else:
        ids, dtype = torch.tensor(IDS), getattr(torch, out_dtype)
        out = torch.empty((2, 3), dtype=dtype)
    assert np.array_equal(np.array(run.to_sorted(ids, dtype=dtype).tolist()), expected(run, "to_sorted", IDS))
    result = run.to_sorted(ids, out=out)
    assert result is out and np.array_equal(np.array(out.tolist()), expected(run, "to_sorted", IDS))


@pytest.mark.parametrize("ids, shape", [([], (0,)), ([[]], (1, 0)), ([[], []], (2, 0)), (3, ()), ([[1, 2]], (1, 2))])
@pytest.mark.parametrize("method", ["to_sorted", "to_original"])
def test_python_lists_an_empty_one_included(run, ids, shape, method):
    result = getattr(run, method)(ids)
    assert isinstance(result, np.ndarray) and result.shape == shape and result.dtype == np.int64
    assert np.array_equal(result, expected(run, method, ids))


REFUSED = {
    "float ids": (lambda: np.array([1.0]), "ids must be integers, got float64"),
    "float tensor": (lambda: torch.tensor([1.0]), "ids must be integers, got torch.float32"),
    "bool ids": (lambda: np.array([True]), "ids must be integers, got bool"),
    "string list": (lambda: ["a"], "ids must be integers, got <U1"),
    "None in a list": (lambda: [1, None], "ids must be integers, got object"),
    "ragged list": (lambda: [[1], [2, 3]], "ids must form a rectangular array"),
    "id too large": (lambda: [40], "id 40 is outside the vocabulary [0, 40)"),
    "negative id": (lambda: np.array([3, -1], dtype=np.int16), "at index 1: id -1 is outside"),
    "torch id too large": (lambda: torch.tensor([[0, 40]]), "at index [0, 1]: id 40 is outside"),
    "uint64 above 2**63": (lambda: torch.tensor([2**63 + 1], dtype=torch.uint64), f"id {2**63 + 1} is outside"),
    "uint32 too large": (lambda: torch.tensor([70000], dtype=torch.uint32), "id 70000 is outside"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("method", ["to_sorted", "to_original"])
def test_bad_ids_are_a_reindex_error(run, case, method):
    make, needle = REFUSED[case]
    with pytest.raises(ReindexError) as error:
        getattr(run, method)(make())
    assert needle in str(error.value)


@pytest.mark.parametrize("dtype, out", [("float32", None), ("nope", None), (torch.float16, None),
                                        (None, np.empty((2, 3))), ("int8", np.empty(3, np.int8))])
def test_bad_output_dtypes_and_buffers_are_a_reindex_error(run, dtype, out):
    with pytest.raises(ReindexError, match="output dtype must be an integer type|out must be"):
        run.to_sorted(np.array(IDS), dtype=dtype, out=out)


def test_an_output_dtype_too_small_for_the_vocabulary_is_a_reindex_error(tmp_path):
    make_run(tmp_path / "big", vocab_size=300, num_fixed=20)
    big = load_run(tmp_path / "big")
    for ids in (np.array([1, 2]), torch.tensor([1, 2])):
        with pytest.raises(ReindexError, match="int8 cannot hold ids up to 299"):
            big.to_sorted(ids, dtype="int8")


def test_unknown_tokens_are_a_key_error_and_bad_orders_a_reindex_error(run):
    with pytest.raises(KeyError, match="'nope' is not in the vocabulary"):
        run.token_id("nope")
    with pytest.raises(KeyError):
        run.token_ids(["tok1", "nope"])
    for call in (lambda: run.token_id("tok1", order="x"), lambda: run.weight(order="x")):
        with pytest.raises(ReindexError, match="order must be 'sorted' or 'original'"):
            call()
