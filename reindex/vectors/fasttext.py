"""fastText's native model file (`.bin`): the vectors fastText itself gives, reading only the rows needed.

Layout (fastText's `FastText::saveModel`, little-endian): int32 magic 793712314, int32 version;
args (12 int32: dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate,
then float64 t); dictionary (int32 size nwords nlabels, int64 ntokens pruneidx_size, then `size`
entries of NUL-terminated word + int64 count + int8 type, then pruneidx_size int32 pairs); bool
quant_input; input matrix (int64 rows, int64 dim, rows*dim float32: the nwords word rows then
`bucket` n-gram rows); bool qout; output matrix.

The input matrix is memory-mapped and only the rows the words need are read, in file order, with
each stretch's pages released once used: peak memory follows the vocabulary, not the file.

v = read_fasttext("cc.en.300.bin", keep={"the", "cat"})
"""
from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ReindexError
from ..io.compression import detect_compression
from ._format import FASTTEXT_MAGIC, Vectors, is_fasttext_head, is_old_fasttext_head
from .ngrams import subword_rows

VERSION = 12                      # the newest fastText file version (fastText reads any older one)
MODEL_NAMES = {1: "cbow", 2: "skipgram", 3: "supervised"}
ARGS = struct.Struct("<12id")     # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
DICTIONARY = struct.Struct("<3i2q")
ENTRY_TAIL = 9                    # after a word's NUL: int64 count, int8 type
MAX_WORD_BYTES = 1 << 20          # a dictionary word longer than this means the bytes are not a dictionary
CHUNK_BYTES = 1 << 20            # the dictionary is read a MB at a time
BLOCK_BYTES = 1 << 24             # a 16 MB stretch of the input matrix is read, used and released at a time
PAIRS_PER_STEP = 1 << 13          # (word, row) pairs gathered at once within a stretch


@dataclass
class FastTextModel:
    """A fastText `.bin`'s header and dictionary; the input matrix stays on disk at `matrix_offset`."""

    path: str
    version: int
    dim: int
    model: str                    # cbow | skipgram (supervised models are refused)
    bucket: int
    minn: int
    maxn: int
    words: pa.Array               # large_binary: the dictionary's words (labels excluded), file order
    word_offsets: np.ndarray      # byte offset of each word's entry, for error messages
    quant_offset: int             # byte offset of the quant_input flag
    matrix_offset: int            # byte offset of the first float32 of the input matrix
    num_rows: int                 # rows of the input matrix: nwords + bucket


