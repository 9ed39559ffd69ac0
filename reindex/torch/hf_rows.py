"""Writing rows into a Hugging Face model by token id: `set_rows`, and `init_rows` from a reindex run.

Both work on a plain model (before `train_only`) and on a patched one.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ReindexError
from ._merged import write_rows
from .embedding import SplitEmbedding

if TYPE_CHECKING:
    from torch import Tensor, nn


def set_rows(model: nn.Module, token_ids: Tensor | Iterable[int], values: Tensor, *,
             head: Tensor | None = None) -> None:
    """Write rows of the embedding (and of an untied head: `head=`) by the model's token ids, patched or not.

    The way to initialise new rows: `embed.weight[ids] = x` on a patched model cannot reach the rows.

    reindex.hf.set_rows(model, new_ids, torch.stack([mean] * len(new_ids)))
    """
    hf_model: Any = model
    ids = torch.as_tensor(as_ids(token_ids), dtype=torch.long)
    targets = [(hf_model.get_input_embeddings(), values)]
    if head is not None:
        targets.append((hf_model.get_output_embeddings(), head))
    with torch.no_grad():
        for module, rows in targets:
            split = getattr(module, "rows", module)   # a SplitLinear's rows
            if isinstance(split, SplitEmbedding):
                write_rows(split, ids, rows)
            else:
                module.weight[ids.to(module.weight.device)] = rows.to(module.weight.device, module.weight.dtype)


def as_ids(token_ids: Tensor | Iterable[int]) -> Tensor | list[int]:
    """Ids as a tensor or a list: a set, a generator, numpy integers all work."""
    if isinstance(token_ids, torch.Tensor):
        if token_ids.is_meta:
            raise ReindexError("token_ids is a meta tensor (it holds no values)", hint="pass real ids")
        return token_ids
    try:
        return sorted(int(i) for i in token_ids)
    except (TypeError, ValueError) as e:
        raise ReindexError(f"token_ids must be ints, got {type(token_ids).__name__}: {e}") from e


def init_rows(model: nn.Module, run: str | os.PathLike, tokenizer: Any = None) -> list[int]:
    """Put a run's trainable rows (from `reindex build --init pieces|mean|subwords`, or trained) into the
    model's embedding rows of the same tokens; returns the model ids it set.

    With a tokenizer, each row goes to `tokenizer.convert_tokens_to_ids(token)`; without one, to the
    run's original id (a run built from the model's own tokenizer.json). Untied heads keep their rows.

    new_ids = reindex.hf.init_rows(model, "runs/new_tokens", tokenizer)
    model = reindex.hf.train_only(model, new_ids)
    """
    from ..run import load_run  # the run layer, loaded only when a run is read

    loaded = load_run(run)
    tokens = loaded.tokens[loaded.num_fixed:]
    if tokenizer is None:
        ids = [int(i) for i in loaded.sorted_to_original[loaded.num_fixed:]]
    else:
        ids = [_token_id(tokenizer, token, run) for token in tokens]
    hf_model: Any = model
    dim = hf_model.get_input_embeddings().embedding_dim
    if loaded.dim != dim:
        raise ReindexError(f"the run's rows have dimension {loaded.dim}, the model's embedding {dim}", path=run,
                           hint="build the run with --vectors from this model")
    set_rows(model, ids, torch.from_numpy(loaded.trainable.copy()))
    return ids


def _token_id(tokenizer: Any, token: str, run: str | os.PathLike) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or (found == getattr(tokenizer, "unk_token_id", None) and token != tokenizer.unk_token):
        raise ReindexError(f"the run's token {token!r} is not in the tokenizer", path=run,
                           hint="tokenizer.add_tokens(...) and model.resize_token_embeddings(len(tokenizer)) first")
    return int(found)
