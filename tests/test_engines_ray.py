"""`--engine ray` (reindex.engines.ray_data): on a local Ray with 2 CPUs, output equals the local engine's row for row.

Ray is a plain import: CI installs the `ray` extra (requirements-dev.txt), so a missing install
fails here loudly instead of skipping.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from typer.testing import CliRunner

from reindex.cli import app
from reindex.commands.build import build
from reindex.commands.remap import remap_files
from reindex.datasets import RemapSpec, plan_outputs, remap_many
from reindex.engines.ray_data import import_ray, remap_with_ray
from reindex.errors import ReindexError, UsageError

VOCAB = 40

# With pytest-xdist (--dist loadfile, or loadgroup), one worker runs this file: one local Ray serves it.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def uses_ray(test):
    """Runs on the module's local Ray, and is `slow`: starting Ray and its first workers takes 10-15 s.
    The checks made before Ray starts (usage errors, imports) run in the fast loop."""
    return pytest.mark.slow(pytest.mark.usefixtures("local_ray")(test))


def write_shard(path: Path, seed: int, *, rows: int = 300, bad: tuple[int, int] | None = None) -> None:
    """list<int32> ids (some null lists, ragged), a plain int64 id column, a text column, 3 row groups."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 9, rows)
    ids = [list(rng.integers(0, VOCAB, n).astype(np.int32)) for n in lengths]
    for row in range(0, rows, 7):
        ids[row] = None
    if bad is not None:
        ids[bad[0]] = [1, bad[1]]
    table = pa.table({"input_ids": pa.array(ids, pa.list_(pa.int32())),
                      "target": pa.array(rng.integers(0, VOCAB, rows), pa.int64()),
                      "doc": pa.array([f"doc{seed}-{i}" for i in range(rows)])})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({b"source": b"test"}), path, row_group_size=rows // 3)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for i, name in enumerate(["a.parquet", "b.parquet", "sub/c.parquet", "sub/deeper/d.parquet"]):
        write_shard(root / name, seed=i)
    return root


def make_run(out: Path, *, vocab_size: int = VOCAB) -> None:
    """A run over tok0..tok{V-1}; every third token has a vector, so the mapping really permutes."""
    vocab, vectors = out.parent / "vocab.txt", out.parent / "vectors.txt"
    vocab.write_text("".join(f"tok{i}\n" for i in range(vocab_size)), encoding="utf-8")
    vectors.write_text("".join(f"tok{i} {i} 1.0\n" for i in range(0, vocab_size, 3)), encoding="utf-8")
    build(vocab=vocab, vectors=vectors, out=out)


def spec(*, counts: bool = False) -> RemapSpec:
    table = np.random.default_rng(7).permutation(VOCAB).astype(np.int64)
    return RemapSpec(table=table, columns=("input_ids", "target"),
                     counts=np.zeros(VOCAB, np.int64) if counts else None)


@uses_ray
def test_ray_equals_local_row_for_row(corpus: Path, tmp_path: Path) -> None:
    local_spec, ray_spec = spec(counts=True), spec(counts=True)
    local = remap_many(plan_outputs([corpus], tmp_path / "local"), local_spec)
    remote = remap_with_ray(plan_outputs([corpus], tmp_path / "ray"), ray_spec)
    assert [(r.output.relative_to(tmp_path / "ray"), r.num_ids, r.num_rows, r.format) for r in remote] == \
           [(r.output.relative_to(tmp_path / "local"), r.num_ids, r.num_rows, r.format) for r in local]
    assert len(remote) == 4
    for mine, theirs in zip(local, remote, strict=True):
        expected, got = pq.read_table(mine.output), pq.read_table(theirs.output)
        assert got.schema.equals(expected.schema, check_metadata=True)
        assert got.to_pylist() == expected.to_pylist()
        assert pq.ParquetFile(theirs.output).num_row_groups == pq.ParquetFile(mine.output).num_row_groups == 3
    np.testing.assert_array_equal(ray_spec.counts, local_spec.counts)
    assert ray_spec.counts.sum() == sum(r.num_ids for r in local) > 0


