"""The exact `keep` test in C (`Keep`, `utf8_array`), the token-only UTF-8 check, and line ends
found by `find` on long lines: each against a plain Python model."""
from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reindex.errors import ReindexError
from reindex.vectors import _lines, binary, read_vectors
from reindex.vectors._keep import Keep, utf8_array

from test_vectors import binary_bytes, text_bytes, write
from test_vectors_keep import corpus, expected, pick

words = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(kept=st.sets(words | st.sampled_from(["", "a\nb", "\n", "new york", "é"]), max_size=30))
def test_utf8_array_holds_each_word_once(kept):
    """Joined and cut, or per word when a word holds the separator: the same words either way."""
    array = utf8_array(kept)
    assert array.type == pa.large_string()
    assert sorted(array.to_pylist()) == sorted(kept)


def test_utf8_array_without_utf8_words(monkeypatch):
    kept = {f"w{i}" for i in range(20)} | {"x y", ""}
    assert sorted(utf8_array(kept).to_pylist()) == sorted(kept)
    # a lone surrogate has no UTF-8 form: no token read from a file can equal it, so it is left out
    assert sorted(utf8_array({"ok", "bad\ud800"}).to_pylist()) == ["ok"]


@settings(max_examples=200, deadline=None)
@given(kept=st.sets(words, max_size=30), tokens=st.lists(words, max_size=40))
def test_keep_index_is_set_membership_and_numbers_equal_words_alike(kept, tokens):
    keep = Keep(kept)
    codes = keep.index(pa.array(tokens, pa.string())).tolist()
    assert [c >= 0 for c in codes] == [t in kept for t in tokens]
    for t, c in zip(tokens, codes):
        if c >= 0:
            assert keep.array[c].as_py() == t


@pytest.mark.parametrize("share", [0.95, 1.0])
@pytest.mark.parametrize("duplicates", ["first", "last"])
def test_binary_reading_every_record_keeps_exactly_the_vocabulary(tmp_path, monkeypatch, share, duplicates):
    """Every record goes to the collector (keep covers nearly the file), which keeps exactly `keep`."""
    monkeypatch.setattr(binary, "CHUNK_BYTES", 4096)
    tokens, m = corpus(1500, spaces=False)
    keep = pick(tokens, share)
    got = read_vectors(write(tmp_path, "v.bin", binary_bytes(tokens, m)), keep=keep, duplicates=duplicates)
    want_tokens, want_matrix = expected(tokens, m, keep, duplicates)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)


def test_binary_worker_falls_back_when_a_token_is_not_utf8(tmp_path):
    tokens, m = corpus(300, spaces=False)
    raw = binary_bytes(tokens, m).replace(b"w123 ", b"w\xff23 ")
    path = write(tmp_path, "v.bin", raw)
    keep = set(tokens) | {"w\ufffd23"}
    got = read_vectors(path, keep=keep, unicode_errors="replace")
    assert "w\ufffd23" in got.tokens and len(got.tokens) == len(set(got.tokens))
    with pytest.raises(ReindexError, match="not valid UTF-8"):
        read_vectors(path, keep=keep)


@pytest.mark.parametrize("fmt", ["glove", "bin"])
@pytest.mark.parametrize("share", [0.05, 1.0])
def test_duplicates_error_names_both_records_with_keep(tmp_path, fmt, share):
    """Duplicates found from keep's positions (no second hash) are still refused with both places."""
    tokens, m = corpus(600, spaces=False)
    raw = binary_bytes(tokens, m) if fmt == "bin" else text_bytes(tokens, m, header=False)
    path = write(tmp_path, "v." + fmt, raw)
    assert tokens[40] == tokens[10]
    keep = pick(tokens, share) | {tokens[40]}
    where = "byte offsets" if fmt == "bin" else "lines 11 and 41"
    with pytest.raises(ReindexError, match=f"duplicate token '{tokens[40]}' at {where}"):
        read_vectors(path, keep=keep, duplicates="error")


def test_resolve_duplicates_from_codes_matches_dictionary_encoding():
    from reindex.vectors._collect import _resolve_duplicates

    rng = np.random.default_rng(0)
    words = rng.integers(0, 40, 200)
    tokens = pa.array([f"t{w}" for w in words], pa.string())
    rows, where = np.arange(200), np.arange(200)
    for mode in ("first", "last"):
        by_codes = _resolve_duplicates(tokens, rows, where, codes=words, path="p", mode=mode, where_name="line")
        by_hash = _resolve_duplicates(tokens, rows, where, codes=None, path="p", mode=mode, where_name="line")
        assert by_codes[0].tolist() == by_hash[0].tolist()
        assert by_codes[1] == by_hash[1] == 200 - len(set(words.tolist())) > 0
    none = _resolve_duplicates(tokens[:5], rows[:5], where[:5], codes=np.array([3, 1, 4, 0, 2]), path="p",
                               mode="error", where_name="line")
    assert none[0].tolist() == [0, 1, 2, 3, 4] and none[1] == 0


