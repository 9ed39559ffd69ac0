"""`verify`: re-hash a run's outputs against its manifest and check every invariant the run carries.

Hashes alone prove only that the files are the ones the manifest lists; a run rewritten together
with its manifest still has to be a run: metadata that agrees with the tensors, the dtypes of the
format, finite blocks, a stable partition, data files that hold what the manifest counted, and
corpus counts that a recount of `data/` gives again. Each problem is one line; all are listed.

    problems = verify_run("runs/demo")   # [] when the run is intact
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReindexError

DTYPES = {"fixed": np.dtype("float32"), "trainable": np.dtype("float32"), "sorted_to_original": np.dtype("int64")}
NDIM = {"fixed": 2, "trainable": 2, "sorted_to_original": 1}


def _check_outputs(path: Path, manifest: dict[str, Any]) -> list[str]:
    """Every listed output exists with the recorded size and sha256; the run's own files are listed."""
    from .. import progress
    from ..run import CORPUS_COUNTS_FILE, EMBEDDING_FILE, VOCAB_FILE, sha256_file, size_of

    problems = []
    entries = manifest.get("outputs", [])
    listed = [entry["path"] for entry in entries]
    required = [EMBEDDING_FILE, VOCAB_FILE] + [d["output"] for d in manifest.get("datasets", [])]
    if manifest.get("datasets"):
        required.append(CORPUS_COUNTS_FILE)
    problems += [f"{name}: not listed in the manifest's outputs" for name in required if name not in listed]
    entries = manifest.get("outputs", [])
    total = sum(e.get("size", 0) for e in entries if isinstance(e.get("size"), int))
    with progress.step(f"hashing {path}", total=total, unit="bytes") as advance:
        for entry in entries:
            file = path / entry["path"]
            if not (file.is_file() or file.is_dir()):  # a dataset saved as a Hugging Face folder is a directory
                problems.append(f"{entry['path']}: missing")
            elif size_of(file) != entry["size"]:
                problems.append(f"{entry['path']}: size {size_of(file)}, manifest says {entry['size']}")
            elif sha256_file(file, advance=advance) != entry["sha256"]:
                problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems


