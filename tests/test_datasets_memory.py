"""Memory follows the batch, not the corpus: a child process remaps a file of a few hundred MB and
reports its own peak resident size (VmHWM), which must stay far below the data and not grow when
the data doubles. (The 2 GB figures are in `python -m benchmarks.bench_memory`, docs/scale.md.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VOCAB = 50_000
MB = 1 << 20
BUDGET = 8 * MB

# Remaps argv[1] -> argv[2] with the library (as `reindex remap` does, counting ids as `build`
# does) and prints the peak resident bytes before and after. Parquet is given an 8 MiB row-group
# budget: at the default 128 MiB a test would need GBs of data to show a cap below the data size.
CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from reindex.datasets.core import RemapSpec

def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

source, output = Path(sys.argv[1]), Path(sys.argv[2])
spec = RemapSpec(np.random.default_rng(0).permutation(50_000), counts=np.zeros(50_000, np.int64))
if source.suffix == ".parquet":
    import pyarrow.parquet
    from reindex.datasets.parquet import remap_parquet as remap
    options = {"row_group_bytes": int(sys.argv[3])}
else:
    from reindex.datasets.npy import remap_npy as remap
    options = {}
before = hwm()
report = remap(source, output, spec, **options)
print(json.dumps({"before": before, "peak": hwm(), "ids": report.num_ids, "counted": int(spec.counts.sum())}))
"""


def child_peak(source: Path, output: Path) -> dict[str, int]:
    """Run CHILD on `source`; its peak and id counts (the output is deleted at once)."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(source), str(output), str(BUDGET)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    output.unlink()
    return json.loads(proc.stdout)


def write_parquet(path: Path, decoded_bytes: int, *, group_rows: int = 1 << 16) -> int:
    """list<int32> rows of 1-149 ids (mean 75) holding `decoded_bytes` of ids; row groups of
    `group_rows` (~19 MB of ids, so each is split in 3 by the 8 MiB budget); returns the ids."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("label", pa.int8())])
    left = total = decoded_bytes // 4
    with pq.ParquetWriter(path, schema, use_dictionary=False) as writer:
        while left > 0:
            offsets = np.zeros(group_rows + 1, np.int32)
            np.cumsum(rng.integers(1, 150, group_rows, dtype=np.int32), out=offsets[1:])
            rows = min(group_rows, int(np.searchsorted(offsets, left)))
            values = rng.integers(0, VOCAB, int(offsets[rows]), dtype=np.int32)
            ids = pa.ListArray.from_arrays(pa.array(offsets[: rows + 1]), pa.array(values))
            labels = pa.array(np.zeros(rows, np.int8))
            writer.write_table(pa.table([ids, labels], schema=schema), row_group_size=group_rows)
            left -= values.size
    return total - left


def write_npy(path: Path, nbytes: int) -> int:
    """A 1-D int64 token stream of `nbytes`, written chunk by chunk; returns the ids."""
    size = nbytes // 8
    rng = np.random.default_rng(2)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (size,)})
        for start in range(0, size, 1 << 24):
            f.write(rng.integers(0, VOCAB, min(1 << 24, size - start), dtype=np.int64).tobytes())
    return size


# Caps on the GROWTH of the resident set during the remap (peak - before, so the interpreter and
# the imports, ~40-80 MB and different from one install to the next, are not counted), set from a
# measured distribution: 10 runs per size, twice (2026-11-30; before = 78.8 MB for Parquet, 39.5 MB
# for .npy), the second time with the command anyone can run:
#     PYTHONPATH=$PWD python tests/test_datasets_memory.py 10
#                                 first 10 runs                second 10 runs (after a merge of main)
#     parquet, 128 MB of ids: growth 94.5-96.6 MB (peak 175)  growth 83.0-87.7 MB (peak 162-167)
#     parquet, 256 MB of ids: growth 91.3-97.0 MB (peak 176)  growth 86.0-94.5 MB (peak 165-173)
#     npy,     256 MB of ids: growth 129.7-129.9 MB           growth 129.7-130.0 MB (peak 169-170)
#     npy,     512 MB of ids: growth 129.7-129.9 MB           growth 129.8-130.0 MB (peak 169-170)
# The old cap (peak < 200 MB) left Parquet 25 MB of margin here, and none on a fresh clone, where
# peaks of 199-201 MB were seen. The caps below are twice the largest growth measured (97 MB ->
# 192 MB, 130 MB -> 256 MB), still under the data they are measured on (256 and 512 MB of ids at
# the doubled size), so a remap that held the data would fail them. What the test proves rests on
# the second check: the growth does not follow the data when it doubles (it would be ~2x if it
# did). The worst pair measured (largest growth at twice the data over smallest at once the data)
# is 94.5 / 83.0 = 1.14x; the bound is 1.4x.
GROWTH_CAP = {"parquet": 192 * MB, "npy": 256 * MB}
DOUBLING_BOUND = 1.4


