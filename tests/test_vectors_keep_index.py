"""The exact `keep` test in C (`Keep`, `utf8_array`, the worker thread's `Indexer`), the token-only
UTF-8 check, and line ends found by `find` on long lines: each against a plain Python model."""
from __future__ import annotations

import mmap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reindex.errors import ReindexError
from reindex.vectors import _keep, _lines, binary, read_vectors
from reindex.vectors._collect import Collector
from reindex.vectors._keep import Indexer, Keep, utf8_array

from test_vectors import binary_bytes, text_bytes, write
from test_vectors_keep import corpus, expected, pick

words = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(kept=st.sets(words | st.sampled_from(["", "a\nb", "\n", "new york", "é"]), max_size=30),
       yielding=st.booleans())
def test_utf8_array_holds_each_word_once(kept, yielding):
    """Joined and cut, or per word when a word holds the separator: the same words either way."""
    array = utf8_array(kept, yielding=yielding)
    assert array.type == pa.large_string()
    assert sorted(array.to_pylist()) == sorted(kept)


def test_utf8_array_in_slices_and_without_utf8_words(monkeypatch):
    monkeypatch.setattr(_keep, "JOIN_WORDS", 3)  # many slices
    kept = {f"w{i}" for i in range(20)} | {"x y", ""}
    assert sorted(utf8_array(kept, yielding=True).to_pylist()) == sorted(kept)
    # a lone surrogate has no UTF-8 form: no token read from a file can equal it, so it is left out
    assert sorted(utf8_array({"ok", "bad\ud800"}, yielding=True).to_pylist()) == ["ok"]


@settings(max_examples=200, deadline=None)
@given(kept=st.sets(words, max_size=30), tokens=st.lists(words, max_size=40))
def test_keep_index_is_set_membership_and_numbers_equal_words_alike(kept, tokens):
    keep = Keep(kept)
    codes = keep.index(pa.array(tokens, pa.string())).to_pylist()
    assert [c is not None for c in codes] == [t in kept for t in tokens]
    for t, c in zip(tokens, codes, strict=True):
        if c is not None:
            assert keep.array[c].as_py() == t


def test_indexer_batches_agree_with_one_lookup():
    """Rows handed on chunk by chunk, looked up in a worker in two batches (the last after the
    reader flushes), give the positions one lookup of all of them gives."""
    from concurrent.futures import ThreadPoolExecutor

    kept = {f"w{i}" for i in range(0, 300, 3)}
    keep = Keep(kept)
    chunks = [pa.array([f"w{i}".encode() for i in range(s, s + 37)], pa.large_binary()) for s in range(0, 296, 37)]
    with ThreadPoolExecutor(1) as executor:
        indexer = Indexer(keep, executor, rows=296)
        for chunk in chunks:
            indexer.add(chunk)
        indexer.flush(last=True)
        codes = indexer.codes()
    assert len(indexer.done) == 3  # the array, then two batches: not one lookup per chunk
    everything = pa.concat_arrays(chunks).cast(pa.large_string())
    assert codes.tolist() == keep.index(everything).fill_null(-1).to_pylist()
    assert [c >= 0 for c in codes] == [t in kept for t in everything.to_pylist()]


def test_indexer_gives_up_on_bytes_that_are_not_utf8():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as executor:
        indexer = Indexer(Keep({"a"}), executor, rows=2)
        indexer.add(pa.array([b"a", b"\xff"], pa.large_binary()))
        assert indexer.codes() is None  # the collector decodes with --unicode-errors, then looks up itself


def test_array_is_built_once_whichever_thread_asks_first(monkeypatch):
    """The worker and the reader (turning to key lookups) may both need `array`: positions from
    one must mean the same words in the other, so there is one array."""
    started, release = threading.Event(), threading.Event()
    real = _keep.utf8_array
    calls = []

    def slow(words, *, yielding):
        calls.append(yielding)
        started.set()
        release.wait(5)
        return real(words, yielding=yielding)

    monkeypatch.setattr(_keep, "utf8_array", slow)
    keep = Keep({"a", "b", "c"})
    got = []
    worker = threading.Thread(target=lambda: got.append(keep.get_array(yielding=True)))
    worker.start()
    started.wait(5)
    reader = threading.Thread(target=lambda: got.append(keep.array))
    reader.start()
    release.set()
    worker.join(5), reader.join(5)
    assert calls == [True] and got[0] is got[1]


@pytest.mark.parametrize("share", [0.95, 1.0])
@pytest.mark.parametrize("duplicates", ["first", "last"])
def test_binary_reading_every_record_looks_rows_up_in_a_worker(tmp_path, monkeypatch, share, duplicates):
    monkeypatch.setattr(binary, "CHUNK_BYTES", 4096)
    tokens, m = corpus(1500, spaces=False)
    keep = pick(tokens, share)
    looked_up = []
    index = Indexer._index
    monkeypatch.setattr(Indexer, "_index", lambda self, raw, *a: looked_up.append(len(raw)) or index(self, raw, *a))
    got = read_vectors(write(tmp_path, "v.bin", binary_bytes(tokens, m)), keep=keep, duplicates=duplicates)
    want_tokens, want_matrix = expected(tokens, m, keep, duplicates)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)
    assert sum(looked_up) == len(tokens) and len(looked_up) == 2


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
@given(lengths=st.lists(st.sampled_from([0, 1, 5, 900, 1100, 3000, 5000]), min_size=1, max_size=40),
       kind=st.sampled_from(["bytes", "mmap", "bytearray"]))