def _check_tensors(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> list[str]:
    """Dtypes and ranks of the format, blocks of one width, metadata that agrees with the shapes."""
    from ..run import EMBEDDING_FILE, EMBEDDING_FORMAT

    problems = [f"{EMBEDDING_FILE}: `{key}` is {tensors[key].dtype}, the format says {dtype}"
                for key, dtype in DTYPES.items() if tensors[key].dtype != dtype]
    problems += [f"{EMBEDDING_FILE}: `{key}` has {tensors[key].ndim} dimensions, the format says {ndim}"
                 for key, ndim in NDIM.items() if tensors[key].ndim != ndim]
    if problems:
        return problems
    fixed, trainable, order = tensors["fixed"], tensors["trainable"], tensors["sorted_to_original"]
    if fixed.shape[1] != trainable.shape[1]:
        problems.append(f"{EMBEDDING_FILE}: `fixed` is {fixed.shape[1]} wide, `trainable` {trainable.shape[1]}")
    if fixed.shape[0] + trainable.shape[0] != order.shape[0]:
        problems.append(f"{EMBEDDING_FILE}: {fixed.shape[0]} + {trainable.shape[0]} rows for {order.shape[0]} ids")
    expected = {"format": EMBEDDING_FORMAT, "num_fixed": fixed.shape[0], "num_trainable": trainable.shape[0],
                "vocab_size": order.shape[0], "dim": fixed.shape[1]}
    for key, value in expected.items():
        if metadata.get(key) != str(value):
            problems.append(f"{EMBEDDING_FILE}: metadata {key}={metadata.get(key)!r}, the tensors say {value}")
    for key in ("fixed", "trainable"):
        finite = np.isfinite(tensors[key]).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            problems.append(f"{EMBEDDING_FILE}: {key} row {row} is not finite")
    return problems


def _check_counts(tensors: dict[str, np.ndarray], tokens: list[str] | None, counts: dict[str, Any]) -> list[str]:
    """The manifest's counts agree with the tensors and the vocabulary file."""
    from ..run import VOCAB_FILE

    fixed, trainable, order = tensors["fixed"], tensors["trainable"], tensors["sorted_to_original"]
    actual = {"vocab": order.shape[0], "fixed": fixed.shape[0], "trainable": trainable.shape[0],
              "dim": fixed.shape[1] if fixed.ndim == 2 else None}
    problems = [f"count {key}: the manifest says {counts.get(key)}, the embedding has {value}"
                for key, value in actual.items() if counts.get(key) != value]
    if tokens is None:
        return problems
    if len(tokens) != order.shape[0]:
        problems.append(f"count vocab: {VOCAB_FILE} has {len(tokens)} tokens, the embedding {order.shape[0]} ids")
    if len(set(tokens)) != len(tokens):
        problems.append(f"{VOCAB_FILE}: duplicate tokens")
    return problems


def _check_partition(tensors: dict[str, np.ndarray], counts: dict[str, Any]) -> list[str]:
    """Fixed ids ascending, then trainable ids ascending (after the pad, or an old run's ids)."""
    from ..mapping import check_permutation
    from ..run import EMBEDDING_FILE

    order, num_fixed = tensors["sorted_to_original"], tensors["fixed"].shape[0]
    try:
        check_permutation(order)
    except ReindexError as e:
        return [f"{EMBEDDING_FILE}: {e}"]
    problems = []
    pad = counts.get("pad_id")
    kept = counts.get("old_vocab") if counts.get("vectors_format") == "reindex.run" else None
    if kept is None and pad not in (None, 0):
        problems.append(f"{EMBEDDING_FILE}: pad has sorted id {pad}, a new run puts it at 0")
    start = kept if isinstance(kept, int) else (1 if pad == 0 else 0)
    for name, block in (("fixed", order[start:num_fixed]), ("trainable", order[max(start, num_fixed):])):
        steps = np.diff(block)
        if steps.size and not (steps > 0).all():
            at = start + int(np.flatnonzero(steps <= 0)[0]) + (num_fixed - start if name == "trainable" else 0)
            problems.append(f"{EMBEDDING_FILE}: the {name} block is not in original-id order "
                            f"(sorted id {at + 1} follows {at}): not the stable partition `build` writes")
    if isinstance(pad, int) and 0 <= pad < num_fixed and np.any(tensors["fixed"][pad] != 0):
        problems.append(f"{EMBEDDING_FILE}: pad row {pad} is not all zeros")
    return problems


def _check_embedding(path: Path, manifest: dict[str, Any]) -> list[str]:
    from ..run import EMBEDDING_FILE, VOCAB_FILE, read_embedding, read_sorted_vocab

    if not (path / EMBEDDING_FILE).is_file():
        return [f"{EMBEDDING_FILE}: missing"]  # the same line as the outputs check: said once
    tensors, metadata = read_embedding(path / EMBEDDING_FILE)
    problems = _check_tensors(tensors, metadata)
    if any("the format says" in p for p in problems):
        tensors = {k: v if v.ndim == NDIM[k] else v.reshape(-1, 1) for k, v in tensors.items()}
    try:
        tokens: list[str] | None = read_sorted_vocab(path / VOCAB_FILE)
    except ReindexError as e:
        tokens = None
        problems.append(f"{VOCAB_FILE}: {e.message if (path / VOCAB_FILE).exists() else 'missing'}")
    counts = manifest.get("counts", {})
    problems += _check_counts(tensors, tokens, counts)
    if tensors["sorted_to_original"].ndim == 1:
        problems += _check_partition(tensors, counts)
    if not problems and tokens is not None:
        problems += _check_old_rows(tensors, tokens, counts)
    return problems


def _check_old_rows(tensors: dict[str, np.ndarray], tokens: list[str], counts: dict[str, Any]) -> list[str]:
    """A grown vocabulary (`build --vectors OLD_RUN`): its first rows and tokens are the old run's, as
    the fingerprint recorded then says (`counts.old_run`; runs written before it was recorded have none)."""
    from ..matching import rows_fingerprint
    from ..run import EMBEDDING_FILE, VOCAB_FILE

    recorded, size = counts.get("old_run"), counts.get("old_vocab")
    if recorded is None or counts.get("vectors_format") != "reindex.run":
        return []
    if not isinstance(recorded, dict) or not isinstance(size, int) or not 0 <= size <= tensors["fixed"].shape[0]:
        return [f"counts old_run / old_vocab: malformed ({recorded!r}, {size!r})"]
    found = rows_fingerprint(tokens[:size], tensors["fixed"][:size])
    what = {"tokens_sha256": f"{VOCAB_FILE}: its first {size} tokens are not the old run's",
            "rows_sha256": f"{EMBEDDING_FILE}: its first {size} rows are not the old run's rows"}
    return [f"{message} (the fingerprint recorded at build differs)" for key, message in what.items()
            if recorded.get(key) != found[key]]


def _check_data(path: Path, manifest: dict[str, Any]) -> list[str]:
    """Re-read every remapped dataset: ids in [0, V), the counts the manifest recorded, and
    `corpus_counts.npy` equal to a recount of `data/`."""
    from ..datasets import RemapSpec, remap_dataset

    datasets = manifest.get("datasets", [])
    if not datasets:
        return []
    vocab_size = manifest["counts"]["vocab"]
    recount = np.zeros(vocab_size, dtype=np.int64)
    options = manifest.get("options", {})
    try:
        spec = RemapSpec(table=np.arange(vocab_size, dtype=np.int64), counts=recount,
                         columns=tuple(options.get("columns", ["input_ids"])),
                         ignore=tuple(options.get("ignore_index") or ()))  # --ignore-index ids stay as written
    except ReindexError as e:  # a run built before ignore values inside the vocabulary were refused
        return [f"manifest.json: options: {e.message}"]
    from .. import progress

    problems, complete = [], True
    with tempfile.TemporaryDirectory(prefix="reindex-verify-") as tmp, \
            progress.files_step("checking datasets", len(datasets)):
        for i, entry in enumerate(datasets):
            source = path / entry["output"]
            if not source.exists():
                problems.append(f"{entry['output']}: listed in the manifest's datasets, missing")
                complete = False
                continue
            try:
                report = remap_dataset(source, Path(tmp) / str(i) / Path(entry["output"]).name, spec)
            except ReindexError as e:
                problems.append(str(e))
                complete = False
                continue
            except OSError as e:
                problems.append(f"{entry['output']}: cannot read: {e.strerror or e}")
                complete = False
                continue
            for key, found in (("num_ids", report.num_ids), ("num_rows", report.num_rows)):
                if entry.get(key) != found:
                    problems.append(f"{entry['output']}: holds {found} {key[4:]}, the manifest says {entry.get(key)}")
    if complete:
        problems += _check_corpus_counts(path, recount)
    return problems


def _check_corpus_counts(path: Path, recount: np.ndarray) -> list[str]:
    from ..run import CORPUS_COUNTS_FILE

    file = path / CORPUS_COUNTS_FILE
    if not file.is_file():
        return []  # reported by the outputs check
    try:
        stored = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        return [f"{CORPUS_COUNTS_FILE}: cannot read ({e})"]
    if stored.shape != recount.shape or stored.dtype.kind not in "iu":
        return [f"{CORPUS_COUNTS_FILE}: {stored.dtype} {stored.shape}, expected int64 ({recount.shape[0]},)"]
    differ = np.flatnonzero(stored != recount)
    if differ.size:
        s = int(differ[0])
        return [f"{CORPUS_COUNTS_FILE}: differs from a recount of data/ at {differ.size} sorted id(s), "
                f"first {s}: stored {int(stored[s])}, counted {int(recount[s])}"]
    return []


def verify_run(run_path: str | os.PathLike, *, check_data: bool = True) -> list[str]:
    """Return the problems found in a run directory (an empty list means it is intact)."""
    from ..run import MANIFEST_FILE
    from ..run.manifest import check_manifest

    path = Path(run_path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
        raise ReindexError("no manifest.json", path=path, hint="pass a run directory written by `reindex build`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return [f"{MANIFEST_FILE}: not valid JSON ({e})"]
    except RecursionError:  # nested deeper than Python's stack: no manifest reindex wrote
        return [f"{MANIFEST_FILE}: not valid JSON (nested too deeply)"]
    try:
        manifest = check_manifest(manifest, path=Path(MANIFEST_FILE), strict=True)
    except ReindexError as e:  # a manifest of another shape, program or version: nothing to vouch for
        return [str(e)]
    problems: list[str] = []
    checks = [_check_outputs, _check_embedding] + ([_check_data] if check_data else [])
    for check in checks:
        try:
            problems += check(path, manifest)
        except ReindexError as e:
            problems.append(str(e))
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:  # a hand-edited manifest
            problems.append(f"{MANIFEST_FILE}: malformed ({type(e).__name__}: {e})")
        except OSError as e:
            problems.append(f"cannot read: {e.strerror or e}" + (f" ({e.filename})" if e.filename else ""))
    lines = [" ".join(p.split("\n")) for p in problems]  # one line each, whatever a message held
    return list(dict.fromkeys(lines))  # a missing file is found by two checks: say it once
