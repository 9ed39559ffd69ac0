"""Engines that run a remap: "local" (threads, `reindex.datasets.remap_many`) or "ray" (a Ray cluster).

    run_engine("ray", pairs, spec, ray_address="auto")   # -> [FileReport, ...] in input order

Each engine takes the planned (source, output) pairs and the same `RemapSpec`, and writes the
same files; the caller stages them in a temporary directory and renames it on success.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import UsageError

ENGINES = ("local", "ray")


def run_engine(engine: str, pairs: Sequence[tuple[Path, Path]], spec, *, workers: int | None = None,
               ray_address: str | None = None) -> list:
    """Remap `pairs` with `engine`; reports in input order, the first bad input raised as ReindexError."""
    if engine == "local":
        if ray_address is not None:
            raise UsageError("--ray-address needs --engine ray")
        from ..datasets import remap_many

        return remap_many(pairs, spec, workers=workers)
    if engine == "ray":
        from .ray_data import remap_with_ray

        return remap_with_ray(pairs, spec, address=ray_address, num_cpus=workers)
    raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
