"""BASE and TUNED as audit sees them: the input embedding, the output head, and the tokens of their rows.

A checkpoint may be a `save_pretrained` directory, its `model.safetensors`, a sharded index
(`model.safetensors.index.json`), any safetensors file, or a reindex run directory. Only headers are
read here; the rows are read later, a slice at a time (`tensors.take`).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ReindexError, UsageError
from ..formats import EMBEDDING_FILE, EMBEDDING_FORMAT, MANIFEST_FILE
from ..vectors.hf_model import EMBEDDING_NAMES, INDEX_FILE, SINGLE_FILE, read_weight_map
from .tensors import RAW, Matrix, Tensor, read_header, read_metadata

HEAD_NAMES = ("lm_head", "embed_out")
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
_EMBEDDING_KEY = re.compile(r"(?:^|\.)(?:" + "|".join(EMBEDDING_NAMES) + r")\.weight$")
_HEAD_KEY = re.compile(r"(?:^|\.)(?:" + "|".join(HEAD_NAMES) + r")\.weight$")


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
    files, directory, kind = _tensor_files(path)
    embedding_key = _pick(files, key, _EMBEDDING_KEY, path, what="an input embedding",
                          names=EMBEDDING_NAMES, option="--key")
    found_head = _pick(files, head_key, _HEAD_KEY, path, what="an output head", names=HEAD_NAMES,
                       option="--head-key", required=False)
    embedding = Matrix(parts=(_tensor(files, embedding_key, path),))
    head = Matrix(parts=(_tensor(files, found_head, path),)) if found_head else None
    source = Source(path=path, kind=kind, embedding=embedding, head=head,
                    tied=head is None and _config_ties(directory))
    if head is not None and head.dim != embedding.dim:
        raise ReindexError(f"head {found_head!r} has rows of {head.dim} but the embedding {embedding_key!r} "
                           f"of {embedding.dim}", path=path, hint="name the head with --head-key")
    return source


def _tensor_files(path: Path) -> tuple[dict[str, Path], Path, str]:
    """{tensor key: the file holding it}, the model's directory, and which kind of checkpoint it is."""
    if path.is_dir():
        if (path / INDEX_FILE).is_file():
            return _tensor_files(path / INDEX_FILE)[0], path, "sharded"
        if not (path / SINGLE_FILE).is_file():
            raise ReindexError(f"no {SINGLE_FILE}, {INDEX_FILE} or reindex run here", path=path,
                               hint="save the model with model.save_pretrained(DIR), or pass a run directory")
        return {k: path / SINGLE_FILE for k in read_header(path / SINGLE_FILE)}, path, "model"
    if path.name.endswith(".index.json"):
        return {k: path.parent / v for k, v in read_weight_map(path).items()}, path.parent, "sharded"
    return {k: path for k in read_header(path)}, path.parent, "safetensors"


def _pick(files: dict[str, Path], key: str | None, pattern: re.Pattern[str], path: Path, *, what: str,
          names: tuple[str, ...], option: str, required: bool = True) -> str | None:
    """The key given, else the one tensor named like `pattern` (None when not `required` and none is)."""
    if key is not None:
        if key not in files:
            near = [k for k in files if pattern.search(k)] or sorted(files)[:5]
            raise UsageError(f"{option} {key!r} is not a tensor here (found e.g. {', '.join(near)})", path=path,
                             hint="pass one of its keys")
        return key
    found = sorted(k for k in files if pattern.search(k))
    if len(found) > 1:
        raise UsageError(f"several tensors look like {what}: {', '.join(found)}", path=path,
                         hint=f"pick one with {option}")
    if found:
        return found[0]
    if required:
        raise ReindexError(f"no tensor named like {what} ({', '.join(names)}) among {len(files)} tensors",
                           path=path, hint=f"name it with {option}")
    return None


def _tensor(files: dict[str, Path], key: str | None, path: Path) -> Tensor:
    file = files[str(key)]
    if not file.is_file():
        raise ReindexError(f"shard {file.name} holding {key!r} is missing", path=path,
                           hint="copy every shard the index lists")
    tensors = read_header(file)
    if key not in tensors:
        raise ReindexError(f"the index puts {key!r} in {file.name}, which does not hold it", path=path)
    tensor = tensors[str(key)]
    if len(tensor.shape) != 2 or tensor.dtype not in RAW:
        raise ReindexError(f"tensor {key!r} is {tensor.dtype} {list(tensor.shape)}, not a float matrix of rows",
                           path=path, hint="name the input embedding with --key")
    return tensor


def _config_ties(directory: Path) -> bool:
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
