"""Vocabulary readers: one token per line, `token<TAB>count` lines, or a JSON object token -> id.

The original id of a token is its line number (0-based) or, for JSON, the id the object gives.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ReindexError

_COUNTED = re.compile(r"^(.*)\t(\d+)$", re.DOTALL)


@dataclass
class Vocab:
    """Tokens in original-id order, with their counts when the file gives them."""

    tokens: list[str]
    counts: np.ndarray | None
    format: str  # "lines" | "counts" | "json"
    path: Path
    record: dict | None = None  # read from stdin: {"path": "-", "size", "sha256"} for the manifest

    def __len__(self) -> int:
        return len(self.tokens)


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
    counted = _COUNTED.match(lines[0]) is not None
    tokens, counts = (_split_counts(lines, path) if counted else (lines, None))
    _check_tokens(tokens, path)
    return Vocab(tokens=tokens, counts=counts, format="counts" if counted else "lines", path=Path(path))


def _split_counts(lines: list[str], path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    tokens: list[str] = []
    counts = np.empty(len(lines), dtype=np.int64)
    for i, line in enumerate(lines):
        match = _COUNTED.match(line)
        if match is None:
            raise ReindexError(f"expected token<TAB>count like line 1, got {line[:60]!r}", path=path,
                               line=i + 1, hint="use one format for the whole file")
        tokens.append(match.group(1))
        counts[i] = int(match.group(2))
    return tokens, counts


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
    for token in full:
        if token == "" or "\n" in token or "\r" in token:
            raise ReindexError(f"token {token!r} is empty or holds a line break", path=path,
                               hint="run directories store one token per line; remove or rename it")
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


def read_vocab(path: str | os.PathLike) -> Vocab:
    """Read a vocabulary file (`-`: stdin); the format follows the suffix `.json` or the first character `{`."""
    if os.fspath(path) == "-":
        import hashlib
        import sys

        raw = sys.stdin.buffer.read()
        vocab = _parse(raw, Path(STDIN))
        vocab.record = {"path": "-", "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        return vocab
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise ReindexError("no such file", path=path, hint="check the --vocab path") from e
    except IsADirectoryError as e:
        raise ReindexError("is a directory, not a vocabulary file", path=path) from e
    except OSError as e:
        raise ReindexError(f"cannot read: {e.strerror}", path=path) from e
    return _parse(raw, path)


STDIN = "<stdin>"


def _parse(raw: bytes, path: Path) -> Vocab:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ReindexError(f"invalid UTF-8 at byte {e.start}", path=path, line=line,
                           hint="vocabularies must be UTF-8") from e
    if path.suffix.lower() == ".json":
        return parse_json(text, path=path)
    if text.lstrip("\ufeff \t\r\n").startswith("{"):
        try:
            json.loads(text.removeprefix("\ufeff"))
        except json.JSONDecodeError:
            return parse_lines(text, path=path)  # a token that starts with "{", not JSON
        return parse_json(text, path=path)
    return parse_lines(text, path=path)
