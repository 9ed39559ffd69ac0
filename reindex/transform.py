"""`remap` and `invert`: apply a run's mapping (or its inverse) to more datasets, file to file.

    remap_files("runs/demo", ["test.parquet"], out="encoded")     # original ids -> sorted ids
    invert_files("runs/demo", ["predictions.npy"], out="decoded")  # sorted ids -> original ids
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UsageError


def _apply(run_path: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
           inverse: bool, columns: Sequence[str], id_dtype: str | None, unk: str | None, force: bool,
           workers: int | None, engine: str = "local", ray_address: str | None = None) -> list:
    from .datasets import RemapSpec, plan_outputs
    from .engines import run_engine
    from .outputs import check_output, replacer, write_marker
    from .run import atomic_directory, load_run

    if not data:
        raise UsageError("no datasets given", hint="pass one or more DATA files, directories or globs")
    out = Path(out)
    check_output(out, kind="datasets", force=force, inputs=[run_path, *data])
    run = load_run(run_path)
    pairs = plan_outputs(list(data), out)
    table = run.sorted_to_original if inverse else run.original_to_sorted
    tokens = None
    if _has_text(pairs):  # only whitespace text needs the tokens: reading them costs every other call
        tokens = run.tokens if inverse else run.original_tokens
    spec = RemapSpec(table=table, columns=tuple(columns), id_dtype=id_dtype, tokens=tokens, unk=unk)
    with atomic_directory(out, force=force, replace=replacer("datasets")) as tmp:
        reports = run_engine(engine, [(src, tmp / dst.relative_to(out)) for src, dst in pairs], spec,
                             workers=workers, ray_address=ray_address)
        write_marker(tmp, command="invert" if inverse else "remap", run=run_path)
    return reports


def remap_files(run: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                columns: Sequence[str] = ("input_ids",), id_dtype: str | None = None, unk: str | None = None,
                force: bool = False, workers: int | None = None, engine: str = "local",
                ray_address: str | None = None) -> list:
    """Encode datasets in original ids to the run's sorted ids, into the directory `out`.

    `engine="ray"` runs on the Ray cluster at `ray_address` / RAY_ADDRESS (else a local one), Parquet only.
    """
    return _apply(run, data, out=out, inverse=False, columns=columns, id_dtype=id_dtype, unk=unk,
                  force=force, workers=workers, engine=engine, ray_address=ray_address)


def invert_files(run: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                 columns: Sequence[str] = ("input_ids",), id_dtype: str | None = None, unk: str | None = None,
                 force: bool = False, workers: int | None = None, engine: str = "local",
                 ray_address: str | None = None) -> list:
    """Decode datasets in sorted ids back to original ids; `invert_files` after `remap_files` is exact."""
    return _apply(run, data, out=out, inverse=True, columns=columns, id_dtype=id_dtype, unk=unk,
                  force=force, workers=workers, engine=engine, ray_address=ray_address)


def count_ids(run_path: str | os.PathLike | Any, data: Sequence[str | os.PathLike], *,
              columns: Sequence[str] = ("input_ids",), unk: str | None = None) -> np.ndarray:
    """Per-sorted-id counts of datasets in original ids (for `inspect`); nothing is kept on disk."""
    import tempfile

    from .datasets import RemapSpec, plan_outputs, remap_many
    from .run import Run, load_run

    run = run_path if isinstance(run_path, Run) else load_run(run_path)  # a loaded Run is not read again
    counts = np.zeros(run.vocab_size, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="reindex-inspect-") as tmp:
        pairs = plan_outputs(list(data), Path(tmp))
        spec = RemapSpec(table=run.original_to_sorted, columns=tuple(columns), unk=unk, counts=counts,
                         tokens=run.original_tokens if _has_text(pairs) else None)
        remap_many(pairs, spec)
    return counts


def _has_text(pairs: Sequence[tuple[Path, Path]]) -> bool:
    from .datasets.plan import detect_format

    return any(source.is_file() and detect_format(source) == "text" for source, _ in pairs)
