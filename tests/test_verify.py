"""`reindex verify RUN` re-hashes the outputs and checks the invariants; exit 1 naming what differs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reindex.commands.build import build
from reindex.run import EMBEDDING_FILE, MANIFEST_FILE, describe_file, read_embedding, write_embedding

from conftest import VOCAB


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


# ---------------------------------------------------------------- every invariant, behind matching hashes
#
# Each case damages a run AND rewrites the manifest's size and sha256 to match, so the hash check
# passes and only the invariant can catch it. Each problem is one line; all are listed.

def raw_embedding(run: Path, change) -> None:
    """Rewrite embedding.safetensors with `change(tensors, metadata)` applied, dtypes as they come."""
    from safetensors.numpy import save_file

    tensors, metadata = read_embedding(run / EMBEDDING_FILE)
    tensors, metadata = {k: v.copy() for k, v in tensors.items()}, dict(metadata)
    change(tensors, metadata)
    save_file(tensors, str(run / EMBEDDING_FILE), metadata=metadata)
    refresh_manifest(run, EMBEDDING_FILE)


def edit_manifest(run: Path, change) -> None:
    manifest = json.loads((run / MANIFEST_FILE).read_text())
    change(manifest)
    (run / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def problems(cli, run: Path) -> list[str]:
    code, errors, stdout = verify(cli, run)
    assert code == 1 and stdout == "", (code, errors)
    prefix = f"reindex: verify: {run}: "
    assert all(e.startswith(prefix) for e in errors), errors
    return [e[len(prefix):] for e in errors]


@pytest.mark.parametrize("key, value, words", [
    ("dim", "4", "metadata dim='4', the tensors say 3"),
    ("vocab_size", "8", "metadata vocab_size='8', the tensors say 7"),
    ("num_fixed", "2", "metadata num_fixed='2', the tensors say 4"),
    ("format", "other", "metadata format='other'"),
])
def test_metadata_that_disagrees_with_the_tensors(cli, run, key, value, words):
    raw_embedding(run, lambda t, m: m.__setitem__(key, value))
    found = problems(cli, run)
    assert len(found) == 1 and found[0].startswith(f"embedding.safetensors: {words}"), found


@pytest.mark.parametrize("key, dtype", [("fixed", "float16"), ("trainable", "float64"),
                                        ("sorted_to_original", "int32")])
def test_a_tensor_stored_in_another_dtype(cli, run, key, dtype):
    raw_embedding(run, lambda t, m: t.__setitem__(key, t[key].astype(dtype)))
    found = problems(cli, run)
    assert f"embedding.safetensors: `{key}` is {dtype}, the format says " in found[0] and len(found) == 1, found


def test_nan_in_trainable(cli, run):
    rewrite_embedding(run, lambda t: t["trainable"].__setitem__((1, 2), np.nan))
    assert problems(cli, run) == ["embedding.safetensors: trainable row 1 is not finite"]


def test_inf_in_both_blocks_is_two_problems(cli, run):
    rewrite_embedding(run, lambda t: (t["trainable"].__setitem__((0, 0), np.inf),
                                      t["fixed"].__setitem__((3, 0), -np.inf)))
    assert problems(cli, run) == ["embedding.safetensors: fixed row 3 is not finite",
                                  "embedding.safetensors: trainable row 0 is not finite"]


def test_a_partition_that_is_not_stable(cli, run):
    """Two fixed tokens swapped with their rows and vocabulary lines: a consistent run, but not
    the partition `build` writes (fixed ids ascending)."""
    def swap(t):
        order, fixed = t["sorted_to_original"], t["fixed"]
        order[[1, 2]] = order[[2, 1]]
        fixed[[1, 2]] = fixed[[2, 1]]
    rewrite_embedding(run, swap)
    lines = (run / "vocab.txt").read_text().split("\n")
    lines[1], lines[2] = lines[2], lines[1]
    (run / "vocab.txt").write_text("\n".join(lines))
    refresh_manifest(run, "vocab.txt")
    found = [p for p in problems(cli, run) if "data/" not in p and "corpus_counts" not in p]
    assert found == ["embedding.safetensors: the fixed block is not in original-id order (sorted id 2 follows 1): "
                     "not the stable partition `build` writes"], found


def test_trainable_block_out_of_order(cli, run):
    rewrite_embedding(run, lambda t: t["sorted_to_original"].__setitem__(
        slice(4, 7), t["sorted_to_original"][4:7][::-1].copy()))
    found = problems(cli, run)
    assert any("the trainable block is not in original-id order" in p for p in found), found


def test_pad_not_first_in_a_new_run(cli, run):
    edit_manifest(run, lambda m: m["counts"].__setitem__("pad_id", 1))
    found = problems(cli, run)
    assert "embedding.safetensors: pad has sorted id 1, a new run puts it at 0" in found, found


def test_an_expansion_keeps_the_old_order_and_passes(cli, run, tmp_path):
    """The old run's ids come first in their old order: not refused as unstable."""
    (tmp_path / "vocab2.txt").write_text("".join(t + "\n" for t in VOCAB + ["new"]))
    build(vocab=tmp_path / "vocab2.txt", vectors=run, out=tmp_path / "grown", pad="<pad>")
    code, errors, stdout = verify(cli, tmp_path / "grown")
    assert (code, errors) == (0, []), errors


@pytest.fixture
def grown(run, tmp_path) -> Path:
    """`run` expanded by one token (`build --vectors RUN`), with a fallback option on."""
    (tmp_path / "vocab2.txt").write_text("".join(t + "\n" for t in VOCAB + ["new"]))
    build(vocab=tmp_path / "vocab2.txt", vectors=run, out=tmp_path / "grown", pad="<pad>", normalize="nfkc",
          case_fallback=True)
    return tmp_path / "grown"


