"""Throughput of the local engine and `--engine ray` on a Parquet corpus, Ray start-up apart.

    python -m benchmarks.bench_ray                                   # 6.4M tokens in 4 files
    python -m benchmarks.bench_ray --tokens 25600000 --files 16      # a larger corpus

Prints Markdown tables (seconds, ids/s, MB/s, per core) for docs/scale.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from .common import WORK, Row, interleaved, print_table


def make_corpus(root: Path, *, tokens: int, files: int, seq: int, vocab: int, seed: int = 0) -> list[Path]:
    """`files` Parquet files of list<int32> rows of `seq` ids (1 in 50 rows null), `tokens` ids in all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rows = tokens // seq // files
    paths = []
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        path = root / f"part-{i:05d}.parquet"
        paths.append(path)
        if path.exists():
            continue
        values = pa.array(rng.integers(0, vocab, rows * seq, dtype=np.int32))
        offsets = pa.array(np.arange(0, rows * seq + 1, seq, dtype=np.int32))
        mask = pa.array(np.arange(rows) % 50 == 0)
        ids = pa.ListArray.from_arrays(offsets, values, mask=mask)
        pq.write_table(pa.table({"input_ids": ids, "doc_id": np.arange(rows) + i * rows}), path,
                       row_group_size=max(1, rows // 4))
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ray", description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=6_400_000, help="ids in the corpus")
    parser.add_argument("--files", type=int, default=4, help="Parquet files")
    parser.add_argument("--seq", type=int, default=512, help="ids per row")
    parser.add_argument("--vocab", type=int, default=50_000, help="vocabulary size")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for the local Ray and local threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from reindex.datasets import RemapSpec, plan_outputs, remap_many
    from reindex.engines.ray_data import remap_with_ray

    corpus = WORK / f"ray_corpus_{args.tokens}_{args.files}_{args.seq}"
    paths = make_corpus(corpus, tokens=args.tokens, files=args.files, seq=args.seq, vocab=args.vocab)
    table = np.random.default_rng(1).permutation(args.vocab).astype(np.int64)
    spec = RemapSpec(table=table, columns=("input_ids",))
    out = WORK / "ray_out"
    tiny = make_corpus(WORK / "ray_corpus_tiny", tokens=512, files=1, seq=512, vocab=args.vocab)

    def run(engine: str, *, source: Path = corpus, **options) -> int:
        shutil.rmtree(out, ignore_errors=True)
        pairs = plan_outputs([source], out)
        if engine == "ray":
            reports = remap_with_ray(pairs, spec, **options)
        else:
            reports = remap_many(pairs, spec, **options)
        return sum(r.num_ids for r in reports)

    num_ids = run("local", workers=1)
    in_bytes = sum(p.stat().st_size for p in paths)
    print(f"corpus: {num_ids:,} ids (non-null) in {len(paths)} files, {in_bytes / 1e6:.1f} MB on disk, "
          f"vocab {args.vocab:,}; cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at start")

    # CPU seconds of one local thread: the per-core cost of remapping, nearly independent of other
    # jobs on a shared machine (wall-clock figures below are not).
    cpu = []
    for _ in range(args.repeats):
        t0 = time.process_time()
        run("local", workers=1)
        cpu.append(time.process_time() - t0)
    cpu_s = min(cpu)
    print(f"local, 1 thread: {cpu_s:.3f} CPU s = {num_ids / cpu_s / 1e6:.1f} M ids/s and "
          f"{in_bytes / 1e6 / cpu_s:.0f} MB/s (read) per core of CPU time")

    # Ray start-up (ray.init with a fresh local cluster), measured on its own, each time afresh.
    import ray

    starts, stops = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        starts.append(time.perf_counter() - t0)
        run("ray")  # warm: first Ray Data job also starts worker processes
        t0 = time.perf_counter()
        ray.shutdown()
        stops.append(time.perf_counter() - t0)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        medians = interleaved({
            "local, 1 thread": lambda: run("local", workers=1),
            f"local, {args.cpus} threads": lambda: run("local", workers=args.cpus),
            f"ray, {args.cpus} CPUs (running cluster)": lambda: run("ray"),
            "ray, one 512-id file (fixed cost of a job)": lambda: run("ray", source=tiny[0]),
        }, repeats=args.repeats, warmup=0)
    finally:
        ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)
    cores = {"local, 1 thread": 1}
    rows = []
    for name, seconds in medians.items():
        if "fixed cost" in name:
            rows.append(Row(name, seconds, None, "scheduling, worker hand-off, report collection"))
            continue
        n = cores.get(name, args.cpus)
        rate, mb = num_ids / seconds, in_bytes / 1e6 / seconds
        rows.append(Row(name, seconds, None, f"{rate / 1e6:.1f} M ids/s, {mb:.0f} MB/s; per core "
                                             f"{rate / n / 1e6:.1f} M ids/s, {mb / n:.0f} MB/s"))
    rows.append(Row("ray start-up (ray.init, local)", statistics.median(starts), None,
                    "runs: " + ", ".join(f"{s:.2f}" for s in starts)))
    rows.append(Row("ray shutdown", statistics.median(stops), None, ""))
    print_table(f"{num_ids / 1e6:.1f}M ids in {len(paths)} Parquet files, list<int32>", rows)
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
