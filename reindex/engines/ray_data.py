"""`--engine ray`: remap Parquet files on a Ray cluster, one Ray Data task per input file.

    remap_with_ray(pairs, spec)                       # RAY_ADDRESS, else a local Ray
    remap_with_ray(pairs, spec, address="ray://head:10001")

Each task streams its file through the local engine's Parquet path (`remap_parquet`, which calls
the pure per-batch `remap_batch` / `remap_record_batch`), so the output is the local engine's,
file for file: same names, schema, metadata, row groups, codec and rows.

Why a task per file and not `ray.data.read_parquet(...).map_batches(...)`: Ray 2.60's Parquet
reader bin-packs row groups of several files into one read task, out of file order (measured: one
task held rows 2000-2999 of f0, another rows 1500-1999 of f0 and 0-999 of f1), and gives no row
positions. Its output could not be put back into one file per input in input order, and a bad
id could not be reported by row. A file is the unit of work, as in the local engine.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import ReindexError, UsageError

INSTALL_HINT = "pip install 'reindex-vocab[ray]' (on every node of the cluster)"


def import_ray() -> Any:
    """The `ray` module, or a UsageError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the `ray[data]` part of the extra)
    except ImportError as e:
        raise UsageError(f"--engine ray needs Ray Data ({e})", hint=INSTALL_HINT) from e
    return ray


def check_parquet(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse any input that is not Parquet, before Ray starts or anything is written."""
    from ..datasets import detect_format

    for source, _ in pairs:
        kind = detect_format(Path(source))
        if kind != "parquet":
            raise UsageError(f"--engine ray reads Parquet files only; this is {kind}", path=source,
                             hint="use --engine local for this file, or convert it to Parquet")


@contextlib.contextmanager
def connected(*, address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the running Ray, else connect to `address` / RAY_ADDRESS, else start a local one.

    A Ray started here is shut down on exit; one that was already running is left alone.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    remote = address or os.environ.get("RAY_ADDRESS")
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if remote:
        options["address"] = remote  # a cluster brings its own CPUs: num_cpus would be refused
    else:
        options.update(num_cpus=num_cpus, include_dashboard=False)
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise UsageError(f"cannot connect to Ray at {remote}: {e}".replace("\n", " "),
                         hint="check --ray-address / RAY_ADDRESS (e.g. ray://head:10001 or auto)") from e
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def data_context(ray: Any) -> Iterator[None]:
    """Quiet Ray Data, and have a task's ReindexError arrive as itself (not a bare UserCodeException)."""
    context = ray.data.DataContext.get_current()
    settings = {"enable_progress_bars": False, "print_on_execution_start": False,
                "raise_original_map_exception": True}
    saved = {name: getattr(context, name) for name in settings}
    for name, value in settings.items():
        setattr(context, name, value)
    # Per-job INFO/WARNING lines would drown the CLI's one line, and a failed task is logged at ERROR
    # with a traceback before its exception reaches us: we report that exception ourselves.
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        for name, value in saved.items():
            setattr(context, name, value)


def remap_with_ray(pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]], spec: Any, *,
                   address: str | None = None, num_cpus: int | None = None) -> list:
    """Remap Parquet `pairs` (source, output) on Ray; FileReports in input order, counts added on success.

    remap_with_ray([(Path("a.parquet"), Path("out/a.parquet"))], spec)
    [FileReport(source=PosixPath('a.parquet'), ..., format='parquet', num_ids=..., num_rows=...)]
    """
    from ..datasets import FileReport

    paths = [(Path(s), Path(o)) for s, o in pairs]
    check_parquet(paths)
    if not paths:
        return []
    with connected(address=address, num_cpus=num_cpus) as ray, data_context(ray):
        # One object-store copy of the table, read zero-copy by every worker on a node.
        spec_ref = ray.put(replace(spec, counts=None))
        task = functools.partial(remap_files_batch, spec_ref=spec_ref, counting=spec.counts is not None)
        # Absolute paths: workers do not share the driver's working directory.
        items = [{"index": i, "source": str(s.absolute()), "output": str(o.absolute()),
                  "anchor": str(existing_parent(o.absolute()))} for i, (s, o) in enumerate(paths)]
        # One block per file and tasks (not an actor pool, which starves the scheduler on small
        # machines): Ray runs as many files at once as the cluster has free CPUs.
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            task, batch_format="pyarrow", batch_size=1)
        try:
            rows = sorted(dataset.take_all(), key=lambda row: row["index"])
        except Exception as e:  # a task's error arrives wrapped in Ray's exception types
            raise unwrap(e) from None
    if [row["index"] for row in rows] != list(range(len(paths))):
        raise ReindexError(f"Ray returned {len(rows)} reports for {len(paths)} files",
                           hint="a worker lost the output directory: is it on storage every node shares?")
    if spec.counts is not None:
        for row in rows:  # summed in input order once every file succeeded, as remap_many does
            np.add.at(spec.counts, np.asarray(row["count_ids"], np.int64), np.asarray(row["count_values"], np.int64))
    return [FileReport(Path(s), Path(o), row["format"], int(row["num_ids"]), int(row["num_rows"]))
            for (s, o), row in zip(paths, rows)]


