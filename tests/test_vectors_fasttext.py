"""fastText `.bin` models: the reader against gensim, `--init subwords|mean`, refusals, memory mapping, CLI."""
from __future__ import annotations

import gzip
import json
import shutil
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reindex.commands.build import build
from reindex.errors import ReindexError, UsageError
from reindex.run import load_run, sha256_file
from reindex.vectors import read_vectors
from reindex.vectors.fasttext import open_model, read_fasttext
from reindex.vectors.ngrams import fnv1a, subword_rows

from conftest import write_glove

OOV = ["zzzq", "hospitalization", "Ünïcödé", "Australian-led", "x", "漢字"]   # not in the model's dictionary
DIM, BUCKET, MINN, MAXN = 16, 5000, 3, 5


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """A fastText model trained by gensim on its bundled Lee corpus, saved in Facebook's `.bin` format."""
    from gensim.models import FastText
    from gensim.models.fasttext import load_facebook_vectors, save_facebook_model
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        sentences = [simple_preprocess(line) for line in f]
    trained = FastText(vector_size=DIM, window=3, min_count=3, epochs=2, seed=1, workers=1, bucket=BUCKET,
                       min_n=MINN, max_n=MAXN)
    trained.build_vocab(corpus_iterable=sentences)
    trained.train(corpus_iterable=sentences, total_examples=len(sentences), epochs=2)
    path = tmp_path_factory.mktemp("fasttext") / "lee.bin"
    save_facebook_model(trained, str(path))
    kv = load_facebook_vectors(str(path))
    assert not set(OOV) & set(kv.key_to_index)
    return {"path": path, "kv": kv, "words": list(kv.index_to_key)}


def write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def rows_by_token(run_dir):
    run = load_run(run_dir)
    return dict(zip(run.tokens, run.weight(order="sorted"), strict=True)), run


def patched(src, dst, offset, data):
    """A copy of `src` with `data` written at byte `offset`."""
    raw = bytearray(src.read_bytes())
    raw[offset:offset + len(data)] = data
    dst.write_bytes(bytes(raw))
    return dst


# --- the reader against gensim ------------------------------------------------------------------

def test_every_dictionary_word_has_gensims_vector(model):
    vectors = read_vectors(model["path"])
    assert vectors.format == "fasttext-bin" and vectors.tokens == model["words"]
    assert vectors.num_read == len(model["words"]) and vectors.matrix.shape == (len(model["words"]), DIM)
    expected = np.stack([model["kv"][w] for w in vectors.tokens])
    np.testing.assert_allclose(vectors.matrix, expected, rtol=0, atol=1e-6)


def test_keep_reads_only_the_asked_words(model):
    keep = {"hospital", "the", "australia", "not-a-word"}
    vectors = read_vectors(model["path"], keep=keep)
    assert sorted(vectors.tokens) == ["australia", "hospital", "the"]
    for token, row in zip(vectors.tokens, vectors.matrix, strict=True):
        np.testing.assert_allclose(row, model["kv"][token], rtol=0, atol=1e-6)


def test_limit_takes_the_most_frequent_dictionary_words(model):
    vectors = read_vectors(model["path"], keep={"the", "hospital", model["words"][2]}, limit=3)
    assert vectors.tokens == ["the", model["words"][2]] and vectors.num_read == 3
    np.testing.assert_allclose(vectors.matrix[1], model["kv"][model["words"][2]], rtol=0, atol=1e-6)


def test_build_fixes_dictionary_words_and_subwords_fill_the_rest(model, tmp_path):
    words = model["words"][:200:3]
    vocab = write_vocab(tmp_path / "vocab.txt", ["<pad>", *words[:30], *OOV, *words[30:]])
    result = build(vocab=vocab, vectors=model["path"], out=tmp_path / "run", pad="<pad>", init="subwords")
    rows, run = rows_by_token(tmp_path / "run")
    assert run.num_fixed == 1 + len(words) and run.tokens[run.num_fixed:] == OOV
    assert not rows["<pad>"].any()
    for token in [*words, *OOV]:
        np.testing.assert_allclose(rows[token], model["kv"][token], rtol=0, atol=1e-6)
    counts = result.manifest["counts"]
    assert counts["vectors_format"] == "fasttext-bin"
    assert result.manifest["inputs"]["vectors"]["sha256"] == sha256_file(model["path"])
    assert counts["init_rows"] == {"subwords": {"rows": len(OOV), "sorted_ids": [[run.num_fixed, run.vocab_size]]}}


