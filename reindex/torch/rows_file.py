"""The trainable rows of a swapped model in one small safetensors file, with a fingerprint of the frozen rows.

Tensors: `ids` [T] int64 (the model's ids, ascending), `embedding` [T, D], and for an untied head
`head` [T, D]; `head_bias` [T] when the head has a bias. Metadata: format, vocab_size, dim, tied,
and `frozen_sha256`, a hash of every frozen row (embedding, head and bias), so that loading onto
a different base model is refused instead of silently mixing two models.
"""
from __future__ import annotations

import hashlib
import os

import torch
from torch import Tensor

from ..errors import ReindexError
from ._checks import full
from .swap import Swap

from ..formats import HF_TRAINABLE_FORMAT as ROWS_FORMAT  # noqa: E402
_HASH_CHUNK = 1 << 20   # floats per hashed piece (4 MiB)


def frozen_fingerprint(swap: Swap) -> str:
    """sha256 over the frozen rows' bytes (float32, in sorted order), embedding then head and bias."""
    digest = hashlib.sha256()
    parts = [swap.embedding.fixed]
    if swap.head is not None:
        if not swap.tied:
            parts.append(swap.head.rows.fixed)
        if swap.head.bias_fixed is not None:
            parts.append(swap.head.bias_fixed)
    for part in parts:
        flat = part.detach().to("cpu", torch.float32).contiguous().view(-1)
        # Small copies, hashed one after another: no second [V, D] copy, and .numpy() never touches
        # the rows' own storage (it would mark it non-resizable, so merge could not reuse it).
        for start in range(0, flat.numel(), _HASH_CHUNK):
            digest.update(flat[start:start + _HASH_CHUNK].clone().view(torch.uint8).numpy())
    return digest.hexdigest()


def _tensors(swap: Swap) -> dict[str, Tensor]:
    tensors = {"ids": swap.trainable_ids().to("cpu", torch.int64), "embedding": swap.embedding.trainable}
    if swap.head is not None and not swap.tied:
        tensors["head"] = swap.head.rows.trainable
    if swap.head is not None and swap.head.bias_trainable is not None:
        tensors["head_bias"] = swap.head.bias_trainable
    return tensors


def save_rows(swap: Swap, path: str | os.PathLike) -> None:
    """Write the trainable rows of `swap` (and their ids and the frozen rows' fingerprint) to `path`."""
    from safetensors.torch import save_file

    from ..io.atomic import as_new_file, atomic_file
    from ..io.outputs import replacer
    from ..io.tensorfile import canonicalize

    split = swap.embedding
    tensors = {name: full(tensor).to("cpu").contiguous() for name, tensor in _tensors(swap).items()}
    metadata = {"format": ROWS_FORMAT, "format_version": "1", "vocab_size": str(split.num_embeddings),
                "dim": str(split.embedding_dim), "tied": str(swap.tied).lower(),
                "frozen_sha256": frozen_fingerprint(swap)}
    # Only an earlier save_trainable file is replaced, never a file of the user's.
    with atomic_file(path, force=True, replace=replacer("trainable")) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
        canonicalize(temporary)   # sorted header keys: the same rows give the same bytes
        as_new_file(temporary)


def _read(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors.torch import load_file
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(os.fspath(path))
    except Exception as e:  # missing file, corrupt header: safetensors has its own error types
        raise ReindexError(f"cannot read safetensors file: {e}", path=path) from e
    if metadata.get("format") != ROWS_FORMAT or "ids" not in tensors or "embedding" not in tensors:
        raise ReindexError(f"not a {ROWS_FORMAT} file (format {metadata.get('format')!r})", path=path,
                           hint="write it with reindex.hf.save_trainable")
    return tensors, metadata


def read_ids(path: str | os.PathLike) -> Tensor:
    """The ids whose rows the file holds."""
    return _read(path)[0]["ids"]


def load_rows(swap: Swap, path: str | os.PathLike) -> None:
    """Copy the file's rows into `swap`'s trainable rows, after checking ids, shapes and the frozen rows."""
    tensors, metadata = _read(path)
    if not torch.equal(tensors["ids"], swap.trainable_ids().cpu()):
        raise ReindexError(f"the file holds rows for {tensors['ids'].numel()} other ids than this model trains",
                           path=path, hint="call train_only with the same token ids")
    if metadata.get("frozen_sha256") != frozen_fingerprint(swap):
        raise ReindexError("the frozen rows of this model differ from those the file was trained with", path=path,
                           hint="load it onto the same base model (and vocabulary) it was trained from")
    own = _tensors(swap)
    if set(own) != set(tensors):
        raise ReindexError(f"the file holds {sorted(tensors)}, this model needs {sorted(own)}", path=path,
                           hint="a tied model's file cannot load into an untied one, or the other way")
    with torch.no_grad():
        for name, target in own.items():
            if name != "ids":
                target.copy_(tensors[name])
