"""Parameter counts of a patched model that tell the truth.

The frozen rows are buffers (so no optimizer, DDP or FSDP treats them as trainable), which hides
them from `parameters()`. `num_parameters()` and PEFT's `print_trainable_parameters` would then
report a smaller model and a larger trainable share than the real ones; on a patched model both
count the frozen rows, as an unpatched model with only these rows trainable would.
"""
from __future__ import annotations

import types
from typing import Any

from torch import nn

from .hf_peft import SWAP

_NUM, _NB = "num_parameters", "get_nb_trainable_parameters"


def attach(model: nn.Module) -> None:
    if hasattr(model, _NUM):
        model.__dict__[_NUM] = types.MethodType(_num_parameters, model)
    if hasattr(type(model), _NB):   # a PeftModel (print_trainable_parameters reads this)
        model.__dict__[_NB] = types.MethodType(_nb_trainable_parameters, model)


def detach(model: nn.Module) -> None:
    for name in (_NUM, _NB):
        model.__dict__.pop(name, None)


def _original(model: nn.Module, name: str) -> Any:
    method = getattr(type(model), name, None)
    if method is not None:
        return types.MethodType(method, model)
    inner: Any = model
    return getattr(inner.get_base_model(), name)   # a PeftModel forwards num_parameters to its model


def _num_parameters(self: nn.Module, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
    swap = self.__dict__[SWAP]
    count = _original(self, _NUM)(only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
    if exclude_embeddings:   # transformers skips nn.Embedding weights; the split embedding is not one
        rows = swap.embedding.trainable
        count -= rows.numel() if (rows.requires_grad or not only_trainable) else 0
        return count if only_trainable else count + swap.num_frozen() - swap.embedding.fixed.numel()
    return count if only_trainable else count + swap.num_frozen()


def _nb_trainable_parameters(self: nn.Module) -> tuple[int, int]:
    trainable, total = _original(self, _NB)()
    return trainable, total + self.__dict__[SWAP].num_frozen()