def test_glove_rows_stay_fixed_and_the_fasttext_model_fills_only_the_gaps(model, tmp_path):
    rng = np.random.default_rng(0)
    in_glove = model["words"][:20]
    glove = write_glove(tmp_path / "glove.txt", {w: rng.standard_normal(DIM).round(4).tolist() for w in in_glove})
    only_fasttext = model["words"][100:105]   # in the fastText dictionary, not in GloVe: its full vector
    vocab = write_vocab(tmp_path / "vocab.txt", [*in_glove, *only_fasttext, *OOV])
    build(vocab=vocab, vectors=glove, out=tmp_path / "run", init="subwords", subword_model=model["path"])
    rows, run = rows_by_token(tmp_path / "run")
    expected_glove = read_vectors(glove)
    assert run.num_fixed == len(in_glove)
    assert np.array_equal(np.stack([rows[w] for w in in_glove]), expected_glove.matrix)
    for token in [*only_fasttext, *OOV]:
        np.testing.assert_allclose(rows[token], model["kv"][token], rtol=0, atol=1e-6)
    assert run.manifest["options"]["subword_model"] == str(model["path"])
    recorded = run.manifest["inputs"]["subword_model"]
    assert recorded == {"path": str(model["path"]), "size": model["path"].stat().st_size,
                        "sha256": sha256_file(model["path"])}
    from reindex.commands.verify import verify_run

    assert verify_run(tmp_path / "run") == []


def test_subword_model_of_another_dimension_is_refused(model, tmp_path):
    glove = write_glove(tmp_path / "glove.txt", {"the": [1.0, 2.0]})
    vocab = write_vocab(tmp_path / "vocab.txt", ["the", "zzzq"])
    with pytest.raises(ReindexError, match=r"lee\.bin: the fastText model has dimension 16, the vectors 2"):
        build(vocab=vocab, vectors=glove, out=tmp_path / "run", init="subwords", subword_model=model["path"])
    assert not (tmp_path / "run").exists()


def test_mean_init_is_the_mean_of_the_real_fixed_rows(model, tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt", ["<pad>", *model["words"][:50], *OOV])
    result = build(vocab=vocab, vectors=model["path"], out=tmp_path / "run", pad="<pad>", init="mean")
    run = load_run(tmp_path / "run")
    mean = run.fixed[1:].astype(np.float64).mean(axis=0)       # the pad row is not a vector
    np.testing.assert_allclose(run.trainable, np.tile(mean, (len(OOV), 1)), rtol=0, atol=1e-6)
    assert result.manifest["counts"]["init_rows"] == {"mean": {"rows": len(OOV), "sorted_ids": [[51, 57]]}}


def test_a_model_without_ngrams_falls_back_to_normal_and_counts_it(model, tmp_path):
    no_ngrams = patched(model["path"], tmp_path / "maxn0.bin", 48, struct.pack("<i", 0))   # args.maxn = 0
    words = model["words"][:10]
    vocab = write_vocab(tmp_path / "vocab.txt", [*words, "</s>", *OOV])
    result = build(vocab=vocab, vectors=no_ngrams, out=tmp_path / "run", init="subwords", seed=3)
    rows, run = rows_by_token(tmp_path / "run")
    raw = model["kv"].vectors_vocab                            # a word's own row, with no n-grams to add
    for w in words:
        np.testing.assert_allclose(rows[w], raw[model["kv"].key_to_index[w]], rtol=0, atol=1e-6)
    assert result.manifest["counts"]["init_rows"] == {"normal": {"rows": 1 + len(OOV),
                                                                 "sorted_ids": [[10, 17]]}}
    normal = build(vocab=vocab, vectors=no_ngrams, out=tmp_path / "normal", init="normal", seed=3)
    assert np.array_equal(run.trainable, load_run(normal.out).trainable)   # the same noise as --init normal


def test_end_of_sentence_word_gets_no_ngrams_as_in_fasttext(model, tmp_path):
    # fastText's getSubwords gives `</s>` no n-grams, so outside the dictionary it has no vector at all
    # (gensim, which never writes `</s>`, would hash its n-grams).
    from reindex.vectors.fasttext import word_vectors

    rows, found = word_vectors(open_model(model["path"]), ["</s>", "zzzq"])
    assert found.tolist() == [False, True] and not rows[0].any()


# --- n-grams and the hash against gensim's own -------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(words=st.lists(st.text(min_size=1, max_size=12).filter(lambda w: "\x00" not in w), min_size=1, max_size=20),
       minn=st.integers(0, 4), extra=st.integers(0, 3))
