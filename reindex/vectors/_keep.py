"""The words a reader keeps (`read_vectors(keep=...)`), and the two views of them that tokens are
tested against, each built once, when a reader first needs it:
- `array`: the words as one Arrow string array, for the exact test in C (`pc.index_in`), which
  also numbers the kept tokens so that duplicates are found without hashing them again;
- `words`: their keys (`WordSet`), a superset test that rules out most other tokens before their
  bytes are even gathered.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import time
from collections.abc import Set
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ._lines import WordSet
from .keyed import KeyedSet, KeyedWordSet, keyed_index


class Keep:
    """The caller's set of words (`set`, for the few lookups done one at a time) and its views.

    >>> k = Keep({"cat", "new york"})
    >>> k.index(pa.array(["dog", "new york", "cat"])).is_valid().to_pylist()
    [False, True, True]
    """

    def __init__(self, words: Set[str]) -> None:
        self.set = words
        self._array: pa.LargeStringArray | None = None
        self._lock = threading.Lock()  # one array, whichever thread needs it first: positions must agree

    def __len__(self) -> int:
        return len(self.set)

    @property
    def array(self) -> pa.LargeStringArray:
        """Every word that has a UTF-8 form, in one array (a lone surrogate has none, so no token
        read from a file can equal it)."""
        return self.get_array(yielding=False)

    def get_array(self, *, yielding: bool) -> pa.LargeStringArray:
        """`array`, built by the first caller (see `utf8_array` for `yielding`)."""
        with self._lock:
            if self._array is None:
                self._array = utf8_array(self.set, yielding=yielding)
            return self._array

    @functools.cached_property
    def words(self) -> WordSet:
        if isinstance(self.set, KeyedSet):  # tested by key (`keyed.py`)
            return KeyedWordSet(self.set, self.array)
        return WordSet(self.array)

    def index(self, tokens: pa.Array) -> pa.Array:
        """Per token (a string array): its position in `array`, null when it is not kept (by key, a
        number per distinct token: see `keyed_index`)."""
        if isinstance(self.set, KeyedSet):
            return keyed_index(self.set, tokens)
        return pc.index_in(tokens, value_set=self.array)


JOIN_WORDS = 1 << 14  # words joined at a time by a worker thread, which then lets others run


def utf8_array(words: Set[str], *, yielding: bool) -> pa.LargeStringArray:
    """`words` as a large_string array: joined and encoded, then cut at the separators (a word that
    holds the separator, or has no UTF-8 form, takes the per-word way, `pa.array`). `yielding`:
    joined a slice at a time, handing the interpreter to other threads in between (in a worker
    thread, so that the reader is not held up for long; `pa.array` is one call that holds the GIL).

    >>> utf8_array({"a b"}, yielding=True).to_pylist(), utf8_array(set(), yielding=False).to_pylist()
    (['a b'], [])
    """
    try:
        if yielding:
            parts, it = [], iter(words)
            while chunk := list(itertools.islice(it, JOIN_WORDS)):
                parts.append("\n".join(chunk))
                time.sleep(0)  # releases the GIL: a thread waiting for it takes it now, not in 5 ms
            joined = "\n".join(parts).encode("utf-8")
        else:
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


def not_strings(words: Set) -> UsageError:
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


class Indexer:
    """The exact `keep` test of the rows a reader hands on, done by a worker thread: positions in
    `keep.array` (-1: not kept) for the collector, so that reading with a vocabulary that covers
    the file costs no more than reading without one.

    While the reader reads, the worker builds `keep.array`, then looks up the first half of the
    rows; the second half is looked up while the collector converts the tokens to Python strings.
    Each lookup (`pc.index_in`, which runs without the GIL) builds a table of `keep`, so the rows
    are looked up in two batches, not one per chunk.
    """

    def __init__(self, keep: Keep, executor: Executor, *, rows: int) -> None:
        self.keep, self.executor = keep, executor
        self.batch = max((rows + 1) // 2, 1)
        self.pending: list[pa.Array] = []
        self.size = 0
        self.done: list[Future] = [executor.submit(self._prepare)]

    def _prepare(self) -> None:
        self.keep.get_array(yielding=True)

    def preparing(self) -> bool:
        """Whether the worker is still building `keep.array` (holding the GIL most of the time)."""
        return not self.done[0].done()

    def add(self, tokens: pa.Array) -> None:
        """Queue the token bytes of the rows just added to the collector (in the collector's order)."""
        self.pending.append(tokens)
        self.size += len(tokens)
        if self.size >= self.batch:
            self.flush()

    def flush(self, *, last: bool = False) -> None:
        """Look up the rows queued so far. `last` (the reader has read every row): wait until the
        worker is inside the lookup, where it needs no GIL; otherwise it could not even start while
        the collector converts the tokens (one long call that holds the GIL)."""
        if self.pending:
            batch = pa.concat_arrays(self.pending)
            self.pending, self.size = [], 0
            started = threading.Event()
            self.done.append(self.executor.submit(self._index, batch, started))
            if last:
                started.wait()

    def _index(self, raw: pa.Array, started: threading.Event | None = None) -> np.ndarray | None:
        try:
            tokens = raw.cast(pa.large_string())
        except pa.ArrowInvalid:  # not UTF-8: the collector decodes (or refuses) it, then tests it
            return None
        finally:
            if started is not None:
                started.set()
        return self.keep.index(tokens).fill_null(-1).to_numpy(zero_copy_only=False)

    def codes(self) -> np.ndarray | None:
        """Every row's position in `keep.array` (-1: not kept), or None when a batch was not UTF-8."""
        if self.pending:  # not flushed by the reader: looked up here
            self.done.append(_completed(self._index(pa.concat_arrays(self.pending))))
            self.pending, self.size = [], 0
        self.done[0].result()
        found = [f.result() for f in self.done[1:]]
        if any(f is None for f in found):
            return None
        return np.concatenate(found) if found else np.zeros(0, np.int64)


def _completed(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


@contextlib.contextmanager
def looked_up_meanwhile(collector, keep: Keep | None, *, rows: int):
    """While a reader reads (the body): with `keep`, the rows it hands to `collector` are looked up
    by a worker thread (`Indexer`), the last of them once the body ends. Not by key: `keyed_index`
    numbers the tokens it is given, so it looks up every row at once, at the end."""
    if keep is None or isinstance(keep.set, KeyedSet):
        yield
        return
    executor = ThreadPoolExecutor(1, thread_name_prefix="reindex-keep")
    collector.indexer = Indexer(keep, executor, rows=rows)
    try:
        yield
        collector.indexer.flush(last=True)
    finally:
        executor.shutdown(wait=False)  # the last lookup finishes meanwhile; the collector waits for it
