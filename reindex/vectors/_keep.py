"""The words a reader keeps (`read_vectors(keep=...)`), and the two views of them that tokens are
tested against, each built once, when a reader first needs it:
- `array`: the words as one Arrow string array, for the exact test in C (`pc.index_in`), which
  also numbers the kept tokens so that duplicates are found without hashing them again;
- `words`: their keys (`WordSet`), a superset test that rules out most other tokens before their
  bytes are even gathered.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Collection, Set

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ._lines import WordSet
from .keyed import KeyedSet, KeyedWordSet, keyed_index


class Keep:
    """The caller's set of words (`set`, for the few lookups done one at a time) and its views.

    >>> k = Keep({"cat", "new york"})
    >>> (k.index(pa.array(["dog", "new york", "cat"])) >= 0).tolist()
    [False, True, True]
    """

    def __init__(self, words: Set[str]) -> None:
        self.set = words
        self._lock = threading.Lock()  # the parsing threads ask for `words`: built once, by the first

    def __len__(self) -> int:
        return len(self.set)

    @functools.cached_property
    def array(self) -> pa.LargeStringArray:
        """Every word that has a UTF-8 form, in one array (a lone surrogate has none, so no token
        read from a file can equal it)."""
        return utf8_array(self.set)

    @property
    def words(self) -> WordSet:
        with self._lock:
            return self._words

    @functools.cached_property
    def _words(self) -> WordSet:
        if isinstance(self.set, KeyedSet):  # tested by key (`keyed.py`)
            return KeyedWordSet(self.set, self.array)
        return WordSet(self.array)

    def index(self, tokens: pa.Array) -> np.ndarray:
        """Per token (a string array): its position in `array`, -1 when it is not kept (by key, a
        number per distinct token: see `keyed_index`)."""
        if isinstance(self.set, KeyedSet):
            found = keyed_index(self.set, tokens)
        else:
            found = pc.index_in(tokens, value_set=self.array)
        return found.fill_null(-1).to_numpy(zero_copy_only=False)


def utf8_array(words: Set[str]) -> pa.LargeStringArray:
    """`words` as a large_string array: joined and encoded in one step, then cut at the separators (a
    word that holds the separator, or has no UTF-8 form, takes the per-word way, `pa.array`).

    >>> utf8_array({"a b"}).to_pylist(), utf8_array({"ok", "bad\\ud800"}).to_pylist()
    (['a b'], ['ok'])
    """
    try:
        joined = "\n".join(words).encode("utf-8")
    except UnicodeEncodeError:
        return pa.array([w for w in words if _has_utf8(w)], pa.large_string())
    except TypeError:
        raise not_strings(words) from None
    data = np.frombuffer(joined, np.uint8)
    separator = data == 10
    cuts = np.flatnonzero(separator)
    n = len(words)
    if n == 0 or len(cuts) != n - 1:
        return pa.array(list(words), pa.large_string())
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    np.subtract(cuts, np.arange(n - 1), out=offsets[1:-1])  # each cut less the separators before it
    offsets[-1] = len(data) - (n - 1)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data[~separator]))


def not_strings(words: Collection) -> UsageError:
    """The error for a vocabulary that holds something other than a string (found by a reader's
    conversion failing, not by a pass over every word)."""
    other = next(w for w in words if not isinstance(w, str))
    return UsageError(f"keep holds {other!r}, a {type(other).__name__}: a vocabulary is a collection of strings")


def _has_utf8(word: str) -> bool:
    try:
        word.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
