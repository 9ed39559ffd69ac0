"""Where pretrained vectors come from: a vector file, an exported matrix, or a previous run directory.

A previous run directory means vocabulary expansion: every old token is fixed with its exact old
vector (trained rows included) and keeps its old sorted id.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..checkpoint.tensors import fit_float32
from ..errors import ReindexError, UsageError
from ..formats import EMBEDDING_FILE, EXPORT_FORMAT
from ..io.tensorfile import safetensors_errors
from ..matching import Matched, keep_keys, match_vectors, rows_fingerprint
from ..options import MatchOptions, VectorOptions
from ..vectors.source import VectorSource


def match(source: VectorSource, tokens: Sequence[str], *, rules: MatchOptions, read: VectorOptions,
          pad: int | None = None, digest: Any = None) -> Matched:
    """Match `tokens` (original-id order) to the vectors of `source` (rules: `reindex.matching`).

    `digest` (a `reindex.vectors.FileDigest`) hashes a vector file while it is parsed.
    """
    path, flags = source.path, rules.manifest()
    if source.kind != "run" and read.weights is not None:
        raise UsageError("--weights goes with a run directory as --vectors", path=path,
                         hint="an exported file already holds the trained rows")
    if source.kind in ("run", "hf-model") and read.limit is not None:
        what = "a run directory" if source.kind == "run" else "a Hugging Face model"
        raise UsageError(f"--limit goes with a vector file, not {what}", path=path,
                         hint="a grown vocabulary keeps every old row" if source.kind == "run" else None)
    if source.kind == "run":
        return match_old_run(path, tokens, pad=pad, weights=read.weights, **flags)
    if source.kind == "hf-model":
        from ..vectors.hf_model import match_model

        return match_model(path, tokens, key=read.vectors_key, **flags)
    if source.kind == "export":
        found, matrix = read_export(path)
        if read.limit is not None:
            found, matrix = found[:read.limit], matrix[:read.limit]
        matched = match_vectors(tokens, found, matrix, **flags)
        matched.stats = {"vectors_read": len(found), "duplicate_vectors_skipped": 0, "vectors_format": EXPORT_FORMAT}
        return matched
    from ..vectors import read_vectors
    from ..vectors.keyed import KeyedSet

    # Only the lines whose token (or its normal or case-folded form) a rule can pick are parsed.
    keys, key, folds_ascii = keep_keys(tokens, **flags)
    keep = keys if key is None else KeyedSet(keys, key=key, folds_ascii=folds_ascii)
    table = read_vectors(path, keep=keep, format=read.vectors_format, duplicates=read.duplicates,
                         unicode_errors=read.unicode_errors, digest=digest, limit=read.limit)
    matched = match_vectors(tokens, table.tokens, table.matrix, **flags)
    matched.stats = {"vectors_read": table.num_read, "duplicate_vectors_skipped": table.num_duplicates,
                     "vectors_format": table.format}
    return matched


def match_old_run(path: Path, tokens: Sequence[str], *, pad: int | None,
                  weights: str | os.PathLike | None = None, **rules: Any) -> Matched:
    """Vocabulary expansion: old tokens keep their rows and sorted ids; new tokens are matched by string."""
    from ..run import load_run

    old = load_run(path)
    if weights is not None:
        from .export import load_trainable

        old.trainable = load_trainable(weights, shape=(old.num_trainable, old.dim), fixed=old.fixed)
    position = {token: i for i, token in enumerate(tokens)}
    missing = [t for t in old.tokens if t not in position]
    if missing:
        raise ReindexError(
            f"{len(missing)} token(s) of the old run are not in the new vocabulary, first {missing[0]!r}",
            path=path, hint="a grown vocabulary must keep every old token; to drop tokens, "
                            "`reindex export` the old run and build from the exported file")
    old_pad = old.manifest.get("counts", {}).get("pad_id")
    if pad is not None and (old_pad is None or tokens[pad] != old.tokens[old_pad]):
        raise UsageError(f"--pad {tokens[pad]!r} differs from the old run's pad token", path=path,
                         hint="expansion keeps the old ids; pass the old run's pad token or none")
    for key in ("fixed", "trainable"):  # as every other source of rows: what a damaged run holds is refused
        fit_float32(getattr(old, key), key=key, path=path / EMBEDDING_FILE,
                    hint="the run's embedding is damaged; build it again")
    rows = old.weight(order="sorted")
    matched = match_vectors(tokens, old.tokens, rows, **rules)
    matched.old_order = np.fromiter((position[t] for t in old.tokens), dtype=np.int64, count=len(old.tokens))
    # Every old token is in the vocabulary as written, so the exact rule gives it its own old row,
    # whatever the fallbacks; checked, since verify vouches for it with the fingerprint below.
    if not np.array_equal(matched.rows[matched.old_order], np.arange(len(old.tokens))):
        raise ReindexError("an old token did not keep its old row", path=path)
    matched.stats = {"vectors_read": old.vocab_size, "duplicate_vectors_skipped": 0,
                     "vectors_format": "reindex.run", "old_vocab": old.vocab_size,
                     "old_run": rows_fingerprint(old.tokens, rows)}
    return matched


def read_export(path: Path) -> tuple[list[str], np.ndarray]:
    """Read a matrix written by `reindex export --format safetensors`: (tokens, float32 matrix)."""
    from safetensors import safe_open

    with safetensors_errors(path):
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            if "weight" not in f.keys() or "tokens" not in metadata:
                raise ReindexError("not a reindex export (needs a `weight` tensor and `tokens` metadata)",
                                   path=path, hint="pass a run directory, or a vector file")
            weight = f.get_tensor("weight")
    try:
        tokens = json.loads(metadata["tokens"])
    except (ValueError, RecursionError):
        tokens = None
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ReindexError("the `tokens` metadata is not a JSON list of strings", path=path,
                           hint="pass a file written by `reindex export --format safetensors`")
    if len(set(tokens)) != len(tokens):
        raise ReindexError("the `tokens` metadata names a token twice", path=path,
                           hint="pass a file written by `reindex export --format safetensors`")
    if weight.ndim != 2 or weight.shape[0] != len(tokens):
        raise ReindexError(f"weight {weight.shape} does not match {len(tokens)} tokens", path=path)
    from .export import as_float32

    return tokens, np.ascontiguousarray(as_float32(weight, key="weight", path=path))


def subword_vectors(model: str | os.PathLike, tokens: Sequence[str], *, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """`--init subwords`: fastText's vector for each token from the `.bin` at `model`, and whether it had one."""
    from ..vectors.fasttext import open_model, word_vectors

    opened = open_model(model)
    if opened.dim != dim:
        raise ReindexError(f"the fastText model has dimension {opened.dim}, the vectors {dim}", path=model,
                           hint="pass a --subword-model of the same dimension as --vectors")
    return word_vectors(opened, tokens)
