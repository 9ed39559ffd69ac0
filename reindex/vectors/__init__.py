"""Read pretrained vectors: GloVe text, word2vec/fastText text (`.vec`), word2vec binary (`.bin`),
fastText's native model (`.bin`, found by its magic number, or by its header in files from before it; see `fasttext.py`).

Any of them may be gzip, bz2, xz or zstd compressed (found from the first bytes, not the suffix);
archives (zip, tar, 7z) are refused with a hint to extract the file.

v = read_vectors("glove.6B.300d.txt.gz", keep={"the", "cat"})
v.tokens, v.matrix.shape, v.format
(['the', 'cat'], (2, 300), 'glove')
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Collection

import numpy as np

from ..errors import ReindexError, ReindexWarning, UsageError
from ..io.streams import STREAM_ERRORS, FileDigest, open_stream, read_or_fail, refuse_archive
from ._format import Vectors, cr_only, detect_format, header_problem, is_fasttext_head, parse_header
from ._open import BLOCK_BYTES, iter_line_blocks

FORMATS = ("glove", "word2vec-text", "word2vec-binary", "fasttext-bin")
DUPLICATE_MODES = ("first", "last", "error")
UNICODE_MODES = ("strict", "replace", "ignore")
BOM = b"\xef\xbb\xbf"


def read_vectors(path: str | os.PathLike, *, keep: Collection[str] | None = None, format: str | None = None,
                 duplicates: str = "first", unicode_errors: str = "strict",
                 digest: FileDigest | None = None, limit: int | None = None) -> Vectors:
    """Read a vector file, keeping only tokens in `keep` (all when None), and only its first `limit` vectors.

    `duplicates`: "first" (the first record of a token wins), "last", or "error".
    `unicode_errors`: "strict", "replace" or "ignore", for tokens that are not valid UTF-8.
    Raises ReindexError (naming the file and the line or byte) for any bad input. With `keep`, the
    records of other tokens are counted in `num_read` but their numbers are neither parsed nor
    checked, and duplicates are counted among kept tokens only. A text header whose count disagrees
    with the records is accepted with a UserWarning; a header count of 0 before records, a negative
    or huge count, a dimension below 1, and a binary file with more or fewer records than its header
    says are refused. `digest` (a `FileDigest`) gets the sha256 of the file's bytes as they are read.

    read_vectors("vectors.txt").matrix.dtype
    dtype('float32')
    """
    _check_options(format, duplicates, unicode_errors)
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    try:
        keep = keep if keep is None or isinstance(keep, (set, frozenset)) else set(keep)
        return _read(path, keep=keep, format=format,
                     duplicates=duplicates, unicode_errors=unicode_errors, digest=digest, limit=limit)
    except ReindexError:
        raise
    except STREAM_ERRORS as e:
        raise ReindexError(f"cannot read vector file: {e}", path=path, hint="is the file complete?") from e
    except MemoryError as e:
        raise ReindexError("not enough memory for the vectors", path=path,
                           hint="pass keep= (the vocabulary) so only needed vectors are held") from e
    except Exception as e:  # pyarrow and numpy raise their own types on bytes we did not foresee
        raise ReindexError(f"cannot parse vector file ({type(e).__name__}: {e})", path=path,
                           hint="check the format, or pass --vectors-format") from e


def _check_options(format: str | None, duplicates: str, unicode_errors: str) -> None:
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown vector format {format!r}", hint="use one of " + ", ".join(FORMATS))
    if duplicates not in DUPLICATE_MODES:
        raise UsageError(f"duplicates must be one of {DUPLICATE_MODES}, got {duplicates!r}")
    if unicode_errors not in UNICODE_MODES:
        raise UsageError(f"unicode_errors must be one of {UNICODE_MODES}, got {unicode_errors!r}")


def _file_position(stream, digest=None):
    """How far into the file on disk the reader is (compressed bytes for a compressed file)."""
    if digest is not None:  # it counts the raw bytes as they are read
        return lambda: digest.size
    raw = getattr(stream, "fileobj", None) or getattr(stream, "_fp", None) or stream
    try:
        fd = raw.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return lambda: os.lseek(fd, 0, os.SEEK_CUR)


def _size(stream, compression: str | None) -> int | None:
    """The file's size when it is not compressed (it sizes the matrix once), else None."""
    return None if compression else os.fstat(stream.fileno()).st_size


