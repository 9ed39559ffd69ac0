"""A Hugging Face model checkpoint as pretrained vectors: its input embedding, rows named by its tokenizer.

A directory written by `save_pretrained` (`model.safetensors`, or shards listed in
`model.safetensors.index.json`), or one of those files. Only the embedding tensor is read, through a
safetensors slice; every other tensor of the checkpoint stays on disk.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ReindexError, UsageError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
EMBEDDING_NAMES = ("embed_tokens", "wte", "word_embeddings", "shared")
_EMBEDDING_KEY = re.compile(r"(?:^|\.)(?:" + "|".join(EMBEDDING_NAMES) + r")\.weight$")
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
FORMAT = "hf-model"


@dataclass
class ModelEmbedding:
    """The embedding rows that have a token: `matrix[i]` is the vector of `tokens[i]` (tokenizer id `ids[i]`)."""

    tokens: list[str]
    ids: np.ndarray          # int64, the tokenizer id of each row
    matrix: np.ndarray       # float32 C-contiguous [len(tokens), dim]
    key: str                 # the checkpoint tensor the rows came from
    tokenizer: Any           # tokenizers.Tokenizer stored with the model

    def pieces(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Rows of `matrix` for the pieces this tokenizer splits each text into (no special tokens added)."""
        row_of = np.full(int(self.ids.max()) + 1, -1, dtype=np.int64)
        row_of[self.ids] = np.arange(len(self.ids))
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [row_of[np.asarray(e.ids, dtype=np.int64)] for e in encodings]


def is_hf_model(path: str | os.PathLike) -> bool:
    """A save_pretrained directory, its index file, or a `.safetensors` file that is not a reindex export."""
    path = Path(path)
    if path.is_dir():
        return (path / SINGLE_FILE).is_file() or (path / INDEX_FILE).is_file()
    if path.name.endswith(".safetensors.index.json"):
        return True
    return path.suffix == ".safetensors" and path.is_file() and not _is_reindex_export(path)


