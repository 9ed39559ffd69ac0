"""SplitLinear: an output layer (logits over a vocabulary) whose fixed rows never train.

Its rows are a `SplitEmbedding`'s block: its own (untied) or the very same module as the input
embedding (tied), so a tied model keeps one trainable Parameter and one copy of the fixed rows.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ReindexError
from ._autograd import BlockLinear
from ._checks import full
from .embedding import SplitEmbedding


class SplitLinear(nn.Module):
    r"""`F.linear(x, W, b)` where only some rows of `W` (and of `b`) train; logits in the model's id order.

    The weight gradient is computed for the trainable rows only (O(tokens x trainable x D)); the
    input gradient is exact; no merged [V, D] matrix is built per step. Rows that are not a suffix
    of the vocabulary cost one gather of the logits into the model's order.

    Args:
        rows: the `SplitEmbedding` holding the rows; tied heads pass the input embedding itself.
        bias: optional [V] bias in the model's id order; only its trainable rows train. Copied.
        tied: share `rows` with the input embedding (not registered here, so it is saved and
            optimised once, where the embedding lives).

    Shape:
        - Input: :math:`(*, D)`.
        - Output: :math:`(*, V)`, logits in original id order.

    >>> head = SplitLinear.from_linear(nn.Linear(2, 3, bias=False), frozen_rows=[0, 2])
    >>> head(torch.ones(1, 2)).shape, head.rows.num_trainable
    (torch.Size([1, 3]), 1)
    """

    bias_fixed: Tensor | None

    def __init__(self, rows: SplitEmbedding, *, bias: Tensor | None = None, tied: bool = False) -> None:
        super().__init__()
        self.tied = tied
        if tied:
            # A plain attribute, not a child: the embedding's Parameter stays the model's only copy.
            object.__setattr__(self, "_tied_rows", rows)
        else:
            self._own_rows = rows
        self.register_buffer("bias_fixed", None)
        self.bias_trainable: nn.Parameter | None = None
        if bias is not None:
            if bias.shape != (rows.num_embeddings,):
                raise ReindexError(f"bias has shape {list(bias.shape)}, the head has {rows.num_embeddings} rows")
            sorted_bias = bias.detach()[self._sorted_to_original(bias.device)].clone()
            self.bias_fixed = sorted_bias[: rows.num_fixed]
            self.bias_trainable = nn.Parameter(sorted_bias[rows.num_fixed:])

    @property
    def rows(self) -> SplitEmbedding:
        return self.__dict__["_tied_rows"] if self.tied else self._own_rows

    @property
    def in_features(self) -> int:
        return self.rows.embedding_dim

    @property
    def out_features(self) -> int:
        return self.rows.num_embeddings

    def extra_repr(self) -> str:
        rows = self.rows
        return (f"in_features={self.in_features}, out_features={self.out_features} ({rows.num_fixed} fixed + "
                f"{rows.num_trainable} trainable), bias={self.bias_trainable is not None}, tied={self.tied}")

    def _sorted_to_original(self, device: torch.device) -> Tensor:
        table = self.rows.original_order
        if table is None:
            return torch.arange(self.rows.num_embeddings, device=device)
        return torch.argsort(table.to(device))

    def forward(self, x: Tensor) -> Tensor:
        rows = self.rows
        block = rows.block()
        if block is None:
            # The rows sit apart (FSDP2 gathers `trainable` into its own buffer): two products, and
            # autograd still gives the trainable rows alone their O(tokens x trainable x D) gradient.
            logits = torch.cat([F.linear(x, rows.fixed.to(x.dtype)), F.linear(x, rows.trainable.to(x.dtype))], -1)
            if self.bias_trainable is not None and self.bias_fixed is not None:
                logits = logits + torch.cat([self.bias_fixed, self.bias_trainable]).to(x.dtype)
            return self._to_model_order(logits)
        bias = None
        if self.bias_trainable is not None and self.bias_fixed is not None:
            bias = torch.cat([self.bias_fixed, self.bias_trainable.detach()]).to(x.dtype)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or rows.trainable.requires_grad
            or (self.bias_trainable is not None and self.bias_trainable.requires_grad))
        if needs_grad:
            logits = BlockLinear.apply(x, block.to(x.dtype), rows.trainable, rows.num_fixed, bias,
                                       self.bias_trainable)
        else:
            logits = F.linear(x, block.to(x.dtype), bias)
        return self._to_model_order(logits)

    def _to_model_order(self, logits: Tensor) -> Tensor:
        # Sorted order -> the model's own order; nothing to do when the trainable rows are a suffix.
        table = self.rows.original_to_sorted
        return logits if table is None else logits.index_select(-1, table)

    # -- the merged matrix -------------------------------------------------------------------------
    @property
    def weight(self) -> Tensor:
        """The merged [V, D] weight in the model's id order (detached; a tied head's is its embedding's)."""
        return self.rows.weight

    @property
    def bias(self) -> Tensor | None:
        """The merged [V] bias in the model's id order (detached), or None."""
        return self.merged_bias()

    def merged_weight(self) -> Tensor:
        """The [V, D] weight in the model's id order (detached)."""
        rows = self.rows
        return rows.merged_weight(order="original" if rows.original_order is not None else "sorted")

    def merged_bias(self) -> Tensor | None:
        """The [V] bias in the model's id order (detached), or None."""
        if self.bias_trainable is None or self.bias_fixed is None:
            return None
        merged = torch.cat([self.bias_fixed, full(self.bias_trainable)])
        table = self.rows.original_order
        return merged if table is None else merged[table]

    def to_linear(self) -> nn.Linear:
        """A plain, fully trainable `nn.Linear` holding the merged weight and bias."""
        weight = self.merged_weight()
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias_trainable is not None,
                           device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            bias = self.merged_bias()
            if linear.bias is not None and bias is not None:
                linear.bias.copy_(bias)
        return linear

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_linear(cls, linear: nn.Linear, frozen_rows: Tensor | Sequence[int], *,
                    in_place: bool = False) -> SplitLinear:
        """Freeze any set of output rows of an `nn.Linear` (untied); logits keep the linear's order.

        `frozen_rows` holds row indices, or is a boolean mask over the rows. `in_place=True` reuses
        `linear.weight`'s memory and scrambles it (see `SplitEmbedding.from_embedding`).
        """
        rows = SplitEmbedding.from_embedding(nn.Embedding.from_pretrained(linear.weight.detach()), frozen_rows,
                                             in_place=in_place)
        return cls(rows, bias=linear.bias)

    @classmethod
    def tied_to(cls, embedding: SplitEmbedding, *, bias: Tensor | None = None) -> SplitLinear:
        """A head sharing `embedding`'s rows (the very same trainable Parameter), as tied models do."""
        return cls(embedding, bias=bias, tied=True)
