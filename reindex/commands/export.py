"""`export`: one embedding matrix in ORIGINAL id order (row i = token with original id i).

Formats: safetensors (`weight` + the tokens in metadata, readable back by `reindex build`), npy
(the bare matrix), pt (a dict of tensors `torch.load(path, weights_only=True)` reads), word2vec
(text with an `N D` header), word2vec-binary, glove (text, no header), and word2vec-gz / glove-gz
(the text formats gzip-compressed). Without `format`, the suffix decides, and only a known one:
.safetensors .npy .pt .vec .bin .txt .vec.gz .txt.gz. Text values are written with 9 significant
digits, which round-trips every float32 exactly.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReindexError, UsageError
from ..io.inputfile import check_regular
from ..options import EXPORT_FORMATS as FORMATS
from ..run.trainable import as_float32 as trainable_as_float32
from ..run.trainable import read_safetensors, split_rows

SUFFIXES = {".safetensors": "safetensors", ".npy": "npy", ".pt": "pt", ".bin": "word2vec-binary",
            ".vec": "word2vec", ".txt": "glove", ".vec.gz": "word2vec-gz", ".txt.gz": "glove-gz"}
from ..formats import EXPORT_FORMAT  # noqa: E402


def load_trainable(path: str | os.PathLike, *, shape: tuple[int, int], fixed: np.ndarray) -> np.ndarray:
    """The trained `trainable` rows from a saved SplitEmbedding state (.safetensors or .pt).

    Accepts a file holding `trainable` or one key ending in `.trainable` (a whole model's state_dict);
    the checks are `reindex.trainable.split_rows`'s, the same the torch side makes.
    """
    path = Path(path)
    state, metadata = _read_state(path)
    return split_rows(state, path=path, shape=shape, metadata=metadata, fixed=fixed)


def as_float32(value: Any, *, key: str, path: Path) -> np.ndarray:
    """A weights tensor (numpy or torch) as float32, refusing NaN, infinities and values float32
    cannot hold (a cast would turn 1e39 into inf), naming the tensor and the first bad row.

    >>> as_float32(np.array([[1.0, 2.0]]), key="trainable", path=Path("w.pt")).dtype
    dtype('float32')
    """
    return trainable_as_float32(_as_array(value, key=key, path=path), key=key, path=path)


def _as_array(value: Any, *, key: str, path: Path) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: float64 keeps every value of every dtype
        import torch

        if value.is_nested or value.layout != torch.strided or value.is_meta:
            raise ReindexError(f"`{key}` is a sparse, nested or meta tensor; weights must be dense values",
                               path=path, hint="save tensor.to_dense()")
        if value.is_complex() or value.dtype == torch.bool:
            raise ReindexError(f"`{key}` holds {value.dtype} values; weights must be floats", path=path)
        value = value.detach().cpu().double().numpy()
    return np.asarray(value)


def _read_state(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    if not path.exists():
        raise ReindexError("no such file", path=path)
    check_regular(path, what="a weights")
    if path.suffix == ".safetensors":
        return read_safetensors(path)   # bfloat16 widened to float32 exactly
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        from ..datasets.pt import load_pt

        state = load_pt(path, hint="only plain tensors are read; pickled code is refused")
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]  # a Lightning checkpoint
        if not isinstance(state, dict):
            raise ReindexError("expected a dict of tensors (a state_dict)", path=path)
        # Only the rows that may be read are converted; the other tensors keep their names, for messages.
        wanted = ("trainable", "fixed")
        return {k: _as_array(v, key=k, path=path) if k.endswith(wanted) else np.empty(0)
                for k, v in state.items() if hasattr(v, "detach")}, {}
    raise ReindexError(f"unknown weights file type {path.suffix!r}", path=path,
                       hint="use .safetensors or .pt")


def export(run_path: str | os.PathLike, *, out: str | os.PathLike, weights: str | os.PathLike | None = None,
           format: str | None = None, force: bool = False) -> dict[str, Any]:
    """Write the merged matrix in original order to `out`; return what was written.

    export("runs/demo", out="embedding.vec.gz")   # {"path": ..., "format": "word2vec-gz", "rows": ..., "dim": ...}
    """
    from .. import progress
    from ..io.inputs import Inputs
    from ..io.outputs import check_output
    from ..run import load_run

    out = Path(out)
    inputs = Inputs()
    inputs.add("RUN", run_path)
    inputs.add("--weights", weights)
    check_output(out, kind="export", force=force, inputs=inputs)  # first: the gravest reason
    format = format or _format_from_suffix(out)
    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    run = load_run(run_path)
    inputs.add_recorded(Path(run_path), run.manifest)
    check_output(out, kind="export", force=force, inputs=inputs)
    if weights is not None:
        run.trainable = load_trainable(weights, shape=(run.num_trainable, run.dim), fixed=run.fixed)
    matrix = run.weight(order="original")
    if not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise ReindexError(f"row {row} (token {run.original_tokens[row]!r}) is not finite",
                           path=weights or run_path, hint="the trained weights diverged")
    tokens = run.original_tokens
    with progress.step(f"writing {out}", total=matrix.shape[0], unit="rows"):
        _write_atomic(out, lambda tmp: WRITERS[format](tmp, tokens, matrix, run), force=force)
    return {"path": str(out), "format": format, "rows": matrix.shape[0], "dim": matrix.shape[1]}


def _format_from_suffix(out: Path) -> str:
    """The format a known suffix names; any other suffix is a usage error asking for --format.

    >>> _format_from_suffix(Path("emb.vec.gz")), _format_from_suffix(Path("emb.PT"))
    ('word2vec-gz', 'pt')
    """
    name = out.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    raise UsageError(f"cannot tell the format from the name {out.name!r}", path=out,
                     hint=f"pass --format ({', '.join(FORMATS)}) or use one of {' '.join(SUFFIXES)}")


def _write_atomic(out: Path, write: Any, *, force: bool) -> None:
    from ..io.atomic import atomic_file
    from ..io.outputs import mark_export, replacer

    with atomic_file(out, force=force, replace=replacer("export")) as tmp:
        write(tmp)
        mark_export(tmp)


def _write_safetensors(path: Path, tokens: list[str], matrix: np.ndarray, run: Any) -> None:
    from ..io.tensorfile import save_safetensors

    fixed_rows = np.sort(run.sorted_to_original[: run.num_fixed])
    save_safetensors(path, {"weight": np.ascontiguousarray(matrix), "fixed_rows": fixed_rows}, metadata={
        "format": EXPORT_FORMAT, "format_version": "1", "order": "original",
        "vocab_size": str(matrix.shape[0]), "dim": str(matrix.shape[1]), "num_fixed": str(run.num_fixed),
        "tokens": json.dumps(tokens, ensure_ascii=False)})


def _write_npy(path: Path, tokens: list[str], matrix: np.ndarray, run: Any) -> None:
    from ..datasets.npy import save_npy

    save_npy(path, matrix)


def _write_pt(path: Path, tokens: list[str], matrix: np.ndarray, run: Any) -> None:
    """`{"weight": [V, D] float32, "fixed_rows": int64}`: plain tensors, so weights_only loading reads it."""
    import torch

    fixed_rows = np.sort(run.sorted_to_original[: run.num_fixed])
    state = {"weight": torch.from_numpy(np.ascontiguousarray(matrix)),
             "fixed_rows": torch.from_numpy(np.ascontiguousarray(fixed_rows, dtype=np.int64))}
    with open(path, "wb") as f:  # through Python's writes, so a failed write keeps its errno
        try:
            torch.save(state, f)
        except RuntimeError as e:  # torch's zip writer reports "unexpected pos"; the cause is the OSError
            if isinstance(e.__context__, OSError):
                raise e.__context__ from e
            raise


def _text_lines(tokens: list[str], matrix: np.ndarray) -> Any:
    """Yield `token v1 ... vD\\n` lines in blocks; %.9g round-trips float32 exactly."""
    from .. import progress

    block = 4096
    row_format = " ".join(["%.9g"] * matrix.shape[1])
    for start in range(0, matrix.shape[0], block):
        progress.tally("rows", min(block, matrix.shape[0] - start))
        rows = matrix[start:start + block].astype(np.float64)
        yield "".join(f"{tokens[start + i]} {row_format % tuple(row)}\n" for i, row in enumerate(rows.tolist()))


def _refuse_whitespace(tokens: list[str], path: Path, *, hint: str) -> None:
    """word2vec readers (gensim) split a record at its first space: such a token cannot be written."""
    for i, token in enumerate(tokens):
        if any(c.isspace() for c in token):
            raise ReindexError(f"token {token!r} (original id {i}) contains whitespace", path=path, hint=hint)


def _write_text(path: Path, tokens: list[str], matrix: np.ndarray, *, header: bool, gz: bool = False) -> None:
    import gzip
    import io

    if header:
        _refuse_whitespace(tokens, path, hint="use --format glove (parsed from the right) or safetensors")
    with open(path, "wb") as plain:
        # gzip's header: no name (`path` is the temporary's random one) and mtime 0, so the same
        # matrix gives the same bytes under any name; `gunzip` names the output after the file.
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=plain, mtime=0) if gz else plain
        with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as f:
            if header:
                f.write(f"{matrix.shape[0]} {matrix.shape[1]}\n")
            for text in _text_lines(tokens, matrix):
                f.write(text)


def _write_binary(path: Path, tokens: list[str], matrix: np.ndarray, run: Any) -> None:
    _refuse_whitespace(tokens, path, hint="word2vec binary cannot hold it; use --format safetensors")
    little = np.ascontiguousarray(matrix, dtype="<f4")
    with open(path, "wb") as f:
        f.write(f"{matrix.shape[0]} {matrix.shape[1]}\n".encode())
        for token, row in zip(tokens, little, strict=True):
            f.write(token.encode("utf-8") + b" " + row.tobytes() + b"\n")


WRITERS = {
    "safetensors": _write_safetensors,
    "npy": _write_npy,
    "pt": _write_pt,
    "word2vec": lambda p, t, m, r: _write_text(p, t, m, header=True),
    "word2vec-binary": _write_binary,
    "glove": lambda p, t, m, r: _write_text(p, t, m, header=False),
    "word2vec-gz": lambda p, t, m, r: _write_text(p, t, m, header=True, gz=True),
    "glove-gz": lambda p, t, m, r: _write_text(p, t, m, header=False, gz=True),
}
