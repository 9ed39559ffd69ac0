"""`--expect-trainable`: the rows a fine-tune was meant to change, as TUNED's row ids.

Each value is one of
    added      the added tokens of TUNED's tokenizer that BASE's tokenizer lacks (all, if BASE has none)
    run:RUN    the trainable block of a reindex run (its tokens, or its original ids without a tokenizer)
    ids:FILE   one id per line (blank lines and lines starting with # are skipped)
    TOKEN      any other value is a token of TUNED's tokenizer
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ReindexError, UsageError
from .sources import Source


def expected_rows(specs: Sequence[str], *, tuned: Source, base: Source) -> np.ndarray:
    """Sorted unique TUNED row ids named by the specs; raises UsageError for a token TUNED does not have."""
    rows = tuned.embedding.rows
    found: list[np.ndarray] = []
    for spec in specs:
        if spec == "added":
            found.append(_added(tuned, base))
        elif spec.startswith("run:"):
            found.append(_run_rows(Path(spec[4:]), tuned))
        elif spec.startswith("ids:"):
            found.append(read_ids(Path(spec[4:]), rows=rows))
        else:
            found.append(_token_rows([spec], tuned, what="--expect-trainable"))
    ids = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    outside = ids[(ids < 0) | (ids >= rows)]
    if outside.size:
        raise UsageError(f"--expect-trainable names id {int(outside[0])} but TUNED has {rows} rows",
                         path=tuned.path)
    return ids


def _index(tuned: Source, what: str) -> dict[str, int]:
    if tuned.tokens is None:
        raise UsageError(f"{what} names tokens, but TUNED has no tokenizer.json beside it", path=tuned.path,
                         hint="pass --tokenizer, or name ids with ids:FILE")
    return {t: i for i, t in enumerate(tuned.tokens) if t is not None}


def _token_rows(tokens: Sequence[str], tuned: Source, *, what: str) -> np.ndarray:
    index = _index(tuned, what)
    missing = [t for t in tokens if t not in index]
    if missing:
        raise UsageError(f"{what}: token {missing[0]!r} is not in TUNED's tokenizer "
                         f"({len(missing)} missing)", path=tuned.tokenizer or tuned.path,
                         hint="name tokens exactly as the tokenizer stores them, e.g. 'Ġcat'")
    return np.fromiter((index[t] for t in tokens), dtype=np.int64, count=len(tokens))


def _added(tuned: Source, base: Source) -> np.ndarray:
    index = _index(tuned, "--expect-trainable added")
    before = {t for t in base.tokens or () if t is not None}
    return np.fromiter((index[t] for t in tuned.added if t not in before and t in index), dtype=np.int64)


def _run_rows(path: Path, tuned: Source) -> np.ndarray:
    from ..run import load_run

    run = load_run(path)
    if tuned.tokens is None:
        return run.sorted_to_original[run.num_fixed:].astype(np.int64)
    trainable = run.tokens[run.num_fixed:]
    index = _index(tuned, "--expect-trainable run:")
    missing = [t for t in trainable if t not in index]
    if missing:
        raise UsageError(f"--expect-trainable run: the run's trainable token {missing[0]!r} is not in TUNED's "
                         f"tokenizer ({len(missing)} missing)", path=path,
                         hint="audit a model trained with this run's vocabulary")
    return np.fromiter((index[t] for t in trainable), dtype=np.int64, count=len(trainable))


def read_ids(path: Path, *, rows: int) -> np.ndarray:
    """One id per line; `path:line:` in the error for a line that is not an id in 0..rows-1."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ReindexError(f"cannot read: {e.strerror or e}", path=path) from e
    except UnicodeDecodeError as e:
        raise ReindexError(f"not UTF-8 text: {e.reason}", path=path) from e
    ids = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not text.isdigit() or int(text) >= rows:
            raise ReindexError(f"{text!r} is not a row id (0..{rows - 1})", path=path, line=number,
                               hint="write one id per line")
        ids.append(int(text))
    return np.asarray(ids, dtype=np.int64)
