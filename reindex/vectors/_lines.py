"""A block of text lines in bulk: where each line starts, its first word, which lines matter.

Nothing here steps through lines in Python: numpy finds the line ends, pyarrow's `find_substring`
finds each line's first space, and a line's first word becomes a 64-bit key (its first and last 8
bytes and its length) so that a vocabulary of any size is looked up with one `searchsorted`.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Set
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._csv import pool

_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


class Lines(NamedTuple):
    """A block split into lines: line i is data[offsets[i]:offsets[i + 1]] (with its line ending)."""

    data: np.ndarray       # uint8 view of the block, which ends in b"\n"
    offsets: np.ndarray    # int64, len(lines) + 1
    array: pa.Array        # the same lines as a large_binary array (no copy)

    def __len__(self) -> int:
        return len(self.offsets) - 1


def split_lines(block) -> Lines:
    """Split a block that ends in b"\\n" into lines.

    >>> split_lines(b"a 1\\n\\nbc 2\\n").offsets.tolist()
    [0, 4, 5, 10]
    """
    data = np.frombuffer(block, dtype=np.uint8)
    ends = line_ends(data, find=block.find if isinstance(block, bytes) else None)
    offsets = np.empty(len(ends) + 1, np.int64)
    offsets[0] = 0
    np.add(ends, 1, out=offsets[1:])
    array = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(offsets) - 1,
                                             [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    return Lines(data, offsets, array)


SCAN_BYTES = 1 << 18  # bytes compared at a time: small temporaries are given back to the system


LONG_LINE = 1 << 10  # bytes: lines longer than this on average are found one `find` each
PROBE_LINES = 8


def line_ends(data: np.ndarray, *, find: Callable | None = None) -> np.ndarray:
    """Positions of b"\\n" in `data`, found 256 KB at a time; or, given the `find` method of the
    bytes behind `data` and lines that are long (vectors of 300 numbers take about 3 KB), one
    `find` (memchr) per line, which skips over the numbers without a temporary the size of the block.

    One `data == 10` over a whole block makes a temporary the size of the block in each worker
    thread; after the first such array is freed, glibc serves arrays that large from the thread's
    heap and keeps them there, so the process would hold several blocks' worth it no longer uses.
    >>> line_ends(np.frombuffer(b"a\\nbc\\n", np.uint8)).tolist()
    [1, 4]
    >>> block = b"x" * 3000 + b"\\n" + b"y" * 2000 + b"\\n"
    >>> line_ends(np.frombuffer(block, np.uint8), find=block.find).tolist()
    [3000, 5001]
    """
    n = len(data)
    if find is not None:
        ends: list[int] = []
        at = find(b"\n", 0, n)
        while at >= 0 and (len(ends) < PROBE_LINES or at > LONG_LINE * len(ends)):
            ends.append(at)
            at = find(b"\n", at + 1, n)
        if at < 0:
            return np.array(ends, np.int64)
        start = ends[-1] + 1 if ends else 0  # short lines: the rest by numpy
        return np.concatenate([np.array(ends, np.int64), start + line_ends(data[start:])])
    if n <= SCAN_BYTES:
        return np.flatnonzero(data == 10)
    return np.concatenate([np.flatnonzero(data[i:i + SCAN_BYTES] == 10) + i for i in range(0, n, SCAN_BYTES)])


def line_text(lines: Lines, i: int) -> bytes:
    """Line i without its line ending."""
    return bytes(lines.data[lines.offsets[i]:lines.offsets[i + 1]]).rstrip(b"\n").removesuffix(b"\r")


def blank_lines(lines: Lines) -> np.ndarray:
    """Bool per line: empty, or a lone line ending (LF or CRLF)."""
    lengths = np.diff(lines.offsets)
    ends = lines.offsets[1:]
    return (lengths == 1) | ((lengths == 2) & (lines.data[np.maximum(ends - 2, 0)] == 13))


def lone_crs(block) -> bool:
    """Whether a CR stands alone somewhere in the block (pyarrow would end a line there), or a TAB
    (which may stand where a space should): such lines are parsed one by one (`special_lines`)."""
    data = bytes(block)
    return data.find(b"\t") >= 0 or (data.find(b"\r") >= 0 and data.count(b"\r") != data.count(b"\r\n"))


def special_lines(lines: Lines) -> np.ndarray:
    """Bool per line: holds a CR not followed by LF, or a TAB."""
    special = np.zeros(len(lines), dtype=bool)
    data = lines.data
    cr = np.flatnonzero(data == 13)
    odd = np.union1d(cr[data[np.minimum(cr + 1, len(data) - 1)] != 10], np.flatnonzero(data == 9))
    if len(odd):
        special[np.searchsorted(lines.offsets[1:], odd, side="right")] = True
    return special


def first_word_lengths(lines: Lines) -> np.ndarray:
    """Bytes before each line's first space (or before its line ending when it has no space)."""
    found = pc.find_substring(lines.array, b" ", memory_pool=pool())
    found = found.to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(lines.offsets)
    alone = found < 0
    if alone.any():  # a line with no space is all token, less its line ending
        ends = lines.offsets[1:]
        cr = (lengths >= 2) & (lines.data[np.maximum(ends - 2, 0)] == 13)
        found[alone] = (lengths - 1 - cr)[alone]
    return found


_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], np.uint64)  # masks of n bytes


