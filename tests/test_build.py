"""`reindex build` end to end: the worked example by hand, the contract, determinism, expansion."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from reindex.commands.build import build
from reindex.errors import ReindexError, UsageError
from reindex.run import load_run, sha256_file

from conftest import DATA, VECTORS


def test_worked_example(small, tmp_path):
    out = tmp_path / "run"
    result = build(vocab=small["vocab"], vectors=small["vectors"], out=out, data=[small["ids"]], pad="<pad>",
                   lowercase_fallback=True, init="zeros")
    # The Run handed back is the one on disk (the CLI's summary reads nothing again).
    on_disk = load_run(out)
    assert result.run.tokens == on_disk.tokens and result.run.metadata == on_disk.metadata
    assert np.array_equal(result.run.fixed, on_disk.fixed) and np.array_equal(result.corpus_counts,
                                                                               np.load(out / "corpus_counts.npy"))
    tensors = load_file(str(out / "embedding.safetensors"))
    # sorted: <pad>, the, cat, The (lowercase), dog | xyzzy, qwop
    assert tensors["sorted_to_original"].tolist() == [0, 1, 3, 4, 6, 2, 5]
    expected_fixed = [[0, 0, 0], VECTORS["the"], VECTORS["cat"], VECTORS["the"], VECTORS["dog"]]
    assert tensors["fixed"].tolist() == expected_fixed and tensors["fixed"].dtype == np.float32
    assert tensors["trainable"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert (out / "vocab.txt").read_text() == "<pad>\nthe\ncat\nThe\ndog\nxyzzy\nqwop\n"
    assert np.load(out / "data" / "ids.npy").tolist() == [[1, 5, 2], [3, 6, 4], [0, 0, 1]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "reindex.run" and manifest["format_version"] == 1
    counts = manifest["counts"]
    assert (counts["vocab"], counts["fixed"], counts["trainable"]) == (7, 5, 2)
    assert (counts["lowercase_matches"], counts["vectors_read"], counts["duplicate_vectors_skipped"]) == (1, 5, 0)
    assert counts["pad_id"] == 0
    assert manifest["inputs"]["vocab"]["sha256"] == sha256_file(small["vocab"])
    for entry in manifest["outputs"]:
        assert sha256_file(out / entry["path"]) == entry["sha256"]
    assert {e["path"] for e in manifest["outputs"]} >= {"embedding.safetensors", "vocab.txt", "data/ids.npy"}
    assert np.load(out / "corpus_counts.npy").tolist() == [2, 2, 1, 1, 1, 1, 1]


def test_without_pad_or_fallback_the_pad_vector_is_used(small, tmp_path):
    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.sorted_to_original.tolist() == [0, 1, 3, 6, 2, 4, 5]
    assert run.fixed[0].tolist() == VECTORS["<pad>"] and run.num_trainable == 3


def test_normal_init_follows_fixed_statistics_and_seed(tmp_path):
    kwargs = dict(vocab=DATA / "vocab.txt", vectors=DATA / "vectors.txt", init="normal")
    build(**kwargs, out=tmp_path / "a", seed=1)
    build(**kwargs, out=tmp_path / "b", seed=1)
    build(**kwargs, out=tmp_path / "c", seed=2)
    a, b, c = (load_run(tmp_path / x) for x in "abc")
    assert np.array_equal(a.trainable, b.trainable) and not np.array_equal(a.trainable, c.trainable)
    # 32 dimensions x ~450 trainable rows: the per-dimension mean/std match the fixed rows' closely.
    assert np.allclose(a.trainable.mean(0), a.fixed.mean(0), atol=0.1)
    assert np.allclose(a.trainable.std(0), a.fixed.std(0), rtol=0.2)


def test_same_inputs_give_byte_identical_outputs(tmp_path):
    args = dict(vocab=DATA / "vocab.txt", vectors=DATA / "vectors.txt",
                data=[DATA / "train.parquet", DATA / "train.pt"], pad="<pad>", lowercase_fallback=True)
    build(**args, out=tmp_path / "one")
    build(**args, out=tmp_path / "two")
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) >= 6
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_existing_output_is_refused_then_forced(small, tmp_path):
    out = tmp_path / "run"
    build(vocab=small["vocab"], vectors=small["vectors"], out=out)
    with pytest.raises(UsageError, match="already exists"):
        build(vocab=small["vocab"], vectors=small["vectors"], out=out)
    build(vocab=small["vocab"], vectors=small["vectors"], out=out, force=True, pad="<pad>")
    forced = load_run(out)
    assert forced.sorted_to_original[0] == 0 and forced.manifest["counts"]["pad_id"] == 0
    assert not forced.fixed[0].any()  # was [7, 7, 7]
    assert not list(tmp_path.glob(".run.*"))


def test_bad_id_writes_nothing(small, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([0, 1, 7], dtype=np.int64))
    with pytest.raises(ReindexError, match=r"bad.npy.*7"):
        build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run", data=[small["ids"], bad])
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pad_must_be_in_vocabulary(small, tmp_path):
    with pytest.raises(UsageError, match="--pad token '<PAD>' is not in the vocabulary"):
        build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run", pad="<PAD>")


def test_same_file_name_twice_is_refused(small, tmp_path):
    other = tmp_path / "sub"
    other.mkdir()
    np.save(other / "ids.npy", np.zeros(3, dtype=np.int64))
    with pytest.raises(ReindexError, match="ids.npy"):
        build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run",
              data=[small["ids"], other / "ids.npy"])
    assert not (tmp_path / "run").exists()


def test_sample_data_build_matches_vector_file(tmp_path):
    from reindex.vectors import read_vectors

    out = tmp_path / "run"
    build(vocab=DATA / "vocab.txt", vectors=DATA / "vectors.txt", out=out, data=[DATA / "train.parquet"])
    run = load_run(out)
    table = read_vectors(DATA / "vectors.txt")
    row_of = {t: i for i, t in enumerate(table.tokens)}
    for s in range(run.num_fixed):
        assert np.array_equal(run.fixed[s], table.matrix[row_of[run.tokens[s]]])
    assert all(t not in row_of for t in run.tokens[run.num_fixed:])
    import pyarrow.parquet as pq

    before = pq.read_table(DATA / "train.parquet").column("input_ids").to_pylist()
    after = pq.read_table(out / "data" / "train.parquet").column("input_ids").to_pylist()
    table_o2s = run.original_to_sorted
    assert after == [[int(table_o2s[i]) for i in row] for row in before]


@pytest.mark.parametrize("name, no_header", [("test_glove.txt", True), ("lee_fasttext.vec", False),
                                             ("euclidean_vectors.bin", False)])
def test_build_on_gensims_test_files(tmp_path, name, no_header):
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    path = datapath(name)
    kv = KeyedVectors.load_word2vec_format(path, binary=name.endswith(".bin"), no_header=no_header)
    known = list(kv.index_to_key)[:50]
    vocab = ["<pad>", "zz-unknown-1"] + known[::-1] + ["zz-unknown-2"]  # another order than the file's
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    build(vocab=tmp_path / "vocab.txt", vectors=path, out=tmp_path / "run", pad="<pad>")
    run = load_run(tmp_path / "run")
    assert run.tokens == ["<pad>"] + known[::-1] + ["zz-unknown-1", "zz-unknown-2"]   # stable partition
    assert not run.fixed[0].any() and run.num_fixed == 1 + len(known) and run.num_trainable == 2
    assert np.array_equal(run.fixed[1:], np.stack([kv[t] for t in known[::-1]]))
    assert np.array_equal(run.original_to_sorted[run.sorted_to_original], np.arange(len(vocab)))
