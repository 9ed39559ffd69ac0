"""The SplitEmbedding constructors' work: from a run directory, and from an `nn.Embedding` with chosen rows."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence, TypeVar

import torch
from torch import Tensor, nn

from ..errors import ReindexError
from ..mapping import invert_permutation
from ._checks import check_rows, inverse, rows_to_mask
from .partition import partition_rows, stable_order

if TYPE_CHECKING:
    from .embedding import SplitEmbedding

S = TypeVar("S", bound="SplitEmbedding")


def from_run(cls: type[S], path: str | os.PathLike, *, input: str, sparse: bool) -> S:
    from ..run import read_embedding  # the run layer's reader, loaded only when a run is read

    if input not in ("sorted", "original"):
        raise ReindexError(f"input must be 'sorted' or 'original', got {input!r}")
    tensors, metadata = read_embedding(path)
    fixed = torch.from_numpy(tensors["fixed"])
    trainable = torch.from_numpy(tensors["trainable"])
    try:
        check_rows(fixed, trainable)
    except ReindexError as e:
        raise ReindexError(e.message, path=path, hint="rebuild the run") from e
    pad = metadata.get("pad_id")
    table = torch.from_numpy(invert_permutation(tensors["sorted_to_original"]))
    module = cls(fixed, trainable, padding_idx=None if pad in (None, "") else int(pad), sparse=sparse,
                 original_to_sorted=table if input == "original" else None)
    module.register_buffer("_export_table", table, persistent=False)
    return module


def from_embedding(cls: type[S], embedding: nn.Embedding, frozen_rows: Tensor | Sequence[int], *,
                   sparse: bool | None, in_place: bool) -> S:
    if embedding.max_norm is not None or embedding.scale_grad_by_freq:
        raise ReindexError("max_norm and scale_grad_by_freq are not supported",
                           hint="build the nn.Embedding without them")
    weight = embedding.weight.detach()
    check_rows(weight, weight)
    is_fixed = rows_to_mask(frozen_rows, weight.shape[0], device=weight.device)
    # The stable partition `reindex build` uses: fixed rows first, then trainable rows.
    sorted_to_original = stable_order(is_fixed)
    original_to_sorted = inverse(sorted_to_original)
    identity = bool(torch.equal(sorted_to_original, torch.arange(weight.shape[0], device=weight.device)))
    pad = embedding.padding_idx
    module = cls._from_block(partition_rows(weight, is_fixed, reuse=in_place), int(is_fixed.sum()),
                             padding_idx=None if pad is None else int(original_to_sorted[pad]),
                             sparse=embedding.sparse if sparse is None else sparse,
                             # A prefix of rows needs no table: original ids are already sorted ids.
                             original_to_sorted=None if identity else original_to_sorted)
    module.register_buffer("_export_table", original_to_sorted, persistent=False)
    return module


def plain_state_to_split(split: SplitEmbedding, state_dict: dict[str, Any], prefix: str) -> None:
    """Turn a plain nn.Embedding checkpoint's `weight` (in the order forward's ids use) into `fixed`/`trainable`.

    So a model saved after the Lightning callback swapped the embedding back can resume.
    """
    weight = state_dict.get(prefix + "weight")
    if weight is None or prefix + "trainable" in state_dict:
        return
    del state_dict[prefix + "weight"]
    if split.original_to_sorted is not None:
        weight = weight[inverse(split.original_to_sorted.to(weight.device))]
        state_dict.setdefault(prefix + "original_to_sorted", split.original_to_sorted)
    state_dict[prefix + "fixed"] = weight[: split.num_fixed]
    state_dict[prefix + "trainable"] = weight[split.num_fixed:]
