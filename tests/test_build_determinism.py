"""`build` is deterministic: two builds of the same inputs are byte-identical, whatever the thread count."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reindex.commands.build import build

from conftest import DATA, ROOT


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """Every dataset format, several files (so they are remapped in parallel), gzip vectors."""
    import pyarrow as pa
    import pyarrow.feather as feather
    from safetensors.numpy import save_file

    tmp = tmp_path_factory.mktemp("det")
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 3000, size=(2000, 24))
    np.save(tmp / "a.npy", ids)
    np.save(tmp / "b.npy", ids[:, ::-1].astype(np.int32))
    save_file({"input_ids": ids, "mask": np.ones_like(ids, dtype=np.int8)}, str(tmp / "c.safetensors"),
              metadata={"z": "1", "a": "2", "m": "3", "b": "4"})   # several keys: hash-map order
    feather.write_feather(pa.table({"input_ids": pa.array(ids.tolist(), pa.list_(pa.int32()))}), tmp / "d.arrow")
    (tmp / "vectors.txt.gz").write_bytes(gzip.compress((DATA / "vectors.txt").read_bytes(), mtime=0))
    return [tmp / "vectors.txt.gz", DATA / "train.parquet", DATA / "train.pt", tmp / "a.npy", tmp / "b.npy",
            tmp / "c.safetensors", tmp / "d.arrow"]


def files(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def assert_identical(a: Path, b: Path) -> None:
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert len(fa) >= 9    # embedding, vocab, manifest, corpus counts and 5 or 6 datasets
    differ = [name for name in fa if fa[name] != fb[name]]
    assert differ == []


@pytest.mark.slow   # a fresh `reindex` process per thread count
def test_cli_builds_are_byte_identical_across_thread_counts(inputs, tmp_path):
    vectors, *data = inputs
    data = [d for d in data if d.suffix != ".pt"]   # torch's start-up is slow; .pt is covered below
    runs = []
    for threads in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "ARROW_NUM_THREADS": threads, "ARROW_IO_THREADS": threads, "RAYON_NUM_THREADS": threads}
        out = tmp_path / f"run{threads}"
        subprocess.run([sys.executable, "-m", "reindex", "build", "-q", "--vocab", str(DATA / "vocab.txt"),
                        "--vectors", str(vectors), "--pad", "<pad>", "--lowercase-fallback", "--out", str(out),
                        *map(str, data)], env=env, check=True)
        runs.append(out)
    assert_identical(*runs)


def test_library_builds_are_byte_identical_across_worker_counts(inputs, tmp_path):
    import pyarrow as pa

    vectors, *data = inputs
    before = pa.cpu_count()
    try:
        for workers, cpus in ((1, 1), (4, 3)):
            pa.set_cpu_count(cpus)
            build(vocab=DATA / "vocab.txt", vectors=vectors, data=data, out=tmp_path / f"w{workers}",
                  pad="<pad>", workers=workers)
    finally:
        pa.set_cpu_count(before)
    assert_identical(tmp_path / "w1", tmp_path / "w4")
