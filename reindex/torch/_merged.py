"""The merged [V, D] weight of a SplitEmbedding, in sorted or original id order (what `.weight` reads)."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import ReindexError
from ._checks import full

if TYPE_CHECKING:
    from .embedding import SplitEmbedding


def cached_weight(split: SplitEmbedding) -> Tensor:
    """The merged weight in forward's order; while someone holds it, reading again returns the same tensor."""
    key = (id(split.trainable), split.trainable._version, id(split.fixed), split.fixed._version)
    cached = split.__dict__.get("_weight_ref")
    weight = cached[1]() if cached is not None and cached[0] == key else None
    if weight is None:
        weight = split.merged_weight(order=split.input)
        # A weak reference: the module never keeps a second [V, D] copy alive on its own.
        split.__dict__["_weight_ref"] = (key, weakref.ref(weight))
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
