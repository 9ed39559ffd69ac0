"""Matching vocabulary tokens to the rows of a vector table: exactly, or through a fallback form.

Pure: token lists and arrays in, `Matched` out; no paths.

The rules, in order, for each vocabulary token:
1. `normalize` ("none", "nfc" or "nfkc") is applied to the vocabulary token and to every vector
   token before they are compared; among vector tokens that normalise alike the first in the
   file wins.
2. The exact (normalised) form, when the file has it.
3. With `case_fallback`: the case variant that comes first in the vector file among the token's
   lowercase, title case and upper case forms and any vector token with the same `casefold()`
   (so `Straße` finds `strasse`, and `ΟΔΟΣ` finds `οδος`). With only `lowercase_fallback`, the
   lowercase form alone (the older, narrower rule).

Every match that is not exact in the raw strings is recorded (`Matched.fallback`), so the run's
manifest can count and list them.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence, cast

import numpy as np

NORMALIZE = ("none", "nfc", "nfkc")
#: Fallback kinds, as counted in the manifest (`counts.fallback`).
KINDS = ("normalized", "lowercase", "title", "upper", "casefold")


@dataclass
class Matched:
    """For each original id: the row of its vector in `matrix`, or -1 (trainable)."""

    rows: np.ndarray              # int64 [V]
    matrix: np.ndarray            # float32 [N, D]
    lowercase: np.ndarray         # bool [V]: matched through the lowercase form
    stats: dict[str, Any] = field(default_factory=dict)
    old_order: np.ndarray | None = None   # expansion from a run: new original ids of old sorted ids
    fallback: list[dict[str, Any]] = field(default_factory=list)  # {"id", "token", "vector", "kind"}
    pieces: Callable[[Sequence[str]], list[np.ndarray]] | None = None  # texts -> rows of their pieces (HF model)

    def fallback_counts(self) -> dict[str, int]:
        """How many tokens each fallback kind matched: `{"lowercase": 3, "title": 0, ...}`."""
        counts = dict.fromkeys(KINDS, 0)
        for entry in self.fallback:
            counts[entry["kind"]] += 1
        return counts


def normalizer(form: str) -> Callable[[str], str]:
    """The function `--normalize FORM` applies to every token.

    >>> normalizer("nfc")("e\\u0301") == "\\u00e9", normalizer("none")("e\\u0301") == "e\\u0301"
    (True, True)
    """
    if form not in NORMALIZE:
        from .errors import UsageError

        raise UsageError(f"--normalize must be one of {', '.join(NORMALIZE)}, got {form!r}")
    if form == "none":
        return lambda token: token
    name = cast(Literal["NFC", "NFKC"], form.upper())  # checked against NORMALIZE above
    return lambda token: unicodedata.normalize(name, token)


def case_variants(token: str) -> tuple[tuple[str, str], ...]:
    """(kind, form) for the case variants tried, in the order they are listed.

    >>> case_variants("NASA")
    (('lowercase', 'nasa'), ('title', 'Nasa'), ('upper', 'NASA'))
    """
    return (("lowercase", token.lower()), ("title", token.title()), ("upper", token.upper()))


def needs_every_vector(*, normalize: str = "none", case_fallback: bool = False) -> bool:
    """True when the forms to keep cannot be listed from the vocabulary (they depend on the file)."""
    return normalize != "none" or case_fallback


def wanted_forms(tokens: Sequence[str], *, lowercase_fallback: bool = False) -> set[str]:
    """The vector tokens worth keeping for exact and lowercase matching.

    >>> sorted(wanted_forms(["The", "cat"], lowercase_fallback=True))
    ['The', 'cat', 'the']
    """
    keep = set(tokens)
    if lowercase_fallback:
        keep.update(t.lower() for t in tokens)
    return keep


def match_vectors(tokens: Sequence[str], found_tokens: Sequence[str], matrix: np.ndarray, *,
                  lowercase_fallback: bool = False, case_fallback: bool = False,
                  normalize: str = "none") -> Matched:
    """Match vocabulary tokens to vector rows: exactly, then (optionally) through a case variant.

    >>> m = match_vectors(["The", "cat", "dog"], ["cat", "the"], np.zeros((2, 1), np.float32),
    ...                   lowercase_fallback=True)
    >>> m.rows.tolist(), m.lowercase.tolist()
    ([1, 0, -1], [True, False, False])
    >>> match_vectors(["strasse", "Paris"], ["PARIS", "Straße", "paris"], np.zeros((3, 1), np.float32),
    ...               case_fallback=True).rows.tolist()
    [1, 0]
    """
    norm = normalizer(normalize)
    row_of: dict[str, int] = {}
    for i, token in enumerate(found_tokens):
        row_of.setdefault(norm(token), i)
    keys = [norm(t) for t in tokens]
    rows = np.fromiter((row_of.get(k, -1) for k in keys), dtype=np.int64, count=len(tokens))
    lowercase = np.zeros(len(tokens), dtype=bool)
    fallback: list[dict[str, Any]] = []
    if normalize != "none":
        for i in np.flatnonzero(rows >= 0).tolist():
            if found_tokens[rows[i]] != tokens[i]:
                fallback.append({"id": i, "token": tokens[i], "vector": found_tokens[rows[i]], "kind": "normalized"})
    if case_fallback or lowercase_fallback:
        folded = _first_by_casefold(row_of) if case_fallback else {}
        for i in np.flatnonzero(rows < 0).tolist():
            kind, row = _best_variant(keys[i], row_of, folded, lowercase_only=not case_fallback)
            if row >= 0:
                rows[i] = row
                lowercase[i] = kind == "lowercase"
                fallback.append({"id": i, "token": tokens[i], "vector": found_tokens[row], "kind": kind})
    fallback.sort(key=lambda entry: entry["id"])
    return Matched(rows=rows, matrix=matrix, lowercase=lowercase, fallback=fallback)


def _first_by_casefold(row_of: dict[str, int]) -> dict[str, int]:
    """casefold(form) -> the first row in the file with that casefold."""
    folded: dict[str, int] = {}
    for form, row in row_of.items():
        key = form.casefold()
        if row < folded.get(key, row + 1):
            folded[key] = row
    return folded


def _best_variant(key: str, row_of: dict[str, int], folded: dict[str, int], *,
                  lowercase_only: bool) -> tuple[str, int]:
    """(kind, row) of the variant found first in the file, or ("", -1)."""
    if lowercase_only:
        return "lowercase", row_of.get(key.lower(), -1)
    best_kind, best = "", -1
    for kind, form in case_variants(key):
        row = row_of.get(form, -1)
        if row >= 0 and (best < 0 or row < best):
            best_kind, best = kind, row
    row = folded.get(key.casefold(), -1)
    if row >= 0 and (best < 0 or row < best):
        best_kind, best = "casefold", row
    return best_kind, best