def _first_lines(blocks, limit: int | None):
    """The blocks cut after their `limit`-th line (`--limit`); views of the same buffers."""
    if limit is None:
        yield from blocks
        return
    from ._lines import line_ends  # pyarrow: not at `import reindex.vectors`

    left = limit
    for block in blocks:
        ends = line_ends(np.frombuffer(block, np.uint8))
        if len(ends) >= left:
            yield block[:int(ends[left - 1]) + 1]
            return
        left -= len(ends)
        yield block


def _read(path, *, keep, format, duplicates, unicode_errors, digest, limit=None) -> Vectors:
    # pyarrow is imported here, not at `import reindex.vectors`, to keep the CLI's start-up light
    from .. import progress
    from ._keep import Keep
    from .binary import read_binary
    from .text import read_text

    opened = open_stream(path, what="vector file", hint="check the --vectors path", digest=digest)
    with opened as (stream, compression), progress.step(
            f"reading {os.fspath(path)}", total=os.path.getsize(path), unit="bytes",
            poll=_file_position(stream, digest)):
        first = read_or_fail(stream, BLOCK_BYTES, path=path, compression=compression, offset=0)
        if compression:
            refuse_archive(first, path=path, compression=compression, what="vector file")
        if format == "fasttext-bin" or (format is None and is_fasttext_head(first)):
            from .fasttext import read_fasttext  # memory-maps the file itself (refusing a compressed one)

            return read_fasttext(path, keep=keep, duplicates=duplicates, unicode_errors=unicode_errors, limit=limit)
        skipped = len(BOM) if first.startswith(BOM) else 0
        first = first[skipped:]
        if not first.strip():
            raise ReindexError("empty file: no vectors", path=path, hint="check the --vectors path")
        if format != "word2vec-binary" and cr_only(first):
            raise ReindexError("lines end in a lone CR (old Mac line ends), so the file reads as one line",
                               path=path, line=1, hint="convert them to LF, e.g. `tr '\\r' '\\n' < FILE > FIXED`")
        newline = first.find(b"\n")
        header = parse_header(first[:newline if newline >= 0 else None])
        if format != "glove" and header is not None and header_problem(header):
            raise ReindexError(f"line 1 looks like a word2vec `count dim` header, but {header_problem(header)}",
                               path=path, line=1, hint="fix the header (or, if line 1 is a vector, "
                                                       "pass --vectors-format glove)")
        fmt = format or detect_format(first[:1 << 16])
        header = None if fmt == "glove" else header
        if fmt != "glove" and header is None:
            raise ReindexError(f"line 1 is not a word2vec `count dim` header: {first[:40]!r}", path=path,
                               line=1, hint="for a file without a header pass --vectors-format glove")
        body = first if header is None else first[newline + 1:]
        keep = None if keep is None else Keep(keep)
        if fmt == "word2vec-binary":
            assert header is not None  # refused above
            collector, num_read = read_binary(stream, body, path=path, compression=compression,
                                              header=header, header_bytes=skipped + newline + 1, keep=keep,
                                              size_hint=_size(stream, compression),
                                              limit=limit)
        else:
            blocks = _first_lines(iter_line_blocks(stream, first=body, path=path, compression=compression), limit)
            del first, body  # the blocks hold these bytes until they are parsed, and no longer
            collector, num_read = read_text(blocks, path=path, header=header, keep=keep,
                                            size_hint=_size(stream, compression))
    if header is not None and header[0] == 0 and num_read:
        raise ReindexError(f"the header says 0 vectors but the file holds {num_read}", path=path, line=1,
                           hint="fix the header's first number (the number of vectors)")
    if header is not None and header[0] != num_read and (limit is None or num_read < limit):
        warnings.warn(f"{os.fspath(path)}: the header says {header[0]} vectors but the file has {num_read}",
                      ReindexWarning, stacklevel=3)
    where = "position" if fmt == "word2vec-binary" else "line"
    tokens, matrix, num_duplicates = collector.finish(path=path, keep=keep, duplicates=duplicates,
                                                      unicode_errors=unicode_errors, where_name=where)
    return Vectors(tokens=tokens, matrix=matrix, dim=collector.dim, format=fmt, num_read=num_read,
                   num_duplicates=num_duplicates)
