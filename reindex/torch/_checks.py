"""Argument checks and small tensor helpers shared by the split modules."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..errors import ReindexError

ID_DTYPES = (torch.int32, torch.int64)


class IdOutOfRangeError(ReindexError, IndexError):
    """An id outside [0, num_embeddings): both a ReindexError and the IndexError nn.Embedding raises."""


def check_ids(ids: Tensor, vocab_size: int, *, what: str) -> None:
    """Raise IdOutOfRangeError naming the first id outside [0, vocab_size) and its position."""
    if not ids.numel():
        return
    low, high = (int(x) for x in torch.aminmax(ids))
    if low >= 0 and high < vocab_size:
        return
    flat = ids.reshape(-1)
    bad = int(((flat < 0) | (flat >= vocab_size)).nonzero()[0, 0])
    where = f"index {bad}"   # named as reindex.mapping names positions
    if ids.dim() > 1:
        where = "index [" + ", ".join(str(int(i)) for i in torch.unravel_index(torch.tensor(bad), ids.shape)) + "]"
    raise IdOutOfRangeError(f"{what} {int(flat[bad])} is outside the vocabulary [0, {vocab_size})",
                            position=where, hint="ids must come from the same run/vocabulary as this embedding")


def check_rows(fixed: Tensor, trainable: Tensor) -> None:
    if fixed.dim() != 2 or trainable.dim() != 2:
        raise ReindexError(f"fixed and trainable must be 2-D, got shapes {list(fixed.shape)} and "
                           f"{list(trainable.shape)}")
    if fixed.shape[1] != trainable.shape[1]:
        raise ReindexError(f"fixed rows have dimension {fixed.shape[1]} but trainable rows {trainable.shape[1]}")
    if not fixed.is_floating_point() or fixed.dtype != trainable.dtype or fixed.device != trainable.device:
        raise ReindexError(f"fixed ({fixed.dtype}, {fixed.device}) and trainable ({trainable.dtype}, "
                           f"{trainable.device}) must share one floating dtype and device",
                           hint="convert one with .to(...)")


def normalise_padding_idx(padding_idx: int | None, vocab_size: int) -> int | None:
    if padding_idx is None:
        return None
    if not -vocab_size <= padding_idx < vocab_size:
        raise ReindexError(f"padding_idx {padding_idx} is outside the vocabulary [0, {vocab_size})")
    return padding_idx % vocab_size


def check_permutation(table: Tensor, vocab_size: int, *, device: torch.device) -> Tensor:
    table = torch.as_tensor(table, device=device)
    if table.dim() != 1 or table.shape[0] != vocab_size or table.dtype not in ID_DTYPES:
        raise ReindexError(f"original_to_sorted must be a 1-D int tensor of length {vocab_size}, "
                           f"got {table.dtype} {list(table.shape)}")
    if not torch.equal(table.sort().values, torch.arange(vocab_size, device=device, dtype=table.dtype)):
        raise ReindexError("original_to_sorted is not a permutation of 0..V-1")
    return table.long()


def inverse(permutation: Tensor) -> Tensor:
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(permutation.shape[0], device=permutation.device, dtype=permutation.dtype)
    return inverse


def rows_to_mask(rows: Tensor | Sequence[int], vocab_size: int, *, device: torch.device) -> Tensor:
    rows = torch.as_tensor(rows, device=device)
    if rows.dtype == torch.bool:
        if rows.shape != (vocab_size,):
            raise ReindexError(f"a boolean frozen_rows mask needs shape [{vocab_size}], got {list(rows.shape)}")
        return rows
    if rows.is_floating_point() or rows.dim() > 1:
        raise ReindexError(f"frozen_rows must be row indices or a boolean mask, got {rows.dtype} {list(rows.shape)}")
    rows = rows.long()
    if rows.numel() and (int(rows.min()) < -vocab_size or int(rows.max()) >= vocab_size):
        raise ReindexError(f"frozen_rows holds a row outside [0, {vocab_size})")
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    mask[rows] = True
    return mask


def full(tensor: Tensor) -> Tensor:
    """The whole tensor, detached: a sharded DTensor (FSDP2) is gathered first (a collective)."""
    tensor = tensor.detach()
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def shared_block(fixed: Tensor, trainable: Tensor) -> Tensor | None:
    """The [F + T, D] view whose rows are `fixed` then `trainable`, or None unless they lie so in one storage."""
    if (fixed.dtype != trainable.dtype or fixed.device != trainable.device
            or not (fixed.is_contiguous() and trainable.is_contiguous())
            or fixed.untyped_storage().data_ptr() != trainable.untyped_storage().data_ptr()
            or trainable.storage_offset() != fixed.storage_offset() + fixed.numel()):
        return None
    dim = fixed.shape[1]
    return fixed.detach().as_strided((fixed.shape[0] + trainable.shape[0], dim), (dim, 1), fixed.storage_offset())
