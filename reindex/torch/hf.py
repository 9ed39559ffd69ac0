"""Train only some token rows of a Hugging Face model's embedding and output head (optional extra).

    pip install 'reindex-vocab[hf]'

    model = reindex.hf.train_only(model, new_token_ids)   # in place; returns the model
    ...train with any optimizer...
    model.save_pretrained("out")                           # the model's own layout, loads vanilla
    reindex.hf.merge(model)                                # plain modules again
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ReindexError
from .rows_file import load_rows, read_ids, save_rows
from .swap import Swap, swap_in, trainable_mask

if TYPE_CHECKING:
    from torch import Tensor, nn

_SWAP = "_reindex_swap"


def train_only(model: nn.Module, token_ids: Tensor | Sequence[int]) -> nn.Module:
    """Make only the rows `token_ids` of the input embedding and output head trainable, in place.

    Tied heads stay tied (one trainable Parameter); a head bias trains on the same rows; every
    other parameter keeps its requires_grad. Returns `model`.

    model = train_only(model, tokenizer.convert_tokens_to_ids(["<tool>", "</tool>"]))
    """
    if _SWAP in model.__dict__:
        raise ReindexError("train_only was already applied to this model", hint="call reindex.hf.merge(model) first")
    hf_model: Any = model   # a transformers PreTrainedModel (or a PeftModel around one)
    embedding = hf_model.get_input_embeddings()
    head = hf_model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab_size = getattr(embedding, "num_embeddings", None)
    if vocab_size is None:
        raise ReindexError(f"the input embedding is a {type(embedding).__name__}, not an nn.Embedding")
    trainable = trainable_mask(token_ids, vocab_size,
                               hint="call model.resize_token_embeddings(len(tokenizer)) before train_only")
    swap = swap_in(model, embedding, frozen_rows=~trainable, head=head)
    model.__dict__[_SWAP] = swap
    # Resizing would rebuild plain modules around a stale copy; re-tying would replace the split head.
    model.__dict__["resize_token_embeddings"] = _refuse_resize
    model.__dict__["tie_weights"] = _keep_ties
    return model


def merge(model: nn.Module) -> nn.Module:
    """Put back plain modules holding the merged weights (ties restored); returns `model`.

    The merged weights reuse the split rows' memory, so the split modules (and an optimizer's
    view of the trainable rows) are left empty: train again with a new train_only.

    model = merge(model)   # e.g. before model.push_to_hub or a PEFT merge
    """
    swap = _swap_of(model)
    swap.restore(in_place=True)
    for name in (_SWAP, "resize_token_embeddings", "tie_weights"):
        model.__dict__.pop(name, None)
    return model


def trainable_ids(model: nn.Module) -> Tensor:
    """The ids whose rows train, ascending."""
    return _swap_of(model).trainable_ids()


def save_trainable(model: nn.Module, path: str | os.PathLike) -> None:
    """Write only the trainable rows (embedding, untied head, head bias), their ids and the frozen rows' fingerprint.

    reindex.hf.save_trainable(model, "new_tokens.safetensors")
    """
    save_rows(_swap_of(model), path)


def load_trainable(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Read `save_trainable`'s rows into `model` (patching it with the file's ids if needed); returns `model`.

    Refuses a base model whose frozen rows differ from those the file was trained on.
    """
    if _SWAP not in model.__dict__:
        train_only(model, read_ids(path))
    load_rows(_swap_of(model), path)
    return model


def _swap_of(model: nn.Module) -> Swap:
    swap = model.__dict__.get(_SWAP)
    if swap is None:
        raise ReindexError("this model is not patched by reindex.hf.train_only",
                           hint="call train_only(model, ids) first")
    return swap


def _refuse_resize(*args: Any, **kwargs: Any) -> Any:
    raise ReindexError("cannot resize the token embeddings while reindex.hf.train_only is applied",
                       hint="resize before train_only, or call reindex.hf.merge(model) first")


def _keep_ties(*args: Any, **kwargs: Any) -> None:
    """While patched, a tied head already shares the embedding's rows: nothing to re-tie."""
