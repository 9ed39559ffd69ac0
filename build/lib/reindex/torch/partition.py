"""Reorder a [V, D] weight into fixed rows then trainable rows (a stable partition), in place when allowed.

Out of place it costs one new [V, D] block next to the original. In place it costs only the
trainable rows ([T, D]) set aside: each fixed row moves to a position at or before its old one,
so the fixed rows are compacted forward run by run, and the trainable rows are written at the end.
"""
from __future__ import annotations

import ctypes

import torch
from torch import Tensor


def partition_rows(weight: Tensor, is_fixed: Tensor, *, in_place: bool = False) -> Tensor:
    """The rows of `weight` with `is_fixed` rows first, then the others, each group in ascending order.

    With `in_place=True` (and a weight that allows it, see `can_partition_in_place`) the result is
    `weight`'s own memory and `weight` is overwritten; otherwise `weight` is left as it was.

    >>> partition_rows(torch.arange(4.).view(4, 1), torch.tensor([False, True, False, True])).view(-1).tolist()
    [1.0, 3.0, 0.0, 2.0]
    """
    weight = weight.detach()
    if not (in_place and can_partition_in_place(weight)):
        order = torch.cat([is_fixed.nonzero().squeeze(1), (~is_fixed).nonzero().squeeze(1)])
        return weight.index_select(0, order)
    trainable_ids = (~is_fixed).nonzero().squeeze(1)
    num_trainable = trainable_ids.shape[0]
    if num_trainable == 0:
        return weight
    saved = weight.index_select(0, trainable_ids)   # the only extra memory: [T, D]
    row_bytes = weight.shape[1] * weight.element_size()
    base = weight.data_ptr()
    # Between trainable ids t[j-1] and t[j] lies a run of fixed rows that moves up by j rows (the
    # number of trainable rows before it). Runs overlap their destinations, so memmove (which
    # handles overlap) moves them; one call per run, so O(T) calls however large V is.
    ends = trainable_ids.tolist() + [weight.shape[0]]
    for shift in range(1, num_trainable + 1):
        start, end = ends[shift - 1] + 1, ends[shift]
        if end > start:
            ctypes.memmove(base + (start - shift) * row_bytes, base + start * row_bytes, (end - start) * row_bytes)
    num_fixed = weight.shape[0] - num_trainable
    # copy_ also bumps the version counter, so autograd refuses a graph that saved the old rows.
    weight[num_fixed:].copy_(saved)
    return weight


def can_partition_in_place(weight: Tensor) -> bool:
    """Whether `weight`'s rows may be moved with memmove: a plain, contiguous, writable CPU tensor."""
    return (type(weight) is Tensor and weight.device.type == "cpu" and weight.dim() == 2
            and weight.is_contiguous() and not weight.is_quantized and weight.numel() > 0
            # Storage torch allocated itself; a buffer or a file mapping (frombuffer, from_file,
            # a memory-mapped checkpoint) may be read-only or belong to someone else.
            and weight.untyped_storage().resizable())


def unpartition_rows_(block: Tensor, is_fixed: Tensor) -> Tensor:
    """Undo `partition_rows` in `block`'s own memory: the rows back in their original order (block is overwritten).

    Needs `can_partition_in_place(block)`; costs the trainable rows ([T, D]) set aside.

    >>> unpartition_rows_(torch.tensor([[1.], [3.], [0.], [2.]]), torch.tensor([False, True, False, True])).view(-1).tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    trainable_ids = (~is_fixed).nonzero().squeeze(1)
    num_trainable = trainable_ids.shape[0]
    if num_trainable == 0:
        return block
    num_fixed = block.shape[0] - num_trainable
    saved = block[num_fixed:].clone()
    row_bytes = block.shape[1] * block.element_size()
    base = block.data_ptr()
    # The inverse of partition_rows' moves, last run first: each run moves down by j rows, into
    # space that the runs after it have already left.
    ends = trainable_ids.tolist() + [block.shape[0]]
    for shift in range(num_trainable, 0, -1):
        start, end = ends[shift - 1] + 1, ends[shift]
        if end > start:
            ctypes.memmove(base + start * row_bytes, base + (start - shift) * row_bytes, (end - start) * row_bytes)
    block.index_copy_(0, trainable_ids, saved)
    return block