@pytest.mark.slow
@pytest.mark.parametrize("kind, size", [
    ("parquet", 128 * MB),   # 128 and 256 MB of decoded ids
    ("npy", 256 * MB),       # 256 and 512 MB
])
def test_peak_memory_is_capped_and_does_not_follow_the_data(tmp_path, kind, size):
    write = write_parquet if kind == "parquet" else write_npy
    growth = []
    for nbytes in (size, 2 * size):
        source = tmp_path / f"ids.{kind}"
        ids = write(source, nbytes)
        result = child_peak(source, tmp_path / f"out.{kind}")
        source.unlink()
        assert result["ids"] == result["counted"] == ids  # every id was remapped and counted
        grown = result["peak"] - result["before"]
        assert grown < GROWTH_CAP[kind], f"{kind}, {nbytes / MB:.0f} MB of ids: grew {grown / MB:.0f} MB"
        growth.append(grown)
    assert growth[1] <= DOUBLING_BOUND * growth[0], \
        f"grew {growth[0] / MB:.0f} MB -> {growth[1] / MB:.0f} MB for twice the data"


def test_parquet_row_groups_over_the_budget_are_split_at_the_input_boundaries(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reindex.datasets.core import RemapSpec
    from reindex.datasets.parquet import remap_parquet

    rows = [[i % 7] * (i % 5) for i in range(100)]  # 200 ids: 800 bytes of int32
    table = pa.table({"input_ids": pa.array(rows, pa.list_(pa.int32())), "n": pa.array(range(100), pa.int16())})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=60)  # groups of 60 and 40 rows
    table_ = np.arange(7)[::-1].copy()
    remap_parquet(tmp_path / "a.parquet", tmp_path / "b.parquet", RemapSpec(table_), row_group_bytes=1000)
    meta = pq.ParquetFile(tmp_path / "b.parquet").metadata
    # Remapped, the 60-row group is 844 bytes (61 offsets, 120 ids, 60 n), over 80% of the budget:
    # cut in 2 equal halves; the 40-row one (564 bytes) is kept whole.
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [30, 30, 40]
    got = pq.read_table(tmp_path / "b.parquet")
    assert got["input_ids"].to_pylist() == [[6 - i % 7] * (i % 5) for i in range(100)]
    assert got["n"].to_pylist() == list(range(100))
    remap_parquet(tmp_path / "a.parquet", tmp_path / "c.parquet", RemapSpec(table_))  # default budget
    meta = pq.ParquetFile(tmp_path / "c.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [60, 40]


def measure(runs: int) -> dict[str, list[int]]:
    """The distribution the caps above come from: `runs` child peaks per case and size."""
    import tempfile

    found = {}
    for kind, size in (("parquet", 128 * MB), ("npy", 256 * MB)):
        write = write_parquet if kind == "parquet" else write_npy
        for nbytes in (size, 2 * size):
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / f"ids.{kind}"
                write(source, nbytes)
                results = [child_peak(source, Path(tmp) / f"out.{kind}") for _ in range(runs)]
            found[f"{kind}-{nbytes // MB}MB"] = results
            peaks = [r["peak"] / MB for r in results]
            grown = [(r["peak"] - r["before"]) / MB for r in results]
            print(f"{kind}, {nbytes // MB} MB of ids: peak {min(peaks):.1f}-{max(peaks):.1f} MB, "
                  f"growth {min(grown):.1f}-{max(grown):.1f} MB, before {results[0]['before'] / MB:.1f} MB")
    return found




# ---------------------------------------------------------------- build holds the kept vectors once
# A child builds a run from a word2vec binary file whose every vector is kept (`KEPT_ROWS` x 300,
# 110 MB of float32), and reports its resident set when the vectors are read (after `sources.match`)
# and its peak from there on (VmHWM, reset at that point through /proc/self/clear_refs). After the
# reading, `build` sorts the rows into `fixed`, draws the trainable rows, and writes the run: with
# the rows moved in place, the column statistics taken a few MB at a time and safetensors written
# from the arrays' own memory, that adds scratch only. A second copy of the kept vectors anywhere
# (`np.take` into a new `fixed`, a float64 copy for the statistics, safetensors' `tobytes`) adds
# 110 MB or more.
BUILD_CHILD = """
import json, sys
import reindex.commands.match as sources
from reindex.commands.build import build

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

marks = {}
match = sources.match

def measured(*args, **kwargs):
    matched = match(*args, **kwargs)
    marks["read"], marks["reader_peak"] = status("VmRSS:"), status("VmHWM:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: the peak resident size starts again from the current one
    return matched

sources.match = measured
before = status("VmRSS:")
result = build(vocab=sys.argv[1], vectors=sys.argv[2], out=sys.argv[3])
print(json.dumps({"before": before, **marks, "peak": status("VmHWM:"), "fixed": result.counts["fixed"]}))
"""
KEPT_ROWS, DIM, EXTRA = 96_000, 300, 2_000


def write_binary_vectors(path: Path, vocab: Path, *, rows: int = KEPT_ROWS, dim: int = DIM, extra: int = EXTRA) -> None:
    """A word2vec binary file of `rows` random vectors (tokens w000000...), and a vocabulary of all of
    them plus `extra` tokens without a vector."""
    record = np.zeros((rows, 8 + 4 * dim + 1), np.uint8)
    record[:, :7] = np.frombuffer("".join(f"w{i:06d}" for i in range(rows)).encode(), np.uint8).reshape(rows, 7)
    record[:, 7] = ord(" ")
    vectors = np.random.default_rng(3).standard_normal((rows, dim), dtype=np.float32)
    record[:, 8:-1] = vectors.view(np.uint8)
    record[:, -1] = ord("\n")
    with open(path, "wb") as f:
        f.write(f"{rows} {dim}\n".encode())
        f.write(record.tobytes())
    vocab.write_text("".join(f"w{i:06d}\n" for i in range(rows)) + "".join(f"new{i}\n" for i in range(extra)))


def build_peak(tmp: Path) -> dict[str, int]:
    """Run BUILD_CHILD on the files of `write_binary_vectors` in `tmp`; its figures (run deleted)."""
    import shutil

    proc = subprocess.run([sys.executable, "-c", BUILD_CHILD, str(tmp / "vocab.txt"), str(tmp / "vectors.bin"),
                           str(tmp / "run")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shutil.rmtree(tmp / "run")
    return json.loads(proc.stdout)


# Measured (2026-11-30, 2 CPUs), with the command anyone can run:
#     PYTHONPATH=$PWD python tests/test_datasets_memory.py build 10
#     kept vectors 109.9 MB; growth after the reading 7.2-8.6 MB (10 runs)
# The same test on the code before (np.take into a new `fixed`, float64 statistics) failed: grew
# 549 MB; with only the in-place gather turned off, 220 MB. The cap is about three times the
# largest growth measured (8.6 MB -> 24 MB) and under a quarter of the kept vectors, so one more
# copy of them fails it whatever the scratch.
AFTER_READ_CAP = 24 * MB


@pytest.mark.slow
def test_build_holds_the_kept_vectors_once(tmp_path):
    write_binary_vectors(tmp_path / "vectors.bin", tmp_path / "vocab.txt")
    result = build_peak(tmp_path)
    kept = KEPT_ROWS * DIM * 4
    assert result["fixed"] == KEPT_ROWS
    assert AFTER_READ_CAP < kept / 4
    grown = result["peak"] - result["read"]
    assert grown < AFTER_READ_CAP, \
        f"after the reading, build grew {grown / MB:.0f} MB (kept vectors {kept / MB:.0f} MB)"


def measure_build(runs: int) -> list[dict[str, int]]:
    """The distribution AFTER_READ_CAP comes from: `runs` builds of the same files."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_binary_vectors(Path(tmp) / "vectors.bin", Path(tmp) / "vocab.txt")
        results = [build_peak(Path(tmp)) for _ in range(runs)]
    grown = [(r["peak"] - r["read"]) / MB for r in results]
    reader = [(r["reader_peak"] - r["before"]) / MB for r in results]
    print(f"kept vectors {KEPT_ROWS * DIM * 4 / MB:.1f} MB; "
          f"growth after the reading {min(grown):.1f}-{max(grown):.1f} MB; "
          f"reader's peak - before {min(reader):.1f}-{max(reader):.1f} MB")
    return results


if __name__ == "__main__":  # python tests/test_datasets_memory.py [build] [runs]
    if sys.argv[1:2] == ["build"]:
        measure_build(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    else:
        measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
