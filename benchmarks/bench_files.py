"""End to end, file to file: `reindex build` / `reindex remap` against a plain read + write.

    python -m benchmarks.bench_files [--quick]

Corpora (fixed seeds, generated once into benchmarks/_work): a ~600 MB Parquet file with a
list<int32> `input_ids` column and a ~600 MB .npy of 1,000,000 x 75 int64 ids; vocabulary
75,000, half of it with a (50-d) vector. Every contender is a fresh subprocess, run interleaved
A B A B; outputs are deleted and dirty pages flushed (`sync`) between runs, outside the timing.
The baselines are pyarrow `read_table` + `write_table` and numpy `load` + `save` of the same file.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

from .common import WORK, Row, peak_rss_of, print_table

VOCAB, DIM, SEED = 75_000, 50, 0
PARQUET_ROWS, MEAN_LEN = 2_000_000, 75          # ~150M int32 ids, ~600 MB
NPY_SHAPE = (1_000_000, 75)                     # int64, 600 MB
PY = sys.executable
NPY_COPY = "import numpy as np, sys; np.save(sys.argv[2], np.load(sys.argv[1]))"


def make_inputs(work: Path) -> dict[str, Path]:
    """Vocabulary, vectors, a run directory and the two corpora; made once, reused after."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {"vocab": work / "vocab.txt", "vectors": work / "vectors.txt", "run": work / "run",
             "parquet": work / f"corpus_{PARQUET_ROWS}.parquet", "npy": work / f"corpus_{NPY_SHAPE[0]}x{NPY_SHAPE[1]}.npy"}
    rng = np.random.default_rng(SEED)
    tokens = [f"tok{i}" for i in range(VOCAB)]
    if not paths["vocab"].exists():
        paths["vocab"].write_text("\n".join(tokens) + "\n", encoding="utf-8")
    if not paths["vectors"].exists():
        with_vector = np.flatnonzero(rng.random(VOCAB) < 0.5)
        matrix = rng.standard_normal((with_vector.size, DIM)).astype(np.float32)
        lines = (tokens[i] + " " + " ".join(f"{x:.5f}" for x in row) for i, row in zip(with_vector, matrix))
        paths["vectors"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not paths["parquet"].exists():
        _write_parquet(paths["parquet"], np.random.default_rng(SEED + 1))
    if not paths["npy"].exists():
        ids = np.random.default_rng(SEED + 2).integers(0, VOCAB, NPY_SHAPE, dtype=np.int64)
        np.save(paths["npy"], ids)
    if not paths["run"].exists():
        _run([PY, "-m", "reindex", "build", "-q", "--vocab", str(paths["vocab"]),
              "--vectors", str(paths["vectors"]), "--out", str(paths["run"])])
    return paths


def _write_parquet(path: Path, rng: np.random.Generator) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lengths = rng.integers(1, 2 * MEAN_LEN, PARQUET_ROWS).astype(np.int32)
    offsets = np.zeros(PARQUET_ROWS + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = rng.integers(0, VOCAB, int(offsets[-1]), dtype=np.int32)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    table = pa.table({"input_ids": ids, "label": pa.array(rng.integers(0, 2, PARQUET_ROWS), pa.int8())})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _run(cmd: list[str]) -> tuple[float, int]:
    return peak_rss_of(cmd)


def _clear(*paths: Path) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    os.sync()  # the previous run's dirty pages must not be written back during the next one


def _warm(path: Path) -> None:
    """Read a file once so every contender finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def _measure(contenders: dict[str, tuple[list[str], list[Path]]], repeats: int) -> dict[str, tuple[float, int]]:
    """Each contender `repeats` times, interleaved; (median seconds, max peak RSS)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    peaks: dict[str, int] = {name: 0 for name in contenders}
    for _ in range(repeats):
        for name, (cmd, outputs) in contenders.items():
            _clear(*outputs)
            seconds, peak = _run(cmd)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
        for _, outputs in contenders.values():
            _clear(*outputs)
    return {name: (statistics.median(times[name]), peaks[name]) for name in contenders}


def _table(title: str, results: dict[str, tuple[float, int]], baseline: str, targets: dict[str, float]) -> None:
    base = results[baseline][0]
    rows = []
    for name, (seconds, peak) in results.items():
        note = f"peak RSS {peak / 2**20:,.0f} MiB"
        if name in targets:
            ratio = seconds / base
            note += f"; target <= {targets[name]}x: " + ("met" if ratio <= targets[name] else "NOT met")
        rows.append(Row(name, seconds, seconds / base, note))
    print_table(title, rows, baseline=baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 interleaved rounds instead of 5")
    parser.add_argument("--only", default="parquet,npy", help="which corpora (default: parquet,npy)")
    parser.add_argument("--work", type=Path, default=WORK / "files", help="where inputs and outputs go")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    work = args.work
    paths = make_inputs(work)
    out = work / "out"
    reindex = [PY, "-m", "reindex"]
    run, vocab, vectors = str(paths["run"]), str(paths["vocab"]), str(paths["vectors"])

    tiny, tiny_copy = work / "tiny.npy", out / "tiny_copy.npy"
    out.mkdir(parents=True, exist_ok=True)
    np.save(tiny, np.arange(10, dtype=np.int64))
    help_results = _measure({
        "python -c pass": ([PY, "-c", "pass"], []),
        "reindex --help": (reindex + ["--help"], []),
        "reindex build --help": (reindex + ["build", "--help"], []),
        "numpy read + write, 10 ids": ([PY, "-c", NPY_COPY, str(tiny), str(tiny_copy)], [tiny_copy]),
        "reindex remap, 10 ids": (reindex + ["remap", run, str(tiny), "--out", str(out / "tiny")], [out / "tiny"]),
    }, repeats * 2)
    base = help_results["python -c pass"][0]
    help_rows = [Row(name, s, s / base, f"peak RSS {peak / 2**20:,.0f} MiB"
                     + ("; target < 0.3 s: " + ("met" if s < 0.3 else "NOT met") if "help" in name else ""))
                 for name, (s, peak) in help_results.items()]
    print_table("Start-up and fixed cost (a fresh process each)", help_rows, baseline="python -c pass")

    for kind, baseline_code in [
        ("parquet", "import pyarrow.parquet as pq, sys; pq.write_table(pq.read_table(sys.argv[1]), sys.argv[2])"),
        ("npy", NPY_COPY),
    ]:
        if kind not in args.only.split(","):
            continue
        corpus = paths[kind]
        copy = out / f"copy.{kind}"
        out.mkdir(parents=True, exist_ok=True)
        _warm(corpus)
        baseline = f"{'pyarrow' if kind == 'parquet' else 'numpy'} read + write"
        results = _measure({
            baseline: ([PY, "-c", baseline_code, str(corpus), str(copy)], [copy]),
            "reindex remap": (reindex + ["remap", run, str(corpus), "--out", str(out / "remap")], [out / "remap"]),
            "reindex build": (reindex + ["build", "-q", "--vocab", vocab, "--vectors", vectors,
                                         "--out", str(out / "build"), str(corpus)], [out / "build"]),
        }, repeats)
        size = corpus.stat().st_size / 1e6
        _table(f"File to file, {kind}, {size:,.0f} MB", results, baseline,
               {"reindex remap": 1.3, "reindex build": 1.3})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
