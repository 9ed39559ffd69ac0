"""Issue 19, item 2: normalisation and case rules never let a normalised match beat an exact one.

Every option (`--normalize nfc|nfkc`, `--lowercase-fallback`, `--case-fallback`) is crossed with the
exact-wins property, in the pure matcher (`reindex.matching`), in the streaming readers (a `KeyedSet`
keeps what a full read would have given the matcher) and through the CLI (the cases found by the
outside battery, spaCy's table among them).
"""
from __future__ import annotations

import gzip
import json
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_vectors_fasttext import model as fasttext_model  # noqa: F401  (a session fixture: a gensim-trained .bin)

import reindex.vectors as vectors_module
from reindex.errors import ReindexError
from reindex.matching import keep_keys, match_vectors, normalizer
from reindex.vectors import _open, binary, read_vectors
from reindex.vectors.keyed import KeyedSet

from conftest import write_glove
from test_vectors import binary_bytes, text_bytes, write

OPTIONS = [
    {"normalize": "nfc"},
    {"normalize": "nfkc"},
    {"lowercase_fallback": True},
    {"case_fallback": True},
    {"normalize": "nfkc", "case_fallback": True},
    {"normalize": "nfc", "lowercase_fallback": True},
]
NFC, NFD = unicodedata.normalize("NFC", "été"), unicodedata.normalize("NFD", "été")
# Pieces that normalise or fold into one another: ligatures, full-width forms, combining accents, ß, İ, sigma.
PIECES = ["a", "A", "ａ", "f", "i", "ﬁ", "é", "e\u0301", "ß", "s", "S", "İ", "σ", "ς", "Σ", "…", "."]
token_strategy = st.lists(st.sampled_from(PIECES), min_size=1, max_size=3).map("".join)


def keep_for(tokens, options):
    keys, key, folds = keep_keys(tokens, **options)
    return keys if key is None else KeyedSet(keys, key=key, folds_ascii=folds)


def check_exact_wins(vocab, found, matched, options):
    """Every vocabulary token with an exact line has the first such line; the others are listed as
    fallbacks exactly when they found a row, with the form chosen."""
    first = {}
    for i, t in enumerate(found):
        first.setdefault(t, i)
    listed = {entry["id"]: entry for entry in matched.fallback}
    for i, token in enumerate(vocab):
        if token in first:
            assert matched.rows[i] == first[token] and i not in listed, (token, options)
        elif matched.rows[i] >= 0:
            entry = listed[i]
            assert entry["vector"] == found[matched.rows[i]] != token and entry["token"] == token
            if entry["kind"] == "normalized":
                norm = normalizer(options.get("normalize", "none"))
                assert norm(entry["vector"]) == norm(token)
        else:
            assert i not in listed
    assert sum(matched.fallback_counts().values()) == len(matched.fallback) == len(listed)


# --- the pure matcher ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()))
@settings(max_examples=150, deadline=None)
@given(vocab=st.lists(token_strategy, min_size=1, max_size=8, unique=True),
       found=st.lists(token_strategy, min_size=1, max_size=10))
def test_exact_line_always_wins(options, vocab, found):
    matched = match_vectors(vocab, found, np.zeros((len(found), 1), np.float32), **options)
    check_exact_wins(vocab, found, matched, options)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()))
def test_tokens_that_normalise_alike_keep_their_own_lines(options):
    vocab = [NFC, NFD, "fi", "ﬁ", "A", "Ａ"]
    found = ["Ａ", "ﬁ", NFD, "fi", NFC, "A"]  # the other form first, every time
    matched = match_vectors(vocab, found, np.zeros((6, 1), np.float32), **options)
    assert matched.rows.tolist() == [4, 2, 3, 1, 5, 0] and matched.fallback == []


def test_when_neither_has_its_own_line_the_normal_form_wins_then_the_first():
    m = match_vectors(["ｆｉ", "ﬁ"], ["fｉ", "fi"], np.zeros((2, 1), np.float32), normalize="nfkc")
    assert m.rows.tolist() == [1, 1]  # "fi" is already in normal form: it wins over the earlier "fｉ"
    assert [(e["token"], e["vector"], e["kind"]) for e in m.fallback] == [("ｆｉ", "fi", "normalized"),
                                                                         ("ﬁ", "fi", "normalized")]
    m = match_vectors(["ｆｉ", "ﬁ"], ["fｉ", "ｆi"], np.zeros((2, 1), np.float32), normalize="nfkc")
    assert m.rows.tolist() == [0, 0]  # no line in normal form: the first in the file


def test_a_case_rule_never_beats_an_exact_or_normalised_match():
    m = match_vectors(["the", "The", "ｔｈｅ"], ["THE", "the"], np.zeros((2, 1), np.float32),
                      normalize="nfkc", case_fallback=True)
    assert m.rows.tolist() == [1, 0, 1]  # The: upper comes first in the file; ｔｈｅ: its normal form
    assert [e["kind"] for e in m.fallback] == ["upper", "normalized"]


# --- the streaming readers: a KeyedSet keeps what the matcher can pick -------------------------------

