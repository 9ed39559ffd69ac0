"""Vocabulary readers: one token per line, `token<TAB>count` lines, or a JSON object token -> id.

The original id of a token is its line number (0-based) or, for JSON, the id the object gives.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ReindexError
from ..io.compression import EXTRACT, detect_archive, detect_compression
from .base import Vocab

_COUNTED = re.compile(r"^(.*)\t *(\d+) *$", re.DOTALL)  # spaces around a count are an editor's, not data
#: A first line whose last tab-separated field looks like a number (even a bad one: -3, 1.5, 1e9)
#: makes the file `token<TAB>count`; every line is then checked, so a bad count is an error, not
#: part of a token.
_COUNT_LIKE = re.compile(r"^.*\t\s*[-+]?(\d|\.\d)[^\t]*$", re.DOTALL)
_INT64_MAX = (1 << 63) - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_lines(text: str, *, path: str | os.PathLike = "<vocab>") -> Vocab:
    """Parse a line-per-token vocabulary; `token<TAB>count` lines if the first line has a count.

    >>> parse_lines("the\\t10\\ncat\\t3\\n").tokens
    ['the', 'cat']
    """
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines:
        raise ReindexError("the vocabulary is empty", path=path, hint="give one token per line")
    counted = _COUNT_LIKE.match(lines[0]) is not None
    tokens, counts = (_split_counts(lines, path) if counted else (lines, None))
    _check_tokens(tokens, path)
    if "\r" in text or _SURROGATE.search(text):  # one scan of the text; tokens only when needed
        for i, token in enumerate(tokens):
            _check_storable(token, path, line=i + 1)
    return Vocab(tokens=tokens, counts=counts, format="counts" if counted else "lines", path=Path(path))


def _split_counts(lines: list[str], path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    tokens: list[str] = []
    counts = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        match = _COUNTED.match(line)
        if match is None:
            count = line.rsplit("\t", 1)[-1] if "\t" in line else None
            if count is not None and re.fullmatch(r"\s*-\d+\s*", count):
                raise ReindexError(f"count {count.strip()} is negative", path=path, line=i + 1,
                                   hint="counts must be whole numbers >= 0")
            if count is not None:
                raise ReindexError(f"count {count[:30]!r} is not a whole number", path=path, line=i + 1,
                                   hint="counts must be whole numbers >= 0; for tokens that hold tabs, "
                                        "use vocab.json")
            raise ReindexError(f"expected token<TAB>count like line 1, got {line[:60]!r}", path=path,
                               line=i + 1, hint="use one format for the whole file")
        tokens.append(match.group(1))
        value = int(match.group(2))
        if value > _INT64_MAX:
            raise ReindexError(f"count {match.group(2)[:30]} is larger than 2^63 - 1", path=path, line=i + 1,
                               hint="counts are stored as int64")
        counts[i] = value
    return tokens, counts


def _check_storable(token: str, path: str | os.PathLike, *, line: int | None = None,
                    token_id: int | None = None) -> None:
    r"""Refuse a token that the run's vocab.txt (UTF-8, one token per line) cannot hold exactly.

    "\n" would split it; "\r" would too for any reader in text mode (universal newlines), and a
    CRLF-tolerant reader drops it at a line's end; a lone surrogate is not encodable as UTF-8.
    """
    where = "" if token_id is None else f"token with id {token_id}: "
    bad = next((c for c in "\n\r" if c in token), None)
    if bad is not None:
        name = "a line feed (\\n)" if bad == "\n" else "a carriage return (\\r)"
        raise ReindexError(f"{where}token {token[:60]!r} holds {name}", path=path, line=line,
                           hint="the run's vocab.txt holds one token per line and cannot store it; "
                                "remove or replace that character")
    surrogate = _SURROGATE.search(token)
    if surrogate is not None:
        raise ReindexError(f"{where}token {token[:60]!r} holds a lone surrogate "
                           f"U+{ord(surrogate.group()):04X}, which is not valid Unicode", path=path, line=line,
                           hint="vocabularies must be valid UTF-8; fix the escape in the file")


def _check_tokens(tokens: list[str], path: str | os.PathLike) -> None:
    """Refuse blank and duplicate tokens, naming both lines of a duplicate."""
    first_line: dict[str, int] = {}
    for i, token in enumerate(tokens):
        # Only ASCII blanks make a line blank: "\x1c" or "\u2028" are real tokens (GloVe issue 159).
        if not token.strip(" \t\f\v"):
            raise ReindexError("blank line in the vocabulary", path=path, line=i + 1,
                               hint="remove it; every line must hold one token")
        previous = first_line.setdefault(token, i)
        if previous != i:
            raise ReindexError(f"duplicate token {token!r} (also on line {previous + 1})", path=path,
                               line=i + 1, hint="each token must appear once")


def parse_json(text: str, *, path: str | os.PathLike = "<vocab.json>") -> Vocab:
    """Parse a Hugging Face style `vocab.json` (token -> id, ids exactly 0..V-1).

    >>> parse_json('{"b": 1, "a": 0}').tokens
    ['a', 'b']
    """
    try:
        mapping = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_refuse_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise ReindexError(f"invalid JSON: {e.msg}", path=path, line=e.lineno) from e
    except RecursionError:
        raise ReindexError("invalid JSON: nested too deeply", path=path,
                           hint="a vocab.json is one flat object token -> id") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ReindexError("expected a non-empty JSON object token -> id", path=path)
    tokens: list[str | None] = [None] * len(mapping)
    for token, index in mapping.items():
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(mapping):
            raise ReindexError(f"token {token!r} has id {index!r}; ids must be exactly 0..{len(mapping) - 1}",
                               path=path, hint="renumber the ids densely from 0")
        if tokens[index] is not None:
            raise ReindexError(f"id {index} is given to both {tokens[index]!r} and {token!r}", path=path,
                               hint="ids must be exactly 0..V-1, each once")
        tokens[index] = token
    full = [t for t in tokens if t is not None]
    for token_id, token in enumerate(full):
        if token == "" or "\n" in token or "\r" in token:
            raise ReindexError(f"token with id {token_id}: {token[:60]!r} is empty or holds a line break", path=path,
                               hint="run directories store one token per line; remove or rename it")
        _check_storable(token, path, token_id=token_id)
    return Vocab(tokens=full, counts=None, format="json", path=Path(path))


def _refuse_duplicate_keys(path: str | os.PathLike):
    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise ReindexError(f"duplicate token {key!r} (ids {seen[key]!r} and {value!r})", path=path,
                                   hint="each token must appear once")
            seen[key] = value
        return seen
    return hook


def decompress(raw: bytes, path: Path) -> bytes:
    """The bytes of a gzip/bz2/xz vocabulary uncompressed (found by magic bytes, not the suffix).
    Archives and zstd (which Python's standard library cannot read) are refused."""
    import bz2
    import gzip
    import lzma
    import zlib

    archive = detect_archive(raw)
    if archive is not None:
        raise ReindexError(f"is a {archive} archive, not a vocabulary text file", path=path,
                           hint=f"extract the vocabulary from it first: {EXTRACT[archive]}")
    name = detect_compression(raw)
    if name == "zstd":
        raise ReindexError("is zstd-compressed, not a vocabulary text file", path=path,
                           hint="decompress it first: zstd -d FILE")
    if name is None:
        return raw
    module = {"gzip": gzip, "bz2": bz2, "xz": lzma}[name]
    try:
        return module.decompress(raw)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
        raise ReindexError(f"corrupt or truncated {name} data: {e}", path=path) from e
