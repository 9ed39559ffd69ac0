"""PEFT (LoRA) and reindex.hf together: the trained rows travel with the adapter, wherever PEFT saves it.

PEFT saves only adapter weights (`adapter_model.safetensors`); Trainer's checkpoints, `save_model`
and TRL's trainers all go through `PeftModel.save_pretrained`, and `resume_from_checkpoint` through
`PeftModel.load_adapter`. On a PeftModel patched by `train_only`, both are wrapped (on that one
instance, never on the class): saving also writes `ROWS_FILE` into the same folder, and loading an
adapter folder that holds one also restores the rows, so resuming gives the uninterrupted run.
`merge_and_unload`/`unload` (on the PeftModel or its LoraModel) put the plain modules back first, so
the base model they return is a plain transformers model (resize, tie_weights and merge all work).
"""
from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from .rows_file import load_rows, save_rows

ROWS_FILE = "reindex_rows.safetensors"
SWAP = "_reindex_swap"   # where train_only keeps a patched model's Swap (in the model's __dict__)
_SAVE, _LOAD = "save_pretrained", "load_adapter"
_UNLOADS = ("merge_and_unload", "unload")


def is_peft_model(model: nn.Module) -> bool:
    """A peft.PeftModel (duck-typed: reindex does not import peft)."""
    return hasattr(model, "peft_config") and hasattr(type(model), _SAVE) and hasattr(type(model), _LOAD)


def attach(model: nn.Module, merge: Callable[[nn.Module], Any]) -> None:
    """Make `model`'s own save_pretrained/load_adapter carry the trained rows too, and its unloads call
    `merge(model)` first (PEFT's unload would otherwise return a base model holding the split modules)."""
    model.__dict__[_SAVE] = types.MethodType(_save_pretrained, model)
    model.__dict__[_LOAD] = types.MethodType(_load_adapter, model)
    for owner in _unload_owners(model):
        for name in _UNLOADS:
            if hasattr(type(owner), name):
                # A partial, not a closure: copy.deepcopy of the model then binds the copies.
                owner.__dict__[name] = functools.partial(_unload, owner, name, model, merge)


def detach(model: nn.Module) -> None:
    for name in (_SAVE, _LOAD):
        model.__dict__.pop(name, None)
    for owner in _unload_owners(model):
        for name in _UNLOADS:
            owner.__dict__.pop(name, None)


def _unload_owners(model: nn.Module) -> list[nn.Module]:
    """The PeftModel and its tuner (LoraModel): users call merge_and_unload on either."""
    tuner = model.__dict__.get("_modules", {}).get("base_model")
    return [model] if tuner is None or tuner is model else [model, tuner]


def _unload(owner: nn.Module, name: str, model: nn.Module, merge: Callable[[nn.Module], Any],
            *args: Any, **kwargs: Any) -> Any:
    if SWAP in model.__dict__:
        merge(model)   # also drops these wrappers
    return getattr(type(owner), name)(owner, *args, **kwargs)


def rows_path(path: str | os.PathLike) -> Path:
    """`path` itself, or the rows file inside it when it is a folder (an adapter folder or checkpoint-N)."""
    path = Path(path)
    return path / ROWS_FILE if path.is_dir() else path


def _save_pretrained(self: nn.Module, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
    result = getattr(type(self), _SAVE)(self, save_directory, *args, **kwargs)
    swap = self.__dict__.get(SWAP)
    if swap is not None and kwargs.get("is_main_process", True):
        save_rows(swap, Path(save_directory) / ROWS_FILE)
    return result


def _load_adapter(self: nn.Module, model_id: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
    result = getattr(type(self), _LOAD)(self, model_id, *args, **kwargs)
    path, swap = Path(model_id) / ROWS_FILE, self.__dict__.get(SWAP)
    if swap is not None and path.is_file():
        load_rows(swap, path)
    return result
