"""One line at a time: the fallback for lines the block parser leaves aside (tokens with spaces, short
lines, a lone CR) and the source of every precise per-line error."""
from __future__ import annotations

import os

import numpy as np

from ..checkpoint.tensors import FLOAT32_MAX
from ..errors import ReindexError
from ._format import NUMBER


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
