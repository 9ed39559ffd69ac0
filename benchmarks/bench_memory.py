"""Peak resident memory of `reindex remap` / `reindex build` on corpora of 2 GB and 1 GB.

    python -m benchmarks.bench_memory [--quick] [--only npy,parquet] [--keep]

Memory must follow the batch size, not the corpus: at most 600 MB on 2 GB, and the same
(within 10%) on half of it. Corpora (fixed seeds, generated once into benchmarks/_work/memory):
- `.npy`: a 1-D int64 token stream of 2 GB (268M ids) and of 1 GB;
- Parquet: `list<int32>` rows of 1 to 149 ids (mean 75) holding 2 GB and 1 GB of *decoded* ids
  (500M / 250M ids), plus an int8 `label`; row groups of 1Mi rows (pyarrow's default, ~300 MB of
  ids each), snappy, dictionary encoding off, so the file on disk is about as large as its ids.
Vocabulary 50,000 tokens, a tiny GloVe file (5,000 vectors of 25 dims); one run built once.
Each command is a fresh process measured by `peak_rss_of` (its own ru_maxrss, not this process's);
outputs are deleted and flushed after each measurement. `--quick`: 200 MB and 100 MB corpora.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from .common import WORK, peak_rss_of

VOCAB, VECTORS, DIM, SEED = 50_000, 5_000, 25, 0
MEAN_LEN, GROUP_ROWS = 75, 1 << 20
TARGET_PEAK, TARGET_RATIO = 600e6, 1.10
PY = sys.executable


def make_run(work: Path) -> dict[str, Path]:
    """Vocabulary, tiny GloVe file and a run directory (built once, reused)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {"vocab": work / "vocab.txt", "vectors": work / "glove_tiny.txt", "run": work / "run"}
    tokens = [f"tok{i}" for i in range(VOCAB)]
    if not paths["vocab"].exists():
        paths["vocab"].write_text("\n".join(tokens) + "\n", encoding="utf-8")
    if not paths["vectors"].exists():
        rng = np.random.default_rng(SEED)
        rows = np.sort(rng.choice(VOCAB, VECTORS, replace=False))
        matrix = rng.standard_normal((VECTORS, DIM)).astype(np.float32)
        lines = (tokens[i] + " " + " ".join(f"{x:.4f}" for x in row) for i, row in zip(rows, matrix))
        paths["vectors"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not paths["run"].exists():
        peak_rss_of([PY, "-m", "reindex", "build", "-q", "--vocab", str(paths["vocab"]),
                     "--vectors", str(paths["vectors"]), "--out", str(paths["run"])])
    return paths


def make_npy(path: Path, nbytes: int) -> None:
    """A 1-D int64 token stream of `nbytes`, written chunk by chunk (never whole in memory)."""
    if path.exists():
        return
    size, chunk = nbytes // 8, 1 << 24
    rng = np.random.default_rng(SEED + 1)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (size,)})
        for start in range(0, size, chunk):
            f.write(rng.integers(0, VOCAB, min(chunk, size - start), dtype=np.int64).tobytes())
    os.replace(tmp, path)


def make_parquet(path: Path, nbytes: int) -> None:
    """Rows of `list<int32>` ids holding `nbytes` of decoded ids, one 1Mi-row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return
    rng = np.random.default_rng(SEED + 2)
    tmp = path.with_suffix(".tmp")
    left = nbytes // 4
    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("label", pa.int8())])
    with pq.ParquetWriter(tmp, schema, use_dictionary=False, compression="snappy") as writer:
        while left > 0:
            lengths = rng.integers(1, 2 * MEAN_LEN, GROUP_ROWS).astype(np.int32)
            offsets = np.zeros(GROUP_ROWS + 1, np.int32)
            np.cumsum(lengths, out=offsets[1:])
            rows = min(GROUP_ROWS, int(np.searchsorted(offsets, left)))
            offsets = offsets[: rows + 1]
            values = rng.integers(0, VOCAB, int(offsets[-1]), dtype=np.int32)
            ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
            labels = pa.array(rng.integers(0, 2, rows, dtype=np.int8))
            writer.write_table(pa.table([ids, labels], schema=schema), row_group_size=GROUP_ROWS)
            left -= values.size
    os.replace(tmp, path)


def decoded_ids(path: Path) -> int:
    """Ids in a corpus (from the header or the Parquet metadata, without reading the data)."""
    if path.suffix == ".npy":
        return (path.stat().st_size - 128) // 8
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(g).column(0).num_values for g in range(meta.num_row_groups))


def _clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    os.sync()  # dirty pages of one run must not be written back during the next


def measure(corpus: Path, paths: dict[str, Path], out: Path, repeats: int) -> dict[str, tuple[float, int]]:
    """{command: (best seconds, highest peak RSS bytes)} for remap and build on one corpus."""
    reindex = [PY, "-m", "reindex"]
    commands = {
        "remap": reindex + ["remap", str(paths["run"]), str(corpus), "--out", str(out)],
        "build": reindex + ["build", "-q", "--vocab", str(paths["vocab"]), "--vectors", str(paths["vectors"]),
                            "--out", str(out), str(corpus)],
    }
    results = {}
    for name, cmd in commands.items():
        runs = []
        for _ in range(repeats):
            _clear(out)
            runs.append(peak_rss_of(cmd))
            _clear(out)
        results[name] = (min(s for s, _ in runs), max(p for _, p in runs))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 MB and 100 MB corpora instead of 2 GB and 1 GB")
    parser.add_argument("--only", default="npy,parquet", help="which formats (default: npy,parquet)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per command (best time, highest peak)")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora (they are deleted otherwise)")
    parser.add_argument("--work", type=Path, default=WORK / "memory")
    args = parser.parse_args(argv)
    big = 200_000_000 if args.quick else 2_000_000_000
    paths = make_run(args.work)
    print("\n| corpus | on disk | ids | command | s | M ids/s | MB/s (decoded) | peak RSS | "
          "vs half size | target |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    sys.stdout.flush()
    failed = False
    for kind in [k for k in ("npy", "parquet") if k in args.only.split(",")]:
        peaks: dict[str, int] = {}
        for nbytes in (big // 2, big):  # the half first, so the full one can be compared with it
            corpus = args.work / f"corpus_{nbytes // 10**6}MB.{kind}"
            (make_npy if kind == "npy" else make_parquet)(corpus, nbytes)
            ids, width = decoded_ids(corpus), 8 if kind == "npy" else 4
            for name, (seconds, peak) in measure(corpus, paths, args.work / "out", args.repeats).items():
                ratio = None if name not in peaks else peak / peaks[name]
                peaks.setdefault(name, peak)
                ok = peak <= TARGET_PEAK and (ratio is None or ratio <= TARGET_RATIO)
                failed |= not ok
                print(f"| {kind} {nbytes / 1e9:g} GB | {corpus.stat().st_size / 1e6:,.0f} MB | {ids / 1e6:,.0f}M "
                      f"| {name} | {seconds:.1f} | {ids / seconds / 1e6:.1f} | {ids * width / seconds / 1e6:.0f} "
                      f"| {peak / 1e6:,.0f} MB | {'' if ratio is None else f'{ratio:.2f}x'} "
                      f"| {'met' if ok else 'NOT met'} |")
                sys.stdout.flush()
            if not args.keep:
                corpus.unlink()
    print(f"\nTarget: peak <= {TARGET_PEAK / 1e6:.0f} MB, and <= {TARGET_RATIO:.2f}x the peak on half the corpus.")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
