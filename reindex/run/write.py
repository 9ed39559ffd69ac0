"""Writing a run directory's members (embedding, vocabulary, corpus counts, manifest) into a temporary."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..formats import (
    CORPUS_COUNTS_FILE,
    EMBEDDING_FILE,
    EMBEDDING_FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    RUN_FORMAT,
    VOCAB_FILE,
)
from ..io.jsonfile import write_json
from ..io.npyfile import save_npy
from ..io.tensorfile import save_safetensors
from .hashing import FileHashes


def write_embedding(path: Path, *, fixed: np.ndarray, trainable: np.ndarray,
                    sorted_to_original: np.ndarray, metadata: dict[str, str] | None = None) -> dict[str, str]:
    """Write the split checkpoint, loadable with `safetensors` alone; return its metadata."""
    meta = {
        "format": EMBEDDING_FORMAT,
        "format_version": str(FORMAT_VERSION),
        "num_fixed": str(fixed.shape[0]),
        "num_trainable": str(trainable.shape[0]),
        "vocab_size": str(sorted_to_original.shape[0]),
        "dim": str(fixed.shape[1] if fixed.ndim == 2 else trainable.shape[1]),
    }
    meta.update(metadata or {})
    save_safetensors(path, {
        "fixed": np.ascontiguousarray(fixed, dtype=np.float32),
        "trainable": np.ascontiguousarray(trainable, dtype=np.float32),
        "sorted_to_original": np.ascontiguousarray(sorted_to_original, dtype=np.int64),
    }, metadata=meta)
    return meta


def write_vocab(path: Path, tokens_sorted: list[str]) -> None:
    """One token per line, in sorted-id order."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for token in tokens_sorted:
            f.write(token)
            f.write("\n")


def write_run(directory: Path, *, fixed: np.ndarray, trainable: np.ndarray, sorted_to_original: np.ndarray,
              tokens_sorted: list[str], counts: dict[str, Any], options: dict[str, Any],
              inputs: dict[str, Any], datasets: list[dict[str, Any]], corpus_counts: np.ndarray | None,
              hashes: FileHashes) -> tuple[dict[str, Any], dict[str, str]]:
    """Write embedding, vocabulary, corpus counts and (last) the manifest into `directory`.

    Returns the manifest and the embedding's metadata."""
    for entry in datasets:  # already complete: hash them while the embedding is written
        hashes.start(directory / entry["output"])
    metadata = write_embedding(directory / EMBEDDING_FILE, fixed=fixed, trainable=trainable,
                    sorted_to_original=sorted_to_original,
                    metadata={} if counts.get("pad_id") is None else {"pad_id": str(counts["pad_id"])})
    write_vocab(directory / VOCAB_FILE, tokens_sorted)
    names = [EMBEDDING_FILE, VOCAB_FILE]
    if corpus_counts is not None:
        save_npy(directory / CORPUS_COUNTS_FILE, corpus_counts)
        names.append(CORPUS_COUNTS_FILE)
    names += [d["output"] for d in datasets]
    manifest = {
        "format": RUN_FORMAT, "format_version": FORMAT_VERSION, "reindex_version": __version__,
        "inputs": inputs, "options": options, "counts": counts, "datasets": datasets,
        "outputs": [hashes.describe(directory / name, name=name) for name in names],
    }
    write_json(directory / MANIFEST_FILE, manifest)
    return manifest, metadata


def input_files(*, vocab: str | os.PathLike, vectors: str | os.PathLike, data: list[Path],
                weights: str | os.PathLike | None = None) -> dict[str, Any]:
    """The input files the manifest describes: a run directory as --vectors is its manifest."""
    vectors = Path(vectors)
    return {"vocab": Path(vocab), "vectors": vectors / MANIFEST_FILE if vectors.is_dir() else vectors,
            "data": list(data), "weights": None if weights is None else Path(weights)}


def describe_inputs(files: dict[str, Any], *, given: dict[str, Any], hashes: FileHashes) -> dict[str, Any]:
    """The manifest's record of the `input_files`: each path as the user gave it, size and sha256."""
    inputs = {"vocab": given.get("vocab_record") or hashes.describe(files["vocab"], name=str(given["vocab"])),
              "vectors": hashes.describe(files["vectors"], name=str(given["vectors"])),
              "data": [hashes.describe(p) for p in files["data"]]}
    if files["weights"] is not None:
        inputs["weights"] = hashes.describe(files["weights"], name=str(given["weights"]))
    return inputs


def describe_report(report: Any, directory: Path) -> dict[str, Any]:
    """One remapped dataset as the manifest records it (paths relative to the run)."""
    return {"source": str(report.source), "output": report.output.relative_to(directory).as_posix(),
            "format": report.format, "num_ids": int(report.num_ids), "num_rows": int(report.num_rows)}
