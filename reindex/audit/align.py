"""Which BASE row each TUNED row is compared with: by id, or by token when the tokenizers differ.

>>> a = align(["a", "b", "c"], ["a", "b", "c", "new"], base_rows=3, tuned_rows=4)
>>> a.by, a.tuned.tolist(), a.only_in_tuned.tolist()
('id', [0, 1, 2], [3])
>>> a = align(["a", "b", "c"], ["c", "a", "d"], base_rows=3, tuned_rows=3)
>>> a.by, a.base.tolist(), a.tuned.tolist(), a.tokens_only_in_base, a.tokens_only_in_tuned
('token', [2, 0], [0, 1], ['b'], ['d'])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

Tokens = Sequence["str | None"]


@dataclass(frozen=True)
class Alignment:
    """Pairs (`base[i]`, `tuned[i]`), `tuned` increasing; the rows of each side that have no partner."""

    by: str                      # "id" or "token"
    base: np.ndarray
    tuned: np.ndarray
    only_in_tuned: np.ndarray    # TUNED rows with no BASE row (a resize, or a token BASE lacks)
    only_in_base: np.ndarray
    tokens_only_in_base: list[str] = field(default_factory=list)
    tokens_only_in_tuned: list[str] = field(default_factory=list)
    unnamed: int = 0             # rows left out when matching by token, because no token names them


def align(base_tokens: Tokens | None, tuned_tokens: Tokens | None, *, base_rows: int, tuned_rows: int) -> Alignment:
    """By id when the tokens agree wherever both name a row (or a side has none), else by token string."""
    if base_tokens is None or tuned_tokens is None or _agree(base_tokens, tuned_tokens, min(base_rows, tuned_rows)):
        return by_id(base_rows, tuned_rows)
    return by_token(_fit(base_tokens, base_rows), _fit(tuned_tokens, tuned_rows))


def by_id(base_rows: int, tuned_rows: int) -> Alignment:
    both = np.arange(min(base_rows, tuned_rows), dtype=np.int64)
    return Alignment(by="id", base=both, tuned=both, only_in_tuned=np.arange(both.shape[0], tuned_rows),
                     only_in_base=np.arange(both.shape[0], base_rows))


def _agree(base: Tokens, tuned: Tokens, n: int) -> bool:
    return all(a is None or b is None or a == b for a, b in zip(base[:n], tuned[:n], strict=False))


def _fit(tokens: Tokens, rows: int) -> list[str | None]:
    """The tokens of rows 0..rows-1: ids past the tokenizer have none, ids past the matrix are dropped."""
    return list(tokens[:rows]) + [None] * max(0, rows - len(tokens))


def by_token(base: list[str | None], tuned: list[str | None]) -> Alignment:
    base_row = {t: i for i, t in enumerate(base) if t is not None}
    tuned_set = {t for t in tuned if t is not None}
    pairs = [(base_row[t], i) for i, t in enumerate(tuned) if t is not None and t in base_row]
    only_tuned = [i for i, t in enumerate(tuned) if t is not None and t not in base_row]
    only_base = [i for i, t in enumerate(base) if t is not None and t not in tuned_set]
    unnamed = sum(t is None for t in base) + sum(t is None for t in tuned)
    pair = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return Alignment(by="token", base=pair[:, 0], tuned=pair[:, 1],
                     only_in_tuned=np.array(only_tuned, dtype=np.int64),
                     only_in_base=np.array(only_base, dtype=np.int64),
                     tokens_only_in_base=[str(base[i]) for i in only_base],
                     tokens_only_in_tuned=[str(tuned[i]) for i in only_tuned], unnamed=unnamed)
