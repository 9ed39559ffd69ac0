"""The autograd functions behind the split modules: gradients reach the trainable rows only."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class BlockLookup(torch.autograd.Function):
    """Forward: one gather from the block. Backward: a gradient for the trainable rows only."""

    @staticmethod
    def forward(ctx: Any, ids: Tensor, block: Tensor, trainable: Tensor, num_fixed: int,
                pad: int | None, sparse: bool) -> Tensor:
        ctx.save_for_backward(ids)
        ctx.num_fixed, ctx.pad, ctx.sparse, ctx.trainable_shape = num_fixed, pad, sparse, trainable.shape
        return F.embedding(ids, block)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (ids,) = ctx.saved_tensors
        flat = ids.reshape(-1)
        # Only the positions holding trainable ids contribute: the rest of `grad` is never read.
        positions = (flat >= ctx.num_fixed).nonzero().squeeze(1)
        rows = flat.index_select(0, positions).long() - ctx.num_fixed
        grad = grad.reshape(-1, grad.shape[-1]).index_select(0, positions)
        if not ctx.sparse:
            trainable_grad = torch.ops.aten.embedding_dense_backward(
                grad, rows, ctx.trainable_shape[0], -1 if ctx.pad is None else ctx.pad, False)
            return None, None, trainable_grad, None, None, None
        if ctx.pad is not None:
            keep = rows != ctx.pad
            rows, grad = rows[keep], grad[keep]
        # Uncoalesced, like nn.Embedding(sparse=True)'s gradient: the optimizer coalesces if it must.
        trainable_grad = torch.sparse_coo_tensor(rows.unsqueeze(0), grad, ctx.trainable_shape,
                                                 check_invariants=False)
        return None, None, trainable_grad, None, None, None


class BlockLinear(torch.autograd.Function):
    """Forward: logits over the whole [V, D] block. Backward: the exact input gradient, and a weight
    (and bias) gradient for the trainable rows only, O(tokens x trainable x D) rather than x V."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, block: Tensor, trainable: Tensor, num_fixed: int,
                bias: Tensor | None, bias_trainable: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, block)
        ctx.num_fixed = num_fixed
        return F.linear(x, block, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, block = ctx.saved_tensors
        grad_x = grad_trainable = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.matmul(block.to(grad.dtype))
        # The trainable rows are the block's last columns of `grad`: a strided view, no copy.
        rows_grad = grad.reshape(-1, grad.shape[-1])[:, ctx.num_fixed:]
        if ctx.needs_input_grad[2]:
            grad_trainable = rows_grad.t().matmul(x.reshape(-1, x.shape[-1]).to(grad.dtype))
        if ctx.needs_input_grad[5]:
            grad_bias = rows_grad.sum(0)
        return grad_x, None, grad_trainable, None, None, grad_bias


def two_lookups(ids: Tensor, fixed: Tensor, trainable: Tensor, padding_idx: int | None, *, sparse: bool) -> Tensor:
    """What one lookup in [fixed; trainable] gives, with the rows apart: fixed lookup, then trainable positions."""
    num_fixed, flat = fixed.shape[0], ids.reshape(-1)
    if num_fixed == 0:
        return F.embedding(ids, trainable, padding_idx, sparse=sparse)
    out = F.embedding(flat.clamp(max=num_fixed - 1), fixed)
    positions = (flat >= num_fixed).nonzero().squeeze(1)
    pad = None if padding_idx is None or padding_idx < num_fixed else padding_idx - num_fixed
    rows = F.embedding(flat.index_select(0, positions) - num_fixed, trainable, pad, sparse=sparse)
    return out.index_copy(0, positions, rows).view(*ids.shape, fixed.shape[1])