def test_an_expansion_records_the_old_runs_fingerprint(cli, run, grown):
    from reindex.matching import rows_fingerprint
    from reindex.run import load_run

    old = load_run(run)
    recorded = json.loads((grown / MANIFEST_FILE).read_text())["counts"]["old_run"]
    assert recorded == rows_fingerprint(old.tokens, old.weight(order="sorted"))
    assert verify(cli, grown)[:2] == (0, [])


def test_old_rows_changed_behind_matching_hashes(cli, grown):
    """An old row edited in the grown run, its hash refreshed: only the old run's fingerprint tells."""
    rewrite_embedding(grown, lambda t: t["fixed"].__setitem__((2, 0), t["fixed"][2, 0] + 1))
    assert problems(cli, grown) == ["embedding.safetensors: its first 7 rows are not the old run's rows "
                                    "(the fingerprint recorded at build differs)"]


def test_old_tokens_changed_behind_matching_hashes(cli, grown):
    path = grown / "vocab.txt"
    path.write_text(path.read_text().replace("cat\n", "cot\n"))
    refresh_manifest(grown, "vocab.txt")
    assert problems(cli, grown) == ["vocab.txt: its first 7 tokens are not the old run's "
                                    "(the fingerprint recorded at build differs)"]


def test_an_expansion_written_before_the_fingerprint_still_verifies(cli, grown):
    edit_manifest(grown, lambda m: m["counts"].pop("old_run"))
    assert verify(cli, grown)[:2] == (0, [])


def test_a_malformed_fingerprint_is_one_line(cli, grown):
    edit_manifest(grown, lambda m: m["counts"].__setitem__("old_run", ["x"]))
    assert problems(cli, grown) == ["counts old_run / old_vocab: malformed (['x'], 7)"]


def test_a_data_file_cut_short(cli, run):
    path = run / "data" / "ids.npy"
    path.write_bytes(path.read_bytes()[:-8])
    refresh_manifest(run, "data/ids.npy")
    found = problems(cli, run)
    assert len(found) == 1 and "data/ids.npy" in found[0] and "truncated" in found[0], found


def test_a_data_file_with_rows_missing_but_well_formed(cli, run):
    """One row fewer, a valid file: only the manifest's per-dataset counts can tell."""
    path = run / "data" / "ids.npy"
    np.save(path, np.load(path)[:2])
    refresh_manifest(run, "data/ids.npy")
    found = problems(cli, run)
    assert "data/ids.npy: holds 6 ids, the manifest says 9" in found
    assert "data/ids.npy: holds 2 rows, the manifest says 3" in found
    assert len(found) == 3 and found[2].startswith("corpus_counts.npy: differs from a recount of data/"), found


def test_corpus_counts_that_disagree_with_the_data(cli, run):
    path = run / "corpus_counts.npy"
    counts = np.load(path)
    counts[0] += 1
    np.save(path, counts)
    refresh_manifest(run, "corpus_counts.npy")
    found = problems(cli, run)
    assert found == [f"corpus_counts.npy: differs from a recount of data/ at 1 sorted id(s), first 0: "
                     f"stored {counts[0]}, counted {counts[0] - 1}"], found


def test_a_listed_dataset_that_is_missing_and_unlisted_from_outputs(cli, run):
    (run / "data" / "train.parquet").unlink()
    edit_manifest(run, lambda m: m.__setitem__("outputs", [o for o in m["outputs"]
                                                           if o["path"] != "data/train.parquet"]))
    found = problems(cli, run)
    assert "data/train.parquet: not listed in the manifest's outputs" in found
    assert "data/train.parquet: listed in the manifest's datasets, missing" in found


def test_the_embedding_unlisted_from_outputs(cli, run):
    edit_manifest(run, lambda m: m.__setitem__("outputs", [o for o in m["outputs"] if o["path"] != EMBEDDING_FILE]))
    assert problems(cli, run) == ["embedding.safetensors: not listed in the manifest's outputs"]


def test_every_problem_is_listed_one_line_each(cli, run):
    """Four kinds of damage at once: four lines (at least), no traceback, exit 1."""
    raw_embedding(run, lambda t, m: (m.__setitem__("dim", "9"), t["trainable"].__setitem__((0, 0), np.nan)))
    counts = np.load(run / "corpus_counts.npy")
    np.save(run / "corpus_counts.npy", counts + 1)
    refresh_manifest(run, "corpus_counts.npy")
    (run / "vocab.txt").write_text((run / "vocab.txt").read_text() + "extra\n")
    found = problems(cli, run)
    for words in ("metadata dim='9'", "trainable row 0 is not finite", "corpus_counts.npy: differs",
                  "vocab.txt: size"):
        assert any(words in p for p in found), (words, found)
    assert all("\n" not in p for p in found)


@pytest.mark.parametrize("change", [
    lambda t, m: t.__setitem__("fixed", t["fixed"].reshape(-1)),                 # a 1-D block
    lambda t, m: t.__setitem__("sorted_to_original", t["sorted_to_original"].reshape(1, -1)),
    lambda t, m: t.__setitem__("trainable", np.zeros((3, 5), np.float32)),        # another width
])
def test_shapes_the_format_does_not_allow_are_problems_not_tracebacks(cli, run, change):
    raw_embedding(run, change)
    found = problems(cli, run)
    assert found and any("embedding.safetensors" in p for p in found), found