@uses_ray
def test_ray_output_is_remapped_by_hand(tmp_path: Path) -> None:
    source = tmp_path / "one.parquet"
    pq.write_table(pa.table({"input_ids": pa.array([[0, 2], None, [], [1]], pa.list_(pa.int32())),
                             "target": pa.array([2, 0, 1, 1], pa.int64())}), source)
    [report] = remap_with_ray([(source, tmp_path / "out" / "one.parquet")],
                              RemapSpec(np.array([2, 0, 1]), columns=("input_ids", "target")))
    got = pq.read_table(report.output)
    assert got.column("input_ids").to_pylist() == [[2, 1], None, [], [0]]
    assert got.column("target").to_pylist() == [1, 2, 0, 0]
    assert got.schema.field("input_ids").type == pa.list_(pa.int32())
    assert (report.num_ids, report.num_rows) == (7, 4)


@uses_ray
def test_cli_engine_ray_matches_local(corpus: Path, tmp_path: Path) -> None:
    make_run(tmp_path / "run", vocab_size=VOCAB)
    runner = CliRunner()
    for engine in ("local", "ray"):
        result = runner.invoke(app, ["remap", str(tmp_path / "run"), str(corpus), "--column", "input_ids",
                                     "--column", "target", "--out", str(tmp_path / engine), "--engine", engine])
        assert result.exit_code == 0, result.output
    local_files = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.parquet"))
    ray_files = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.parquet"))
    assert ray_files == local_files and len(ray_files) == 4
    for name in ray_files:
        assert pq.read_table(tmp_path / "ray" / name).equals(pq.read_table(tmp_path / "local" / name))


@uses_ray
def test_bad_id_names_file_and_row_and_writes_nothing(corpus: Path, tmp_path: Path) -> None:
    write_shard(corpus / "sub" / "c.parquet", seed=2, bad=(123, 99))
    make_run(tmp_path / "run", vocab_size=VOCAB)
    with pytest.raises(ReindexError) as local_error:
        remap_files(tmp_path / "run", [corpus], out=tmp_path / "local")
    with pytest.raises(ReindexError) as ray_error:
        remap_files(tmp_path / "run", [corpus], out=tmp_path / "out", engine="ray")
    message = str(ray_error.value)
    assert type(ray_error.value) is ReindexError
    assert message == str(local_error.value)
    assert message.startswith(f"{corpus / 'sub' / 'c.parquet'}: at row 123, column 'input_ids', element 1: "
                              f"id 99 is outside the vocabulary [0, {VOCAB})")
    assert "\n" not in message and "Traceback" not in message
    # no out, no .out.tmp-*
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "run", "vectors.txt", "vocab.txt"]


@uses_ray
def test_cli_bad_id_is_one_line(corpus: Path, tmp_path: Path) -> None:
    write_shard(corpus / "b.parquet", seed=1, bad=(5, -3))
    make_run(tmp_path / "run", vocab_size=VOCAB)
    result = CliRunner().invoke(app, ["remap", str(tmp_path / "run"), str(corpus), "--out",
                                      str(tmp_path / "out"), "--engine", "ray"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"reindex: error: {corpus / 'b.parquet'}: at row 5, column 'input_ids', element 1: id -3")
    assert not (tmp_path / "out").exists()


def test_non_parquet_input_is_a_usage_error(tmp_path: Path) -> None:
    np.save(tmp_path / "ids.npy", np.arange(5))
    with pytest.raises(UsageError, match=r"ids\.npy: --engine ray reads Parquet files only; this is npy"):
        remap_with_ray([(tmp_path / "ids.npy", tmp_path / "out" / "ids.npy")], spec())
    assert not (tmp_path / "out").exists()


def test_ray_address_needs_engine_ray(corpus: Path, tmp_path: Path) -> None:
    make_run(tmp_path / "run", vocab_size=VOCAB)
    with pytest.raises(UsageError, match="--ray-address needs --engine ray"):
        remap_files(tmp_path / "run", [corpus], out=tmp_path / "out", ray_address="auto")
    with pytest.raises(UsageError, match="--engine must be one of local, ray, got 'spark'"):
        remap_files(tmp_path / "run", [corpus], out=tmp_path / "out", engine="spark")
    assert not (tmp_path / "out").exists()


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match=r"\(pip install 'reindex-vocab\[ray\]'"):
        import_ray()


def test_import_and_help_do_not_import_ray() -> None:
    code = ("import sys, reindex, reindex.engines, reindex.commands.remap, reindex.commands.build\n"
            "from reindex.cli import app\n"
            "from typer.testing import CliRunner\n"
            "for args in (['--help'], ['remap', '--help'], ['build', '--help']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