def word_keys(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A uint64 per word data[starts[i]:starts[i] + lengths[i]]: equal words get equal keys.

    The key mixes the word's first 8 bytes, its last 8 bytes and its length, each read as one
    little-endian uint64 (a gather of 8-byte windows, no per-byte step).
    >>> k = word_keys(np.frombuffer(b"cat dog cat", np.uint8), np.array([0, 4, 8]), np.array([3, 3, 3]))
    >>> bool(k[0] == k[2]), bool(k[0] == k[1])
    (True, False)
    """
    head, tail = _ends_of_words(data, starts, lengths)
    return (head * _MIX[0]) ^ (tail * _MIX[1]) ^ lengths.astype(np.uint64)


def _ends_of_words(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first 8 bytes, last 8 bytes or 0 when the word is no longer than 8) of each word, as uint64."""
    if len(starts) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    if len(data) < 8:
        data = np.concatenate([data, np.zeros(8 - len(data), np.uint8)])
    windows = np.lib.stride_tricks.sliding_window_view(data, 8)
    last = len(data) - 8
    at = np.minimum(starts, last)  # a window past the end is read from earlier and shifted into place
    head = windows[at].copy().view("<u8").ravel() >> ((starts - at) * 8).astype(np.uint64)
    head &= _LOW_BYTES[np.minimum(lengths, 8)]
    long = lengths > 8
    tail = np.zeros(len(starts), np.uint64)
    if long.any():
        tail[long] = windows[(starts + lengths - 8)[long]].copy().view("<u8").ravel()
    return head, tail


_HIGH_BITS = np.uint64(0x8080808080808080)


def token_array(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """A binary array of the tokens `data[starts[i]:ends[i]]`, gathered in one step."""
    lengths = ends - starts
    offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts),
                                            [None, pa.py_buffer(offsets), pa.py_buffer(data[index])])


def words_not_utf8(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Bool per word data[starts[i]:starts[i] + lengths[i]] that is not valid UTF-8, or None when
    every word is: a word of at most 16 ASCII bytes (most words) is told by its two 8-byte windows;
    only the others are gathered and validated.

    >>> d = np.frombuffer(b"cat caf\\xc3\\xa9 b\\xffd", np.uint8)
    >>> words_not_utf8(d, np.array([0, 4, 10]), np.array([3, 5, 3])).tolist()
    [False, False, True]
    """
    head, tail = _ends_of_words(data, starts, lengths)
    check = np.flatnonzero(((head | tail) & _HIGH_BITS != 0) | (lengths > 16))
    if len(check) == 0:
        return None
    bad = not_utf8(token_array(data, starts[check], starts[check] + lengths[check]))
    if bad is None:
        return None
    out = np.zeros(len(starts), bool)
    out[check] = bad
    return out


class WordSet:
    """The first words of the kept tokens, as keys: a superset test, exact up to key collisions (a
    false match only costs the parse of a line the end result drops)."""

    def __init__(self, tokens: Collection[str] | pa.Array) -> None:
        array = tokens if isinstance(tokens, pa.Array) else pa.array(list(tokens), pa.large_string())
        array = array.cast(pa.large_string())
        offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset:array.offset + len(array) + 1]
        data = np.frombuffer(array.buffers()[2] or b"", np.uint8)
        starts = offsets[:-1]
        found = pc.find_substring(array, " ").to_numpy(zero_copy_only=False).astype(np.int64)
        lengths = np.where(found >= 0, found, np.diff(offsets))
        keys = np.sort(word_keys(data, starts, lengths))
        self.keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        self.bits = int(np.clip(np.ceil(np.log2(max(len(keys), 1) * 64)), 16, 28))
        self.table = np.zeros(1 << (self.bits - 3), np.uint8)
        slot = keys >> np.uint64(64 - self.bits)
        np.bitwise_or.at(self.table, slot >> np.uint64(3), np.left_shift(1, slot & np.uint64(7)).astype(np.uint8))
        self.empty = len(keys) == 0

    def may_contain(self, word: bytes) -> bool:
        """`contains` for one word (a line met on its own).

        >>> WordSet(["new york", "cat"]).may_contain(b"new"), WordSet(["cat"]).may_contain(b"dog")
        (True, False)
        """
        data = np.frombuffer(word + b"\0", np.uint8)  # never empty, for word_keys' indexing
        return bool(self.contains(data, np.zeros(1, np.int64), np.array([len(word)], np.int64))[0])

    def contains(self, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, *,
                 confirm: bool = True) -> np.ndarray:
        """Bool per word: its key is among the kept words' keys; with confirm=False, only its key's
        bit is set in the bitmap (about 1 in 64 other words pass too), for a caller whose rows are
        tested exactly later anyway and to whom a false match costs less than the lookup."""
        if self.empty:
            return np.zeros(len(starts), bool)
        keys = word_keys(data, starts, lengths)
        slot = keys >> np.uint64(64 - self.bits)
        found = (self.table[slot >> np.uint64(3)] >> (slot & np.uint64(7)).astype(np.uint8)) & 1 == 1
        if not confirm:
            return found
        maybe = np.flatnonzero(found)  # confirm the few that pass by the whole key
        at = np.minimum(np.searchsorted(self.keys, keys[maybe]), len(self.keys) - 1)
        found[maybe] = self.keys[at] == keys[maybe]
        return found


def share_in_keep(tokens: pa.Array, keep: Set[str], *, default: float) -> float:
    """The share of the tokens that are in `keep` (`default` for no tokens); a token that is not
    UTF-8 is looked up as decoded with replacement characters."""
    if len(tokens) == 0:
        return default
    words = [t.decode("utf-8", "replace") for t in tokens.to_pylist()]
    return sum(map(keep.__contains__, words)) / len(words)


def not_utf8(lines: pa.Array) -> np.ndarray | None:
    """Bool per line that is not valid UTF-8, or None when every line is (one vectorised check)."""
    try:
        lines.view(pa.large_string() if pa.types.is_large_binary(lines.type) else pa.string()).validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    out = np.zeros(len(lines), bool)
    for i, line in enumerate(lines.to_pylist()):  # rare: only a block that holds bad bytes
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            out[i] = True
    return out