def test_ngram_rows_match_gensims_hashes(words, minn, extra):
    from gensim.models.fasttext import ft_ngram_hashes

    maxn = minn + extra
    encoded = [w.encode("utf-8", "surrogatepass") for w in words]
    indptr, indices = subword_rows(encoded, np.full(len(words), -1), nwords=7, bucket=1009, minn=minn, maxn=maxn)
    for i, word in enumerate(words):
        expected = [] if word == "</s>" else [7 + h for h in ft_ngram_hashes(word, minn, maxn, 1009)]
        assert sorted(indices[indptr[i]:indptr[i + 1]].tolist()) == sorted(expected)


def test_hash_sign_extends_bytes_like_fasttext():
    from gensim.models.fasttext_inner import ft_hash_bytes

    for text in ["<the>", "é", "漢字>", "\x7f\x80"]:
        data = np.frombuffer(text.encode(), np.uint8)
        assert fnv1a(data, np.array([0]), np.array([len(data)])).tolist() == [ft_hash_bytes(text.encode())]
    # the quirk: an unsigned hash of "é" would differ
    h = 2166136261
    for b in "é".encode():
        h = ((h ^ b) * 16777619) % 2**32
    assert h != ft_hash_bytes("é".encode())


# --- memory mapping: only the rows needed are read ------------------------------------------------

def test_rows_not_needed_are_never_read(model, tmp_path):
    from gensim.models.fasttext import ft_ngram_hashes

    words, oov = model["words"][:40], OOV
    needed = {model["kv"].key_to_index[w] for w in words}
    for w in [*words, *oov]:
        needed.update(len(model["words"]) + h for h in ft_ngram_hashes(w, MINN, MAXN, BUCKET))
    opened = open_model(model["path"])
    garbage = bytearray(model["path"].read_bytes())
    matrix = np.frombuffer(garbage, "<f4", count=opened.num_rows * DIM,
                           offset=opened.matrix_offset).reshape(opened.num_rows, DIM)
    unused = np.setdiff1d(np.arange(opened.num_rows), np.fromiter(needed, np.int64))
    assert len(unused) > opened.num_rows // 2
    matrix[unused] = np.nan                                    # any read of them would poison a vector
    poisoned = tmp_path / "poisoned.bin"
    poisoned.write_bytes(bytes(garbage))
    vocab = write_vocab(tmp_path / "vocab.txt", [*words, *oov])
    build(vocab=vocab, vectors=poisoned, out=tmp_path / "run", init="subwords")
    rows, _ = rows_by_token(tmp_path / "run")
    for token in [*words, *oov]:
        np.testing.assert_allclose(rows[token], model["kv"][token], rtol=0, atol=1e-6)
    # ... and a needed row that is not finite is refused, naming its byte
    row = model["kv"].key_to_index[words[0]]
    matrix[row] = np.inf
    poisoned.write_bytes(bytes(garbage))
    at = opened.matrix_offset + 4 * row * DIM
    with pytest.raises(ReindexError, match=rf"poisoned\.bin: at byte {at}: input matrix row {row} is not finite"):
        read_vectors(poisoned, keep={words[0]})


# --- refusals and damaged files ---------------------------------------------------------------------

def test_quantised_and_supervised_models_are_refused(model, tmp_path):
    opened = open_model(model["path"])
    ftz = patched(model["path"], tmp_path / "model.ftz", opened.quant_offset, b"\x01")
    with pytest.raises(ReindexError, match=rf"model\.ftz: at byte {opened.quant_offset}: quantised fastText model"):
        read_vectors(ftz)
    supervised = patched(model["path"], tmp_path / "sup.bin", 36, struct.pack("<i", 3))   # args.model = sup
    with pytest.raises(ReindexError, match=r"sup\.bin: at byte 36: supervised fastText model"):
        read_vectors(supervised)