def open_model(path: str | os.PathLike) -> FastTextModel:
    """Read and check the header and dictionary; refuse supervised, quantised or cut-short files."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8 + ARGS.size)
        if detect_compression(head) is not None:
            raise ReindexError("a compressed fastText model cannot be memory-mapped", path=path,
                               hint="decompress it first, e.g. `gunzip -k`")
        old = not head.startswith(struct.pack("<i", FASTTEXT_MAGIC)) and is_old_fasttext_head(head + f.read(20))
        if not (old or is_fasttext_head(head)):
            raise ReindexError(f"not a fastText model: the first 4 bytes are not the magic number {FASTTEXT_MAGIC}",
                               path=path, position="byte 0", hint="pass --vectors-format for other formats")
        if len(head) < 8 + ARGS.size:
            f.seek(0)
            _exact(f, 8 + ARGS.size, path=path, offset=0, what="header")
        args_at = 0 if old else 8  # a file from before the magic number (fastText's first releases) starts at its args
        version = 0 if old else struct.unpack_from("<i", head, 4)[0]
        if not (old or 0 < version <= VERSION):
            raise ReindexError(f"fastText file version {version} is not one this reader knows (1-{VERSION})",
                               path=path, position="byte 4", hint="save the model with fastText 0.9 or gensim")
        dim, _, _, _, _, _, _, model, bucket, minn, maxn, _, _ = ARGS.unpack_from(head, args_at)
        if model not in MODEL_NAMES or dim <= 0 or bucket < 0 or minn < 0 or maxn < 0:
            raise ReindexError(f"bad fastText header (dim {dim}, model {model}, bucket {bucket}, minn {minn}, "
                               f"maxn {maxn})", path=path, position="byte 8", hint="is the file complete?")
        f.seek(args_at + ARGS.size)
        words, offsets, prune, prune_end = _read_dictionary(f, path=path, old=old)
        flags = (b"\0" if old else b"") + _exact(f, 16 + (not old), path=path, offset=prune_end,
                                                 what="input matrix header")  # old: no quant_input flag
    quant, rows, cols = struct.unpack("<?2q", flags)
    prune_end -= old  # where the flag would be: the matrix's shape follows it
    if quant:
        raise ReindexError("quantised fastText model (.ftz): its input matrix is compressed and has no plain rows",
                           path=path, position=f"byte {prune_end}", hint="use the full .bin model")
    if model == 3:
        raise ReindexError("supervised fastText model: its rows are a classifier's, not word vectors",
                           path=path, position="byte 36", hint="use an unsupervised (cbow or skipgram) .bin")
    if prune >= 0:  # as fastText: only a quantised matrix may go with a pruned dictionary
        raise ReindexError(f"pruned fastText dictionary ({prune} buckets kept) without a quantised matrix",
                           path=path, position=f"byte {8 + ARGS.size + 20}", hint="is the file complete?")
    _check_matrix(path, rows=rows, cols=cols, dim=dim, need=len(words) + bucket, offset=prune_end + 1, size=size)
    return FastTextModel(path=os.fspath(path), version=version, dim=dim, model=MODEL_NAMES[model], bucket=bucket,
                         minn=minn, maxn=maxn, words=words, word_offsets=offsets, quant_offset=prune_end,
                         matrix_offset=prune_end + 17, num_rows=rows)


def word_vectors(model: FastTextModel, tokens: Sequence[str], *, ids: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """fastText's `get_word_vector` for each token, and whether it had any row (else it is all zeros)."""
    encoded = [t.encode("utf-8", "surrogatepass") for t in tokens]
    if ids is None:
        found = pc.index_in(pa.array(encoded, pa.large_binary()), value_set=model.words)
        ids = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    indptr, indices = subword_rows(encoded, ids, nwords=len(model.words), bucket=model.bucket,
                                   minn=model.minn, maxn=model.maxn)
    return mean_rows(model, indptr, indices), np.diff(indptr) > 0


