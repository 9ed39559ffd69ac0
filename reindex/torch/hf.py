"""Train only some token rows of a Hugging Face model's embedding and output head (optional extra).

    pip install 'reindex-vocab[hf]'

    model = reindex.hf.train_only(model, new_token_ids)   # in place; returns the model
    ...train with any optimizer (built after train_only)...
    model.save_pretrained("out")                           # the model's own layout, loads vanilla
    reindex.hf.merge(model)                                # plain modules again
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ReindexError
from . import hf_counts, hf_peft
from .embedding import SplitEmbedding
from .hf_peft import ROWS_FILE, SWAP
from .hf_rows import as_ids, init_rows, set_rows
from .rows_file import load_rows, read_ids, save_rows
from .swap import Swap, swap_in, trainable_mask

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["ROWS_FILE", "init_rows", "load_trainable", "merge", "save_trainable", "set_rows", "train_only",
           "trainable_ids"]
_FROZEN = "_reindex_frozen"   # {parameter name: requires_grad before train_only froze it}


def train_only(model: nn.Module, token_ids: Tensor | Iterable[int], *, freeze_rest: bool = True) -> nn.Module:
    """Make the rows `token_ids` of the input embedding and output head trainable, and (by default) only them.

    Tied heads stay tied (one trainable Parameter); a head bias trains on the same rows. With
    `freeze_rest=True` every other parameter stops requiring grad until `merge` (on a PeftModel,
    the adapters keep theirs, so LoRA + new rows is one call after `get_peft_model`); pass
    `freeze_rest=False` to fine-tune the rest as well. Build the optimizer after this call.
    Returns `model`.

    model = train_only(model, tokenizer.convert_tokens_to_ids(["<tool>", "</tool>"]))
    """
    if SWAP in model.__dict__:
        raise ReindexError("train_only was already applied to this model", hint="call reindex.hf.merge(model) first")
    hf_model: Any = model   # a transformers PreTrainedModel (or a PeftModel around one)
    embedding = hf_model.get_input_embeddings()
    if isinstance(embedding, SplitEmbedding):
        raise ReindexError("the model inside is already patched by train_only (before get_peft_model?)",
                           hint="call reindex.hf.merge on the base model, then train_only on the PeftModel")
    head = hf_model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab_size = getattr(embedding, "num_embeddings", None)
    if vocab_size is None:
        raise ReindexError(f"the input embedding is a {type(embedding).__name__}, not an nn.Embedding")
    trainable = trainable_mask(as_ids(token_ids), vocab_size,
                               hint="call model.resize_token_embeddings(len(tokenizer)) before train_only")
    swap = swap_in(model, embedding, frozen_rows=~trainable, head=head)
    model.__dict__[SWAP] = swap
    if freeze_rest and not hf_peft.is_peft_model(model):
        keep = {id(p) for p in swap.trainable_parameters()}
        model.__dict__[_FROZEN] = {name: p.requires_grad for name, p in model.named_parameters() if id(p) not in keep}
        for param in model.parameters():
            if id(param) not in keep:
                param.requires_grad_(False)
    swap.keep(swap.embedding.register_forward_pre_hook(_refuse_frozen_rows))
    if hf_peft.is_peft_model(model):
        hf_peft.attach(model, merge)
    hf_counts.attach(model)
    # Resizing would rebuild plain modules around a stale copy; re-tying would replace the split head.
    model.__dict__["resize_token_embeddings"] = _refuse_resize
    model.__dict__["tie_weights"] = _keep_ties
    return model


def merge(model: nn.Module) -> nn.Module:
    """Put back plain modules holding the merged weights (ties restored, requires_grad as before); returns `model`.

    The split modules (and an optimizer's view of the trainable rows) are left empty: train
    again with a new train_only.

    model = merge(model)   # e.g. before model.push_to_hub or a PEFT merge_and_unload
    """
    swap = _swap_of(model)
    swap.restore(in_place=True)
    frozen = model.__dict__.pop(_FROZEN, {})
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(frozen[name])
    hf_peft.detach(model)
    hf_counts.detach(model)
    for name in (SWAP, "resize_token_embeddings", "tie_weights"):
        model.__dict__.pop(name, None)
    return model


def trainable_ids(model: nn.Module) -> Tensor:
    """The ids whose rows train, ascending."""
    return _swap_of(model).trainable_ids()


def save_trainable(model: nn.Module, path: str | os.PathLike) -> None:
    """Write only the trainable rows (embedding, untied head, head bias), their ids and the frozen rows' fingerprint.

    Warns when other parameters train too: the file does not hold them.

    reindex.hf.save_trainable(model, "new_tokens.safetensors")
    """
    swap = _swap_of(model)
    keep = {id(p) for p in swap.trainable_parameters()}
    others = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in keep]
    if others:
        warnings.warn(f"save_trainable writes only the new rows to {os.fspath(path)}; {len(others)} other "
                      f"parameters train (e.g. {others[0]}) and are not in it: save them with "
                      "model.save_pretrained", stacklevel=2)
    save_rows(swap, path)


def load_trainable(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Read `save_trainable`'s rows into `model` (patching it with the file's ids if needed); returns `model`.

    `path` may be the file, or a folder holding `ROWS_FILE` (a PEFT adapter folder, a checkpoint).
    Refuses a base model whose frozen rows differ from those the file was trained on (compared
    in the coarser dtype when the base was cast); a refused load leaves the model as it was.
    """
    path = hf_peft.rows_path(path)
    patched_here = SWAP not in model.__dict__
    if patched_here:
        train_only(model, read_ids(path))
    try:
        load_rows(_swap_of(model), path)
    except BaseException:
        if patched_here:
            merge(model)
        raise
    return model


def _swap_of(model: nn.Module) -> Swap:
    swap = model.__dict__.get(SWAP)
    if swap is None:
        raise ReindexError("this model is not patched by reindex.hf.train_only",
                           hint="call train_only(model, ids) first")
    return swap


def _refuse_frozen_rows(module: SplitEmbedding, args: Any) -> None:
    """Training with frozen new rows: get_peft_model after train_only froze them (PEFT freezes all but adapters)."""
    if module.training and torch.is_grad_enabled() and not module.trainable.requires_grad:
        raise ReindexError("the new rows are frozen while training (get_peft_model freezes every parameter "
                           "that is not an adapter's)",
                           hint="call reindex.hf.train_only on the PeftModel, after get_peft_model")


def _refuse_resize(*args: Any, **kwargs: Any) -> Any:
    raise ReindexError("cannot resize the token embeddings while reindex.hf.train_only is applied",
                       hint="resize before train_only, or call reindex.hf.merge(model) first")


def _keep_ties(*args: Any, **kwargs: Any) -> None:
    """While patched, a tied head already shares the embedding's rows: nothing to re-tie."""
