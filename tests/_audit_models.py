"""Checkpoint pairs for the audit tests, and the truth they are checked against: a row-by-row numpy loop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from _hf_models import VOCAB, tiny_model


def write_tokenizer(directory: Path, tokens: list[str], *, added: tuple[str, ...] = ()) -> Path:
    """A WordLevel tokenizer.json: `tokens[i]` has id i, then `added` as added tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=tokens[0]))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if added:
        tokenizer.add_tokens(list(added))
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory / "tokenizer.json"


WORDS = [f"w{i}" for i in range(VOCAB)]


def save(model: torch.nn.Module, directory: Path, *, tokens: list[str] | None = WORDS, added: tuple[str, ...] = (),
         dtype: torch.dtype | None = None, shard: str | None = None) -> Path:
    if dtype is not None:
        model = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(directory, **kwargs)
    if tokens is not None:
        write_tokenizer(directory, tokens, added=added)
    return directory


def nudge(model: torch.nn.Module, rows: list[int], *, by: float = 0.01, head: bool = False) -> None:
    """Move some rows of the embedding (or the head), in place."""
    weight = (model.get_output_embeddings() if head else model.get_input_embeddings()).weight
    with torch.no_grad():
        weight[rows] += by


def pair(tmp_path: Path, family: str, *, embedding_rows=(3, 7, 40), head_rows=(9,), **kwargs) -> tuple[Path, Path]:
    """BASE and TUNED directories: TUNED is BASE with some rows moved."""
    model = tiny_model(family)
    base = save(model, tmp_path / "base", **kwargs)
    nudge(model, list(embedding_rows))
    if head_rows and not model.config.tie_word_embeddings:
        nudge(model, list(head_rows), by=-0.5, head=True)
    return base, save(model, tmp_path / "tuned", **kwargs)


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory, sharded or not."""
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() \
        else ["model.safetensors"]
    out: dict[str, torch.Tensor] = {}
    for name in files:
        out.update(load_file(directory / name))
    return out


def truth(base: torch.Tensor, tuned: torch.Tensor, *, tolerance: float = 0.0) -> tuple[list[int], dict[int, float]]:
    """(changed row ids, their largest change), one row at a time, after torch casts to the coarser dtype."""
    order = [torch.bfloat16, torch.float16, torch.float32, torch.float64]
    dtype = min(base.dtype, tuned.dtype, key=order.index)
    a, b = base.to(dtype), tuned.to(dtype)
    bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    changed, change = [], {}
    for i in range(min(a.shape[0], b.shape[0])):
        row_a, row_b = a[i].view(bits).numpy(), b[i].view(bits).numpy()
        if np.array_equal(row_a, row_b):
            continue
        moved = float(np.max(np.abs(b[i].double().numpy() - a[i].double().numpy())))
        if tolerance == 0 or moved > float(torch.tensor(tolerance, dtype=tuned.dtype).double()):
            changed.append(i)
            change[i] = moved
    return changed, change
