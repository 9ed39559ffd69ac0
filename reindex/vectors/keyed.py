"""A `keep` that is tested by key: `read_vectors(path, keep=KeyedSet(keys, key=...))` keeps the
records whose token's key is in `keys`, so a reader streams Unicode-normalised or case-folded
matching (`reindex.matching.keep_keys`) as it streams exact matching: records of other tokens are
skipped unparsed.

The readers test tokens in bulk by their bytes; `KeyedWordSet` gives them that test for keys. It
relies on what `folds_ascii` says of `key` on ASCII: the token itself (False: Unicode normal forms
leave ASCII alone) or its ASCII lowercase (True: casefold). An ASCII word's bytes are folded and
looked up in bulk; the few other words are decoded and keyed one by one.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa

from ._lines import WordSet, token_array


class KeyedSet(frozenset):
    """Keys; a token is in the set when its key is.

    >>> "CAT" in KeyedSet({"cat"}, key=str.casefold, folds_ascii=True), "cat" in KeyedSet({"dog"}, key=str.lower)
    (True, False)
    """

    key: Callable[[str], str]
    folds_ascii: bool

    def __new__(cls, keys: Iterable[str], *, key: Callable[[str], str], folds_ascii: bool = False) -> KeyedSet:
        self = super().__new__(cls, keys)
        self.key, self.folds_ascii = key, folds_ascii
        return self

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and frozenset.__contains__(self, self.key(token))


class KeyedWordSet(WordSet):
    """`WordSet`'s superset test of first words, by key. `array`: the keys as strings."""

    def __init__(self, keys: KeyedSet, array: pa.Array) -> None:
        super().__init__(array)
        self.key, self.folds_ascii = keys.key, keys.folds_ascii
        self.first = frozenset(k.split(" ", 1)[0] for k in keys)  # a key splits where its token does

    def contains(self, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, *,
                 confirm: bool = True) -> np.ndarray:
        words = token_array(data, starts, starts + lengths)
        offsets = np.frombuffer(words.buffers()[1], np.int64)[:len(words) + 1]
        raw = np.frombuffer(words.buffers()[2], np.uint8)[:int(offsets[-1])]
        high = np.zeros(len(raw) + 1, np.int64)
        np.cumsum(raw >= 0x80, out=high[1:])
        other = np.flatnonzero(high[offsets[1:]] > high[offsets[:-1]])
        folded = raw | (((raw >= 65) & (raw <= 90)).astype(np.uint8) << 5) if self.folds_ascii else raw
        found = super().contains(folded, offsets[:-1], np.diff(offsets), confirm=confirm)
        for i in other.tolist():
            try:
                word = raw[offsets[i]:offsets[i + 1]].tobytes().decode("utf-8")
            except UnicodeDecodeError:
                found[i] = True  # the collector refuses it (strict) or decodes it, then tests it
                continue
            found[i] = self.key(word).split(" ", 1)[0] in self.first
        return found


def keyed_index(keys: KeyedSet, tokens: pa.Array) -> pa.Array:
    """`Keep.index` by key: per token, null when its key is not kept, else a number equal for equal
    tokens (not for equal keys: `by` and `ｂｙ` are two tokens, each with its own vector)."""
    kept = np.fromiter(map(keys.__contains__, tokens.to_pylist()), bool, len(tokens))
    codes = tokens.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return pa.array(codes, mask=~kept)


def keyed_ids(words: pa.Array, keys: KeyedSet) -> np.ndarray:
    """Positions of the (binary) words whose key is kept; a word that is not UTF-8 is never kept."""
    ids = []
    for i, word in enumerate(words.to_pylist()):
        try:
            text = word.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text in keys:
            ids.append(i)
    return np.array(ids, np.int64)
