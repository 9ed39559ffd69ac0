"""The files of a Hugging Face checkpoint and the tensors named like its embedding and head.

A checkpoint is a `save_pretrained` directory (`model.safetensors`, or shards listed in
`model.safetensors.index.json`), its index, or one safetensors file. Only headers are read here.
Both `build --vectors MODEL` and `reindex audit` find tensors this way; each passes the name of its
own flag (`--vectors-key`, `--key`, `--head-key`) for the messages.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import ReindexError, UsageError
from .tensors import RAW, Tensor, read_header, read_metadata

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
EMBEDDING_NAMES = ("embed_tokens", "wte", "word_embeddings", "shared", "embed_in")
HEAD_NAMES = ("lm_head", "embed_out")


def _named(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?:^|\.)(?:" + "|".join(names) + r")\.weight$")


EMBEDDING_KEY = _named(EMBEDDING_NAMES)
HEAD_KEY = _named(HEAD_NAMES)


def is_hf_model(path: str | os.PathLike) -> bool:
    """A save_pretrained directory, its index file, or a `.safetensors` file that is not a reindex export."""
    path = Path(path)
    if path.is_dir():
        return (path / SINGLE_FILE).is_file() or (path / INDEX_FILE).is_file()
    if path.name.endswith(".safetensors.index.json"):
        return True
    return path.suffix == ".safetensors" and path.is_file() and not _is_reindex_export(path)


def _is_reindex_export(path: Path) -> bool:
    try:
        return "tokens" in read_metadata(path)
    except Exception:
        return True  # not readable as safetensors: let the export reader say why


def source_file(path: str | os.PathLike) -> Path:
    """The file that stands for a checkpoint (the manifest hashes it): its index, or its one safetensors file."""
    path = Path(path)
    if path.is_dir():
        for name in (INDEX_FILE, SINGLE_FILE):
            if (path / name).is_file():
                return path / name
    return path


def tensor_files(path: Path) -> tuple[dict[str, Path], Path, str]:
    """{tensor key: the file holding it}, the model's directory, and the kind of checkpoint
    ("model", "sharded" or "safetensors")."""
    if path.is_dir():
        if (path / INDEX_FILE).is_file():
            return tensor_files(path / INDEX_FILE)[0], path, "sharded"
        if not (path / SINGLE_FILE).is_file():
            raise ReindexError(f"no {SINGLE_FILE}, {INDEX_FILE} or reindex run here", path=path,
                               hint="save the model with model.save_pretrained(DIR), or pass a run directory")
        return {k: path / SINGLE_FILE for k in read_header(path / SINGLE_FILE)}, path, "model"
    if path.name.endswith(".index.json"):
        return {k: path.parent / v for k, v in read_weight_map(path).items()}, path.parent, "sharded"
    return {k: path for k in read_header(path)}, path.parent, "safetensors"


def read_weight_map(index: Path) -> dict[str, str]:
    """The `weight_map` of a sharded checkpoint's index: tensor name -> shard file name, checked for shape."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ReindexError(f"not a safetensors index (needs a \"weight_map\" object): {e}", path=index) from e
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        found = "no `weight_map`" if not isinstance(data, dict) or "weight_map" not in data else \
            f"`weight_map` is a {type(weight_map).__name__.replace('NoneType', 'null')}"
        raise ReindexError(f"{found}; a safetensors index maps each tensor name to its shard file", path=index,
                           hint="save the model again with model.save_pretrained(DIR)")
    for key, value in weight_map.items():
        if not isinstance(value, str) or not value:
            raise ReindexError(f"`weight_map` maps {key!r} to {value!r}, not a shard file name", path=index,
                               hint="save the model again with model.save_pretrained(DIR)")
    return weight_map


def pick(files: dict[str, Path], key: str | None, *, head: bool = False, path: Path, option: str,
         required: bool = True) -> str | None:
    """`key` if given, else the one tensor named like an input embedding (or, `head`, an output head);
    None when not `required` and none is."""
    pattern, names, what = (HEAD_KEY, HEAD_NAMES, "output head") if head else \
        (EMBEDDING_KEY, EMBEDDING_NAMES, "input embedding")
    if key is not None:
        if key not in files:
            near = [k for k in files if pattern.search(k)] or sorted(files)[:5]
            raise UsageError(f"{option} {key!r} is not a tensor here (found e.g. {', '.join(near)})", path=path,
                             hint="pass one of its keys")
        return key
    found = sorted(k for k in files if pattern.search(k))
    if len(found) > 1:
        raise UsageError(f"several tensors look like the {what}: {', '.join(found)}", path=path,
                         hint=f"pick one with {option}")
    if found:
        return found[0]
    if required:
        raise ReindexError(f"no tensor named like an {what} ({', '.join(names)}) among {len(files)} tensors",
                           path=path, hint=f"name it with {option}")
    return None


def matrix_tensor(files: dict[str, Path], key: str, *, path: Path, option: str) -> Tensor:
    """Where the float matrix `key` lies, from its file's header; refuses a missing shard or another shape."""
    file = files[key]
    if not file.is_file():
        raise ReindexError(f"shard {file.name} holding {key!r} is missing", path=path,
                           hint="copy every shard the index lists")
    tensors = read_header(file)
    if key not in tensors:
        raise ReindexError(f"the index puts {key!r} in {file.name}, which does not hold it", path=path)
    tensor = tensors[key]
    if len(tensor.shape) != 2 or tensor.dtype not in RAW:
        raise ReindexError(f"tensor {key!r} is {tensor.dtype} {list(tensor.shape)}, not a float matrix of rows",
                           path=path, hint=f"name the input embedding with {option}")
    return tensor


def config_ties(directory: Path) -> bool:
    """Whether config.json ties the head to the embedding (transformers' default: yes)."""
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return True
    if not isinstance(config, dict):
        return True
    text = config.get("text_config")
    default = text.get("tie_word_embeddings", True) if isinstance(text, dict) else True
    return bool(config.get("tie_word_embeddings", default))