def mean_rows(model: FastTextModel, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Row i of the result is the mean of the input rows `indices[indptr[i]:indptr[i+1]]` (zeros if none)."""
    counts = np.diff(indptr)
    order = np.argsort(indices, kind="stable")
    rows, owners = indices[order], np.repeat(np.arange(len(counts)), counts)[order]
    sums = np.zeros((len(counts), model.dim), dtype=np.float64)
    per_block = max(1, BLOCK_BYTES // (4 * model.dim))
    cuts = np.searchsorted(rows, np.arange(0, model.num_rows + per_block, per_block)).tolist()
    with open(model.path, "rb") as f:
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            for at in range(a, b, PAIRS_PER_STEP) if a < b else ():
                end = min(at + PAIRS_PER_STEP, b)
                bad = _accumulate(_stretch(f, model, rows[at:end]), owners[at:end], sums)
                if bad is not None:
                    row = int(rows[at + bad])
                    raise ReindexError(f"input matrix row {row} is not finite (NaN or Inf)", path=model.path,
                                       position=f"byte {model.matrix_offset + 4 * row * model.dim}",
                                       hint="the model file is damaged; download or save it again")
    sums /= np.maximum(counts, 1)[:, None]
    return sums.astype(np.float32)


def _stretch(f, model: FastTextModel, rows: np.ndarray) -> np.ndarray:
    """The input rows `rows` (ascending), read through a mapping of just the pages that hold them."""
    row_bytes = 4 * model.dim
    start = model.matrix_offset + int(rows[0]) * row_bytes
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    end = model.matrix_offset + (int(rows[-1]) + 1) * row_bytes
    with mmap.mmap(f.fileno(), end - aligned, access=mmap.ACCESS_READ, offset=aligned) as mm:
        matrix = np.frombuffer(mm, dtype="<f4", offset=start - aligned).reshape(-1, model.dim)
        values = matrix[rows - rows[0]].astype(np.float32, copy=False)  # a copy (fancy index): the mapping closes
        del matrix
    return values


def _accumulate(values: np.ndarray, owners: np.ndarray, sums: np.ndarray) -> int | None:
    """Add `values[i]` to `sums[owners[i]]`; return the index of the first non-finite row instead, if any."""
    if not np.isfinite(values).all():
        return int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
    # `sums[owners] += values` adds only once per repeated owner: add in rounds, the k-th pair of
    # every owner in round k (few rounds: a stretch of rows rarely holds many n-grams of one word)
    order = np.argsort(owners, kind="stable")
    grouped = owners[order]
    starts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
    rank = np.arange(len(grouped)) - np.repeat(starts, np.diff(np.append(starts, len(grouped))))
    for k in range(int(rank.max()) + 1 if len(rank) else 0):
        pick = order[rank == k]
        sums[owners[pick]] += values[pick]
    return None


def read_fasttext(path: str | os.PathLike, *, keep: Collection[str] | None = None, duplicates: str = "first",
                  unicode_errors: str = "strict", limit: int | None = None):
    """The dictionary words (those in `keep`, or all) with fastText's own vectors, as `read_vectors` returns."""
    from ._collect import _resolve_duplicates, decode_tokens
    from ._keep import not_strings
    from .keyed import KeyedSet, keyed_ids

    model = open_model(path)
    candidates = model.words if limit is None else model.words.slice(0, limit)
    if keep is None:
        ids = np.arange(len(candidates))
        tokens = decode_tokens(candidates, model.word_offsets[:len(candidates)], path=path, errors=unicode_errors,
                               where_name="position")
    else:
        try:
            wanted = pa.array([t.encode("utf-8", "surrogatepass") for t in keep], pa.large_binary())
        except AttributeError:
            raise not_strings(keep) from None
        ids = keyed_ids(candidates, keep) if isinstance(keep, KeyedSet) else \
            np.flatnonzero(pc.is_in(candidates, value_set=wanted).to_numpy(zero_copy_only=False))
        tokens = decode_tokens(model.words.take(pa.array(ids)), model.word_offsets[ids], path=path,
                               errors="surrogatepass", where_name="position")  # the bytes of `keep` strings
    winners, num_duplicates = _resolve_duplicates(tokens, ids, model.word_offsets, path=path, mode=duplicates,
                                                  where_name="position")
    ids, tokens = ids[winners], tokens.take(pa.array(winners)).to_pylist()
    matrix, _ = word_vectors(model, tokens, ids=ids)
    return Vectors(tokens=tokens, matrix=matrix, dim=model.dim, format="fasttext-bin", num_read=len(candidates),
                   num_duplicates=num_duplicates)


def _exact(f, n: int, *, path, offset: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise ReindexError(f"truncated fastText model: the {what} needs {n} bytes, the file ends after {len(data)}",
                           path=path, position=f"byte {offset}", hint="the file was cut short; download it again")
    return data


def _read_dictionary(f, *, path, old: bool) -> tuple[pa.Array, np.ndarray, int, int]:
    """(word bytes, their entries' byte offsets, pruneidx_size, the offset after the pruned-bucket pairs);
    `old`: before the magic number, with no pruneidx_size (nor pairs)."""
    from ._lines import token_array

    start = f.tell()
    size = DICTIONARY.size - 8 * old
    entries, nwords, nlabels, _, prune = DICTIONARY.unpack(_exact(f, size, path=path, offset=start,
                                                                  what="dictionary header") + b"\xff" * 8 * old)
    if not (0 <= nwords <= entries and nlabels >= 0 and entries == nwords + nlabels and prune >= -1):
        raise ReindexError(f"bad fastText dictionary header (size {entries}, nwords {nwords}, nlabels {nlabels}, "
                           f"pruneidx_size {prune})", path=path, position=f"byte {start}",
                           hint="is this file a fastText model?")
    base, rest, found = start + size, b"", 0
    chunks: list[tuple[pa.Array, np.ndarray, np.ndarray]] = []  # (words, entry offsets, types)
    while found < entries:
        chunk = f.read(CHUNK_BYTES)
        data = np.frombuffer(rest + chunk, np.uint8)
        starts, nuls = _entries(data, limit=entries - found)
        if len(starts) == 0 and (not chunk or len(data) > MAX_WORD_BYTES + ENTRY_TAIL):
            what = "is cut short" if not chunk else f"has no NUL within {MAX_WORD_BYTES} bytes"
            raise ReindexError(f"dictionary entry {found + 1} of {entries} {what}", path=path,
                               position=f"byte {base}", hint="the file was cut short or is not a fastText model")
        chunks.append((token_array(data, starts, nuls), base + starts, data[nuls + ENTRY_TAIL]))
        found += len(starts)
        used = int(nuls[-1]) + 1 + ENTRY_TAIL if len(nuls) else 0
        rest, base = bytes(data[used:]), base + used
    types = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, np.uint8)
    offsets = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int64)
    bad = np.flatnonzero(types != (np.arange(entries) >= nwords))
    if len(bad):
        raise ReindexError(f"dictionary entry {int(bad[0]) + 1} has type {int(types[bad[0]])} (words, type 0, "
                           "come before labels, type 1)", path=path, position=f"byte {int(offsets[bad[0]])}",
                           hint="is the file complete?")
    words = pa.concat_arrays([c[0] for c in chunks]) if chunks else pa.array([], pa.large_binary())
    pairs = 8 * max(prune, 0)  # the pruned buckets: int32 pairs (bucket, row), used by quantised models only
    f.seek(base + pairs)       # (the reads above ran ahead of `base`)
    return words.slice(0, nwords), offsets[:nwords], prune, base + pairs