@pytest.mark.parametrize("cut", ["header", "dictionary", "matrix"])
def test_a_truncated_model_names_the_file_and_byte(model, tmp_path, cut):
    opened = open_model(model["path"])
    end = {"header": 30, "dictionary": 500, "matrix": opened.matrix_offset + 1000}[cut]
    short = tmp_path / "short.bin"
    short.write_bytes(model["path"].read_bytes()[:end])
    with pytest.raises(ReindexError, match=r"short\.bin: at byte \d+: (truncated|dictionary entry \d+ of \d+ is cut)"):
        read_vectors(short)


def test_bad_headers_are_refused(model, tmp_path):
    newer = patched(model["path"], tmp_path / "v99.bin", 4, struct.pack("<i", 99))
    with pytest.raises(ReindexError, match=r"v99\.bin: at byte 4: fastText file version 99"):
        read_vectors(newer)
    wrong_dim = patched(model["path"], tmp_path / "dim.bin", 8, struct.pack("<i", 17))
    with pytest.raises(ReindexError, match=r"dim\.bin: at byte \d+: input matrix is \d+ x 16, the header says"):
        read_vectors(wrong_dim)
    labels = patched(model["path"], tmp_path / "labels.bin", 64, struct.pack("<3i", 10, 5, 3))
    with pytest.raises(ReindexError, match=r"labels\.bin: at byte 64: bad fastText dictionary header"):
        read_vectors(labels)


