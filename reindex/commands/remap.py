"""`remap` and `invert`: apply a run's mapping (or its inverse) to more datasets, file to file.

    remap_files("runs/demo", ["test.parquet"], out="encoded")     # original ids -> sorted ids
    invert_files("runs/demo", ["predictions.npy"], out="decoded")  # sorted ids -> original ids
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import progress
from ..datasets import RemapSpec
from ..datasets.core import ignore_in_vocab
from ..datasets.plan import DataPlan, plan_datasets
from ..engines import run_engine
from ..errors import UsageError
from ..io.atomic import atomic_directory
from ..io.inputs import Inputs
from ..io.outputs import check_output, replacer, write_marker
from ..options import DataOptions, EngineOptions
from ..run import load_run
from .totext import check_text_inputs
from .totext import to_text as write_text


def _apply(run_path: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
           inverse: bool, options: DataOptions, engine: EngineOptions, force: bool, to_text: bool = False) -> list:
    if not data:
        raise UsageError("no datasets given", hint="pass one or more DATA files, directories or globs")
    if to_text:
        check_text_inputs([], options.columns)   # a second --column: refused before anything is read
    out = Path(out)
    inputs = Inputs()
    inputs.add("RUN", run_path)
    inputs.add_files("DATA", data)
    check_output(out, kind="datasets", force=force, inputs=inputs)  # before reading anything
    run = load_run(run_path)
    plan = plan_datasets([os.fspath(d) for d in data], out, include=options.include, columns=options.columns)
    pairs = plan.pairs
    # what globs and folders expanded to, the skipped files too: --force must not delete them with --out
    inputs.add_files("DATA", [src for src, _ in pairs] + [src for src, _ in plan.skipped])
    inputs.add_recorded(Path(run_path), run.manifest)
    check_output(out, kind="datasets", force=force, inputs=inputs)
    if to_text:
        check_text_inputs(pairs, options.columns)
    table = run.sorted_to_original if inverse else run.original_to_sorted
    tokens = None
    # Only whitespace text needs the tokens (reading them costs every other call), and an ignore value
    # that is a real id, which RemapSpec refuses naming its token.
    if _has_text(pairs) or ignore_in_vocab(options.ignore_index, len(table)):
        tokens = run.tokens if inverse else run.original_tokens
    spec = RemapSpec(table=table, columns=options.columns, id_dtype=options.id_dtype, tokens=tokens,
                     unk=options.unk, ignore=options.ignore_index)
    with atomic_directory(out, force=force, replace=replacer("datasets")) as tmp:
        staged = [(src, tmp / dst.relative_to(out)) for src, dst in pairs]
        with progress.files_step("inverting" if inverse else "remapping", len(staged)):
            reports = run_engine(engine.engine, staged, spec, workers=engine.workers, ray_address=engine.ray_address)
        if to_text:
            reports = [write_text(r, run.original_tokens, columns=options.columns, ignore=spec.ignore)
                       for r in reports]
        write_marker(tmp, command="invert" if inverse else "remap", run=run_path, skipped=skipped_json(plan))
    return FileReports([replace(r, output=out / r.output.relative_to(tmp)) for r in reports], skipped=plan.skipped)


class FileReports(list):
    """The `FileReport` of each file remapped, and `skipped`: (file, reason) of each file found in a DATA
    directory or glob but not remapped (unknown type, or not an id file by its name)."""

    def __init__(self, reports: Sequence[Any] = (), *, skipped: Sequence[tuple[Path, str]] = ()) -> None:
        super().__init__(reports)
        self.skipped = list(skipped)


def skipped_json(plan: DataPlan | FileReports) -> list[dict[str, str]]:
    """The skipped files as `--json`, the manifest and the output marker list them."""
    return [{"path": str(path), "reason": reason} for path, reason in plan.skipped]


def _groups(data_options: DataOptions | None, engine: EngineOptions | str | None, keywords: dict[str, Any]
            ) -> tuple[DataOptions, EngineOptions]:
    """The option groups from groups or flat keywords (`columns=["ids"], workers=2, engine="ray"`)."""
    flat_engine = {k: keywords.pop(k) for k in ("workers", "ray_address") if k in keywords}
    if isinstance(engine, str) or engine is None:
        engine = EngineOptions(engine=engine or "local", **flat_engine)
    return data_options or DataOptions(**keywords), engine


def remap_files(run: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                data_options: DataOptions | None = None, engine: EngineOptions | str | None = None,
                force: bool = False, **keywords: Any) -> list:
    """Encode datasets in original ids to the run's sorted ids, into the directory `out`.

    Options come as groups or flat keywords (`columns`, `id_dtype`, `unk`, `ignore_index`, `include`,
    `workers`, `engine`, `ray_address`). `engine="ray"` runs on the Ray cluster at `ray_address` /
    RAY_ADDRESS (else a local one), Parquet only. Ids in `ignore_index` (e.g. -100 in `labels`) are
    written unchanged and not counted; `include` globs choose the files taken from DATA directories.
    """
    options, engine = _groups(data_options, engine, keywords)
    return _apply(run, data, out=out, inverse=False, options=options, engine=engine, force=force)


def invert_files(run: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                 data_options: DataOptions | None = None, engine: EngineOptions | str | None = None,
                 force: bool = False, to_text: bool = False, **keywords: Any) -> list:
    """Decode datasets in sorted ids back to original ids; `invert_files` after `remap_files` is exact.

    `to_text=True` writes each file as `<name>.txt` instead: a line per row, its tokens joined by spaces.
    """
    options, engine = _groups(data_options, engine, keywords)
    return _apply(run, data, out=out, inverse=True, options=options, engine=engine, force=force, to_text=to_text)


def count_ids(run_path: str | os.PathLike | Any, data: Sequence[str | os.PathLike], *,
              options: DataOptions = DataOptions()) -> np.ndarray:
    """Per-sorted-id counts of datasets in original ids (for `inspect`); nothing is kept on disk."""
    return count_planned(run_path, data, options=options)[0]


def count_planned(run_path: str | os.PathLike | Any, data: Sequence[str | os.PathLike], *,
                  options: DataOptions = DataOptions()) -> tuple[np.ndarray, DataPlan]:
    """`count_ids`, with the plan that chose the files (what was skipped, and why)."""
    import tempfile

    from ..datasets import remap_many
    from ..run import Run

    run = run_path if isinstance(run_path, Run) else load_run(run_path)  # a loaded Run is not read again
    counts = np.zeros(run.vocab_size, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="reindex-inspect-") as tmp:
        plan = plan_datasets([os.fspath(d) for d in data], Path(tmp), include=options.include,
                             columns=options.columns)
        pairs = plan.pairs
        named = _has_text(pairs) or ignore_in_vocab(options.ignore_index, run.vocab_size)
        spec = RemapSpec(table=run.original_to_sorted, columns=options.columns, unk=options.unk, counts=counts,
                         tokens=run.original_tokens if named else None, ignore=options.ignore_index)
        remap_many(pairs, spec)
    return counts, plan


def _has_text(pairs: Sequence[tuple[Path, Path]]) -> bool:
    from ..datasets.plan import detect_format

    return any(source.is_file() and detect_format(source) == "text" for source, _ in pairs)
