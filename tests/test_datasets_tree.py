"""Datasets beyond one file: directories, globs, HF folders, text, parallel runs, memory, fuzz."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reindex.datasets import RemapSpec, plan_outputs, remap_dataset, remap_many
from reindex.errors import ReindexError
from reindex.mapping import invert_permutation

TABLE = np.array([2, 0, 3, 1], dtype=np.int64)


def _tree(root: Path) -> None:
    (root / "corpus" / "sub").mkdir(parents=True)
    np.save(root / "corpus" / "a_ids.npy", np.array([0, 1]))   # named as id files: see test_datasets_selection
    np.save(root / "corpus" / "sub" / "b_ids.npy", np.array([2, 3]))
    (root / "corpus" / "sub" / "c.txt").write_text("x y\n")


def test_directory_is_mirrored_and_text_becomes_parquet(tmp_path):
    _tree(tmp_path)
    pairs = plan_outputs([tmp_path / "corpus"], tmp_path / "out")
    assert [(s.relative_to(tmp_path), o.relative_to(tmp_path)) for s, o in pairs] == [
        (Path("corpus/a_ids.npy"), Path("out/corpus/a_ids.npy")),
        (Path("corpus/sub/b_ids.npy"), Path("out/corpus/sub/b_ids.npy")),
        (Path("corpus/sub/c.txt"), Path("out/corpus/sub/c.parquet")),
    ]
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_glob_keeps_paths_below_the_pattern_root(tmp_path):
    _tree(tmp_path)
    pairs = plan_outputs([str(tmp_path / "corpus" / "**" / "*.npy")], tmp_path / "out")
    assert [o.relative_to(tmp_path) for _, o in pairs] == [Path("out/a_ids.npy"), Path("out/sub/b_ids.npy")]
    with pytest.raises(ReindexError, match="no file matches this pattern"):
        plan_outputs([str(tmp_path / "*.nothing")], tmp_path / "out")


def test_collisions_missing_and_unknown_inputs(tmp_path):
    _tree(tmp_path)
    (tmp_path / "other").mkdir()
    np.save(tmp_path / "other" / "a_ids.npy", np.array([0]))
    with pytest.raises(ReindexError,
                       match=r"corpus/a_ids.npy and .*other/a_ids.npy would both be written to .*out/a_ids.npy"):
        plan_outputs([tmp_path / "corpus" / "a_ids.npy", tmp_path / "other" / "a_ids.npy"], tmp_path / "out")
    with pytest.raises(ReindexError, match=r"nope.npy: no such file or directory"):
        plan_outputs([tmp_path / "nope.npy"], tmp_path / "out")
    (tmp_path / "corpus" / "notes.docx").write_text("?")
    # In a tree an unknown file is skipped (with a note, see test_cli_options); named, it is an error.
    assert "notes.docx" not in {s.name for s, _ in plan_outputs([tmp_path / "corpus"], tmp_path / "out")}
    with pytest.raises(ReindexError, match=r"notes.docx: unknown file type"):
        plan_outputs([tmp_path / "corpus" / "notes.docx"], tmp_path / "out")
    with pytest.raises(ReindexError, match=r"notes.docx: unknown file type"):  # chosen by --include
        plan_outputs([tmp_path / "corpus"], tmp_path / "out", include=["*.docx"])


def test_format_sniffed_from_content_when_suffix_is_unknown(tmp_path):
    np.save(tmp_path / "a.npy", np.array([0, 3]))
    os.rename(tmp_path / "a.npy", tmp_path / "a.ids")
    report = remap_dataset(tmp_path / "a.ids", tmp_path / "b.ids", RemapSpec(TABLE))
    assert report.format == "npy" and np.load(tmp_path / "b.ids").tolist() == [2, 1]


def test_remap_many_counts_and_outputs_match_serial_run(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        np.save(tmp_path / f"f{i}.npy", rng.integers(0, 4, size=50 + i))
    pairs = plan_outputs(sorted(tmp_path.glob("f*.npy")), tmp_path / "par")
    serial_counts, parallel_counts = np.zeros(4, np.int64), np.zeros(4, np.int64)
    serial = [remap_dataset(s, tmp_path / "ser" / s.name, RemapSpec(TABLE, counts=serial_counts)) for s, _ in pairs]
    reports = remap_many(pairs, RemapSpec(TABLE, counts=parallel_counts), workers=3)
    assert [r.source for r in reports] == [s for s, _ in pairs]
    assert parallel_counts.tolist() == serial_counts.tolist() and serial_counts.sum() == sum(r.num_ids for r in serial)
    for s, o in pairs:
        assert o.read_bytes() == (tmp_path / "ser" / s.name).read_bytes()


def test_remap_many_failure_leaves_counts_untouched(tmp_path):
    np.save(tmp_path / "good.npy", np.array([0, 1]))
    np.save(tmp_path / "bad.npy", np.array([0, 9]))
    counts = np.zeros(4, np.int64)
    pairs = plan_outputs([tmp_path / "good.npy", tmp_path / "bad.npy"], tmp_path / "out")
    with pytest.raises(ReindexError, match="bad.npy: at index 1: id 9"):
        remap_many(pairs, RemapSpec(TABLE, counts=counts), workers=2)
    assert counts.tolist() == [0, 0, 0, 0]


# --- Hugging Face save_to_disk folders -----------------------------------------------------------

def test_hf_dataset_round_trip_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"input_ids": [[0, 1], [2, 3, 3], []], "text": ["a", "b", "c"]})
    ds.save_to_disk(str(tmp_path / "ds"))
    (pair,) = plan_outputs([tmp_path / "ds"], tmp_path / "out")
    assert pair == (tmp_path / "ds", tmp_path / "out" / "ds")  # one dataset, not a tree of files
    report = remap_dataset(*pair, RemapSpec(TABLE))
    got = datasets.load_from_disk(str(pair[1]))
    assert got["input_ids"] == [[2, 0], [3, 1, 1], []] and got["text"] == ["a", "b", "c"]
    assert got.features == ds.features and (report.format, report.num_rows, report.num_ids) == ("hf-dataset", 3, 5)
    old = json.loads((tmp_path / "ds" / "state.json").read_text())["_fingerprint"]
    new = json.loads((pair[1] / "state.json").read_text())["_fingerprint"]
    assert new != old
    remap_dataset(pair[1], tmp_path / "back", RemapSpec(invert_permutation(TABLE)))
    assert datasets.load_from_disk(str(tmp_path / "back"))["input_ids"] == ds["input_ids"]


def test_hf_dataset_dict_with_id_dtype_updates_features(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"input_ids": [[0, 1], [3]]})
    datasets.DatasetDict(train=ds, test=ds.select([1])).save_to_disk(str(tmp_path / "dd"))
    report = remap_dataset(tmp_path / "dd", tmp_path / "out", RemapSpec(TABLE, id_dtype="int32"))
    got = datasets.load_from_disk(str(tmp_path / "out"))
    assert got["train"]["input_ids"] == [[2, 0], [1]] and got["test"]["input_ids"] == [[1]]
    assert "int32" in str(got["train"].features["input_ids"]) and report.num_rows == 3


# --- whitespace text ----------------------------------------------------------------------------

def test_text_lookup_with_and_without_unk(tmp_path):
    (tmp_path / "t.txt").write_text("the cat\n\n  cat  zebra the \n", encoding="utf-8")
    tokens = ["the", "cat", "<unk>", "dog"]
    report = remap_dataset(tmp_path / "t.txt", tmp_path / "t.parquet", RemapSpec(TABLE, tokens=tokens, unk="<unk>"))
    got = pq.read_table(tmp_path / "t.parquet")
    assert got.schema.field("input_ids").type == pa.list_(pa.int32())
    assert got["input_ids"].to_pylist() == [[2, 0], [], [0, 3, 2]] and (report.num_rows, report.num_ids) == (3, 5)
    with pytest.raises(ReindexError, match=r"t.txt:3: unknown word 'zebra' \(add it to the vocabulary or pass --unk\)"):
        remap_dataset(tmp_path / "t.txt", tmp_path / "u.parquet", RemapSpec(TABLE, tokens=tokens))
    with pytest.raises(ReindexError, match="text input needs the vocabulary's tokens"):
        remap_dataset(tmp_path / "t.txt", tmp_path / "u.parquet", RemapSpec(TABLE))


def test_text_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"the\ncat \xff\n")
    with pytest.raises(ReindexError, match=r"t.txt:2: not valid UTF-8"):
        remap_dataset(tmp_path / "t.txt", tmp_path / "t.parquet", RemapSpec(TABLE, tokens=["the", "cat", "a", "b"]))


# --- memory and fuzz -----------------------------------------------------------------------------

@pytest.mark.slow
def test_npy_remap_peak_memory_is_bounded_by_chunks_not_file(tmp_path):
    ids = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.int64, shape=(50_000_000,))
    for start in range(0, ids.shape[0], 5_000_000):
        ids[start:start + 5_000_000] = np.arange(5_000_000) % 1000
    ids.flush()
    del ids  # 400 MB on disk; reading it whole and writing it whole would take 800 MB
    # ru_maxrss from wait4 is not used: Linux carries the parent's (pytest's) peak across fork and
    # exec into the child's ru_maxrss; VmHWM of the child's own address space is its true peak.
    script = textwrap.dedent(f"""
        import numpy as np
        from pathlib import Path
        from reindex.datasets import RemapSpec, remap_dataset
        remap_dataset(Path({str(tmp_path / 'big.npy')!r}), Path({str(tmp_path / 'out.npy')!r}),
                      RemapSpec(np.arange(1000)[::-1].copy()))
        print([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    peak = int(proc.stdout.split()[-1]) * 1024
    assert peak < 200 * 2**20, f"peak RSS {peak / 2**20:.0f} MB for a 400 MB file"
    out = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert out[-3:].tolist() == [999 - 997, 999 - 998, 999 - 999]


def _samples(tmp: Path) -> dict[str, bytes]:
    np.save(tmp / "s.npy", np.array([[0, 1], [2, 3]]))
    torch.save({"input_ids": torch.tensor([0, 1])}, tmp / "s.pt")
    from safetensors.torch import save_file
    save_file({"input_ids": torch.tensor([0, 1])}, str(tmp / "s.safetensors"))
    table = pa.table({"input_ids": pa.array([[0, 1], None, [3]])})
    pq.write_table(table, tmp / "s.parquet")
    with pa.ipc.new_file(str(tmp / "s.arrow"), table.schema) as w:
        w.write_table(table)
    (tmp / "s.txt").write_text("a b\n")
    return {p.suffix: p.read_bytes() for p in tmp.iterdir()}


@pytest.mark.slow   # 150 damaged trees; the fast loop fuzzes every reader in test_readers_fuzz.py
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_only_reindex_errors_escape(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("fuzz")
    samples = _samples(tmp)
    suffix = data.draw(st.sampled_from(sorted(samples)))
    raw = bytearray(samples[suffix])
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        raw = bytearray(data.draw(st.binary(max_size=300)))
    path = tmp / f"fuzz{suffix}"
    path.write_bytes(bytes(raw))
    spec = RemapSpec(TABLE, tokens=["a", "b", "c", "d"])
    try:
        remap_dataset(path, tmp / "out" / path.name, spec)
    except ReindexError:
        pass


@pytest.mark.parametrize("split", ["../escape", "/tmp/escape", "..", "a/b"])
def test_hf_split_names_cannot_leave_the_folder(tmp_path, split):
    from reindex.errors import ReindexError

    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": [split]}))
    with pytest.raises(ReindexError, match=r"dataset_dict.json: expected `splits`: a list of plain split names "
                                           r"\(a split name must not"):
        remap_dataset(folder, tmp_path / "out" / "ds", RemapSpec(np.arange(3)))
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out").exists()
