"""A block of text lines in bulk: where each line starts, its first word, which lines matter.

Nothing here steps through lines in Python: numpy finds the line ends, pyarrow's `find_substring`
finds each line's first space, and a line's first word becomes a 64-bit key (its first and last 8
bytes and its length) so that a vocabulary of any size is looked up with one `searchsorted`.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    ends = np.flatnonzero(data == 10)
    offsets = np.empty(len(ends) + 1, np.int64)
    offsets[0] = 0
    np.add(ends, 1, out=offsets[1:])
    array = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(offsets) - 1,
                                             [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    return Lines(data, offsets, array)


def blank_lines(lines: Lines) -> np.ndarray:
    """Bool per line: empty, or a lone line ending (LF or CRLF)."""
    lengths = np.diff(lines.offsets)
    ends = lines.offsets[1:]
    return (lengths == 1) | ((lengths == 2) & (lines.data[np.maximum(ends - 2, 0)] == 13))


def has_byte(block, byte: bytes) -> bool:
    """Whether `byte` is in the block (a view of an mmap, searched in place, or bytes)."""
    if isinstance(block, memoryview) and hasattr(block.obj, "find"):
        return block.obj.find(byte, 0, len(block)) >= 0
    return bytes(block).find(byte) >= 0 if isinstance(block, memoryview) else block.find(byte) >= 0


def lone_crs(block) -> bool:
    """Whether a CR stands alone somewhere in the block (pyarrow would end a line there)."""
    if not has_byte(block, b"\r"):
        return False
    data = bytes(block)
    return data.count(b"\r") != data.count(b"\r\n")


def lone_cr_lines(lines: Lines) -> np.ndarray:
    """Bool per line: holds a CR not followed by LF."""
    special = np.zeros(len(lines), dtype=bool)
    data = lines.data
    cr = np.flatnonzero(data == 13)
    if len(cr):
        lone = cr[data[np.minimum(cr + 1, len(data) - 1)] != 10]
        special[np.searchsorted(lines.offsets[1:], lone, side="right")] = True
    return special


def first_word_lengths(lines: Lines) -> np.ndarray:
    """Bytes before each line's first space (or before its line ending when it has no space)."""
    found = pc.find_substring(lines.array, b" ").to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(lines.offsets)
    alone = found < 0
    if alone.any():  # a line with no space is all token, less its line ending
        ends = lines.offsets[1:]
        cr = (lengths >= 2) & (lines.data[np.maximum(ends - 2, 0)] == 13)
        found[alone] = (lengths - 1 - cr)[alone]
    return found


def word_keys(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A uint64 per word data[starts[i]:starts[i] + lengths[i]]: equal words get equal keys.

    >>> k = word_keys(np.frombuffer(b"cat dog cat", np.uint8), np.array([0, 4, 8]), np.array([3, 3, 3]))
    >>> bool(k[0] == k[2]), bool(k[0] == k[1])
    (True, False)
    """
    if len(starts) == 0:
        return np.zeros(0, np.uint64)
    step = np.arange(8)
    last = max(len(data) - 1, 0)
    head_at = starts[:, None] + step
    head = np.where(step < lengths[:, None], data[np.minimum(head_at, last)], 0).astype(np.uint8)
    tail_at = (starts + lengths - 8)[:, None] + step
    tail = np.where(tail_at >= starts[:, None], data[np.clip(tail_at, 0, last)], 0).astype(np.uint8)
    head64 = np.ascontiguousarray(head).view("<u8").ravel()
    tail64 = np.ascontiguousarray(tail).view("<u8").ravel()
    return (head64 * _MIX[0]) ^ (tail64 * _MIX[1]) ^ lengths.astype(np.uint64)


class WordSet:
    """The first words of the kept tokens, as sorted keys: a superset test, exact up to key collisions
    (a false match only costs the parse of a line the end result drops)."""

    def __init__(self, tokens: Collection[str]) -> None:
        self.tokens = tokens
        try:  # one C-level conversion; a lone surrogate (not UTF-8) takes the per-token way
            array = pa.array(list(tokens), pa.large_string())
            offsets = np.frombuffer(array.buffers()[1], np.int64)[:len(array) + 1]
            data = np.frombuffer(array.buffers()[2] or b"", np.uint8)
            starts = offsets[:-1]
            found = pc.find_substring(array, " ").to_numpy(zero_copy_only=False).astype(np.int64)
            lengths = np.where(found >= 0, found, np.diff(offsets))
        except (pa.ArrowInvalid, UnicodeEncodeError):
            words = [t.encode("utf-8", "surrogatepass").split(b" ", 1)[0] for t in tokens]
            data = np.frombuffer(b"".join(words), np.uint8)
            lengths = np.fromiter((len(w) for w in words), np.int64, len(words))
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if words else lengths
        keys = np.sort(word_keys(data, starts, lengths))  # sorted, then deduplicated (np.unique hashes: slower)
        self.keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        self._words: set[bytes] | None = None

    @property
    def words(self) -> set[bytes]:
        """The first words themselves, for the odd lines met one at a time (built on first use)."""
        if self._words is None:
            self._words = {t.encode("utf-8", "surrogatepass").split(b" ", 1)[0] for t in self.tokens}
        return self._words

    def contains(self, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Bool per word: its key is among the kept words' keys."""
        keys = word_keys(data, starts, lengths)
        if len(self.keys) == 0:
            return np.zeros(len(keys), bool)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[at] == keys


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