def corpus(n=1200, dim=4, seed=0):
    """Vector tokens in several forms of a few words, and unrelated ones."""
    rng = np.random.default_rng(seed)
    forms = [lambda w: w, str.upper, str.title, lambda w: unicodedata.normalize("NFKC", w).upper(),
             lambda w: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w),  # full width
             lambda w: w.replace("fi", "ﬁ"), lambda w: unicodedata.normalize("NFD", w + "é")]
    words = [f"fiw{i}" for i in range(40)]
    tokens = [forms[i % len(forms)](words[(i * 7) % len(words)]) if i % 3 == 0 else f"other{i}"
              for i in range(n)]
    return tokens, rng.standard_normal((n, dim)).astype(np.float32)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(_open, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(vectors_module, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(binary, "CHUNK_BYTES", 4096)


def same_match(vocab, path, options):
    """The matches from a keyed (streaming) read equal those from a read of every vector."""
    full = read_vectors(path)
    streamed = read_vectors(path, keep=keep_for(vocab, options))
    want = match_vectors(vocab, full.tokens, full.matrix, **options)
    got = match_vectors(vocab, streamed.tokens, streamed.matrix, **options)
    assert got.fallback == [{**e, "id": e["id"]} for e in want.fallback]
    for i in range(len(vocab)):
        assert (got.rows[i] < 0) == (want.rows[i] < 0)
        if want.rows[i] >= 0:
            assert streamed.tokens[got.rows[i]] == full.tokens[want.rows[i]]
            assert np.array_equal(streamed.matrix[got.rows[i]], full.matrix[want.rows[i]])
    return full, streamed


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("fmt", ["glove", "vec", "glove.gz", "bin", "bin.gz"])
def test_keyed_reading_gives_the_matches_of_a_full_read(tmp_path, small_blocks, fmt, options):
    tokens, m = corpus()
    raw = binary_bytes(tokens, m) if fmt.startswith("bin") else text_bytes(tokens, m, header=fmt == "vec")
    path = write(tmp_path, "v." + fmt, gzip.compress(raw) if fmt.endswith(".gz") else raw)
    vocab = [f"fiw{i}" for i in range(0, 40, 2)] + ["FIW1", "ﬁw3", "absent", "other3"]
    full, streamed = same_match(vocab, path, options)
    assert len(streamed.tokens) < len(full.tokens) / 3  # the others were skipped, not held
    assert "other6" not in streamed.tokens


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(f"{k}={v}" for k, v in o.items()))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vocab=st.lists(token_strategy, min_size=1, max_size=6, unique=True),
       found=st.lists(token_strategy, min_size=1, max_size=12, unique=True),
       binary_file=st.booleans())
def test_keyed_reading_property(options, vocab, found, binary_file):
    m = np.arange(len(found) * 2, dtype=np.float32).reshape(-1, 2)
    raw = binary_bytes(found, m) if binary_file else text_bytes(found, m, header=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "v.bin" if binary_file else "v.vec", raw)
        _, streamed = same_match(vocab, path, options)
    check_exact_wins(vocab, streamed.tokens, match_vectors(vocab, streamed.tokens, streamed.matrix, **options),
                     options)


def test_unwanted_lines_are_not_parsed(tmp_path):
    """With a key, a line nobody can pick is skipped unparsed, as with an exact keep: its NaN is not seen."""
    path = write(tmp_path, "v.txt", "ｃａｔ 1 2\nother nan 3\nCat 4 5\n".encode())
    got = read_vectors(path, keep=keep_for(["cat"], {"normalize": "nfkc", "case_fallback": True}))
    assert got.tokens == ["ｃａｔ", "Cat"]
    with pytest.raises(ReindexError, match=r"v\.txt:2: vector has nan"):
        read_vectors(path, keep=keep_for(["other"], {"normalize": "nfkc"}))


def test_fasttext_bin_by_key(fasttext_model):  # noqa: F811  (the fixture imported above)
    model = fasttext_model
    vocab = ["The", "ＨＯＳＰＩＴＡＬ", "australia"]
    got = read_vectors(model["path"], keep=keep_for(vocab, {"normalize": "nfkc", "case_fallback": True}))
    assert sorted(got.tokens) == ["australia", "hospital", "the"]
    matched = match_vectors(vocab, got.tokens, got.matrix, normalize="nfkc", case_fallback=True)
    assert [got.tokens[r] for r in matched.rows] == ["the", "hospital", "australia"]


# --- through the CLI: the outside battery's cases ---------------------------------------------------