def _is_reindex_export(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return "tokens" in (f.metadata() or {})
    except Exception:
        return True  # not readable as safetensors: let the export reader say why


def read_model_embedding(path: str | os.PathLike, *, key: str | None = None) -> ModelEmbedding:
    """Read the input embedding of a checkpoint and name its rows with the tokenizer stored beside it."""
    from ..vocab.tokenizer import load_tokenizer, tokenizer_file, tokens_by_id

    path = Path(path)
    shards, directory = _tensor_files(path)
    key = _embedding_key(shards, path, key)
    if tokenizer_file(directory) is None:
        raise ReindexError("no tokenizer next to the model (tokenizer.json, tokenizer_config.json or vocab.json), "
                           "so its rows have no tokens", path=path,
                           hint="save the tokenizer into the same directory with tokenizer.save_pretrained(DIR)")
    tokenizer = load_tokenizer(directory)
    try:
        by_id = tokens_by_id(tokenizer)
    except ReindexError as e:
        raise ReindexError(e.message, path=directory, hint=e.hint) from e
    ids = np.fromiter(sorted(by_id), dtype=np.int64, count=len(by_id))
    matrix = _read_rows(shards[key], key, int(ids[-1]) + 1 if len(ids) else 0, path=path)
    if ids.shape[0] != matrix.shape[0]:  # ids with no token (holes) have no row here
        matrix = np.ascontiguousarray(matrix[ids])
    return ModelEmbedding(tokens=[by_id[i] for i in ids.tolist()], ids=ids, matrix=matrix, key=key,
                          tokenizer=tokenizer)


def _tensor_files(path: Path) -> tuple[dict[str, Path], Path]:
    """{tensor key: the safetensors file holding it} and the directory the model lives in."""
    directory = path if path.is_dir() else path.parent
    index = path / INDEX_FILE if path.is_dir() else path
    if path.is_dir() and not index.is_file():
        single = path / SINGLE_FILE
        if not single.is_file():
            raise ReindexError(f"no {SINGLE_FILE} or {INDEX_FILE} in this directory", path=path,
                               hint="save the model with model.save_pretrained(DIR) (safetensors), "
                                    "or pass a vector file or a run directory")
        index = single
    if index.name.endswith(".index.json"):
        return {k: directory / v for k, v in read_weight_map(index).items()}, directory
    from safetensors import safe_open

    try:
        with safe_open(str(index), framework="numpy") as f:
            return {k: index for k in f.keys()}, directory
    except Exception as e:
        raise ReindexError(f"cannot read safetensors file: {e}", path=index) from e


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


def _embedding_key(shards: dict[str, Path], path: Path, key: str | None) -> str:
    """The --vectors-key if given, else the one key named like an input embedding."""
    if key is not None:
        if key not in shards:
            near = [k for k in shards if _EMBEDDING_KEY.search(k)] or sorted(shards)[:5]
            raise UsageError(f"--vectors-key {key!r} is not a tensor of this checkpoint "
                             f"(found e.g. {', '.join(near)})", path=path, hint="pass one of its keys")
        return key
    found = sorted(k for k in shards if _EMBEDDING_KEY.search(k))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReindexError(f"no tensor named like an input embedding ({', '.join(EMBEDDING_NAMES)}) "
                           f"among {len(shards)} tensors", path=path, hint="name it with --vectors-key")
    raise UsageError(f"several tensors look like the input embedding: {', '.join(found)}", path=path,
                     hint="pick one with --vectors-key")


def _read_rows(file: Path, key: str, count: int, *, path: Path) -> np.ndarray:
    """The first `count` rows of tensor `key` as float32, read through a slice (nothing else is loaded)."""
    from safetensors import safe_open

    if not file.is_file():
        raise ReindexError(f"shard {file.name} holding {key!r} is missing", path=path,
                           hint="copy every shard the index lists")
    try:
        with safe_open(str(file), framework="numpy") as f:
            piece = f.get_slice(key)
            shape, dtype = piece.get_shape(), piece.get_dtype()
            _check_shape(shape, dtype, key, count, path)
            if dtype != "BF16":
                return np.ascontiguousarray(piece[:count], dtype=np.float32)
        with safe_open(str(file), framework="pt") as f:  # numpy has no bfloat16
            return f.get_slice(key)[:count].float().numpy()
    except ReindexError:
        raise
    except Exception as e:
        raise ReindexError(f"cannot read tensor {key!r} of {file.name}: {e}", path=path) from e


def _check_shape(shape: list[int], dtype: str, key: str, count: int, path: Path) -> None:
    if len(shape) != 2 or dtype not in _FLOAT_DTYPES:
        raise ReindexError(f"tensor {key!r} is {dtype} {shape}, not a float matrix of rows", path=path,
                           hint="name the input embedding with --vectors-key")
    if count > shape[0]:
        raise ReindexError(f"the tokenizer has ids up to {count - 1} but {key!r} has {shape[0]} rows",
                           path=path, hint="resize the model's embeddings, or store the tokenizer it was "
                                           "trained with beside it")


def source_file(path: str | os.PathLike) -> Path:
    """The file the manifest records for an HF model: its index, or its one safetensors file."""
    path = Path(path)
    if path.is_dir():
        for name in (INDEX_FILE, SINGLE_FILE):
            if (path / name).is_file():
                return path / name
    return path


def match_model(path: str | os.PathLike, tokens: Sequence[str], *, key: str | None = None,
                lowercase_fallback: bool = False, **rules: Any) -> Any:
    """`Matched` rows of a checkpoint's embedding; `pieces` splits a new token with the model's tokenizer."""
    from ..matching import match_vectors

    path = Path(path)
    if key is not None and not path.is_dir() and not is_hf_model(path):
        raise UsageError("--vectors-key goes with a Hugging Face model as --vectors", path=path,
                         hint="pass a save_pretrained directory or its model.safetensors")
    embedding = read_model_embedding(path, key=key)
    matched = match_vectors(tokens, embedding.tokens, embedding.matrix, lowercase_fallback=lowercase_fallback,
                            **rules)  # case_fallback, normalize: the rules of reindex.matching
    matched.pieces = embedding.pieces
    matched.stats = {"vectors_read": len(embedding.tokens), "duplicate_vectors_skipped": 0,
                     "vectors_format": FORMAT, "vectors_key": embedding.key}
    return matched
