"""The renumbering itself, on arrays: the permutation of matched rows, the `fixed` and `trainable`
blocks, and the warning for a run where (almost) nothing matched. No paths, no files.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import UsageError
from .init import column_stats, init_pieces, initialise
from .mapping import build_permutation
from .matching import Matched
from .rows import gather_rows

#: Under this share of vocabulary tokens with a vector, `build` warns that the run is probably a mistake.
LOW_MATCH_SHARE = 0.05


def partition(matched: Matched, *, pad: int | None) -> np.ndarray:
    """`sorted_to_original` for matched rows; with an old run, old tokens keep their sorted ids."""
    return build_permutation(matched.rows >= 0, pad=pad, head=matched.old_order)


def split_rows(matched: Matched, sorted_to_original: np.ndarray, *, pad: int | None, init: str, seed: int,
               subwords: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
               texts: Callable[[np.ndarray], list[str]] | None = None
               ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The `fixed` block (vectors in sorted order, pad as a zero row), the initial `trainable` block, and
    which trainable rows each init rule gave. `subwords` maps trainable original ids to (rows, has_ngrams);
    `texts` maps them to the strings an old tokenizer splits (`--init pieces`).

    Except with `--init pieces` (which reads the old rows afterwards), `fixed` is made in the memory
    of `matched.matrix` when that matrix owns it: the vectors are held once, not twice."""
    rows = matched.rows[sorted_to_original]
    num_fixed = int(np.count_nonzero(rows >= 0))
    start = 0
    if pad is not None and matched.old_order is None:
        num_fixed = 1 + int(np.count_nonzero(rows[1:] >= 0))
        start = 1  # the pad row: zeros
    dim = matched.matrix.shape[1]
    fixed = gather_rows(matched.matrix, rows[start:num_fixed], lead=start, in_place=init != "pieces")
    if np.may_share_memory(fixed, matched.matrix):
        matched.matrix = np.zeros((0, dim), np.float32)  # spent: its rows are now `fixed`'s
    real = fixed[start:]
    if matched.old_order is not None and pad is not None:
        real = np.delete(fixed, pad_sorted_id(sorted_to_original, pad), axis=0)
    if init == "pieces":  # the old tokenizer splits each new token; its row starts at the pieces' mean
        if matched.pieces is None or texts is None:
            raise UsageError("--init pieces needs a Hugging Face model as --vectors",
                             hint="its tokenizer splits each new token into old pieces")
        pieces = matched.pieces(texts(sorted_to_original[num_fixed:]))
        trainable = init_pieces(pieces, matched.matrix, fallback=column_stats(real, std=False)[0])
        has = np.fromiter((len(p) > 0 for p in pieces), dtype=bool, count=len(pieces))
        return fixed, trainable, {"pieces": np.flatnonzero(has), "mean": np.flatnonzero(~has)}
    given = subwords(sorted_to_original[num_fixed:]) if init == "subwords" and subwords is not None else None
    trainable, sources = initialise(len(sorted_to_original) - num_fixed, real, init=init, seed=seed, subwords=given)
    return fixed, trainable, sources


def pad_sorted_id(sorted_to_original: np.ndarray, pad: int) -> int:
    return int(np.flatnonzero(sorted_to_original == pad)[0])


def match_warning(matched: int, vocab_size: int, *, misread: str | None = None) -> str | None:
    """The warning for a run where (almost) no vocabulary token has a vector, naming the likely cause.

    >>> match_warning(0, 5)[:54]
    'no vocabulary token has a pretrained vector (0 of 5): '
    >>> match_warning(1, 5) is None
    True
    """
    if vocab_size == 0 or matched >= LOW_MATCH_SHARE * vocab_size:
        return None
    head = (f"no vocabulary token has a pretrained vector (0 of {vocab_size:,})" if matched == 0 else
            f"only {matched:,} of {vocab_size:,} vocabulary tokens ({matched / vocab_size:.2%}) have a "
            f"pretrained vector")
    cause = (f"the vocabulary is {misread.split(':')[0]}" if misread is not None else
             "the vocabulary and the vectors come from different tokenizers or casings "
             "(try --lowercase-fallback), or --vectors names the wrong file")
    return f"{head}: probably {cause}"