def build_json(cli, tmp_path, vocab, vectors, *flags, name="run"):
    (tmp_path / "v.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    write_glove(tmp_path / "vec.txt", vectors)
    code, out, err = cli("build", "--vocab", tmp_path / "v.txt", "--vectors", tmp_path / "vec.txt",
                         "--out", tmp_path / name, "--json", *flags)
    assert code == 0, err
    from reindex import load_run

    run = load_run(tmp_path / name)
    return json.loads(out), dict(zip(run.tokens, run.weight(order="sorted").tolist()))


@pytest.mark.parametrize("flags", [["--normalize", "nfc"], ["--normalize", "nfkc"], ["--case-fallback"],
                                   ["--normalize", "nfc", "--lowercase-fallback"]])
def test_nfc_and_nfd_ete_keep_their_own_lines(cli, tmp_path, flags):
    summary, rows = build_json(cli, tmp_path, [NFC, NFD], {NFC: [3.0, 4.0], NFD: [5.0, 6.0]}, *flags)
    assert rows == {NFC: [3.0, 4.0], NFD: [5.0, 6.0]}
    assert summary["fallback"]["normalized"] == 0 and summary["fallback_matches"] == []


def test_ligature_line_before_fi(cli, tmp_path):
    summary, rows = build_json(cli, tmp_path, ["fi"], {"ﬁ": [1.0], "fi": [2.0]}, "--normalize", "nfkc")
    assert rows == {"fi": [2.0]} and summary["fallback_matches"] == []


SPACY_LIKE = [("A", "Ａ"), ("by", "ｂｙ"), ("find", "ﬁnd"), ("...", "…"), ("1", "１"), ("?", "？")]


@pytest.mark.parametrize("flags", [["--normalize", "nfkc"], ["--normalize", "nfkc", "--case-fallback"],
                                   ["--normalize", "nfkc", "--lowercase-fallback"]])
def test_spacy_like_table_with_nfkc_counts_only_real_rescues(cli, tmp_path, flags):
    vectors = {}
    for i, (plain, other) in enumerate(SPACY_LIKE):  # the compatibility form first, as in spaCy's table
        vectors[other] = [-1.0 - i]
        vectors[plain] = [1.0 + i]
    vectors["cat"] = [99.0]
    vocab = [plain for plain, _ in SPACY_LIKE] + ["ｃａｔ"]
    summary, rows = build_json(cli, tmp_path, vocab, vectors, *flags)
    assert rows == {**{plain: [1.0 + i] for i, (plain, _) in enumerate(SPACY_LIKE)}, "ｃａｔ": [99.0]}
    assert summary["fallback"]["normalized"] == 1
    assert summary["fallback_matches"] == [{"id": 6, "token": "ｃａｔ", "vector": "cat", "kind": "normalized"}]


def test_inspect_lists_what_was_chosen_for_tokens_without_their_own_line(cli, tmp_path):
    build_json(cli, tmp_path, ["ｆｉ", "ﬁ", "x"], {"fｉ": [1.0], "fi": [2.0], "x": [3.0]}, "--normalize", "nfkc")
    code, out, _ = cli("inspect", tmp_path / "run", "--json")
    assert code == 0
    listed = json.loads(out)["fallback_matches"]
    assert [(e["token"], e["vector"], e["kind"]) for e in listed] == [("ｆｉ", "fi", "normalized"),
                                                                      ("ﬁ", "fi", "normalized")]


@pytest.mark.parametrize("flags", [["--normalize", "nfc"], ["--normalize", "nfkc", "--case-fallback"],
                                   ["--lowercase-fallback"], ["--case-fallback"]])
def test_an_expansion_never_changes_an_old_row(cli, tmp_path, flags):
    """The old run holds both forms of `été`, and `Été` trainable: growing it with a fallback keeps every
    old row (trained rows too), and `verify` vouches for it."""
    from reindex import load_run

    build_json(cli, tmp_path, [NFC, NFD, "Été"], {NFD: [5.0, 6.0], NFC: [3.0, 4.0]}, name="old")
    old = load_run(tmp_path / "old")
    (tmp_path / "v2.txt").write_text("".join(t + "\n" for t in [NFC, NFD, "Été", "ÉTÉ"]), encoding="utf-8")
    code, out, err = cli("build", "--vocab", tmp_path / "v2.txt", "--vectors", tmp_path / "old", "--out",
                         tmp_path / "new", "--json", *flags)
    assert code == 0, err
    new = load_run(tmp_path / "new")
    assert new.tokens[:3] == old.tokens
    assert np.array_equal(new.weight(order="sorted")[:3], old.weight(order="sorted"))
    assert all(entry["token"] == "ÉTÉ" for entry in json.loads(out)["fallback_matches"])
    assert cli("verify", tmp_path / "new")[0] == 0


@pytest.mark.parametrize("fmt", ["txt", "bin"])
def test_forms_that_share_a_key_are_not_duplicates(tmp_path, fmt):
    """`--duplicates error` refuses a token written twice, never two tokens with one normal form."""
    tokens, m = ["ｂｙ", "by", "By"], np.arange(6, dtype=np.float32).reshape(3, 2)
    def raw(tokens, m):
        return binary_bytes(tokens, m) if fmt == "bin" else text_bytes(tokens, m, header=False)

    path = write(tmp_path, "v." + fmt, raw(tokens, m))
    keep = keep_for(["by"], {"normalize": "nfkc", "case_fallback": True})
    assert read_vectors(path, keep=keep, duplicates="error").tokens == tokens
    twice = write(tmp_path, "twice." + fmt, raw(tokens + ["by"], np.zeros((4, 2), np.float32)))
    with pytest.raises(ReindexError, match="duplicate token 'by'"):
        read_vectors(twice, keep=keep, duplicates="error")
