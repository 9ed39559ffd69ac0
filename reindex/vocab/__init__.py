"""Vocabulary readers: one token per line, `token<TAB>count` lines, a JSON object token -> id, or a
Hugging Face tokenizer. The original id of a token is its line number (0-based), the id the JSON
object gives, or the tokenizer's id.

    vocab = read_vocab("data/vocab.txt"); vocab.tokens[0]
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ReindexError
from ..io.inputfile import check_regular
from .base import Vocab
from .guess import misread_as
from .text import decompress, parse_json, parse_lines
from .tokenizer import is_tokenizer, read_tokenizer_vocab

__all__ = ["Vocab", "misread_as", "parse_json", "parse_lines", "read_vocab", "STDIN"]


def read_vocab(path: str | os.PathLike) -> Vocab:
    """Read a vocabulary file (`-`: stdin; the format follows the suffix `.json` or the first character `{`)
    or a tokenizer."""
    if os.fspath(path) == "-":
        import hashlib
        import sys

        raw = sys.stdin.buffer.read()
        vocab = _parse(raw, Path(STDIN))
        vocab.record = {"path": "-", "size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        return vocab
    path = Path(path)
    if is_tokenizer(path):  # tokenizer.json or a saved tokenizer directory: the tokenizer's own ids
        return read_tokenizer_vocab(path)
    check_regular(path, what="a vocabulary")
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
    raw = decompress(raw, path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
        raise ReindexError(f"invalid UTF-8 at byte {e.start}" + (" (the file is UTF-16)" if utf16 else ""),
                           path=path, line=line,
                           hint="convert it: iconv -f UTF-16 -t UTF-8" if utf16 else "vocabularies must be UTF-8",
                           ) from e
    if path.suffix.lower() == ".json":
        return parse_json(text, path=path)
    if text.lstrip("\ufeff \t\r\n").startswith("{"):
        try:
            json.loads(text.removeprefix("\ufeff"))
        except json.JSONDecodeError:
            return parse_lines(text, path=path)  # a token that starts with "{", not JSON
        except RecursionError:
            pass  # JSON too deep to parse: parse_json says so
        return parse_json(text, path=path)
    return parse_lines(text, path=path)
