"""Tell the formats apart from a file's first bytes, and what every reader returns (no pyarrow: `import`
stays light)."""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

INTEGER = re.compile(rb"[-+]?\d+")
MAX_COUNT = 2 ** 63 - 1
NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf|infinity)")


def parse_header(line: bytes) -> tuple[int, int] | None:
    """(count, dim) if `line` has the shape of a word2vec `N D` header (two integers, any sign or size:
    `header_problem` says whether they make sense).

    >>> parse_header(b"3000 300"), parse_header(b"-3 3"), parse_header(b"the 0.1 0.2")
    ((3000, 300), (-3, 3), None)
    """
    fields = line.split()
    if len(fields) == 2 and INTEGER.fullmatch(fields[0]) and INTEGER.fullmatch(fields[1]):
        return int(fields[0]), int(fields[1])
    return None


def header_problem(header: tuple[int, int]) -> str | None:
    """Why a `count dim` header cannot be right, or None.

    >>> header_problem((0, 0)), header_problem((10, 300))
    ('its dimension 0 is not positive', None)
    """
    count, dim = header
    if count < 0:
        return f"its count {count} is negative"
    if count > MAX_COUNT:
        return f"its count {count} is larger than 2^63 - 1"
    if dim <= 0:
        return f"its dimension {dim} is not positive"
    if dim > MAX_COUNT // 4:
        return f"its dimension {dim} is larger than any vector"
    return None


def detect_format(head: bytes) -> str:
    """Guess the format from the first bytes (BOM and compression already removed).

    >>> detect_format(b"the 0.1 0.2\\n"), detect_format(b"1 2\\nthe 0.1 0.2\\n")
    ('glove', 'word2vec-text')
    """
    newline = head.find(b"\n")
    header = parse_header(head[:newline]) if newline >= 0 else None
    if header is None:
        return "glove"
    dim = max(header[1], 1)
    line = head[newline + 1:].split(b"\n", 1)[0].rstrip(b" \r")
    numbers = line.rsplit(b" ", dim)[1:]
    if not line or (numbers and all(NUMBER.fullmatch(n) for n in numbers)):
        return "word2vec-text"
    return "word2vec-binary"


def cr_only(head: bytes) -> bool:
    """Whether lines end in a lone CR (old Mac): CRs between lines and not one LF in the first block.

    >>> cr_only(b"the 1 2\\rcat 3 4\\r"), cr_only(b"the 1 2\\r\\ncat 3 4\\r\\n")
    (True, False)
    """
    return b"\n" not in head and b"\r" in head.rstrip(b"\r")


FASTTEXT_MAGIC = 793712314  # int32 at byte 0 of a fastText model (.bin/.ftz)


def is_fasttext_head(head: bytes) -> bool:
    """Whether bytes start like a fastText model: its magic number (little-endian int32), or, before
    fastText wrote one, a plausible header (`is_old_fasttext_head`).

    >>> is_fasttext_head((793712314).to_bytes(4, "little") + bytes(4)), is_fasttext_head(b"3 2\\n")
    (True, False)
    """
    return head[:4] == FASTTEXT_MAGIC.to_bytes(4, "little") or is_old_fasttext_head(head)


def is_old_fasttext_head(head: bytes) -> bool:
    """Whether the first 76 bytes read as the args and dictionary header of a fastText model saved before
    the magic number (dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t,
    then size nwords nlabels ntokens), each within what fastText allows: text never does."""
    if len(head) < 76:
        return False
    dim, ws, epoch, _, neg, ngrams, loss, model, bucket, minn, maxn, _ = struct.unpack_from("<12i", head)
    size, nwords, nlabels, ntokens = struct.unpack_from("<3iq", head, 56)
    return (0 < dim <= 1 << 16 and 0 < ws <= 1 << 16 and epoch > 0 and neg >= 0 and 0 < ngrams <= 1 << 8
            and 1 <= loss <= 4 and 1 <= model <= 3 and bucket >= 0 and 0 <= minn <= 1 << 8 and 0 <= maxn <= 1 << 8
            and 0 <= nwords and 0 <= nlabels and size == nwords + nlabels and ntokens >= 0)


@dataclass
class Vectors:
    """Vectors read from a file; `matrix[i]` is the vector of `tokens[i]`."""

    tokens: list[str]        # kept tokens, in file order of the occurrence that won
    matrix: np.ndarray       # float32 C-contiguous [len(tokens), dim]
    dim: int
    format: str              # "glove" | "word2vec-text" | "word2vec-binary"
    num_read: int            # vector records in the file
    num_duplicates: int      # records whose token had already appeared
