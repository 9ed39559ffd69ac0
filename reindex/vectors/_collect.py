"""Gather parsed records block by block, then decode, filter and de-duplicate them once at the end."""
from __future__ import annotations

import os
import numpy as np
import pyarrow as pa

from ..errors import ReindexError
from ._keep import Indexer, Keep


class Collector:
    """A growable float32 matrix plus the raw token bytes and the line (or byte offset) of each row.

    The matrix grows with `ndarray.resize`, which glibc serves with `mremap`: no copy, no doubling.
    >>> c = Collector(2); c.add(pa.array([b"a"], pa.binary()), np.ones((1, 2), np.float32), np.array([1]))
    >>> c.num_rows
    1
    """

    def __init__(self, dim: int, *, capacity: int = 1 << 14) -> None:
        self.dim = dim
        self.matrix = np.empty((max(capacity, 16), dim), dtype=np.float32)
        self.num_rows = 0
        self.indexer: Indexer | None = None  # looks up in `keep` the tokens `add` is given, meanwhile
        self.tokens: list[pa.Array] = []
        self.where: list[np.ndarray] = []

    def reserve(self, n: int) -> np.ndarray:
        """The next `n` rows of the matrix, to be filled in place and then passed to `add`."""
        end = self.num_rows + n
        if end > self.matrix.shape[0]:
            # refcheck=False: the only views are earlier `reserve` results, which are never used again.
            # numpy zero-fills the new rows (so they become resident): the first capacity should suffice.
            self.matrix.resize((max(end, self.matrix.shape[0] * 3 // 2), self.dim), refcheck=False)
        return self.matrix[self.num_rows:end]

    def add(self, tokens: pa.Array, rows: np.ndarray, where: np.ndarray) -> None:
        n = len(tokens)
        if n == 0:
            return
        target = self.reserve(n)
        if not (rows.base is self.matrix and rows.ctypes.data == target.ctypes.data):
            target[:] = rows
        self.num_rows += n
        self.tokens.append(tokens)
        self.where.append(np.asarray(where, dtype=np.int64))
        if self.indexer is not None:
            self.indexer.add(tokens)

    def extend(self, tokens: pa.Array, parts: list, where: np.ndarray) -> None:
        """`add` for rows given as pieces, each copied once straight into the matrix: an array goes
        after the one before it; a (row positions, array) pair goes to those rows."""
        n = len(tokens)
        if n == 0:
            return
        target = self.reserve(n)
        start = 0
        for part in parts:
            if isinstance(part, tuple):
                target[part[0]] = part[1]
            else:
                target[start:start + len(part)] = part
                start += len(part)
        del target  # a view of the matrix, which the next `reserve` may move
        self.num_rows += n
        self.tokens.append(tokens)
        self.where.append(np.asarray(where, dtype=np.int64))
        if self.indexer is not None:
            self.indexer.add(tokens)

    def finish(self, *, path: str | os.PathLike, keep: Keep | None, duplicates: str,
               unicode_errors: str, where_name: str) -> tuple[list[str], np.ndarray, int]:
        """Return (tokens, matrix, num_duplicates) after decoding, `keep` and duplicate handling.

        With `keep`, the rows the readers added may include tokens it lacks (their tests are
        supersets); one `pc.index_in` in C keeps exactly its words, and numbers them for
        `_resolve_duplicates`.
        """
        where = np.concatenate(self.where) if self.where else np.zeros(0, np.int64)
        raw = pa.concat_arrays(self.tokens) if self.tokens else pa.array([], pa.binary())
        tokens = decode_tokens(raw, where, path=path, errors=unicode_errors, where_name=where_name)
        rows = np.arange(len(tokens))
        words = codes = None
        if keep is not None:
            if self.indexer is not None:  # the tokens are converted while the worker looks them up
                words = tokens.to_pylist()
                codes = self.indexer.codes()
            if codes is None:
                codes = keep.index(tokens).fill_null(-1).to_numpy(zero_copy_only=False)
            if codes.min(initial=0) < 0:
                rows = np.flatnonzero(codes >= 0)
                tokens, codes = tokens.take(pa.array(rows)), codes[rows]
                words = None if words is None else [words[i] for i in rows.tolist()]
        winners, num_duplicates = _resolve_duplicates(tokens, rows, where, codes=codes, path=path,
                                                      mode=duplicates, where_name=where_name)
        if num_duplicates:
            rows = rows[winners]
            if words is None:
                tokens = tokens.take(pa.array(winners))
            else:
                words = [words[i] for i in winners.tolist()]
        words = tokens.to_pylist() if words is None else words
        self._compact(rows)
        return words, self.matrix, num_duplicates

    def _compact(self, rows: np.ndarray) -> None:
        """Move the rows `rows` (ascending) to the top of the matrix in place, then shrink it."""
        n = len(rows)
        if not (n == self.num_rows and (n == 0 or rows[-1] == n - 1)):
            step = 1 << 10  # rows[i] >= i, so chunks never read a row an earlier chunk overwrote; small
            # chunks keep the copy made by the fancy index (1024 rows) small next to the matrix
            for start in range(0, n, step):
                chunk = rows[start:start + step]
                self.matrix[start:start + len(chunk)] = self.matrix[chunk]
        self.matrix.resize((n, self.dim), refcheck=False)
        self.num_rows = n


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
    """Rows that survive duplicate handling (ascending), and how many records were duplicates.

    `codes`: a number per token, equal for equal tokens (their place in `keep`), or None to number
    them here. A file without duplicates (the common case) is known as such from a count alone.
    """
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
