"""Round trips: remap then invert is the identity, export then rebuild is exact, vocabulary expansion
keeps every old row, and inspect; by hand and as properties."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reindex.commands.build import build
from reindex.commands.export import export
from reindex.commands.remap import invert_files, remap_files
from reindex.errors import ReindexError, UsageError
from reindex.run import load_run

from conftest import DATA, write_glove

words = st.text("abcdefgh", min_size=1, max_size=6)


@st.composite
def problems(draw):
    """A random vocabulary, a vector set over part of it (plus strangers), and a dataset."""
    vocab = draw(st.lists(words, min_size=1, max_size=25, unique=True))
    with_vector = draw(st.lists(st.booleans(), min_size=len(vocab), max_size=len(vocab)))
    strangers = draw(st.lists(words.map(lambda w: "z" + w), max_size=3, unique=True))
    dim = draw(st.integers(1, 4))
    names = [t for t, keep in zip(vocab, with_vector, strict=True) if keep] + strangers
    values = draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=len(names) * dim, max_size=len(names) * dim))
    vectors = {n: values[i * dim:(i + 1) * dim] for i, n in enumerate(names)}
    ids = draw(st.lists(st.integers(0, len(vocab) - 1), max_size=40))
    return vocab, vectors, dim, np.array(ids, dtype=np.int64)


def write_problem(tmp, vocab, vectors, dim, ids):
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    if vectors:
        write_glove(tmp / "vectors.txt", vectors)
    else:  # a vector file needs one vector: give a stranger
        write_glove(tmp / "vectors.txt", {"zzz": [0.0] * dim})
    np.save(tmp / "ids.npy", ids)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problem=problems())
def test_invert_after_remap_is_identity_and_export_rebuild_is_exact(tmp_path_factory, problem):
    tmp = tmp_path_factory.mktemp("p")
    vocab, vectors, dim, ids = problem
    write_problem(tmp, vocab, vectors, dim, ids)
    build(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", out=tmp / "run")
    remap_files(tmp / "run", [tmp / "ids.npy"], out=tmp / "enc")
    invert_files(tmp / "run", [tmp / "enc" / "ids.npy"], out=tmp / "dec")
    assert (tmp / "dec" / "ids.npy").read_bytes() == (tmp / "ids.npy").read_bytes()
    run = load_run(tmp / "run")
    assert np.array_equal(np.load(tmp / "enc" / "ids.npy"), run.original_to_sorted[ids])
    # Exported in original order, then rebuilt from the export: fixed rows are bit-identical.
    for fmt, name in (("glove", "e.txt"), ("safetensors", "e.safetensors")):
        export(tmp / "run", out=tmp / name, format=fmt)
        build(vocab=tmp / "vocab.txt", vectors=tmp / name, out=tmp / f"again-{fmt}")
        again = load_run(tmp / f"again-{fmt}")
        # Every token now has a vector, so the rebuilt run is all fixed, in original order.
        assert again.num_trainable == 0
        assert np.array_equal(again.fixed, run.weight(order="original"))
        assert np.array_equal(again.fixed[run.sorted_to_original[:run.num_fixed]], run.fixed)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problem=problems(), extra=st.lists(words.map(lambda w: "n" + w), max_size=6, unique=True),
       shuffle=st.randoms(use_true_random=False))
def test_expansion_keeps_every_old_row_and_sorted_id(tmp_path_factory, problem, extra, shuffle):
    tmp = tmp_path_factory.mktemp("x")
    vocab, vectors, dim, ids = problem
    write_problem(tmp, vocab, vectors, dim, ids)
    build(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", out=tmp / "old", seed=3)
    old = load_run(tmp / "old")
    grown = vocab + [t for t in extra if t not in vocab]
    shuffle.shuffle(grown)  # original ids change: old tokens are matched by their string
    (tmp / "new.txt").write_text("".join(t + "\n" for t in grown))
    build(vocab=tmp / "new.txt", vectors=tmp / "old", out=tmp / "new")
    new = load_run(tmp / "new")
    assert new.tokens[:old.vocab_size] == old.tokens
    assert new.num_fixed == old.vocab_size
    assert np.array_equal(new.fixed, old.weight(order="sorted"))
    assert set(new.tokens[old.vocab_size:]) == set(grown) - set(vocab)


def test_expansion_refuses_a_lost_token_and_other_dimension(small, tmp_path):
    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "old")
    (tmp_path / "smaller.txt").write_text("the\ncat\n")
    with pytest.raises(ReindexError, match=r"5 token\(s\) of the old run are not in the new vocabulary"):
        build(vocab=tmp_path / "smaller.txt", vectors=tmp_path / "old", out=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_expansion_with_trained_weights_keeps_the_trained_rows(small, tmp_path):
    from safetensors.numpy import save_file

    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "old", pad="<pad>")
    old = load_run(tmp_path / "old")
    trained = np.random.default_rng(5).normal(size=old.trainable.shape).astype(np.float32)
    save_file({"trainable": trained}, str(tmp_path / "trained.safetensors"))
    (tmp_path / "grown.txt").write_text(small["vocab"].read_text() + "brandnew\n")
    build(vocab=tmp_path / "grown.txt", vectors=tmp_path / "old", out=tmp_path / "new", pad="<pad>",
          weights=tmp_path / "trained.safetensors")
    new = load_run(tmp_path / "new")
    assert np.array_equal(new.fixed[:old.num_fixed], old.fixed)
    assert np.array_equal(new.fixed[old.num_fixed:], trained)        # trained rows, bit for bit
    assert new.tokens == old.tokens + ["brandnew"] and new.num_trainable == 1
    assert new.manifest["inputs"]["weights"]["path"].endswith("trained.safetensors")
    with pytest.raises(UsageError, match="--weights goes with a run directory"):
        build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "x",
              weights=tmp_path / "trained.safetensors")


def test_export_with_trained_weights(small, tmp_path):
    from safetensors.numpy import save_file

    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run", pad="<pad>")
    run = load_run(tmp_path / "run")
    trained = np.arange(run.num_trainable * run.dim, dtype=np.float32).reshape(run.num_trainable, run.dim)
    save_file({"model.embedding.trainable": trained, "model.embedding.fixed": run.fixed},
              str(tmp_path / "w.safetensors"))
    export(tmp_path / "run", out=tmp_path / "m.npy", weights=tmp_path / "w.safetensors")
    matrix = np.load(tmp_path / "m.npy")
    assert np.array_equal(matrix[run.sorted_to_original[run.num_fixed:]], trained)
    assert np.array_equal(matrix[run.sorted_to_original[:run.num_fixed]], run.fixed)
    save_file({"trainable": trained[:1]}, str(tmp_path / "short.safetensors"))
    with pytest.raises(ReindexError, match=r"has shape \(1, 3\), the run needs \(3, 3\)"):
        export(tmp_path / "run", out=tmp_path / "x.npy", weights=tmp_path / "short.safetensors")
    assert not (tmp_path / "x.npy").exists()


def test_word2vec_exports_read_back_by_gensim(tmp_path):
    from gensim.models import KeyedVectors

    build(vocab=DATA / "vocab.txt", vectors=DATA / "vectors.txt", out=tmp_path / "run", pad="<pad>")
    run = load_run(tmp_path / "run")
    weight = run.weight(order="original")
    for fmt, binary in (("word2vec", False), ("word2vec-binary", True)):
        path = tmp_path / f"e.{fmt}"
        export(tmp_path / "run", out=path, format=fmt)
        kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert kv.index_to_key == run.original_tokens
        assert np.array_equal(kv.vectors, weight)


def test_inspect_json_against_independent_counts(tmp_path, cli):
    import pyarrow.parquet as pq

    code, _, err = cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt",
                       "--out", tmp_path / "run", "--quiet", DATA / "train.parquet")
    assert code == 0, err
    code, out, err = cli("inspect", tmp_path / "run", "--json", "--top", "5")
    assert code == 0, err
    summary = json.loads(out)
    vocab = [line.split("\t")[0] for line in (DATA / "vocab.txt").read_text().splitlines()]
    vectors = {line.rsplit(" ", 32)[0] for line in (DATA / "vectors.txt").read_text().splitlines()}
    fixed_tokens = {t for t in vocab if t in vectors}
    assert summary["vocab"] == len(vocab) and summary["fixed"] == len(fixed_tokens)
    ids = [i for row in pq.read_table(DATA / "train.parquet").column("input_ids").to_pylist() for i in row]
    assert summary["corpus"]["tokens"] == len(ids)
    assert summary["corpus"]["fixed_tokens"] == sum(vocab[i] in fixed_tokens for i in ids)
    from collections import Counter

    missing = Counter(vocab[i] for i in ids if vocab[i] not in fixed_tokens)
    top = summary["corpus"]["top_trainable"]
    assert [r["count"] for r in top] == sorted(missing.values(), reverse=True)[:5]
    assert all(missing[r["token"]] == r["count"] for r in top)
    # The same numbers from datasets given to inspect itself.
    code, out2, _ = cli("inspect", tmp_path / "run", DATA / "train.parquet", "--json", "--top", "5")
    assert json.loads(out2)["corpus"] == summary["corpus"]


def test_load_run_library_api_numpy_and_torch(small, tmp_path):
    import torch

    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run")
    run = load_run(tmp_path / "run")
    ids = np.array([[1, 2], [6, 0]], dtype=np.int32)
    sorted_ids = run.to_sorted(ids)
    assert sorted_ids.dtype == np.int32 and np.array_equal(run.to_original(sorted_ids), ids)
    tensor = torch.tensor([[1, 2], [6, 0]])
    assert torch.equal(run.to_original(run.to_sorted(tensor)), tensor)
    assert run.to_sorted(tensor).tolist() == run.original_to_sorted[tensor.numpy()].tolist()
    with pytest.raises(ReindexError, match="id 7 is outside"):
        run.to_sorted(torch.tensor([1, 7]))
    assert run.tokens[: run.num_fixed] == ["<pad>", "the", "cat", "dog"]


def test_export_refuses_existing_file(small, tmp_path):
    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "run")
    (tmp_path / "e.npy").write_bytes(b"x")
    with pytest.raises(UsageError, match="already exists"):
        export(tmp_path / "run", out=tmp_path / "e.npy")
