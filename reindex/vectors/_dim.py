"""The dimension of a GloVe file without a header, from its first lines (read from the right)."""
from __future__ import annotations

import collections
import os

from ..errors import ReindexError
from ._line import tab_error, tab_separated, trailing_numbers

SAMPLE_LINES = 32  # lines looked at to find the dimension of a file without a header


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
