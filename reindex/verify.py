"""`verify`: re-hash a run's outputs against its manifest and check the run's invariants.

    problems = verify_run("runs/demo")   # [] when the run is intact
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ReindexError


def _check_hashes(path: Path, manifest: dict[str, Any]) -> list[str]:
    from . import progress
    from .run import sha256_file, size_of

    problems = []
    entries = manifest.get("outputs", [])
    total = sum(e.get("size", 0) for e in entries if isinstance(e.get("size"), int))
    with progress.step(f"hashing {path}", total=total, unit="bytes") as advance:
        for entry in entries:
            file = path / entry["path"]
            if not file.exists():
                problems.append(f"{entry['path']}: missing")
            elif size_of(file) != entry["size"]:
                problems.append(f"{entry['path']}: size {size_of(file)}, manifest says {entry['size']}")
            elif sha256_file(file, advance=advance) != entry["sha256"]:
                problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems


def _check_embedding(path: Path, manifest: dict[str, Any]) -> list[str]:
    from .mapping import check_permutation
    from .run import EMBEDDING_FILE, VOCAB_FILE, read_embedding, read_sorted_vocab

    tensors, metadata = read_embedding(path / EMBEDDING_FILE)
    fixed, trainable, order = tensors["fixed"], tensors["trainable"], tensors["sorted_to_original"]
    problems = []
    try:
        check_permutation(order)
    except ReindexError as e:
        problems.append(f"{EMBEDDING_FILE}: {e}")
    tokens = read_sorted_vocab(path / VOCAB_FILE)
    counts = manifest.get("counts", {})
    expected = {"vocab": len(tokens), "fixed": fixed.shape[0], "trainable": trainable.shape[0]}
    actual = {"vocab": order.shape[0], "fixed": counts.get("fixed"), "trainable": counts.get("trainable")}
    for key in expected:
        if expected[key] != actual[key] or counts.get(key) != expected[key]:
            problems.append(f"count {key}: files say {expected[key]}, embedding/manifest say "
                            f"{actual[key]}/{counts.get(key)}")
    for key, value in (("num_fixed", fixed.shape[0]), ("num_trainable", trainable.shape[0])):
        if metadata.get(key) != str(value):
            problems.append(f"{EMBEDDING_FILE}: metadata {key}={metadata.get(key)!r}, tensor has {value}")
    if fixed.shape[0] + trainable.shape[0] != order.shape[0]:
        problems.append(f"{EMBEDDING_FILE}: {fixed.shape[0]} + {trainable.shape[0]} rows for {order.shape[0]} ids")
    if not np.isfinite(fixed).all():
        row = int(np.flatnonzero(~np.isfinite(fixed).all(axis=1))[0])
        problems.append(f"{EMBEDDING_FILE}: fixed row {row} is not finite")
    pad = counts.get("pad_id")
    if pad is not None and pad < fixed.shape[0] and np.any(fixed[pad] != 0):
        problems.append(f"{EMBEDDING_FILE}: pad row {pad} is not all zeros")
    if len(set(tokens)) != len(tokens):
        problems.append(f"{VOCAB_FILE}: duplicate tokens")
    return problems


def _check_data(path: Path, manifest: dict[str, Any]) -> list[str]:
    """Re-read every remapped dataset: each id must lie in [0, V)."""
    from .datasets import RemapSpec, remap_dataset

    datasets = manifest.get("datasets", [])
    if not datasets:
        return []
    vocab_size = manifest["counts"]["vocab"]
    spec = RemapSpec(table=np.arange(vocab_size, dtype=np.int64),
                     columns=tuple(manifest.get("options", {}).get("columns", ["input_ids"])))
    from . import progress

    problems = []
    with tempfile.TemporaryDirectory(prefix="reindex-verify-") as tmp, \
            progress.files_step("checking datasets", len(datasets)):
        for entry in datasets:
            source = path / entry["output"]
            if not source.exists():
                continue  # already reported as missing by the hash check
            try:
                remap_dataset(source, Path(tmp) / Path(entry["output"]).name, spec)
            except ReindexError as e:
                problems.append(str(e))
            except OSError as e:
                problems.append(f"{entry['output']}: cannot read: {e.strerror or e}")
    return problems


def verify_run(run_path: str | os.PathLike, *, check_data: bool = True) -> list[str]:
    """Return the problems found in a run directory (an empty list means it is intact)."""
    from .run import MANIFEST_FILE

    path = Path(run_path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
        raise ReindexError("no manifest.json", path=path, hint="pass a run directory written by `reindex build`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return [f"{MANIFEST_FILE}: not valid JSON ({e})"]
    if not isinstance(manifest, dict):
        return [f"{MANIFEST_FILE}: not a JSON object"]
    problems: list[str] = []
    checks = [_check_hashes, _check_embedding] + ([_check_data] if check_data else [])
    for check in checks:
        try:
            problems += check(path, manifest)
        except ReindexError as e:
            problems.append(str(e))
        except (KeyError, TypeError, AttributeError, ValueError) as e:  # a hand-edited manifest
            problems.append(f"{MANIFEST_FILE}: malformed ({type(e).__name__}: {e})")
    return problems
