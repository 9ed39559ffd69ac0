"""A PEFT adapter with trainable tokens, seen as the model it makes of BASE.

PEFT stores, per module, the new values of the rows it trains (`trainable_tokens_delta`, despite
its name the rows themselves: `get_merged_weights` copies them over the base rows with
`index_copy`, cast to the base's dtype). The tuned embedding is therefore BASE's, with those rows
replaced; nothing else is read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint.tensors import Tensor, read_header
from ..errors import ReindexError, UsageError
from .sources import TOKENIZER_FILE, Source, read_tokens
from .tensors import Matrix

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_DELTA = ".trainable_tokens_delta"


def is_adapter(path: Path) -> bool:
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


def open_adapter(path: Path, base: Source, *, tokenizer: Path | None = None) -> Source:
    """TUNED = BASE with the adapter's trainable token rows; raises ReindexError naming the file."""
    indices = _token_indices(path / ADAPTER_CONFIG)
    weights = path / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ReindexError(f"no {ADAPTER_WEIGHTS} in this adapter folder", path=path,
                           hint="save the adapter with save_pretrained(DIR, safe_serialization=True)")
    deltas = {_module(key): tensor for key, tensor in read_header(weights).items() if key.endswith(_DELTA)}
    if not deltas:
        raise ReindexError(f"no trainable token rows (*{_DELTA}) in this file", path=weights)
    embedding_delta = _delta_for(deltas, base.embedding.name, weights)
    if embedding_delta is None:
        raise ReindexError(f"no trainable token rows for the embedding {base.embedding.name!r} "
                           f"(has {', '.join(sorted(deltas))})", path=weights,
                           hint="pass the adapter's base model as BASE")
    embedding = _replaced(base.embedding, embedding_delta, indices, weights)
    head, tied = base.head, base.tied
    rest = [module for module, tensor in deltas.items() if tensor is not embedding_delta[1]]
    head_delta = _delta_for(deltas, base.head.name, weights) if base.head is not None else \
        ((rest[0], deltas[rest[0]]) if len(rest) == 1 and base.tied else None)
    if head_delta is not None and not (base.tied and _same_bytes(head_delta[1], embedding_delta[1])):
        head = _replaced(base.head or base.embedding, head_delta, indices, weights)
        tied = False
    source = Source(path=path, kind="peft-adapter", embedding=embedding, head=head, tied=tied,
                    tokens=base.tokens, added=base.added, tokenizer=base.tokenizer)
    found = tokenizer or ((path / TOKENIZER_FILE) if (path / TOKENIZER_FILE).is_file() else None)
    if found is not None:
        source.tokens, source.added = read_tokens(found)
        source.tokenizer = found
    return source


def _token_indices(config_file: Path) -> Any:
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        indices = config.get("token_indices") if config.get("peft_type") == "TRAINABLE_TOKENS" \
            else config.get("trainable_token_indices")
    except (OSError, ValueError, AttributeError, RecursionError) as e:
        raise ReindexError(f"cannot read the adapter config: {e}", path=config_file) from e
    if not indices:
        raise ReindexError("this adapter trains no token rows (no trainable_token_indices)", path=config_file,
                           hint="audit the merged model instead: merge_and_unload().save_pretrained(DIR)")
    return indices


def _module(key: str) -> str:
    """`base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta` -> `model.embed_tokens`."""
    module = key[:-len(_DELTA)].removesuffix(".token_adapter")
    return module.removeprefix("base_model.model.")


def _delta_for(deltas: dict[str, Tensor], key: str, weights: Path) -> tuple[str, Tensor] | None:
    stem = key.removesuffix(".weight")
    for module, tensor in deltas.items():
        if module == stem or module.endswith("." + stem) or stem.endswith("." + module):
            return module, tensor
    return None


def _indices_of(indices: Any, module: str, weights: Path) -> list[int]:
    if isinstance(indices, list):
        return indices
    if isinstance(indices, dict):
        for name, ids in indices.items():
            if module == name or module.endswith("." + name):
                return list(ids)
    raise ReindexError(f"the adapter config gives no token indices for {module!r}",
                       path=weights.parent / ADAPTER_CONFIG)


def _replaced(matrix: Matrix, delta: tuple[str, Tensor], indices: Any, weights: Path) -> Matrix:
    module, tensor = delta
    ids = np.asarray(_indices_of(indices, module, weights), dtype=np.int64)
    if tensor.shape != (ids.shape[0], matrix.dim):
        raise ReindexError(f"{tensor.key!r} is {list(tensor.shape)} but the config names {ids.shape[0]} rows "
                           f"of {matrix.dim}", path=weights, hint="save the adapter again")
    if ids.size and (ids.min() < 0 or ids.max() >= matrix.rows):
        raise UsageError(f"the adapter trains id {int(ids.max())} but BASE has {matrix.rows} rows", path=weights,
                         hint="pass the model the adapter was trained on as BASE")
    order = np.argsort(ids, kind="stable")
    return Matrix(parts=matrix.parts, order=matrix.order, replaced=(ids[order], order, tensor))


def _same_bytes(a: Tensor, b: Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    with open(a.file, "rb") as fa, open(b.file, "rb") as fb:
        fa.seek(a.offset)
        fb.seek(b.offset)
        size = a.rows * a.row_bytes
        return fa.read(size) == fb.read(size)
