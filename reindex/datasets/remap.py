"""Remap one dataset (any format) or many in parallel; counts are added only on success."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .core import FileReport, RemapSpec
from .plan import detect_format


def _reader(kind: str) -> Callable[[Path, Path, RemapSpec], FileReport]:
    # Imported on demand so `import reindex.datasets` stays light (torch and pyarrow are heavy).
    fn: Callable[[Path, Path, RemapSpec], FileReport]
    if kind == "npy":
        from .npy import remap_npy as fn
    elif kind == "pt":
        from .pt import remap_pt as fn
    elif kind == "safetensors":
        from .safetensors_file import remap_safetensors as fn
    elif kind == "parquet":
        from .parquet import remap_parquet as fn
    elif kind == "arrow":
        from .ipc import remap_ipc as fn
    elif kind == "hf-dataset":
        from .hf import remap_hf_dataset as fn
    else:
        from .text import remap_text as fn
    return fn


def remap_dataset(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap `source` into `output` (parent directories created), format by suffix or content.

    remap_dataset(Path("train.parquet"), Path("run/data/train.parquet"), spec)
    FileReport(source=..., format='parquet', num_ids=..., num_rows=...)
    """
    from .. import progress

    source, output = Path(source), Path(output)
    fn = _reader(detect_format(source))
    if spec.counts is None:
        report = fn(source, output, spec)
    else:
        # Count into a private array: a file that fails half-way leaves the caller's counts alone.
        local = np.zeros_like(spec.counts)
        report = fn(source, output, replace(spec, counts=local))
        spec.counts += local
    progress.tally("files", 1)
    progress.note(f"{source}: {report.num_ids:,} ids, {report.num_rows:,} rows ({report.format})", verbose=True)
    return report


def remap_many(pairs: Sequence[tuple[Path, Path]], spec: RemapSpec, *,
               workers: int | None = None) -> list[FileReport]:
    """Remap independent files on `workers` threads; reports in input order, first error raised.

    remap_many(plan_outputs(["corpus/"], Path("out")), spec, workers=2)
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(pairs) or 1))
    if workers == 1:
        return [remap_dataset(s, o, spec) for s, o in pairs]
    locals_ = [None if spec.counts is None else np.zeros_like(spec.counts) for _ in pairs]
    with ThreadPoolExecutor(workers, thread_name_prefix="reindex-remap") as pool:
        futures = [pool.submit(remap_dataset, s, o, replace(spec, counts=c))
                   for (s, o), c in zip(pairs, locals_)]
        try:
            reports = [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    if spec.counts is not None:
        for local in locals_:  # summed in input order once all succeeded: deterministic
            spec.counts += local
    return reports
