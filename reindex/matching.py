"""Matching vocabulary tokens to the rows of a vector table: exactly, or through a fallback form.

Pure: token lists and arrays in, `Matched` out; no paths.

The rules, in order, for each vocabulary token; a later rule only fills a token that no earlier
rule matched, so a normalised or case-folded match never beats an exact one:
1. Exact: the first vector line whose token is the vocabulary token, as written. Two vocabulary
   tokens that normalise alike (the NFC and the NFD `été`, `fi` and `ﬁ`) each keep their own line.
2. `normalize` ("nfc" or "nfkc"): the line of the token's normal form. Among vector tokens that
   normalise alike, the one already in normal form wins, else the first in the file; vocabulary
   tokens that share a normal form and have no exact line all take that one line.
3. With `case_fallback`: the case variant that comes first in the vector file among the (normalised)
   token's lowercase, title case and upper case forms and any vector token with the same
   `casefold()` (so `Straße` finds `strasse`, and `ΟΔΟΣ` finds `οδος`). With only
   `lowercase_fallback`, the lowercase form alone (the older, narrower rule).

Every match of rules 2 and 3 is recorded (`Matched.fallback`: id, token, the vector token chosen,
kind), so the run's manifest counts only real rescues and `reindex inspect` lists what was chosen.
`keep_keys` lists what a streaming reader must keep for these rules (`read_vectors(keep=...)`).
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

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
    name: Literal["NFC", "NFKC"] = "NFC" if form == "nfc" else "NFKC"
    return lambda token: unicodedata.normalize(name, token)


def case_variants(token: str) -> tuple[tuple[str, str], ...]:
    """(kind, form) for the case variants tried, in the order they are listed.

    >>> case_variants("NASA")
    (('lowercase', 'nasa'), ('title', 'Nasa'), ('upper', 'NASA'))
    """
    return (("lowercase", token.lower()), ("title", token.title()), ("upper", token.upper()))


def wanted_forms(tokens: Sequence[str], *, lowercase_fallback: bool = False) -> set[str]:
    """The vector tokens worth keeping for exact and lowercase matching.

    >>> sorted(wanted_forms(["The", "cat"], lowercase_fallback=True))
    ['The', 'cat', 'the']
    """
    keep = set(tokens)
    if lowercase_fallback:
        keep.update(t.lower() for t in tokens)
    return keep


def keep_keys(tokens: Sequence[str], *, normalize: str = "none", case_fallback: bool = False,
              lowercase_fallback: bool = False) -> tuple[set[str], Callable[[str], str] | None, bool]:
    """What a reader must keep for these rules: (keys, key, folds_ascii). A vector token is needed
    only if `key(token)` is in `keys` (with `key` None: only if the token itself is). `key` is the
    normal form, case-folded when a case rule is on (`folds_ascii`: it maps ASCII to its lowercase,
    and other ASCII to itself), so the keys cover every line rules 1-3 can pick.

    >>> keys, key, folds = keep_keys(["By", "ﬁnd"], normalize="nfkc", case_fallback=True)
    >>> sorted(keys), key("ｂｙ"), folds
    (['by', 'find'], 'by', True)
    """
    if normalize == "none" and not case_fallback:
        return wanted_forms(tokens, lowercase_fallback=lowercase_fallback), None, False
    norm = normalizer(normalize)
    case = case_fallback or lowercase_fallback
    if not case:
        return {norm(t) for t in tokens}, norm, False

    def key(token: str) -> str:
        return norm(token).casefold()

    keys: set[str] = set()
    for token in tokens:
        if token.isascii():  # its normal form is itself, and every case variant folds to its lowercase
            keys.add(token.lower())
            continue
        form = norm(token)
        for variant in (form, *(v for _, v in case_variants(form))):
            keys.update((variant.casefold(), key(variant)))
    return keys, key, True


def match_vectors(tokens: Sequence[str], found_tokens: Sequence[str], matrix: np.ndarray, *,
                  lowercase_fallback: bool = False, case_fallback: bool = False,
                  normalize: str = "none") -> Matched:
    """Match vocabulary tokens to vector rows: exactly, then (optionally) through a fallback form.

    >>> m = match_vectors(["The", "cat", "dog"], ["cat", "the"], np.zeros((2, 1), np.float32),
    ...                   lowercase_fallback=True)
    >>> m.rows.tolist(), m.lowercase.tolist()
    ([1, 0, -1], [True, False, False])
    >>> match_vectors(["strasse", "Paris"], ["PARIS", "Straße", "paris"], np.zeros((3, 1), np.float32),
    ...               case_fallback=True).rows.tolist()
    [1, 0]
    >>> match_vectors(["fi", "ﬁx"], ["ﬁ", "fi", "fix"], np.zeros((3, 1), np.float32), normalize="nfkc").rows.tolist()
    [1, 2]
    """
    norm = normalizer(normalize)
    exact = _first_rows(found_tokens)
    rows = np.fromiter((exact.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
    lowercase = np.zeros(len(tokens), dtype=bool)
    fallback: list[dict[str, Any]] = []
    if normalize == "none" and not (case_fallback or lowercase_fallback):
        return Matched(rows=rows, matrix=matrix, lowercase=lowercase)
    table = exact if normalize == "none" else _normal_rows(found_tokens, norm)
    folded = _first_by_casefold(table) if case_fallback else {}
    for i in np.flatnonzero(rows < 0).tolist():
        key = norm(tokens[i])
        kind, row = ("normalized", table.get(key, -1)) if normalize != "none" else ("", -1)
        if row < 0 and (case_fallback or lowercase_fallback):
            kind, row = _best_variant(key, table, folded, lowercase_only=not case_fallback)
        if row >= 0:
            rows[i] = row
            lowercase[i] = kind == "lowercase"
            fallback.append({"id": i, "token": tokens[i], "vector": found_tokens[row], "kind": kind})
    return Matched(rows=rows, matrix=matrix, lowercase=lowercase, fallback=fallback)


def _first_rows(found_tokens: Sequence[str]) -> dict[str, int]:
    """token -> the first row holding it."""
    row_of: dict[str, int] = {}
    for i, token in enumerate(found_tokens):
        row_of.setdefault(token, i)
    return row_of


def _normal_rows(found_tokens: Sequence[str], norm: Callable[[str], str]) -> dict[str, int]:
    """normal form -> the row of the vector token already in that form, else the first that normalises to it."""
    canonical: dict[str, int] = {}
    other: dict[str, int] = {}
    for i, token in enumerate(found_tokens):
        form = token if token.isascii() else norm(token)  # ASCII is in every normal form
        (canonical if form == token else other).setdefault(form, i)
    return {**other, **canonical}


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


def rows_fingerprint(tokens: Sequence[str], rows: np.ndarray) -> dict[str, str]:
    """sha256 of tokens (one per line, UTF-8) and of their rows (little-endian float32, C order): what an
    expanded run records of the old run (`counts.old_run`) and `verify` checks its first rows against.

    >>> rows_fingerprint(["a"], np.zeros((1, 2), np.float32))["rows_sha256"][:12]
    'af5570f5a181'
    """
    block = np.ascontiguousarray(rows, dtype="<f4")
    return {"tokens_sha256": hashlib.sha256("\n".join(tokens).encode("utf-8", "surrogatepass")).hexdigest(),
            "rows_sha256": hashlib.sha256(block.data).hexdigest()}
