"""The permutation: a worked example by hand, then properties over random masks."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reindex.errors import ReindexError
from reindex.mapping import (
    build_permutation,
    check_dtype_fits,
    check_permutation,
    first_out_of_range,
    id_dtype_for,
    invert_permutation,
    remap,
)


def test_worked_example_by_hand():
    # original ids:   0      1      2      3      4      5
    # tokens:       <pad>   the    xyzzy  cat    qwop   dog    (xyzzy, qwop have no vector)
    is_fixed = np.array([False, True, False, True, False, True])
    assert build_permutation(is_fixed).tolist() == [1, 3, 5, 0, 2, 4]
    with_pad = build_permutation(is_fixed, pad=0)
    assert with_pad.tolist() == [0, 1, 3, 5, 2, 4]
    assert invert_permutation(with_pad).tolist() == [0, 1, 4, 2, 5, 3]
    data = np.array([[1, 2, 0], [5, 4, 3]])
    assert remap(data, invert_permutation(with_pad)).tolist() == [[1, 4, 0], [3, 5, 2]]


def test_pad_that_has_a_vector_still_goes_first():
    assert build_permutation(np.array([True, True, False]), pad=1).tolist() == [1, 0, 2]


masks = hnp.arrays(bool, st.integers(1, 200))


@given(masks)
def test_permutation_is_a_stable_partition(is_fixed):
    order = build_permutation(is_fixed)
    check_permutation(order)
    num_fixed = int(is_fixed.sum())
    assert is_fixed[order[:num_fixed]].all() and not is_fixed[order[num_fixed:]].any()
    assert (np.diff(order[:num_fixed]) > 0).all() and (np.diff(order[num_fixed:]) > 0).all()


@given(masks, st.data())
def test_inverse_and_remap(is_fixed, data):
    order = build_permutation(is_fixed)
    inverse = invert_permutation(order)
    assert (inverse[order] == np.arange(order.size)).all()
    ids = data.draw(hnp.arrays(np.int64, st.integers(0, 50), elements=st.integers(0, order.size - 1)))
    sorted_ids = remap(ids, inverse)
    assert (sorted_ids == inverse[ids]).all()
    assert (remap(sorted_ids, order) == ids).all()


@pytest.mark.parametrize("bad", [-1, 6, 1000])
def test_out_of_range_names_position_and_value(bad):
    ids = np.array([[0, 1], [2, bad]])
    with pytest.raises(ReindexError, match=rf"at index \[1, 1\]: id {bad} is outside the vocabulary \[0, 6\)"):
        remap(ids, np.arange(6))
    assert first_out_of_range(ids, 6) == (3, bad)


def test_float_ids_are_refused():
    with pytest.raises(ReindexError, match="ids must be integers, got float32"):
        remap(np.zeros(3, np.float32), np.arange(6))


def test_check_permutation_finds_a_repeat():
    with pytest.raises(ReindexError, match="1 never appears"):
        check_permutation(np.array([0, 2, 2]))
    with pytest.raises(ReindexError, match=r"sorted_to_original\[1\] = 7 is outside \[0, 3\)"):
        check_permutation(np.array([0, 7, 1]))


def test_dtypes():
    assert id_dtype_for(2**31) == np.int32 and id_dtype_for(2**31 + 1) == np.int64
    check_dtype_fits(np.int16, 32768)
    with pytest.raises(ReindexError, match="int16 cannot hold ids up to 32768"):
        check_dtype_fits(np.int16, 32769)
