"""fastText `.bin` files written by hand: the layout fastText saves today (magic number first), or the
one from before the magic number (`old=True`: no magic or version, no pruned-index size, no
quantisation flag), which gensim's `load_facebook_model` still reads."""
from __future__ import annotations

import struct

import numpy as np

MAGIC, VERSION = 793712314, 12


def fasttext_bytes(words: list[str], matrix: np.ndarray, *, minn: int = 3, maxn: int = 6,
                   old: bool = False) -> bytes:
    """A skipgram model whose input matrix is `matrix`: one row per word, then the n-gram buckets."""
    bucket, dim = matrix.shape[0] - len(words), matrix.shape[1]
    args = struct.pack("<12id", dim, 5, 1, 1, 5, 1, 2, 2, bucket, minn, maxn, 100, 1e-4)  # loss ns, skipgram
    out = [b"" if old else struct.pack("<2i", MAGIC, VERSION), args,
           struct.pack("<3iq", len(words), len(words), 0, 1000), b"" if old else struct.pack("<q", -1)]
    out += [w.encode("utf-8") + b"\0" + struct.pack("<qb", 10, 0) for w in words]
    for rows in (matrix, np.zeros((len(words), dim))):  # the input matrix, then the output matrix
        out += [b"" if old else b"\0", struct.pack("<2q", *rows.shape), rows.astype("<f4").tobytes()]
    return b"".join(out)
