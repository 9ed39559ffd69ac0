"""fastText's character n-grams and their buckets, for many words at once (numpy, no Python step per n-gram).

Pure: word bytes in, row ids out. Follows fastText's `Dictionary::computeSubwords`: the word is
wrapped as `<word>`, n counts UTF-8 characters (minn..maxn), the lone `<` and `>` are skipped, and
each n-gram's bucket is FNV-1a 32-bit over its bytes, every byte sign-extended from int8 first
(fastText hashes `char`s), modulo `bucket`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EOS = b"</s>"          # fastText's end-of-sentence word: it has no subwords
FNV_OFFSET = np.uint32(2166136261)
FNV_PRIME = np.uint32(16777619)


def fnv1a(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """fastText's hash of each byte string `buf[starts[i]:ends[i]]`, vectorised over strings.

    >>> fnv1a(np.frombuffer("<é>".encode(), np.uint8), np.array([0]), np.array([4])).tolist()
    [1002806231]
    """
    h = np.full(len(starts), FNV_OFFSET, dtype=np.uint32)
    lengths = ends - starts
    last = max(len(buf) - 1, 0)
    signed = buf.view(np.int8).astype(np.int32).astype(np.uint32)   # the int8 sign extension quirk
    for t in range(int(lengths.max()) if len(lengths) else 0):
        active = lengths > t
        byte = signed[np.minimum(starts + t, last)]
        h = np.where(active, (h ^ byte) * FNV_PRIME, h)
    return h


def ngram_spans(words: Sequence[bytes], *, minn: int, maxn: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(buffer of `<word>` bytes, n-gram starts, n-gram ends, owning word index) for every n-gram.

    >>> buf, s, e, w = ngram_spans([b"ab"], minn=1, maxn=2)
    >>> sorted(bytes(buf[a:b]) for a, b in zip(s, e))
    [b'<a', b'a', b'ab', b'b', b'b>']
    """
    wrapped = [b"" if w == EOS else b"<" + w + b">" for w in words]
    buf = np.frombuffer(b"".join(wrapped), dtype=np.uint8)
    lengths = np.fromiter((len(w) for w in wrapped), dtype=np.int64, count=len(wrapped))
    word_start = np.zeros(len(wrapped) + 1, dtype=np.int64)
    np.cumsum(lengths, out=word_start[1:])
    chars = np.flatnonzero((buf & 0xC0) != 0x80)          # first byte of each UTF-8 character
    owner = np.searchsorted(word_start, chars, side="right") - 1
    num_chars = np.bincount(owner, minlength=len(wrapped))
    # bounds: for each word, the byte offset of each of its characters and then of its end
    first = np.zeros(len(wrapped) + 1, dtype=np.int64)
    np.cumsum(num_chars + 1, out=first[1:])
    bounds = np.empty(first[-1], dtype=np.int64)
    bounds[first[1:] - 1] = word_start[1:]
    local = np.arange(len(chars)) - (first[:-1] - np.arange(len(wrapped)))[owner]
    at = first[owner] + local
    bounds[at] = chars
    starts, ends, owners = [], [], []
    for n in range(max(minn, 1), maxn + 1):
        ok = local + n <= num_chars[owner]
        if n == 1:  # fastText skips the lone `<` and `>`
            ok &= (local > 0) & (local + 1 < num_chars[owner])
        starts.append(chars[ok])
        ends.append(bounds[at[ok] + n])
        owners.append(owner[ok])
    if not starts:
        empty = np.zeros(0, np.int64)
        return buf, empty, empty, empty
    return buf, np.concatenate(starts), np.concatenate(ends), np.concatenate(owners)


def subword_rows(words: Sequence[bytes], word_ids: np.ndarray, *, nwords: int, bucket: int, minn: int,
                 maxn: int) -> tuple[np.ndarray, np.ndarray]:
    """The input-matrix rows fastText averages for each word, as CSR (indptr, indices).

    A word in the dictionary (`word_ids[i] >= 0`) has its own row first; every n-gram adds row
    `nwords + hash % bucket`. As `Dictionary::getSubwords`: `</s>` has no n-grams, nor does any
    word when bucket is 0 or maxn is 0, so such a word outside the dictionary has no rows at all.
    >>> subword_rows([b"ab", b"zz"], np.array([0, -1]), nwords=1, bucket=10, minn=3, maxn=3)[0].tolist()
    [0, 3, 5]
    """
    if bucket > 0 and maxn > 0:
        buf, starts, ends, owner = ngram_spans(words, minn=minn, maxn=maxn)
        buckets = (fnv1a(buf, starts, ends) % np.uint32(bucket)).astype(np.int64) + nwords
    else:
        owner = buckets = np.zeros(0, np.int64)
    known = np.flatnonzero(word_ids >= 0)
    all_owner = np.concatenate([known, owner])
    order = np.argsort(all_owner, kind="stable")            # per word: its own row, then its n-grams
    indices = np.concatenate([word_ids[known].astype(np.int64), buckets])[order]
    indptr = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.bincount(all_owner, minlength=len(words)), out=indptr[1:])
    return indptr, indices
