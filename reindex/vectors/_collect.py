"""Gather parsed records block by block, then decode, filter and de-duplicate them once at the end."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from ..errors import ReindexError
from ._keep import Keep

STEP_ROWS = 1 << 10  # rows moved at a time when kept rows close up (a small temporary)


class Collector:
    """The rows read so far, in file order (float32), with their raw token bytes and the line (or byte
    offset) of each.

    Rows go into one array sized for the whole file (pages never written are never resident); when
    that estimate falls short, into further arrays, joined at the end.
    >>> c = Collector(2); c.extend(pa.array([b"a"], pa.binary()), [np.ones((1, 2), np.float32)], np.array([1]))
    >>> c.num_rows
    1
    """

    def __init__(self, dim: int, *, capacity: int = 1 << 14) -> None:
        self.dim = dim
        self.current = np.empty((max(capacity, 16), dim), dtype=np.float32)
        self.used = 0                       # rows of `current` filled
        self.full: list[np.ndarray] = []    # earlier arrays, cut to their filled rows
        self.num_rows = 0
        self.tokens: list[pa.Array] = []
        self.where: list[np.ndarray] = []

    def reserve(self, n: int) -> np.ndarray:
        """The next `n` rows, to be filled in place and then recorded by `commit`."""
        if self.used + n > len(self.current):
            self.full.append(self.current[:self.used])
            self.current = np.empty((max(n, self.num_rows // 2, 1 << 14), self.dim), dtype=np.float32)
            self.used = 0
        return self.current[self.used:self.used + n]

    def commit(self, tokens: pa.Array, where: np.ndarray) -> None:
        """Record the `len(tokens)` rows last reserved (and filled)."""
        self.used += len(tokens)
        self.num_rows += len(tokens)
        self.tokens.append(tokens)
        self.where.append(np.asarray(where, dtype=np.int64))

    def extend(self, tokens: pa.Array, parts: list, where: np.ndarray) -> None:
        """Add rows given as pieces, each copied once straight into the matrix: an array goes after
        the one before it; a (row positions, array) pair goes to those rows."""
        if len(tokens) == 0:
            return
        target, start = self.reserve(len(tokens)), 0
        for part in parts:
            if isinstance(part, tuple):
                target[part[0]] = part[1]
            else:
                target[start:start + len(part)] = part
                start += len(part)
        self.commit(tokens, where)

    def finish(self, *, path: str | os.PathLike, keep: Keep | None, duplicates: str,
               unicode_errors: str, where_name: str) -> tuple[list[str], np.ndarray, int]:
        """Return (tokens, matrix, num_duplicates) after decoding, `keep` and duplicate handling."""
        where = np.concatenate(self.where) if self.where else np.zeros(0, np.int64)
        raw = pa.concat_arrays(self.tokens) if self.tokens else pa.array([], pa.binary())
        tokens = decode_tokens(raw, where, path=path, errors=unicode_errors, where_name=where_name)
        rows = np.arange(len(tokens))
        codes = None
        if keep is not None:
            codes = keep.index(tokens)
            if codes.min(initial=0) < 0:
                rows = np.flatnonzero(codes >= 0)
                tokens, codes = tokens.take(pa.array(rows)), codes[rows]
        winners, num_duplicates = _resolve_duplicates(tokens, rows, where, codes=codes, path=path,
                                                      mode=duplicates, where_name=where_name)
        if num_duplicates:
            rows, tokens = rows[winners], tokens.take(pa.array(winners))
        return tokens.to_pylist(), self._matrix(rows), num_duplicates

    def _matrix(self, rows: np.ndarray) -> np.ndarray:
        """The rows `rows` (ascending) as one C-contiguous matrix: moved up within the array that
        holds them when there is one (the result is its leading rows), else copied array by array."""
        parts, self.full = self.full + [self.current[:self.used]], []
        del self.current
        n = len(rows)
        if len(parts) == 1:
            matrix = parts.pop()
            if n and rows[-1] != n - 1:
                for start in range(0, n, STEP_ROWS):  # rows[i] >= i: a step never reads a row moved before
                    chunk = rows[start:start + STEP_ROWS]
                    matrix[start:start + len(chunk)] = matrix[chunk]
            return matrix[:n]
        out, first, at = np.empty((n, self.dim), dtype=np.float32), 0, 0
        while parts:
            part = parts.pop(0)  # dropped once copied: the memory held is `out` and the arrays left
            lo, hi = np.searchsorted(rows, [first, first + len(part)])
            np.take(part, rows[lo:hi] - first, axis=0, out=out[at:at + hi - lo])
            first, at = first + len(part), at + hi - lo
            del part
        return out


def decode_tokens(raw: pa.Array, where: np.ndarray, *, path: str | os.PathLike, errors: str,
                  where_name: str) -> pa.Array:
    """UTF-8 decode token bytes: vectorised when valid, per token (with `errors`) otherwise."""
    try:
        return raw.cast(pa.string())
    except pa.ArrowInvalid:
        pass
    out = []
    for i, token in enumerate(raw.to_pylist()):
        try:
            out.append(token.decode("utf-8", errors))
        except UnicodeDecodeError as e:
            raise ReindexError(f"token {token!r} is not valid UTF-8 ({e.reason} at byte {e.start})",
                               path=path, **_where(where_name, int(where[i])),
                               hint="pass --unicode-errors replace (or ignore)") from e
    return pa.array(out, pa.string())


def _resolve_duplicates(tokens: pa.Array, rows: np.ndarray, where: np.ndarray, *, codes: np.ndarray | None = None,
                        path: str | os.PathLike, mode: str, where_name: str) -> tuple[np.ndarray, int]:
    """Rows that survive duplicate handling (ascending), and how many records were duplicates."""
    if codes is None:
        encoded = tokens.dictionary_encode()
        if len(encoded.dictionary) == len(tokens):
            return np.arange(len(tokens)), 0
        codes = encoded.indices.to_numpy(zero_copy_only=False)
    elif len(codes) == 0 or np.bincount(codes).max() == 1:
        return np.arange(len(codes)), 0
    if mode == "last":
        _, last = np.unique(codes[::-1], return_index=True)
        winners = np.sort(len(codes) - 1 - last)
    else:
        _, winners = np.unique(codes, return_index=True)
        winners = np.sort(winners)
    num_duplicates = len(codes) - len(winners)
    if num_duplicates and mode == "error":
        first = np.full(codes.max() + 1, -1, dtype=np.int64)
        first[codes[winners]] = winners
        losers = np.setdiff1d(np.arange(len(codes)), winners)
        again = int(losers[0])
        before = int(first[codes[again]])
        a, b = int(where[rows[before]]), int(where[rows[again]])
        label = "lines" if where_name == "line" else "byte offsets"
        raise ReindexError(f"duplicate token {tokens[again].as_py()!r} at {label} {a} and {b}",
                           path=path, hint="pass --duplicates first (or last) to keep one")
    return winners, num_duplicates


def _where(where_name: str, value: int) -> dict:
    """ReindexError keywords for a line number or a byte offset."""
    return {"line": value} if where_name == "line" else {"position": f"byte {value}"}
