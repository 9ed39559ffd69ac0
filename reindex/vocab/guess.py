"""A guess at what a vocabulary file really is, when it looks like something else (a vector file, a
gensim dictionary), for the warning `build` gives."""
from __future__ import annotations

import re

from .base import Vocab

#: Lines sampled from the top of a vocabulary to guess whether it is some other kind of file.
SAMPLE_LINES = 1000
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_GENSIM_ENTRY = re.compile(r"\d+\t[^\t]+\t\d+")


def misread_as(vocab: Vocab) -> str | None:
    """What a one-token-per-line vocabulary probably really is, or None: a vector file, a GloVe
    `word count` list or a gensim `Dictionary.save_as_text` file, each of whose lines would have
    been taken whole as one token (and so matched no vector).

    >>> from pathlib import Path
    >>> misread_as(Vocab(["the 0.1 0.2 0.3", "cat 0.4 0.5 0.6"], None, "lines", Path("v.txt")))[:24]
    'a vector file (GloVe or '
    """
    if vocab.format != "lines":
        return None
    head = vocab.tokens[:SAMPLE_LINES]
    fields = [token.split() for token in head]
    numbers = [sum(1 for f in row[1:] if _NUMBER.fullmatch(f)) for row in fields]

    def share(test) -> float:
        return sum(1 for row, n in zip(fields, numbers) if test(row, n)) / len(head)

    header = len(fields[0]) == 2 and all(f.isdigit() for f in fields[0])  # word2vec's "N D" line
    if share(lambda row, n: n >= 2 and n == len(row) - 1) >= 0.9 or (
            header and len(head) > 1 and numbers[1] >= 2 and numbers[1] == len(fields[1]) - 1):
        return ("a vector file (GloVe or word2vec text): its lines hold a token and numbers; pass it as "
                "--vectors, and as --vocab a file with one token per line")
    if share(lambda row, n: len(row) == 2 and row[1].isdigit()) >= 0.9:
        return ("a `word count` list (GloVe's vocab_count output): each 'word 123' line was read as one "
                "token; write token<TAB>count lines (e.g. tr ' ' '\\t') or one token per line")
    rest = head[1:]
    if head[0].strip().isdigit() and rest and \
            sum(1 for t in rest if _GENSIM_ENTRY.fullmatch(t)) >= 0.9 * len(rest):
        return ("a gensim Dictionary.save_as_text file (a document count, then id<TAB>token<TAB>count "
                "lines): each line was read as one token; write one token per line in id order "
                "(dictionary[i] for i in range(len(dictionary)))")
    return None
