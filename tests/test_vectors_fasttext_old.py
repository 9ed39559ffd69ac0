"""fastText `.bin` files from before the magic number (gensim's `lee_fasttext.bin`,
`non_ascii_fasttext.bin`, `cp852_fasttext.bin`, which `load_facebook_model` reads) are read like the
new ones: found by their header, every word and out-of-vocabulary token given gensim's vector, through
`--vectors` and `--subword-model`; cut short, they are refused as a fastText model, not as text."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from _fasttext_files import fasttext_bytes

from reindex.commands.build import build
from reindex.errors import ReindexError
from reindex.run import load_run
from reindex.vectors import read_vectors
from reindex.vectors.fasttext import open_model, word_vectors
from reindex.vectors.source import classify

OOV = ["zzzqq", "hospitalization", "Ünïcödé", "x"]


def gensim_file(name: str) -> Path:
    from gensim.test.utils import datapath

    return Path(datapath(name))


def gensim_vectors(path: Path):
    from gensim.models.fasttext import load_facebook_model

    logging.disable(logging.INFO)
    try:
        return load_facebook_model(str(path)).wv
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", ["lee_fasttext.bin", "non_ascii_fasttext.bin"])
def test_old_files_read_as_gensim_reads_them(name):
    path, wv = gensim_file(name), gensim_vectors(gensim_file(name))
    assert classify(path).kind == "fasttext" and open_model(path).version == 0
    table = read_vectors(path)
    assert table.format == "fasttext-bin" and table.tokens == list(wv.index_to_key)
    # every word (`</s>` aside: fastText gives the end-of-sentence word no n-grams, gensim does)
    words = [i for i, t in enumerate(table.tokens) if t != "</s>"]
    np.testing.assert_allclose(table.matrix[words], np.stack([wv[table.tokens[i]] for i in words]), atol=1e-5)
    oov, _ = word_vectors(open_model(path), OOV)
    np.testing.assert_allclose(oov, np.stack([wv[t] for t in OOV]), atol=1e-5)


def test_cp852_words_are_refused_as_not_utf8_or_replaced_when_asked():
    path = gensim_file("cp852_fasttext.bin")
    with pytest.raises(ReindexError, match=r"cp852_fasttext\.bin: at byte \d+: token .* is not valid UTF-8"):
        read_vectors(path)
    assert read_vectors(path, unicode_errors="replace").num_read == len(open_model(path).words) == 171


def test_an_old_file_holds_the_same_vectors_as_the_new_file_of_the_same_model(tmp_path):
    words = ["the", "cat", "dog"]
    matrix = np.random.default_rng(0).normal(size=(len(words) + 50, 4)).astype(np.float32)
    new, old = tmp_path / "new.bin", tmp_path / "old.bin"
    new.write_bytes(fasttext_bytes(words, matrix))
    old.write_bytes(fasttext_bytes(words, matrix, old=True))
    for keep in (None, {"cat"}):
        a, b = read_vectors(new, keep=keep), read_vectors(old, keep=keep)
        assert a.tokens == b.tokens and np.array_equal(a.matrix, b.matrix)
    assert np.array_equal(word_vectors(open_model(new), OOV)[0], word_vectors(open_model(old), OOV)[0])


def test_build_takes_an_old_file_as_vectors_and_as_subword_model(tmp_path):
    path, wv = gensim_file("lee_fasttext.bin"), gensim_vectors(gensim_file("lee_fasttext.bin"))
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("the\nhospitalization\nzzzqq\n")
    glove = tmp_path / "v.txt"
    glove.write_text("the " + " ".join(["0.5"] * 10) + "\n")
    build(vocab=vocab, vectors=path, out=tmp_path / "a", init="subwords")
    build(vocab=vocab, vectors=glove, out=tmp_path / "b", init="subwords", subword_model=path)
    for run in (load_run(tmp_path / "a"), load_run(tmp_path / "b")):
        rows = dict(zip(run.tokens, run.weight(order="sorted"), strict=True))
        np.testing.assert_allclose(rows["hospitalization"], wv["hospitalization"], atol=1e-5)


@pytest.mark.parametrize("cut", [100, 30000, 80000])  # in the dictionary, in the input matrix
def test_a_cut_short_old_file_is_refused_as_a_fasttext_model(tmp_path, cut):
    data = gensim_file("lee_fasttext.bin").read_bytes()
    path = tmp_path / "cut.bin"
    path.write_bytes(data[:cut])
    with pytest.raises(ReindexError, match=r"cut\.bin: .*(truncated fastText model|dictionary entry \d+ of)"):
        read_vectors(path)