def test_a_compressed_model_is_refused(model, tmp_path):
    packed = tmp_path / "lee.bin.gz"
    with open(model["path"], "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    with pytest.raises(ReindexError, match=r"lee\.bin\.gz: a compressed fastText model cannot be memory-mapped"):
        read_vectors(packed)


def test_duplicate_dictionary_words_follow_the_duplicates_option(model, tmp_path):
    from gensim.models.fasttext import ft_ngram_hashes

    first = model["words"][0]
    same_length = next(i for i, w in enumerate(model["words"]) if i and len(w) == len(first))
    at = int(open_model(model["path"]).word_offsets[same_length])
    twice = patched(model["path"], tmp_path / "twice.bin", at, first.encode())
    with pytest.raises(ReindexError, match=rf"twice\.bin: duplicate token '{first}' at byte offsets"):
        read_fasttext(twice, keep={first}, duplicates="error")
    last = read_fasttext(twice, keep={first}, duplicates="last")
    assert last.tokens == [first] and last.num_duplicates == 1
    kv = model["kv"]   # the later entry's own row, with the same n-grams
    ngrams = len(ft_ngram_hashes(first, MINN, MAXN, BUCKET))
    expected = kv[first] + (kv.vectors_vocab[same_length] - kv.vectors_vocab[0]) / (ngrams + 1)
    np.testing.assert_allclose(last.matrix[0], expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(read_fasttext(twice, keep={first}).matrix[0], kv[first], rtol=0, atol=1e-6)


def test_subwords_need_a_fasttext_model(model, tmp_path):
    glove = write_glove(tmp_path / "glove.txt", {"the": [1.0, 2.0]})
    vocab = write_vocab(tmp_path / "vocab.txt", ["the", "zzzq"])
    with pytest.raises(UsageError, match=r"glove\.txt: --init subwords needs a fastText \.bin model"):
        build(vocab=vocab, vectors=glove, out=tmp_path / "run", init="subwords")
    with pytest.raises(UsageError, match=r"glove\.txt: --init subwords needs .* this --subword-model"):
        build(vocab=vocab, vectors=glove, out=tmp_path / "run", init="subwords", subword_model=glove)
    with pytest.raises(UsageError, match=r"lee\.bin: --subword-model goes with --init subwords"):
        build(vocab=vocab, vectors=glove, out=tmp_path / "run", subword_model=model["path"])
    assert not (tmp_path / "run").exists()


# --- end to end through the CLI -------------------------------------------------------------------

def test_cli_build_inspect_verify_export_remap_invert(model, tmp_path, cli):
    vocab = write_vocab(tmp_path / "vocab.txt", ["<pad>", *model["words"][:100], *OOV])
    ids = tmp_path / "ids.npy"
    np.save(ids, np.random.default_rng(0).integers(0, 107, (20, 9)))
    run = tmp_path / "run"
    code, _, err = cli("build", "--vocab", vocab, "--vectors", model["path"], "--pad", "<pad>", "--init", "subwords",
                       "--out", run, "--quiet", ids)
    assert code == 0, err
    code, out, _ = cli("inspect", run, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["init_rows"] == {"subwords": {"rows": 6, "sorted_ids": [[101, 107]]}}
    code, out, _ = cli("inspect", run)
    assert "trainable initialised by subwords" in out
    assert cli("verify", run)[0] == 0
    assert cli("export", run, "--format", "word2vec", "--out", tmp_path / "all.vec")[0] == 0
    exported = read_vectors(tmp_path / "all.vec")
    for token, row in zip(exported.tokens[1:], exported.matrix[1:], strict=True):
        np.testing.assert_allclose(row, model["kv"][token], rtol=0, atol=1e-5)   # (text at 6+ digits)
    assert cli("remap", run, ids, "--out", tmp_path / "enc")[0] == 0
    assert cli("invert", run, tmp_path / "enc" / "ids.npy", "--out", tmp_path / "dec")[0] == 0
    assert np.array_equal(np.load(tmp_path / "dec" / "ids.npy"), np.load(ids))


def test_cli_errors_are_one_line_and_write_nothing(model, tmp_path, cli):
    vocab = write_vocab(tmp_path / "vocab.txt", ["the", "zzzq"])
    supervised = patched(model["path"], tmp_path / "sup.bin", 36, struct.pack("<i", 3))
    code, _, err = cli("build", "--vocab", vocab, "--vectors", supervised, "--out", tmp_path / "run")
    errors = [line for line in err.splitlines() if line.startswith("reindex: error:")]
    assert code == 1 and len(errors) == 1 and "sup.bin: at byte 36: supervised fastText model" in errors[0]
    code, _, err = cli("build", "--vocab", vocab, "--vectors", model["path"], "--subword-model", model["path"],
                       "--out", tmp_path / "run")
    assert code == 2 and "--subword-model goes with --init subwords" in err
    assert not (tmp_path / "run").exists()


def test_growing_a_run_fills_new_words_from_a_subword_model(model, tmp_path):
    old_vocab = write_vocab(tmp_path / "old.txt", ["<pad>", *model["words"][:20], "zzzq"])
    build(vocab=old_vocab, vectors=model["path"], out=tmp_path / "old", pad="<pad>", init="zeros")
    new_vocab = write_vocab(tmp_path / "new.txt", ["<pad>", *model["words"][:20], "zzzq", "hospitalization", "漢字"])
    result = build(vocab=new_vocab, vectors=tmp_path / "old", out=tmp_path / "new", pad="<pad>", init="subwords",
                   subword_model=model["path"])
    rows, run = rows_by_token(tmp_path / "new")
    old = load_run(tmp_path / "old")
    assert run.tokens[:old.vocab_size] == old.tokens and not rows["zzzq"].any()   # old rows exact, ids kept
    for token in ["hospitalization", "漢字"]:
        np.testing.assert_allclose(rows[token], model["kv"][token], rtol=0, atol=1e-6)
    assert result.manifest["counts"]["init_rows"] == {"subwords": {"rows": 2, "sorted_ids": [[22, 24]]}}


def test_the_format_can_be_named_and_is_checked(model, tmp_path):
    named = read_vectors(model["path"], keep={"the"}, format="fasttext-bin")
    np.testing.assert_allclose(named.matrix[0], model["kv"]["the"], rtol=0, atol=1e-6)
    glove = write_glove(tmp_path / "glove.txt", {"the": [1.0, 2.0]})
    with pytest.raises(ReindexError, match=r"glove\.txt: at byte 0: not a fastText model"):
        read_vectors(glove, format="fasttext-bin")


def test_a_vocabulary_that_is_not_strings_is_a_usage_error(model):
    with pytest.raises(UsageError, match=r"keep holds 7, a int: a vocabulary is a collection of strings"):
        read_vectors(model["path"], keep={"the", 7})
