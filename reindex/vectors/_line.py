"""One line at a time: the fallback for lines the block parser leaves aside (tokens with spaces, short
lines, a lone CR), the source of every precise per-line error, and the dimension of a GloVe file
without a header, from its first lines (read from the right)."""
from __future__ import annotations

import collections
import os

import numpy as np

from ..checkpoint.tensors import FLOAT32_MAX
from ..errors import ReindexError
from ._format import NUMBER

SAMPLE_LINES = 32  # lines looked at to find the dimension of a file without a header


def parse_line(text: bytes, *, dim: int, line: int, path: str | os.PathLike,
               origin: str) -> tuple[bytes, np.ndarray] | None:
    """Parse one line (no terminator) into (token, float32 vector); None for a blank line.

    The last `dim` fields are the numbers; whatever precedes them, spaces included, is the token.
    >>> parse_line(b"New York 1 2", dim=2, line=1, path="v", origin="")
    (b'New York', array([1., 2.], dtype=float32))
    """
    text = text.rstrip(b" ")
    if not text:
        return None
    if tab_separated(text):
        raise tab_error(path=path, line=line)
    parts = text.rsplit(b" ", dim)
    if len(parts) <= dim:
        raise ReindexError(f"expected a token and {dim} numbers, found {len(parts)} fields", path=path,
                           line=line, hint=f"every line needs {dim} numbers{origin}")
    for field in parts[1:]:
        if not NUMBER.fullmatch(field):
            raise ReindexError(f"field {field[:40]!r} is not a number", path=path, line=line,
                               hint=f"the last {dim} fields of a line must be numbers")
    values = np.array([float(field) for field in parts[1:]], dtype=np.float32)
    if not np.isfinite(values).all():
        raise not_finite(values, path=path, line=line)
    return parts[0], values


def tab_separated(text: bytes) -> bool:
    """Whether a TAB stands where a space should, between numbers or before the first one (a TAB inside
    a token, before any number, is the token's).

    >>> tab_separated(b"the\\t1 2"), tab_separated(b"the 1\\t2"), tab_separated(b"a\\tb 1 2")
    (True, True, False)
    """
    if b"\t" not in text:
        return False
    for k, field in enumerate(text.split(b" ")):
        parts = field.split(b"\t")
        if len(parts) > 1 and any(NUMBER.fullmatch(p) for p in (parts if k else parts[1:])):
            return True
    return False


def tab_error(*, path: str | os.PathLike, line: int) -> ReindexError:
    return ReindexError("TABs and spaces mix as separators: a TAB stands between the numbers", path=path,
                        line=line, hint="GloVe and word2vec separate fields with spaces; convert the TABs, "
                                        "e.g. `tr '\\t' ' ' < FILE > FIXED`")


def not_finite(values: np.ndarray, *, path: str | os.PathLike, line: int | None = None,
               position: str | None = None) -> ReindexError:
    """The error for a vector holding NaN or Inf, or a number too large for float32 (parsed as Inf)."""
    field = int(np.flatnonzero(~np.isfinite(values))[0])
    return ReindexError(f"vector has {values[field]} at number {field + 1}", path=path, line=line,
                        position=position, hint="fix or remove that vector; NaN, Inf and numbers beyond float32's "
                                                       f"range (|x| <= {FLOAT32_MAX:.4g}) are not allowed")


def trailing_numbers(text: bytes) -> tuple[int, int]:
    """(fields after the first, how many of the last fields are numbers), for finding the dimension.

    >>> trailing_numbers(b"New York 1 2"), trailing_numbers(b"the 1 2 3")
    ((3, 2), (3, 3))
    """
    fields = text.rstrip(b" \r").split(b" ")
    numbers = 0
    for field in reversed(fields[1:]):
        if not NUMBER.fullmatch(field):
            break
        numbers += 1
    return len(fields) - 1, numbers


def find_dim(first: bytes, header: tuple[int, int] | None, *, path: str | os.PathLike,
             first_line: int) -> tuple[int, str, bool]:
    """(dim, where it came from for messages, whether lines end in a space), from the first block."""
    lines = first.split(b"\n", SAMPLE_LINES)[:SAMPLE_LINES]
    numbered = [(i, line.removesuffix(b"\r")) for i, line in enumerate(lines) if line.strip(b" \r")]
    sample = [line for _, line in numbered]
    tabbed = next((i for i, line in numbered if tab_separated(line)), None)
    if tabbed is not None:  # before the dimension, which a TAB would hide
        raise tab_error(path=path, line=first_line + tabbed)
    trailing = bool(sample) and sum(line.endswith(b" ") for line in sample) * 2 > len(sample)
    if header:
        dim, origin = header[1], ", as the header on line 1 says"
        if sample:
            fields, numbers = trailing_numbers(sample[0])
            if fields < dim:
                raise ReindexError(f"dimension mismatch: the header says {dim} but line 2 has {fields} numbers",
                                   path=path, line=2, hint="fix the header's second number")
        return dim, origin, trailing
    counts = [trailing_numbers(line) for _, line in numbered]
    if not counts or max(n for _, n in counts) < 1:
        raise ReindexError(f"line {first_line} has no numbers after the token", path=path, line=first_line,
                           hint="expected `token v1 ... vD`; is this a vocabulary, not vectors?")
    # Lines whose every field after the first is a number say the dimension; a token with spaces
    # only adds fields, so the most common count among them wins (the earliest line breaks ties).
    plain = [fields for fields, numbers in counts if fields == numbers]
    if plain:
        tally = collections.Counter(plain)
        dim = max(tally, key=lambda d: (tally[d], -plain.index(d)))
    else:
        dim = min(n for _, n in counts if n > 0)
    line = next((i for (i, _), (f, n) in zip(numbered, counts, strict=True) if f == n == dim), numbered[0][0])
    return dim, f" (the dimension of line {first_line + line})", trailing
