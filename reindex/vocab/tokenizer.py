"""Hugging Face tokenizers as vocabularies: `tokenizer.json`, or a directory a tokenizer was saved to.

The original id of a token is the id the tokenizer gives it, added tokens included. `tokenizers`
(and, for a directory without `tokenizer.json`, `transformers`) is imported only when one is read.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from ..errors import ReindexError, UsageError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SLOW_FILES = ("vocab.json", "merges.txt")
_ADDED = re.compile(rb'"added_tokens"\s*:\s*\[')
_MODEL = re.compile(rb'"model"\s*:\s*\{')
HINT = "save it with tokenizer.save_pretrained(DIR) or pass its tokenizer.json"
INSTALL_HINT = "pip install 'reindex-vocab[hf]'"


def tokenizer_file(path: Path) -> Path | None:
    """The file a tokenizer directory is read from (tokenizer.json first), or None if it holds none."""
    for name in (TOKENIZER_FILE, CONFIG_FILE, SLOW_FILES[0]):
        if (path / name).is_file():
            return path / name
    return None


def is_tokenizer(path: str | os.PathLike) -> bool:
    """A tokenizer directory, or a JSON file shaped like `tokenizer.json` (a `model` object inside)."""
    path = Path(path)
    if path.is_dir():
        return tokenizer_file(path) is not None
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    if path.name == TOKENIZER_FILE:
        return True
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    # A vocab.json maps tokens to integers; tokenizer.json holds "added_tokens": [...] and "model": {...}.
    return _ADDED.search(head) is not None and _MODEL.search(head) is not None


def load_tokenizer(path: str | os.PathLike) -> Any:
    """A `tokenizers.Tokenizer` from tokenizer.json, or from a directory a tokenizer was saved to."""
    path = Path(path)
    source = tokenizer_file(path) if path.is_dir() else path
    if source is None:
        raise ReindexError(f"no tokenizer here ({TOKENIZER_FILE}, {CONFIG_FILE} or vocab.json + merges.txt)",
                           path=path, hint=HINT)
    try:
        if source.name == CONFIG_FILE:
            return _from_transformers(source.parent)
        if source.name == SLOW_FILES[0] and path.is_dir():
            return _from_vocab_and_merges(path)
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(source))
    except ReindexError:
        raise
    except ImportError as e:  # the [hf] extra is not installed: say which, not "write it again"
        raise UsageError(f"reading a tokenizer needs the `{e.name or 'tokenizers'}` package", path=path,
                         hint=INSTALL_HINT) from e
    except Exception as e:  # tokenizers raises a bare Exception for a malformed file
        reason = shape_problem(source) or " ".join(str(e).split()) or type(e).__name__
        raise ReindexError(f"cannot read the tokenizer: {reason}", path=source,
                           hint="write it again with tokenizer.save_pretrained(DIR)") from e


def shape_problem(source: Path) -> str | None:
    """The first key of a `tokenizer.json` that does not hold what `tokenizers` reads, named; None if
    the file is not JSON or no key is wrong (then the library's own message is the best there is)."""
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return f"the file holds a {type(data).__name__}, expected an object"
    model, added = data.get("model"), data.get("added_tokens", [])
    if not isinstance(model, dict):
        return f"`model` is a {type(model).__name__}, expected an object"
    if not isinstance(added, list) or not all(isinstance(a, dict) for a in added):
        return "`added_tokens` must be a list of objects"
    for i, token in enumerate(added):
        if type(token.get("id")) is not int or not isinstance(token.get("content"), str):
            return f"`added_tokens[{i}]` needs an integer `id` and a string `content`"
    vocab, kind = model.get("vocab"), model.get("type")
    if kind == "Unigram":
        if not isinstance(vocab, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                  for p in vocab):
            return "`model.vocab` of a Unigram model must be a list of [piece, score] pairs"
    elif kind in ("BPE", "WordPiece", "WordLevel") and not (
            isinstance(vocab, dict) and all(type(v) is int for v in vocab.values())):
        return f"`model.vocab` of a {kind} model must be an object of token: id"
    return None


def _from_transformers(directory: Path) -> Any:
    from transformers import AutoTokenizer
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # its advice about tokenizer classes is not ours to print
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    finally:
        logging.set_verbosity(verbosity)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ReindexError(f"{type(tokenizer).__name__} has no `tokenizers` backend", path=directory,
                           hint=HINT)
    return backend


def _from_vocab_and_merges(directory: Path) -> Any:
    """A GPT-2 style directory: byte-level BPE from vocab.json + merges.txt, then added_tokens.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    merges = directory / SLOW_FILES[1]
    if not merges.is_file():
        raise ReindexError(f"vocab.json without {SLOW_FILES[1]}", path=directory, hint=HINT)
    tokenizer = Tokenizer(models.BPE.from_file(str(directory / SLOW_FILES[0]), str(merges)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    added_file = directory / "added_tokens.json"
    if added_file.is_file():
        try:
            added = json.loads(added_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise ReindexError(f"cannot read added tokens: {e}", path=added_file) from e
        if not isinstance(added, dict) or not all(isinstance(k, str) and type(v) is int for k, v in added.items()):
            raise ReindexError("added tokens must be a JSON object of token: id", path=added_file)
        for content, index in sorted(added.items(), key=lambda item: item[1]):
            tokenizer.add_special_tokens([AddedToken(content, special=True)])
            if tokenizer.token_to_id(content) != index:
                raise ReindexError(f"added token {content!r} has id {index} but would get "
                                   f"{tokenizer.token_to_id(content)}", path=added_file,
                                   hint="added tokens must follow vocab.json's ids without gaps")
    return tokenizer


def tokens_by_id(tokenizer: Any) -> dict[int, str]:
    """id -> token of every id the tokenizer assigns, added tokens included; refuses an id given twice."""
    tokens: dict[int, str] = {}
    for token, index in tokenizer.get_vocab(with_added_tokens=True).items():
        if index in tokens:
            raise ReindexError(f"id {index} is given to both {tokens[index]!r} and {token!r}",
                               hint="each id must name one token")
        tokens[index] = token
    return tokens


def read_tokenizer_vocab(path: str | os.PathLike) -> Any:
    """A `Vocab` whose original ids are the tokenizer's ids: `read_tokenizer_vocab("tok/").tokens[0]`."""
    from .base import Vocab

    path = Path(path)
    tokenizer = load_tokenizer(path)
    try:
        by_id = tokens_by_id(tokenizer)
    except ReindexError as e:
        raise ReindexError(e.message, path=path, hint=e.hint) from e
    if not by_id:
        raise ReindexError("the tokenizer has no tokens", path=path, hint=HINT)
    size = max(by_id) + 1
    if len(by_id) != size:
        hole = next(i for i in range(size) if i not in by_id)
        raise _duplicate(tokenizer, hole, by_id, path) or ReindexError(
            f"the tokenizer assigns no token to id {hole} (ids must be exactly 0..{size - 1}, "
            f"{size - len(by_id)} missing)", path=path,
            hint="give every unused id a placeholder token, e.g. tokenizer.add_tokens([...])")
    tokens = [by_id[i] for i in range(size)]
    for index, token in enumerate(tokens):
        if token == "" or "\n" in token or "\r" in token:
            raise ReindexError(f"token {token!r} (id {index}) is empty or holds a line break", path=path,
                               hint="run directories store one token per line; rename it in the tokenizer")
    return Vocab(tokens=tokens, counts=None, format="tokenizer", path=path)


def _duplicate(tokenizer: Any, hole: int, by_id: dict[int, str], path: Path) -> ReindexError | None:
    """An id without a token is most often a piece written twice (a Unigram list, or a vocab object with
    a repeated key): the token map keeps one id, so the other looks missing. Name the duplicate."""
    piece = tokenizer.id_to_token(hole)
    if piece is None and path.is_file():
        piece = _repeated_key(path)
    if piece is None or piece not in by_id.values():
        return None
    ids = [hole] + [i for i, token in by_id.items() if token == piece]
    return ReindexError(f"the tokenizer's vocabulary holds the piece {piece!r} twice "
                        f"(ids {', '.join(map(str, sorted(ids)))})", path=path,
                        hint="each piece must appear once; remove the duplicate and renumber, or retrain")


def _repeated_key(path: Path) -> str | None:
    """The first key repeated inside one JSON object of token: id (json keeps only the last)."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        if not repeated and len(set(keys)) != len(keys) and all(type(v) is int for _, v in items):
            repeated.append(next(k for i, k in enumerate(keys) if k in keys[:i]))
        return dict(items)

    try:
        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
    except (OSError, ValueError, RecursionError):
        return None
    return repeated[0] if repeated else None


def token_texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text each id stands for (`Ġcat` -> ` cat`), as the tokenizer decodes it on its own."""
    return tokenizer.decode_batch([[int(i)] for i in ids], skip_special_tokens=False)


def source_file(path: str | os.PathLike) -> Path:
    """The file the manifest records for a --vocab: a tokenizer directory's tokenizer file, else `path`."""
    path = Path(path)
    if path.is_dir():
        found = tokenizer_file(path)
        if found is not None:
            return found
    return path