# --- the token-only UTF-8 check -------------------------------------------------------------------

def test_keep_words_is_built_once_whichever_thread_asks_first():
    """The parsing threads all ask for the key test: they get one object."""
    keep = Keep({f"w{i}" for i in range(50_000)})
    got = []
    threads = [threading.Thread(target=lambda: got.append(keep.words)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 4 and all(w is got[0] for w in got)


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.binary(max_size=24) | st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
                       min_size=1, max_size=20))
def test_words_not_utf8_agrees_with_decoding(tokens):
    tokens = [t.replace(b" ", b"_") for t in tokens]
    data = np.frombuffer(b" ".join(tokens) + b" ", np.uint8)
    lengths = np.array([len(t) for t in tokens], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)

    def bad(t):
        try:
            t.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    got = _lines.words_not_utf8(data, starts, lengths)
    want = [bad(t) for t in tokens]
    assert (got is None and not any(want)) or (got is not None and got.tolist() == want)


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_text_checks_the_tokens_of_lines_it_skips_but_not_their_numbers(tmp_path, share):
    """Lines whose token is not kept are never number-parsed: a stray byte among their numbers is
    not looked at, while a token that is not UTF-8 is refused (strict) wherever it is."""
    tokens, m = corpus(2000, spaces=False)
    raw = text_bytes(tokens, m, header=False)
    lines = raw.split(b"\n")
    skipped = next(i for i, t in enumerate(tokens) if t not in pick(tokens, share) and i > 100)
    line = lines[skipped]
    lines[skipped] = line + b"\xff"  # after its last number
    keep = pick(tokens, share)
    got = read_vectors(write(tmp_path, "v.txt", b"\n".join(lines)), keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.allclose(got.matrix, want_matrix)
    lines[skipped] = b"w\xff" + line[len(tokens[skipped]):]
    with pytest.raises(ReindexError, match=rf"v2.txt:{skipped + 1}: token .* is not valid UTF-8"):
        read_vectors(write(tmp_path, "v2.txt", b"\n".join(lines)), keep=keep)


# --- line ends by find ----------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.sampled_from([0, 1, 5, 900, 1100, 3000, 5000]), min_size=1, max_size=40))
def test_line_ends_by_find_agree_with_numpy(lengths):
    """Long lines, short lines, and a block that turns from long to short (numpy takes over)."""
    block = b"".join(b"x" * n + b"\n" for n in lengths)
    want = np.flatnonzero(np.frombuffer(block, np.uint8) == 10).tolist()
    data = np.frombuffer(block, np.uint8)
    assert _lines.line_ends(data, find=block.find).tolist() == want
    assert _lines.line_ends(data).tolist() == want
    assert _lines.split_lines(block).offsets[1:].tolist() == [w + 1 for w in want]


@pytest.mark.parametrize("share", [0.05, 0.5, 1.0])
def test_long_lines_read_with_keep_as_without(tmp_path, share):
    """300 numbers a line (about 3 KB, found by `find`), in the reader's real 2 MB blocks."""
    tokens, m = corpus(1200, dim=300)
    path = write(tmp_path, "v.txt", text_bytes(tokens, m, header=False))
    keep = pick(tokens, share)
    got = read_vectors(path, keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)


@pytest.mark.parametrize("share", [0.05, 1.0])
def test_text_keeps_exactly_the_vocabulary_whatever_the_share(tmp_path, share):
    """The rows the collector holds may include tokens `keep` lacks; the result is exact."""
    tokens, m = corpus(1500)
    keep = pick(tokens, share)
    got = read_vectors(write(tmp_path, "v.txt", text_bytes(tokens, m, header=False)), keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)


def test_utf8_array_keeps_an_empty_word(monkeypatch):
    monkeypatch.setattr(pa, "array", None)  # the per-word way is not taken: the words were joined
    assert utf8_array(["a", "b", ""]).to_pylist() == ["a", "b", ""]


@pytest.mark.parametrize("fmt", ["glove", "bin"])
@pytest.mark.parametrize("keep", [{1, 2}, ["w1", 3], {b"w1"}])
def test_a_vocabulary_that_is_not_strings_is_a_usage_error_naming_the_item(tmp_path, fmt, keep):
    """Not "cannot parse vector file": the file is fine, the argument is not."""
    from reindex.errors import UsageError

    tokens, m = corpus(50, spaces=False)
    raw = binary_bytes(tokens, m) if fmt == "bin" else text_bytes(tokens, m, header=False)
    path = write(tmp_path, "v." + fmt, raw)
    with pytest.raises(UsageError,
                       match=r"keep holds (1|3|b'w1'), a (int|bytes): a vocabulary is a collection of strings"):
        read_vectors(path, keep=keep)
