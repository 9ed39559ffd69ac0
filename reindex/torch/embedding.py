"""SplitEmbedding: an embedding whose fixed rows live in a buffer and whose trainable rows are the only Parameter.

Both are views of one [V, D] block, so a lookup is one gather (as fast as nn.Embedding's) while
optimizers only ever see the trainable rows.
"""
from __future__ import annotations

import os
from typing import Any, Sequence, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ReindexError
from ..formats import TRAINABLE_FORMAT
from . import _build, _merged, rows_file
from ._autograd import BlockLookup, two_lookups
from ._checks import (
    ID_DTYPES,
    IdOutOfRangeError,
    check_ids,
    check_permutation,
    check_rows,
    normalise_padding_idx,
    shared_block,
)

__all__ = ["IdOutOfRangeError", "SplitEmbedding", "TRAINABLE_FORMAT"]
S = TypeVar("S", bound="SplitEmbedding")


class SplitEmbedding(nn.Module):
    r"""A lookup table over `fixed` rows (a buffer, never trained) then `trainable` rows (the Parameter).

    `forward(ids)` returns what `F.embedding(ids, torch.cat([fixed, trainable]))` would, without
    building that concatenation; gradients (dense, or sparse with `sparse=True`) reach only the
    trainable rows, so no optimizer, weight decay or momentum can move a fixed row.

    Args:
        fixed: [F, D] rows that never change (sorted ids 0..F-1). Copied.
        trainable: [T, D] rows that train (sorted ids F..F+T-1). Copied.
        padding_idx: sorted id whose row gets no gradient (as in `nn.Embedding`).
        sparse: give the trainable rows a sparse gradient (for `SparseAdam` or `SGD`).
        original_to_sorted: optional [V] permutation; when given, `forward` takes original ids.

    Shape:
        - Input: :math:`(*)`, int32 or int64 ids of any shape.
        - Output: :math:`(*, D)`, with the dtype of `fixed`.

    >>> emb = SplitEmbedding(torch.zeros(2, 3), torch.ones(1, 3))
    >>> emb(torch.tensor([[0, 2]])).tolist()
    [[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]]
    """

    fixed: Tensor
    original_to_sorted: Tensor | None
    _export_table: Tensor | None

    def __init__(self, fixed: Tensor, trainable: Tensor, *, padding_idx: int | None = None,
                 sparse: bool = False, original_to_sorted: Tensor | None = None) -> None:
        super().__init__()
        check_rows(fixed, trainable)
        # Both live in one [V, D] block (fixed rows, then trainable rows) so that forward can read
        # any id with a single gather, as nn.Embedding does, while the optimizer sees only a view
        # of the trainable rows: the block is stored once, never concatenated per step.
        self._adopt(torch.cat([fixed.detach(), trainable.detach()]), fixed.shape[0], padding_idx=padding_idx,
                    sparse=sparse, original_to_sorted=original_to_sorted)

    @classmethod
    def _from_block(cls: type[S], block: Tensor, num_fixed: int, **kwargs: Any) -> S:
        """A module whose rows are `block` itself (not copied): fixed rows [:num_fixed], then trainable."""
        check_rows(block[:num_fixed], block[num_fixed:])
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module._adopt(block.detach(), num_fixed, **kwargs)
        return module

    def _adopt(self, block: Tensor, num_fixed: int, *, padding_idx: int | None, sparse: bool,
               original_to_sorted: Tensor | None) -> None:
        vocab_size = block.shape[0]
        self.register_buffer("fixed", block[:num_fixed])
        self.trainable = nn.Parameter(block[num_fixed:])
        self.padding_idx = normalise_padding_idx(padding_idx, vocab_size)
        self.sparse = sparse
        if original_to_sorted is not None:
            original_to_sorted = check_permutation(original_to_sorted, vocab_size, device=block.device)
        # Persistent: the table is part of what the module computes, so checkpoints must carry it.
        self.register_buffer("original_to_sorted", original_to_sorted)
        # The same table when forward takes sorted ids: not saved (forward does not use it), but it
        # lets merged_weight(order="original") export in the user's original order.
        self.register_buffer("_export_table", None, persistent=False)

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def num_fixed(self) -> int:
        return self.fixed.shape[0]

    @property
    def num_trainable(self) -> int:
        return self.trainable.shape[0]

    @property
    def num_embeddings(self) -> int:
        return self.num_fixed + self.num_trainable

    @property
    def embedding_dim(self) -> int:
        return self.fixed.shape[1]

    @property
    def input(self) -> str:
        """"original" if `forward` takes original ids (it carries the lookup table), else "sorted"."""
        return "sorted" if self.original_to_sorted is None else "original"

    # -- nn.Module habits -----------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Re-initialise the trainable rows as `nn.Embedding` does (N(0, 1), padding row zero)."""
        nn.init.normal_(self.trainable)
        with torch.no_grad():
            if self.padding_idx is not None and self.padding_idx >= self.num_fixed:
                self.trainable[self.padding_idx - self.num_fixed].fill_(0)

    def extra_repr(self) -> str:
        s = f"{self.num_fixed} fixed + {self.num_trainable} trainable, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.sparse:
            s += ", sparse=True"
        if self.original_to_sorted is not None:
            s += ", input='original'"
        return s

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dtype not in ID_DTYPES:
            raise ReindexError(f"ids must be int32 or int64, got {ids.dtype}", hint="pass token ids, e.g. ids.long()")
        if ids.device.type != "cpu" or self.num_embeddings == 0:
            # A device-side assert could not be caught and explained; an emptied module (its rows
            # handed back by an in-place merge) would fail with a less clear error.
            self._check_ids(ids)
        try:
            return self._lookup(ids)
        except IndexError as e:
            # The lookups refuse bad ids themselves (on the CPU), so the happy path pays for no
            # extra pass over the ids; only now find the position and say it clearly.
            try:
                self._check_ids(ids)
            except IdOutOfRangeError as clear:
                raise clear from e
            raise

    def _lookup(self, ids: Tensor) -> Tensor:
        if self.original_to_sorted is not None:
            # index_select, not indexing: a negative id must fail, not wrap around.
            ids = self.original_to_sorted.index_select(0, ids.reshape(-1)).view(ids.shape)
        block = self.block()
        if block is None:   # the rows were moved apart (e.g. load_state_dict(assign=True))
            self._check_ids(ids)
            return two_lookups(ids, self.fixed, self.trainable, self.padding_idx, sparse=self.sparse)
        if not (torch.is_grad_enabled() and self.trainable.requires_grad):
            return F.embedding(ids, block)
        pad = self.padding_idx
        pad = None if pad is None or pad < self.num_fixed else pad - self.num_fixed
        return BlockLookup.apply(ids, block, self.trainable, self.num_fixed, pad, self.sparse)

    def block(self) -> Tensor | None:
        """The [V, D] tensor whose rows are `fixed` then `trainable` (sorted order), or None if they sit apart.

        Not a copy: the rows' own memory (detached), for code that reads every row at once (the
        head's logits, a merge handing the memory back). The rows sit apart after
        `load_state_dict(assign=True)` until the next `.to()`, or when FSDP2 shards them.
        """
        fixed, trainable, cached = self.fixed, self.trainable, self.__dict__.get("_cached_block")
        key = (fixed.data_ptr(), trainable.data_ptr(), fixed.shape, trainable.shape, fixed.dtype, trainable.dtype)
        # The cached view keeps its storage alive, so matching pointers mean the same memory.
        if cached is not None and cached[1] == key:
            return cached[0]
        block = shared_block(fixed, trainable)
        self.__dict__["_cached_block"] = None if block is None else (block, key)
        return block

    def _pack(self) -> None:
        """Put `fixed` and `trainable` back into one block (the same Parameter object, new storage)."""
        if self.block() is not None:
            return
        block = torch.cat([self.fixed, self.trainable.detach().to(self.fixed.dtype)])
        self.fixed = block[: self.num_fixed]
        self.trainable.data = block[self.num_fixed:]

    def _apply(self, fn: Any, recurse: bool = True) -> SplitEmbedding:
        # .to() / .half() / .cuda() convert each tensor on its own; re-join them afterwards.
        super()._apply(fn, recurse)
        self._pack()
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_state_weight", None)   # a weak reference cannot be pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # copy.deepcopy and pickle rebuild the tensors one by one; re-join them.
        state.pop("_cached_block", None)
        state.pop("_state_weight", None)
        super().__setstate__(state)
        self._pack()

    def _check_ids(self, ids: Tensor) -> None:
        check_ids(ids, self.num_embeddings, what=f"{self.input} id")

    # -- the merged matrix and the trainable rows alone --------------------------------------------
    @property
    def weight(self) -> Tensor:
        """The [V, D] weight in the order `forward` takes ids: current, and differentiable (see `_merged.live_weight`).

        For code that reads `.weight` itself (TRL's loss, tied-weight helpers, a user's own loss).
        """
        return _merged.live_weight(self)

    def merged_weight(self, *, order: str = "sorted") -> Tensor:
        """The [V, D] matrix (detached), in "sorted" or "original" id order.

        >>> SplitEmbedding(torch.zeros(1, 2), torch.ones(1, 2)).merged_weight().tolist()
        [[0.0, 0.0], [1.0, 1.0]]
        """
        return _merged.merged_weight(self, order=order)

    @property
    def original_order(self) -> Tensor | None:
        """The original->sorted id table when known (from_run, from_embedding), even if `forward` takes sorted ids."""
        if self.original_to_sorted is not None:
            return self.original_to_sorted
        return self._export_table

    def release(self) -> None:
        """Drop the rows (their memory now belongs to someone else, e.g. a merged plain module).

        Any later lookup is refused with IdOutOfRangeError, never answered from stale rows.
        """
        self.fixed = self.fixed.new_empty(0, self.embedding_dim)
        self.trainable.data = self.trainable.data.new_empty(0, self.embedding_dim)
        self.__dict__.pop("_cached_block", None)
        self.__dict__.pop("_state_weight", None)

    def to_embedding(self, *, order: str | None = None) -> nn.Embedding:
        """A plain, fully trainable `nn.Embedding` holding the merged weight (original order if known)."""
        return _merged.to_embedding(self, order=order or self.input)

    def save_trainable(self, path: str | os.PathLike) -> None:
        """Write only the trainable rows: a safetensors file with one float32 tensor `trainable`.

        An existing file is replaced only if an earlier save_trainable wrote it; a crash never
        leaves half a file under `path`.

        emb.save_trainable("runs/demo/trainable.safetensors")
        """
        rows_file.save_split(self, path)

    def load_trainable(self, path: str | os.PathLike) -> None:
        """Read the trainable rows back from `save_trainable`'s file (or an embedding.safetensors)."""
        rows_file.load_split(self, path)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # Accept a plain nn.Embedding checkpoint (`weight`, in the order forward's ids use), so a
        # model saved after the Lightning callback swapped the embedding back can resume.
        _build.plain_state_to_split(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._pack()   # load_state_dict(assign=True) replaces the tensors

    # -- constructors -----------------------------------------------------------------------------
    @classmethod
    def from_run(cls: type[S], path: str | os.PathLike, *, input: str = "sorted", sparse: bool = False) -> S:
        """Load a run directory written by `reindex build` (or its embedding.safetensors).

        With `input="original"` the module carries the original->sorted table and takes original ids.
        The pad token (metadata `pad_id`, a sorted id) becomes `padding_idx`.

        emb = SplitEmbedding.from_run("runs/demo", input="original")
        """
        return _build.from_run(cls, path, input=input, sparse=sparse)

    @classmethod
    def from_embedding(cls: type[S], embedding: nn.Embedding, frozen_rows: Tensor | Sequence[int], *,
                       sparse: bool | None = None, in_place: bool = False) -> S:
        """Freeze any set of rows of an `nn.Embedding`; the result takes the same (original) ids.

        `frozen_rows` holds row indices, or is a boolean mask over the rows. `in_place=True` lets the
        module use the embedding's own memory when no row has to move (the trainable rows are the
        last ones, as after a resize): no second [V, D] copy, and `embedding.weight` (and any view
        of it) then shares the rows, so it sees the trainable rows train. Otherwise the rows are
        copied, and `embedding.weight` is never reordered.

        >>> emb = SplitEmbedding.from_embedding(nn.Embedding(5, 2), [0, 3])
        >>> emb.num_fixed, emb.input
        (2, 'original')
        """
        return _build.from_embedding(cls, embedding, frozen_rows, sparse=sparse, in_place=in_place)
