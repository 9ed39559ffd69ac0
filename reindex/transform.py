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
           workers: int | None, engine: str = "local", ray_address: str | None = None,
           ignore_index: Sequence[int] = (), include: Sequence[str] = (), to_text: bool = False) -> list:
    from dataclasses import replace

    from . import progress
    from .datasets import RemapSpec, plan_outputs
    from .engines import run_engine
    from .io.outputs import check_output, replacer, write_marker
    from .io.atomic import atomic_directory
    from .run import load_run

    if not data:
        raise UsageError("no datasets given", hint="pass one or more DATA files, directories or globs")
    out = Path(out)
    check_output(out, kind="datasets", force=force, inputs=[run_path, *data])
    run = load_run(run_path)
    pairs = plan_outputs(list(data), out, include=include)
    if to_text:
        from .totext import check_text_inputs

        check_text_inputs(pairs)
    table = run.sorted_to_original if inverse else run.original_to_sorted
    tokens = None
    if _has_text(pairs):  # only whitespace text needs the tokens: reading them costs every other call
        tokens = run.tokens if inverse else run.original_tokens
    spec = RemapSpec(table=table, columns=tuple(columns), id_dtype=id_dtype, tokens=tokens, unk=unk,
                     ignore=tuple(int(i) for i in ignore_index))
    with atomic_directory(out, force=force, replace=replacer("datasets")) as tmp:
        staged = [(src, tmp / dst.relative_to(out)) for src, dst in pairs]
        with progress.files_step("inverting" if inverse else "remapping", len(staged)):
            reports = run_engine(engine, staged, spec, workers=workers, ray_address=ray_address)
        if to_text:
            from .totext import to_text as write_text

            reports = [write_text(r, run.original_tokens, columns=columns, ignore=spec.ignore) for r in reports]
        write_marker(tmp, command="invert" if inverse else "remap", run=run_path)
    return [replace(r, output=out / r.output.relative_to(tmp)) for r in reports]


def remap_files(run: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                columns: Sequence[str] = ("input_ids",), id_dtype: str | None = None, unk: str | None = None,
                force: bool = False, workers: int | None = None, engine: str = "local",
                ray_address: str | None = None, ignore_index: Sequence[int] = (),
                include: Sequence[str] = ()) -> list:
    """Encode datasets in original ids to the run's sorted ids, into the directory `out`.

    `engine="ray"` runs on the Ray cluster at `ray_address` / RAY_ADDRESS (else a local one), Parquet only.
    Ids in `ignore_index` (e.g. -100 in `labels`) are written unchanged and not counted; `include`
    globs choose the files taken from DATA directories.
    """
    return _apply(run, data, out=out, inverse=False, columns=columns, id_dtype=id_dtype, unk=unk,
                  force=force, workers=workers, engine=engine, ray_address=ray_address,
                  ignore_index=ignore_index, include=include)


def invert_files(run: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                 columns: Sequence[str] = ("input_ids",), id_dtype: str | None = None, unk: str | None = None,
                 force: bool = False, workers: int | None = None, engine: str = "local",
                 ray_address: str | None = None, ignore_index: Sequence[int] = (),
                 include: Sequence[str] = (), to_text: bool = False) -> list:
    """Decode datasets in sorted ids back to original ids; `invert_files` after `remap_files` is exact.

    `to_text=True` writes each file as `<name>.txt` instead: a line per row, its tokens joined by spaces.
    """
    return _apply(run, data, out=out, inverse=True, columns=columns, id_dtype=id_dtype, unk=unk,
                  force=force, workers=workers, engine=engine, ray_address=ray_address,
                  ignore_index=ignore_index, include=include, to_text=to_text)


def count_ids(run_path: str | os.PathLike | Any, data: Sequence[str | os.PathLike], *,
              columns: Sequence[str] = ("input_ids",), unk: str | None = None,
              ignore_index: Sequence[int] = (), include: Sequence[str] = ()) -> np.ndarray:
    """Per-sorted-id counts of datasets in original ids (for `inspect`); nothing is kept on disk."""
    import tempfile

    from .datasets import RemapSpec, plan_outputs, remap_many
    from .run import Run, load_run

    run = run_path if isinstance(run_path, Run) else load_run(run_path)  # a loaded Run is not read again
    counts = np.zeros(run.vocab_size, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="reindex-inspect-") as tmp:
        pairs = plan_outputs(list(data), Path(tmp), include=include)
        spec = RemapSpec(table=run.original_to_sorted, columns=tuple(columns), unk=unk, counts=counts,
                         tokens=run.original_tokens if _has_text(pairs) else None,
                         ignore=tuple(int(i) for i in ignore_index))
        remap_many(pairs, spec)
    return counts


def _has_text(pairs: Sequence[tuple[Path, Path]]) -> bool:
    from .datasets.plan import detect_format

    return any(source.is_file() and detect_format(source) == "text" for source, _ in pairs)
