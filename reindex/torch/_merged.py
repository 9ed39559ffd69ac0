"""The merged [V, D] weight of a SplitEmbedding, in sorted or original id order (what `.weight` reads)."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import ReindexError
from ._checks import full

if TYPE_CHECKING:
    from .embedding import SplitEmbedding


class _BlockWeight(torch.autograd.Function):
    """The block itself (a view, no copy) as a tensor whose gradient reaches the trainable rows alone."""

    @staticmethod
    def forward(ctx: Any, block: Tensor, trainable: Tensor, num_fixed: int) -> Tensor:
        ctx.num_fixed = num_fixed
        return block.view_as(block)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return None, grad[ctx.num_fixed:], None


class MergedCopy(Tensor):
    """A merged copy of the rows (their order is not the block's): read it freely; writing it raises,
    since a write would reach no row."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        writes = name in _WRITES or (name.endswith("_") and not name.endswith("__"))
        if writes and args and isinstance(args[0], MergedCopy):
            raise ReindexError(f"`.weight` of a patched model is a merged copy; {name} on it reaches no row",
                               hint="write rows with reindex.hf.set_rows(model, ids, values)")
        with torch._C.DisableTorchFunctionSubclass():   # results are plain tensors
            return func(*args, **(kwargs or {}))


_WRITES = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ipow__"}


def live_weight(split: SplitEmbedding) -> Tensor:
    """The [V, D] weight in forward's order, never stale (whatever the optimizer), and differentiable.

    When forward's order is the block's (no table: the trainable rows are a suffix) it is the block
    itself: no copy, and writes under `torch.no_grad()` reach the rows. Otherwise it is a gathered
    copy that refuses writes. Under autograd, a loss computed from it trains the trainable rows.
    """
    grad = torch.is_grad_enabled() and split.trainable.requires_grad
    block = split.block() if type(split.trainable.data) is Tensor else None   # not a sharded DTensor
    if block is None:
        merged = torch.cat([split.fixed, full(split.trainable) if not grad else split.trainable])
    else:
        merged = _BlockWeight.apply(block, split.trainable, split.num_fixed) if grad else block
    table = split.original_to_sorted
    if table is None:
        return merged
    return merged.index_select(0, table).as_subclass(MergedCopy)


def state_weight(split: SplitEmbedding, state: dict[str, Any]) -> Tensor:
    """The detached weight for `state` (a state dict being built); one tensor per state dict, so a
    tied head shares the embedding's."""
    held = split.__dict__.get("_state_weight")
    if held is not None and held[0] == id(state) and held[1]() is not None:
        return held[1]()
    with torch.no_grad():
        weight = live_weight(split)
    weight = weight.as_subclass(Tensor) if isinstance(weight, MergedCopy) else weight
    split.__dict__["_state_weight"] = (id(state), weakref.ref(weight))
    return weight


def merged_weight(split: SplitEmbedding, *, order: str) -> Tensor:
    if order not in ("sorted", "original"):
        raise ReindexError(f"order must be 'sorted' or 'original', got {order!r}")
    table = split.original_order
    if order == "original" and table is None:
        raise ReindexError("this SplitEmbedding does not know the original order",
                           hint="build it with from_run or from_embedding, or use order='sorted'")
    block = split.block() if type(split.trainable.data) is Tensor else None   # not a sharded DTensor
    if block is None:
        block = torch.cat([split.fixed, full(split.trainable).to(split.fixed.dtype)])
    elif order == "sorted":
        return block.detach().clone()
    # Read the block directly: one new [V, D] tensor, not a concatenation and then a gather.
    return block if table is None or order == "sorted" else block.detach().index_select(0, table)


def to_embedding(split: SplitEmbedding, *, order: str) -> nn.Embedding:
    """A plain, fully trainable `nn.Embedding` holding the merged weight in `order`."""
    weight = split.merged_weight(order=order).clone()
    pad, table = split.padding_idx, split.original_order
    if pad is not None and order == "original" and table is not None:
        pad = int((table == pad).nonzero()[0, 0])
    return nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=pad, sparse=split.sparse)


def write_rows(split: SplitEmbedding, ids: Tensor, values: Tensor) -> None:
    """Set the rows of `ids` (in forward's id order, fixed or trainable) to `values`, in the rows' own memory."""
    if values.shape != (ids.shape[0], split.embedding_dim):
        raise ReindexError(f"values have shape {list(values.shape)}, the rows need [{ids.shape[0]}, "
                           f"{split.embedding_dim}]")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= split.num_embeddings):
        raise ReindexError(f"an id is outside the vocabulary [0, {split.num_embeddings})")
    device = split.fixed.device
    ids = ids.to(device)
    rows = ids if split.original_to_sorted is None else split.original_to_sorted[ids]
    values = values.to(device, split.fixed.dtype)
    with torch.no_grad():
        fixed, trainable = rows < split.num_fixed, rows >= split.num_fixed
        split.fixed[rows[fixed]] = values[fixed]
        split.trainable[rows[trainable] - split.num_fixed] = values[trainable]