def _entries(data: np.ndarray, *, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, NUL positions) of the whole dictionary entries at the front of `data`, at most `limit`.

    >>> _entries(np.frombuffer(b"ab\\x00" + bytes(9) + b"c\\x00" + bytes(9) + b"d", np.uint8), limit=9)
    (array([ 0, 12]), array([ 2, 13]))
    """
    zeros = np.flatnonzero(data == 0)
    fits = int(np.searchsorted(zeros, len(data) - ENTRY_TAIL, side="left"))   # NUL whose tail is in data
    following = np.searchsorted(zeros, zeros[:fits] + 1 + ENTRY_TAIL).tolist()
    chain: list[int] = []
    i = begin = 0
    while i < fits and len(chain) < limit and zeros[i] - begin <= MAX_WORD_BYTES:
        chain.append(i)  # one list step per entry; the words are gathered in one step after
        begin = int(zeros[i]) + 1 + ENTRY_TAIL
        i = following[i]
    nuls = zeros[chain].astype(np.int64)
    starts = np.concatenate([[0], nuls[:-1] + 1 + ENTRY_TAIL]).astype(np.int64) if len(nuls) else nuls
    return starts, nuls


def _check_matrix(path, *, rows: int, cols: int, dim: int, need: int, offset: int, size: int) -> None:
    if cols != dim or rows != need:
        raise ReindexError(f"input matrix is {rows} x {cols}, the header says {need} x {dim} (nwords + bucket)",
                           path=path, position=f"byte {offset}", hint="is the file complete?")
    end = offset + 16 + 4 * rows * cols
    if size < end + 17:  # then qout and the output matrix's shape, at least
        raise ReindexError(f"truncated fastText model: the input matrix ends at byte {end}, the file at {size}",
                           path=path, position=f"byte {offset}", hint="the file was cut short; download it again")