def remap_files_batch(batch: Any, *, spec_ref: Any, counting: bool) -> Any:
    """Ray task body: remap each file named in `batch` (columns index, source, output); one report row each."""
    import pyarrow as pa
    import ray

    from ..datasets import remap_dataset

    spec = ray.get(spec_ref)
    rows = []
    for item in batch.to_pylist():
        if not Path(item["anchor"]).is_dir():
            # The job failed elsewhere and the caller removed its staging directory: writing
            # now would recreate it behind the caller's back.
            continue
        # Object-store arrays are read-only: count into a private array, returned sparse.
        counts = np.zeros(spec.vocab_size, np.int64) if counting else None
        report = remap_dataset(Path(item["source"]), Path(item["output"]), replace(spec, counts=counts))
        nonzero = np.flatnonzero(counts) if counts is not None else np.empty(0, np.int64)
        rows.append({"index": item["index"], "format": report.format, "num_ids": report.num_ids,
                     "num_rows": report.num_rows, "count_ids": nonzero,
                     "count_values": counts[nonzero] if counts is not None else nonzero})
    return pa.table({
        "index": pa.array([r["index"] for r in rows], pa.int64()),
        "format": pa.array([r["format"] for r in rows], pa.string()),
        "num_ids": pa.array([r["num_ids"] for r in rows], pa.int64()),
        "num_rows": pa.array([r["num_rows"] for r in rows], pa.int64()),
        "count_ids": pa.array([r["count_ids"] for r in rows], pa.list_(pa.int64())),
        "count_values": pa.array([r["count_values"] for r in rows], pa.list_(pa.int64())),
    })


def existing_parent(path: Path) -> Path:
    """The nearest ancestor of `path` that exists now (the caller's staging directory)."""
    for parent in path.parents:
        if parent.is_dir():
            return parent
    return Path(path.anchor or ".")


def unwrap(error: BaseException) -> BaseException:
    """The ReindexError inside Ray's wrappers, as a clean one-line error; else `error` itself."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        e = pending.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        # Ray's RayTaskError subclasses the cause's type but its text is a traceback: rebuild
        # from the original (its `cause`), whose class is one of ours.
        if isinstance(e, ReindexError) and type(e).__module__.startswith("reindex."):
            cls = UsageError if isinstance(e, UsageError) else ReindexError
            return cls(e.message, path=e.path, line=e.line, position=e.position, hint=e.hint)
        pending += [c for c in (getattr(e, "cause", None), e.__cause__, e.__context__)
                    if isinstance(c, BaseException)]
    return error
