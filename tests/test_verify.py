"""Issue 7: `reindex verify RUN` re-hashes the outputs and checks the invariants; exit 1 naming what differs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reindex.build import build
from reindex.run import EMBEDDING_FILE, MANIFEST_FILE, describe_file, read_embedding, write_embedding

from conftest import write_glove, VECTORS, VOCAB


@pytest.fixture
def run(small, tmp_path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"input_ids": pa.array([[1, 2], None, [6, 0]], pa.list_(pa.int64()))}),
                   tmp_path / "train.parquet")
    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run", pad="<pad>",
          data=[small["ids"], tmp_path / "train.parquet"])
    return tmp_path / "run"


def verify(cli, run: Path) -> tuple[int, list[str], str]:
    code, stdout, stderr = cli("verify", run)
    assert "Traceback" not in stdout + stderr
    return code, stderr.splitlines(), stdout


def refresh_manifest(run: Path, name: str) -> None:
    """Record `name`'s current size and hash in the manifest, as if it had been written so."""
    manifest = json.loads((run / MANIFEST_FILE).read_text())
    for entry in manifest["outputs"]:
        if entry["path"] == name:
            entry.update(describe_file(run / name, name=name))
    (run / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_intact_run_passes(cli, run):
    code, errors, stdout = verify(cli, run)
    assert (code, errors, stdout.strip()) == (0, [], f"{run}: ok")


def test_one_flipped_byte_in_the_embedding(cli, run):
    path = run / EMBEDDING_FILE
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # the last byte of the last tensor: the file still loads, only the hash differs
    path.write_bytes(bytes(raw))
    code, errors, _ = verify(cli, run)
    assert code == 1
    assert errors == [f"reindex: verify: {run}: embedding.safetensors: sha256 differs from the manifest"]


def test_edited_vocab(cli, run):
    path = run / "vocab.txt"
    path.write_text(path.read_text().replace("cat\n", "cot\n"))
    code, errors, _ = verify(cli, run)
    assert code == 1 and errors == [f"reindex: verify: {run}: vocab.txt: sha256 differs from the manifest"]


def test_vocab_with_a_line_removed(cli, run):
    path = run / "vocab.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    code, errors, _ = verify(cli, run)
    assert code == 1
    assert any("vocab.txt: size" in e for e in errors) and any("count vocab" in e for e in errors), errors


def test_deleted_data_file(cli, run):
    (run / "data" / "ids.npy").unlink()
    code, errors, _ = verify(cli, run)
    assert code == 1
    assert f"reindex: verify: {run}: data/ids.npy: missing" in errors


def test_edited_manifest_counts(cli, run):
    manifest = json.loads((run / MANIFEST_FILE).read_text())
    manifest["counts"]["fixed"] += 1
    (run / MANIFEST_FILE).write_text(json.dumps(manifest))
    code, errors, _ = verify(cli, run)
    assert code == 1 and len(errors) == 1 and "count fixed" in errors[0], errors


def test_data_id_out_of_range_with_a_matching_hash(cli, run):
    """Rewritten data with its hash fixed in the manifest: only the range check can catch it."""
    path = run / "data" / "ids.npy"
    ids = np.load(path)
    ids[1, 2] = len(VOCAB)
    np.save(path, ids)
    refresh_manifest(run, "data/ids.npy")
    code, errors, _ = verify(cli, run)
    assert code == 1 and len(errors) == 1, errors
    assert "data/ids.npy" in errors[0] and "index [1, 2]" in errors[0] and f"id {len(VOCAB)}" in errors[0]


def test_parquet_id_out_of_range_with_a_matching_hash(cli, run):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = run / "data" / "train.parquet"
    pq.write_table(pa.table({"input_ids": pa.array([[1, 2], None, [-1, 0]], pa.list_(pa.int64()))}), path)
    refresh_manifest(run, "data/train.parquet")
    code, errors, _ = verify(cli, run)
    assert code == 1 and len(errors) == 1, errors
    assert "data/train.parquet" in errors[0] and "row 2" in errors[0] and "id -1" in errors[0]


def rewrite_embedding(run: Path, change) -> None:
    tensors, metadata = read_embedding(run / EMBEDDING_FILE)
    tensors = {k: v.copy() for k, v in tensors.items()}
    change(tensors)
    write_embedding(run / EMBEDDING_FILE, fixed=tensors["fixed"], trainable=tensors["trainable"],
                    sorted_to_original=tensors["sorted_to_original"],
                    metadata={k: v for k, v in metadata.items() if k == "pad_id"})
    refresh_manifest(run, EMBEDDING_FILE)


def test_not_a_permutation_with_a_matching_hash(cli, run):
    rewrite_embedding(run, lambda t: t["sorted_to_original"].__setitem__(3, t["sorted_to_original"][2]))
    code, errors, _ = verify(cli, run)
    assert code == 1 and any("not a permutation" in e for e in errors), errors


def test_non_finite_fixed_row_with_a_matching_hash(cli, run):
    rewrite_embedding(run, lambda t: t["fixed"].__setitem__((2, 1), np.nan))
    code, errors, _ = verify(cli, run)
    assert code == 1 and errors == [f"reindex: verify: {run}: embedding.safetensors: fixed row 2 is not finite"]


def test_pad_row_not_zero_with_a_matching_hash(cli, run):
    rewrite_embedding(run, lambda t: t["fixed"].__setitem__((0, 0), 1.0))
    code, errors, _ = verify(cli, run)
    assert code == 1 and errors == [f"reindex: verify: {run}: embedding.safetensors: pad row 0 is not all zeros"]


def test_corrupted_embedding_header(cli, run):
    path = run / EMBEDDING_FILE
    raw = bytearray(path.read_bytes())
    raw[10] = ord("!")   # inside the JSON header: the file no longer parses
    path.write_bytes(bytes(raw))
    code, errors, _ = verify(cli, run)
    assert code == 1 and any("sha256" in e for e in errors) and any("cannot read" in e for e in errors), errors


def test_not_a_run(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, errors, _ = verify(cli, tmp_path / "empty")
    assert code == 1 and len(errors) == 1 and errors[0].startswith("reindex: error: ") and "empty" in errors[0]


@pytest.mark.parametrize("edit", [
    lambda m: [],                                              # not an object
    lambda m: {**m, "outputs": [{"sha256": "0"}]},             # an output without a path
    lambda m: {k: v for k, v in m.items() if k != "counts"},   # no counts
    lambda m: {**m, "datasets": [{"output": 3}]},              # a dataset entry of the wrong type
])
def test_malformed_manifest_is_reported_not_a_crash(cli, run, edit):
    manifest = json.loads((run / MANIFEST_FILE).read_text())
    (run / MANIFEST_FILE).write_text(json.dumps(edit(manifest)))
    code, errors, _ = verify(cli, run)
    assert code == 1 and errors and any("manifest.json" in e or "count" in e for e in errors), errors
