"""A Hugging Face model checkpoint as pretrained vectors: its input embedding, rows named by its tokenizer.

A directory written by `save_pretrained` (`model.safetensors`, or shards listed in
`model.safetensors.index.json`), or one of those files (found and read by `reindex.checkpoint`).
Only the embedding's rows are read; every other tensor of the checkpoint stays on disk.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..checkpoint.files import is_hf_model, matrix_tensor, pick, tensor_files
from ..checkpoint.tensors import read_rows
from ..errors import ReindexError, UsageError

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


def read_model_embedding(path: str | os.PathLike, *, key: str | None = None) -> ModelEmbedding:
    """Read the input embedding of a checkpoint and name its rows with the tokenizer stored beside it."""
    from ..vocab.tokenizer import load_tokenizer, tokenizer_file, tokens_by_id

    path = Path(path)
    files, directory, _ = tensor_files(path)
    key = pick(files, key, path=path, option="--vectors-key")
    assert key is not None  # required
    tensor = matrix_tensor(files, key, path=path, option="--vectors-key")
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
    count = int(ids[-1]) + 1 if len(ids) else 0
    if count > tensor.rows:
        raise ReindexError(f"the tokenizer has ids up to {count - 1} but {key!r} has {tensor.rows} rows",
                           path=path, hint="resize the model's embeddings, or store the tokenizer it was "
                                           "trained with beside it")
    matrix = read_rows(tensor, count)
    if ids.shape[0] != matrix.shape[0]:  # ids with no token (holes) have no row here
        matrix = np.ascontiguousarray(matrix[ids])
    return ModelEmbedding(tokens=[by_id[i] for i in ids.tolist()], ids=ids, matrix=matrix, key=key,
                          tokenizer=tokenizer)


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