def test_line_ends_by_find_agree_with_numpy(lengths, kind):
    """Long lines, short lines, and a block that turns from long to short (numpy takes over)."""
    block = b"".join(b"x" * n + b"\n" for n in lengths)
    if kind == "mmap":
        buf = mmap.mmap(-1, len(block))
        buf[:] = block
        view = memoryview(buf)[:len(block)]
    elif kind == "bytearray":
        view = memoryview(bytearray(block))
    else:
        view = block
    want = np.flatnonzero(np.frombuffer(block, np.uint8) == 10).tolist()
    data = np.frombuffer(view, np.uint8)
    find = _lines._find_in(view, data)
    assert find is not None
    assert _lines.line_ends(data, find=find).tolist() == want
    assert _lines.split_lines(view).offsets[1:].tolist() == [w + 1 for w in want]
    del data, find
    if kind == "mmap":
        view.release()
        buf.close()


def test_a_view_that_does_not_start_the_buffer_is_searched_by_numpy():
    base = bytearray(b"ab\n" + b"c" * 2000 + b"\n")
    view = memoryview(base)[3:]
    data = np.frombuffer(view, np.uint8)
    assert _lines._find_in(view, data) is None  # its find would count from the buffer's start
    assert _lines.split_lines(view).offsets.tolist() == [0, 2001]


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
def test_text_rows_are_looked_up_by_the_worker(tmp_path, monkeypatch, share):
    """Text hands its rows to the same worker: every row the collector holds is looked up once,
    and the result is exact whatever the share."""
    tokens, m = corpus(1500)
    keep = pick(tokens, share)
    looked_up = []
    index = Indexer._index
    monkeypatch.setattr(Indexer, "_index", lambda self, raw, *a: looked_up.append(len(raw)) or index(self, raw, *a))
    held = []
    finish = Collector.finish
    monkeypatch.setattr(Collector, "finish", lambda self, **kw: held.append(self.num_rows) or finish(self, **kw))
    got = read_vectors(write(tmp_path, "v.txt", text_bytes(tokens, m, header=False)), keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)
    assert sum(looked_up) == held[0] >= len(want_tokens)


def test_utf8_array_keeps_an_empty_word_alone_in_the_last_slice(monkeypatch):
    monkeypatch.setattr(_keep, "JOIN_WORDS", 2)
    monkeypatch.setattr(pa, "array", None)  # the per-word way is not taken: the slices were all joined
    words = ["a", "b", ""]  # the last slice is [""], whose join is empty
    assert utf8_array(words, yielding=True).to_pylist() == ["a", "b", ""]


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


# --- mapping the binary file in while the vocabulary is prepared ------------------------------------

def test_populate_while_stops_when_the_other_work_does_and_at_its_limit(tmp_path):
    from reindex.vectors import _open

    path = write(tmp_path, "f.bin", bytes(range(256)) * 4096 * 40)  # 40 MB: more than two 16 MB steps
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert _open.populate_while(mapped, 100, lambda: False, limit=1 << 30) == 100  # nothing to wait for
        end = _open.populate_while(mapped, 5000, lambda: True, limit=3 << 20)
        if end != 5000:  # 5000: the kernel predates MADV_POPULATE_READ, and nothing was done
            assert end == 5000 + (3 << 20)  # the limit, counted from the start asked for
            answers = iter([True, True, False])  # busy at the start and before the first step only
            assert _open.populate_while(mapped, 0, lambda: next(answers, False), limit=1 << 30) == 1 << 24
        assert bytes(mapped[5000:5010]) == (bytes(range(256)) * 40)[5000 % 256:5000 % 256 + 10]


@pytest.mark.parametrize("madvise", ["missing", "failing"])
def test_binary_reads_the_same_when_pages_cannot_be_mapped_ahead(tmp_path, monkeypatch, madvise):
    from reindex.vectors import _open

    calls = []
    monkeypatch.setattr(_open, "_madvise", lambda: None if madvise == "missing" else (lambda *a: calls.append(a) or -1))
    real = _keep.utf8_array
    monkeypatch.setattr(_keep, "utf8_array", lambda *a, **k: time.sleep(0.2) or real(*a, **k))  # busy a while
    tokens, m = corpus(800, spaces=False)
    keep = set(tokens)
    got = read_vectors(write(tmp_path, "v.bin", binary_bytes(tokens, m)), keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)
    assert len(calls) == (madvise == "failing")  # tried once, then left alone


def test_binary_maps_pages_ahead_only_while_the_vocabulary_is_prepared(tmp_path, monkeypatch):
    """Reading every record with a vocabulary: the pages are mapped in while the worker builds the
    vocabulary's array (and never without a vocabulary, where nothing runs beside the reader)."""
    from reindex.vectors import _open

    seen = []
    real = _open.populate_while
    monkeypatch.setattr(binary, "populate_while", lambda *a, **k: seen.append(a[1]) or real(*a, **k))
    tokens, m = corpus(800, spaces=False)
    path = write(tmp_path, "v.bin", binary_bytes(tokens, m))
    read_vectors(path)
    assert seen == []
    read_vectors(path, keep=set(tokens))
    assert len(seen) == 1 and seen[0] == len(b"%d 5\n" % len(tokens))  # from the first record
