"""BASE and TUNED as audit sees them: the input embedding, the output head, and the tokens of their rows.

A checkpoint may be a `save_pretrained` directory, its `model.safetensors`, a sharded index
(`model.safetensors.index.json`), any safetensors file, or a reindex run directory. Only headers are
read here; the rows are read later, a slice at a time (`tensors.take`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint.files import config_ties, matrix_tensor, pick, tensor_files
from ..checkpoint.tensors import read_header, read_metadata
from ..errors import ReindexError, UsageError
from ..formats import EMBEDDING_FILE, EMBEDDING_FORMAT, MANIFEST_FILE
from .tensors import Matrix

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class Source:
    """One side of an audit. `tokens[i]` names row i (None: the tokenizer has no token for it)."""

    path: Path
    kind: str                     # "model", "safetensors", "sharded", "run" or "peft-adapter"
    embedding: Matrix
    head: Matrix | None           # None: no head tensor (see `tied`)
    tied: bool                    # the head is the embedding
    tokens: list[str | None] | None = None
    added: list[str] = field(default_factory=list)   # the tokenizer's added tokens
    tokenizer: Path | None = None
    notes: list[str] = field(default_factory=list)


def open_source(path: str | os.PathLike, *, key: str | None = None, head_key: str | None = None,
                tokenizer: str | os.PathLike | None = None) -> Source:
    """Find the embedding (and head) of a checkpoint or run; raises ReindexError naming the path."""
    path = Path(path)
    if not path.exists():
        raise ReindexError("no such file or directory", path=path)
    if _is_run(path):
        source = _run_source(path if path.is_dir() else path.parent)
    else:
        source = _checkpoint_source(path, key=key, head_key=head_key)
    if tokenizer is not None or source.tokens is None:
        found = Path(tokenizer) if tokenizer is not None else _beside(source.path, TOKENIZER_FILE)
        if found is not None:
            source.tokens, source.added = read_tokens(found)
            source.tokenizer = found
    return source


def _is_run(path: Path) -> bool:
    if path.is_dir():
        return (path / MANIFEST_FILE).is_file() and (path / EMBEDDING_FILE).is_file()
    return path.name == EMBEDDING_FILE and (path.parent / MANIFEST_FILE).is_file() \
        and read_metadata(path).get("format") == EMBEDDING_FORMAT


def _run_source(directory: Path) -> Source:
    """A run's rows in original id order: row i is the vector of the token with original id i."""
    from ..run import load_run

    run = load_run(directory)
    tensors = read_header(directory / EMBEDDING_FILE)
    matrix = Matrix(parts=(tensors["fixed"], tensors["trainable"]), order=run.original_to_sorted)
    return Source(path=directory, kind="run", embedding=matrix, head=None, tied=False,
                  tokens=list(run.original_tokens), tokenizer=directory / "vocab.txt")


def _checkpoint_source(path: Path, *, key: str | None, head_key: str | None) -> Source:
    files, directory, kind = tensor_files(path)
    embedding_key = pick(files, key, path=path, option="--key")
    found_head = pick(files, head_key, head=True, path=path, option="--head-key", required=False)
    assert embedding_key is not None  # required
    embedding = Matrix(parts=(matrix_tensor(files, embedding_key, path=path, option="--key"),))
    head = Matrix(parts=(matrix_tensor(files, found_head, path=path, option="--key"),)) if found_head else None
    source = Source(path=path, kind=kind, embedding=embedding, head=head,
                    tied=head is None and config_ties(directory))
    if head is not None and head.dim != embedding.dim:
        raise ReindexError(f"head {found_head!r} has rows of {head.dim} but the embedding {embedding_key!r} "
                           f"of {embedding.dim}", path=path, hint="name the head with --head-key")
    return source


def _beside(path: Path, name: str) -> Path | None:
    found = (path if path.is_dir() else path.parent) / name
    return found if found.is_file() else None


def read_tokens(path: Path) -> tuple[list[str | None], list[str]]:
    """(token of each id, or None where the tokenizer gives none; the added tokens) of a tokenizer.json."""
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"no {TOKENIZER_FILE} here", path=path, hint="pass a tokenizer.json or its directory")
    tokenizer = _load_tokenizer(file)
    by_token: dict[str, int] = tokenizer.get_vocab(with_added_tokens=True)
    tokens: list[str | None] = [None] * (max(by_token.values(), default=-1) + 1)
    for token, index in by_token.items():
        tokens[index] = token
    added = [entry.content for entry in tokenizer.get_added_tokens_decoder().values()]
    return tokens, added


def _load_tokenizer(file: Path) -> Any:
    """The one tokenizer reader: a malformed file names its key, a missing [hf] extra its install command."""
    from ..vocab.tokenizer import load_tokenizer

    return load_tokenizer(file)
