"""Trained rows in one small safetensors file: written here, read and checked by `reindex.trainable`.

`save_split`/`load_split` hold a SplitEmbedding's trainable rows; `save_rows`/`load_rows` hold a
swapped model's rows (embedding, untied head, head bias) with their ids and a fingerprint of every
frozen row, so that loading onto a different base model is refused instead of silently mixing two.
Formats: see `reindex.trainable`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import Tensor

from ..formats import HF_TRAINABLE_FORMAT, TRAINABLE_FORMAT
from ..io.atomic import as_new_file, atomic_file
from ..run import trainable as rows_format
from ._checks import full

if TYPE_CHECKING:
    from .embedding import SplitEmbedding
    from .swap import Swap

_HASH_CHUNK = 1 << 20   # values per hashed piece (4 MiB as float32)


def write(path: str | os.PathLike, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write `tensors` atomically; an existing file is replaced only if an earlier save_trainable wrote it."""
    from safetensors.torch import save_file

    from ..io.tensorfile import canonicalize

    # Overwriting is the normal case for a checkpoint; a crash never leaves half a file behind.
    with atomic_file(path, force=True, replace=rows_format.replaceable) as temporary:
        save_file({k: v.to("cpu").contiguous() for k, v in tensors.items()}, str(temporary), metadata=metadata)
        canonicalize(temporary)   # sorted header keys: the same rows give the same bytes
        as_new_file(temporary)


def save_split(split: SplitEmbedding, path: str | os.PathLike) -> None:
    """A SplitEmbedding's trainable rows, as float32 (TRAINABLE_FORMAT)."""
    metadata = {"format": TRAINABLE_FORMAT, "format_version": "1", "num_fixed": str(split.num_fixed),
                "num_trainable": str(split.num_trainable), "dim": str(split.embedding_dim)}
    write(path, {"trainable": full(split.trainable).to(torch.float32)}, metadata)


def load_split(split: SplitEmbedding, path: str | os.PathLike) -> None:
    """Copy `save_split`'s rows (or a run's, or a state dict's `*.trainable`) into `split`'s trainable rows."""
    tensors, metadata = rows_format.read_safetensors(path)
    fixed_rows = np.empty((split.num_fixed, 0), np.float32)   # only the count is compared
    rows = rows_format.split_rows(tensors, path=path, shape=(split.num_trainable, split.embedding_dim),
                                  metadata=metadata, fixed=fixed_rows, needed_by="this embedding")
    with torch.no_grad():
        split.trainable.copy_(torch.from_numpy(rows))


def _frozen_parts(swap: Swap) -> list[Tensor]:
    parts = [swap.embedding.fixed]
    if swap.head is not None:
        if not swap.tied:
            parts.append(swap.head.rows.fixed)
        if swap.head.bias_fixed is not None:
            parts.append(swap.head.bias_fixed)
    return parts


def _chunks(parts: list[Tensor], dtype: torch.dtype) -> Iterator[np.ndarray]:
    for part in parts:
        flat = part.detach().reshape(-1)
        # Small copies, hashed one after another: no second [V, D] copy, and .numpy() never touches
        # the rows' own storage (it would mark it non-resizable, so merge could not reuse it).
        for start in range(0, flat.numel(), _HASH_CHUNK):
            yield flat[start:start + _HASH_CHUNK].to("cpu", dtype).to(torch.float32).numpy()


def frozen_fingerprint(swap: Swap, dtype: str | None = None) -> str:
    """sha256 over the frozen rows (embedding, then head and bias) cast to `dtype` (default: their own), as float32."""
    parts = _frozen_parts(swap)
    cast = parts[0].dtype if dtype is None else getattr(torch, dtype)
    return rows_format.fingerprint(_chunks(parts, cast))


def _tensors(swap: Swap) -> dict[str, Tensor]:
    tensors = {"ids": swap.trainable_ids().to("cpu", torch.int64), "embedding": swap.embedding.trainable}
    if swap.head is not None and not swap.tied:
        tensors["head"] = swap.head.rows.trainable
    if swap.head is not None and swap.head.bias_trainable is not None:
        tensors["head_bias"] = swap.head.bias_trainable
    return tensors


def save_rows(swap: Swap, path: str | os.PathLike) -> None:
    """Write the trainable rows of `swap` (and their ids and the frozen rows' fingerprint) to `path`."""
    split = swap.embedding
    dtype = str(split.fixed.dtype).removeprefix("torch.")
    metadata = {"format": HF_TRAINABLE_FORMAT, "format_version": "1", "vocab_size": str(split.num_embeddings),
                "dim": str(split.embedding_dim), "tied": str(swap.tied).lower(), "frozen_dtype": dtype,
                "frozen_sha256": frozen_fingerprint(swap)}
    for coarser in rows_format.COARSER.get(dtype, ()):   # so a base cast to a coarser dtype still loads it
        metadata[f"frozen_sha256_{coarser}"] = frozen_fingerprint(swap, coarser)
    write(path, {name: full(tensor) for name, tensor in _tensors(swap).items()}, metadata)


def read_ids(path: str | os.PathLike) -> Tensor:
    """The ids whose rows a `save_rows` file holds."""
    return torch.from_numpy(rows_format.model_ids(path))


def load_rows(swap: Swap, path: str | os.PathLike) -> None:
    """Copy the file's rows into `swap`'s trainable rows, after checking ids, shapes and the frozen rows."""
    own = _tensors(swap)
    dtype = str(swap.embedding.fixed.dtype).removeprefix("torch.")
    tensors = rows_format.model_rows(path, ids=own["ids"].numpy(), names=set(own) - {"ids"}, dtype=dtype,
                                     fingerprint_as=lambda name: frozen_fingerprint(swap, name))
    with torch.no_grad():
        for name, target in own.items():
            if name != "ids":
                target.copy_(torch.from_numpy(tensors[name]))
