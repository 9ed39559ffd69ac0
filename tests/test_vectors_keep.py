"""`read_vectors(keep=...)` at every coverage, through every way a block or chunk can be read.

A text block is parsed whole and filtered, parsed whole and handed over unfiltered (most lines kept),
or split so that only the lines whose first word may be kept are parsed; a word2vec binary file is
memory-mapped or streamed, and filtered per chunk or at the end. Each test compares against the
keep=None result filtered in Python, and checks that the way it targets was really taken.
"""
from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reindex.vectors as vectors_module
from reindex.errors import ReindexError
from reindex.vectors import FileDigest, _open, binary, read_vectors, text
from reindex.vectors._lines import WordSet

from test_vectors import binary_bytes, text_bytes, write

COVERAGES = [0.0, 0.05, 0.5, 0.95, 1.0]


def corpus(n: int = 1500, dim: int = 5, *, spaces: bool = True, seed: int = 0):
    """Tokens (some with spaces, some repeated) and their float32 rows."""
    rng = np.random.default_rng(seed)
    tokens = []
    for i in range(n):
        if spaces and i % 11 == 5:
            tokens.append(f"new w{i} york")
        elif i % 97 == 40:
            tokens.append(tokens[i - 30])  # a duplicate of a token 30 lines up
        else:
            tokens.append(f"w{i}é" if i % 13 == 0 else f"w{i}")
    return tokens, rng.standard_normal((n, dim)).astype(np.float32)


def expected(tokens, matrix, keep, duplicates="first"):
    """What reading with `keep` must give: the chosen occurrence of each kept token, in file order."""
    chosen: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if keep is None or t in keep:
            if duplicates == "last" or t not in chosen:
                chosen[t] = i
    rows = sorted(chosen.values())
    return [tokens[i] for i in rows], matrix[rows]


def pick(tokens, share, seed=1):
    rng = np.random.default_rng(seed)
    unique = sorted(set(tokens))
    return set(rng.choice(unique, int(round(share * len(unique))), replace=False).tolist()) | {"absent"}


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 2 KB (text) and windows of 4 KB (binary): many blocks, every way taken."""
    monkeypatch.setattr(_open, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(vectors_module, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(binary, "CHUNK_BYTES", 4096)


@pytest.mark.parametrize("share", COVERAGES)
@pytest.mark.parametrize("fmt", ["glove", "vec", "glove.gz", "bin", "bin.gz"])
@pytest.mark.parametrize("duplicates", ["first", "last"])
def test_keep_at_every_coverage(tmp_path, small_blocks, fmt, share, duplicates):
    tokens, m = corpus(spaces=not fmt.startswith("bin"))
    raw = binary_bytes(tokens, m) if fmt.startswith("bin") else text_bytes(tokens, m, header=fmt == "vec")
    path = write(tmp_path, "v." + fmt, gzip.compress(raw) if fmt.endswith(".gz") else raw)
    keep = pick(tokens, share)
    got = read_vectors(path, keep=keep, duplicates=duplicates)
    want_tokens, want_matrix = expected(tokens, m, keep, duplicates)
    assert got.tokens == want_tokens
    assert np.array_equal(got.matrix, want_matrix)
    assert got.num_read == len(tokens)
    assert got.num_duplicates == sum(1 for t in tokens if t in keep) - len(want_tokens)


def spy_blocks(monkeypatch):
    """Count the ways text blocks were read: 'filtered', 'unfiltered' (whole, every row) and 'chosen'."""
    seen = {"filtered": 0, "unfiltered": 0, "chosen": 0}
    work = text.BlockReader.work

    def counting(self, block):
        result = work(self, block)
        if result.way == "chosen":
            seen["chosen"] += 1
        else:
            seen["unfiltered" if result.unfiltered else "filtered"] += 1
        return result

    monkeypatch.setattr(text.BlockReader, "work", counting)
    return seen


@pytest.mark.parametrize("order", ["dense then sparse", "sparse then dense"])
def test_text_changes_way_with_the_share_kept(tmp_path, small_blocks, monkeypatch, order):
    """A file whose first half is all kept and second half hardly (or the reverse) reads exactly, and
    the unfiltered and chosen ways are both taken."""
    tokens, m = corpus(3000)
    first, second = set(tokens[:1500]), {t for t in tokens[1500:] if t.endswith("7")}
    if order == "dense then sparse":
        keep = first | second
    else:
        keep = {t for t in tokens[:1500] if t.endswith("7")} | set(tokens[1500:])
    seen = spy_blocks(monkeypatch)
    got = read_vectors(write(tmp_path, "v.txt", text_bytes(tokens, m, header=False)), keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)
    assert seen["unfiltered"] > 0 and seen["chosen"] > 0


def test_text_keep_all_hands_blocks_over_unfiltered(tmp_path, small_blocks, monkeypatch):
    tokens, m = corpus(2000)
    seen = spy_blocks(monkeypatch)
    got = read_vectors(write(tmp_path, "v.txt", text_bytes(tokens, m, header=False)), keep=set(tokens))
    assert got.tokens == expected(tokens, m, None)[0]
    assert seen["unfiltered"] > seen["chosen"] + seen["filtered"]  # the first lines set the way from the start


@pytest.mark.parametrize("kept", [True, False])
def test_text_nan_checked_only_in_kept_rows_when_unfiltered(tmp_path, small_blocks, monkeypatch, kept):
    tokens, m = corpus(2000, spaces=False)
    m[1234, 2] = np.nan
    keep = set(tokens) if kept else set(tokens) - {tokens[1234]}
    seen = spy_blocks(monkeypatch)
    path = write(tmp_path, "v.txt", text_bytes(tokens, m, header=False))
    if kept:
        with pytest.raises(ReindexError) as e:
            read_vectors(path, keep=keep)
        assert str(e.value).startswith(f"{path}:1235: ")
    else:
        got = read_vectors(path, keep=keep)
        assert tokens[1234] not in got.tokens and np.isfinite(got.matrix).all()
    assert seen["unfiltered"] > 0


def binary_file(tmp_path, tokens, m, name="v.bin"):
    return write(tmp_path, name, binary_bytes(tokens, m))


@pytest.mark.parametrize("keep_share", [None, 0.05, 1.0])
def test_binary_windows_hash_the_whole_file(tmp_path, small_blocks, keep_share):
    """The memory-mapped reader hashes every byte once, in order, whatever it skips."""
    tokens, m = corpus(2500, spaces=False)
    raw = binary_bytes(tokens, m) + b"\n\n"
    path = write(tmp_path, "v.bin", raw)
    keep = None if keep_share is None else pick(tokens, keep_share)
    digest = FileDigest()
    got = read_vectors(path, keep=keep, digest=digest)
    assert digest.complete and digest.record() == {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    assert got.tokens == expected(tokens, m, keep)[0]


def test_binary_is_memory_mapped_and_streams_when_it_cannot_be(tmp_path, small_blocks, monkeypatch):
    tokens, m = corpus(2000, spaces=False)
    path = binary_file(tmp_path, tokens, m)
    windows = []
    real_next = binary.Chunks.next
    monkeypatch.setattr(binary.Chunks, "next", lambda self, *a, **k: windows.append(self.fd) or real_next(self, *a, **k))
    mapped = read_vectors(path)
    assert len(windows) > 10 and None not in windows  # the file was read through many mapped windows
    monkeypatch.setattr(binary, "plain_file", lambda stream: (None, 0))
    streamed = read_vectors(path)
    assert mapped.tokens == streamed.tokens == expected(tokens, m, None)[0]
    assert np.array_equal(mapped.matrix, streamed.matrix)


def test_binary_record_longer_than_a_window(tmp_path, small_blocks):
    """A record of 8 KB does not fit a 4 KB window: the window grows instead of looping."""
    tokens, m = ["a", "b", "c"], np.arange(3 * 2048, dtype=np.float32).reshape(3, 2048)
    got = read_vectors(binary_file(tmp_path, tokens, m), keep={"b"})
    assert got.tokens == ["b"] and np.array_equal(got.matrix, m[1:2])


def test_binary_limit_and_tail_through_the_map(tmp_path, small_blocks):
    tokens, m = corpus(600, spaces=False)
    path = binary_file(tmp_path, tokens, m)
    got = read_vectors(path, limit=450, keep=set(tokens))
    assert got.tokens == expected(tokens[:450], m[:450], None)[0]
    write(tmp_path, "cut.bin", path.read_bytes()[:-5])  # the newline and 4 bytes of the last vector
    with pytest.raises(ReindexError, match="truncated binary file: record 600 needs 20 bytes of vector, "
                                           "only 16 left"):
        read_vectors(tmp_path / "cut.bin", keep={"w3"})


@pytest.mark.parametrize("share", [0.05, 1.0])
def test_binary_nan_checked_only_in_kept_records(tmp_path, small_blocks, share):
    tokens, m = corpus(1000, spaces=False)
    m[700, 1] = np.inf
    keep = pick(tokens, share) - {tokens[700]}
    got = read_vectors(binary_file(tmp_path, tokens, m), keep=keep)
    assert np.isfinite(got.matrix).all() and tokens[700] not in got.tokens
    with pytest.raises(ReindexError, match="byte"):
        read_vectors(binary_file(tmp_path, tokens, m, "w.bin"), keep=keep | {tokens[700]})


@pytest.mark.parametrize("share", [0.05, 1.0])
def test_binary_bad_utf8_refused_at_any_coverage_unless_asked(tmp_path, share):
    tokens, m = corpus(400, spaces=False)
    raw = binary_bytes(tokens, m).replace(b"w123 ", b"w\xff23 ")
    path = write(tmp_path, "v.bin", raw)
    keep = pick(tokens, share)
    with pytest.raises(ReindexError, match="not valid UTF-8"):
        read_vectors(path, keep=keep)
    got = read_vectors(path, keep=keep | {"w\ufffd23"}, unicode_errors="replace")
    assert "w\ufffd23" in got.tokens


words = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)


@settings(max_examples=200, deadline=None)
@given(kept=st.lists(words, max_size=40), others=st.lists(words, max_size=40))
def test_wordset_never_misses_a_kept_word(kept, others):
    """The key test may pass a word that is not kept, never fail one that is; the first word of a
    kept token with spaces passes; the same word gives the same answer in any buffer."""
    ws = WordSet(kept)
    if not kept and not others:
        assert not ws.may_contain(b"x")
        return
    firsts = [k.encode().split(b" ", 1)[0] for k in kept]
    probe = firsts + [o.encode().split(b" ", 1)[0] for o in others]
    blob = b"\n".join(probe)
    lengths = np.array([len(p) for p in probe], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    found = ws.contains(np.frombuffer(blob + b"\0", np.uint8), starts, lengths)
    assert found[:len(firsts)].all()
    assert found.tolist() == [ws.may_contain(p) for p in probe]


def test_wordset_rejects_most_words_not_kept():
    kept = [f"k{i}" for i in range(5000)]
    others = [f"o{i}" for i in range(50000)]
    ws = WordSet(kept)
    blob = " ".join(others).encode()
    lengths = np.array([len(o) for o in others], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    false_matches = ws.contains(np.frombuffer(blob, np.uint8), starts, lengths).mean()
    assert false_matches < 0.001  # the bitmap passes about 1.6%; the whole keys rule those out


def test_first_bad_line_is_named_when_chosen_lines_are_parsed_later(tmp_path, small_blocks, monkeypatch):
    """Chosen lines are parsed off the main thread while later blocks are read; a bad number there
    is still reported before a bad number on a later line of a block parsed whole."""
    tokens, m = corpus(3000, spaces=False)
    m[300, 0] = np.nan    # line 301: the sparse first half, read the chosen way
    m[2800, 0] = np.nan   # line 2801: the second half, all kept, read whole
    keep = {tokens[300]} | set(tokens[1500:])
    seen = spy_blocks(monkeypatch)
    path = write(tmp_path, "v.txt", text_bytes(tokens, m, header=False))
    with pytest.raises(ReindexError) as e:
        read_vectors(path, keep=keep)
    assert str(e.value).startswith(f"{path}:301: ")
    assert seen["chosen"] > 0 and seen["unfiltered"] + seen["filtered"] > 0


def test_of_two_bad_lines_in_batches_parsed_later_the_first_is_named(tmp_path, small_blocks, monkeypatch):
    """Both bad lines are in chosen batches parsed off the main thread; the later batch's error must
    not replace the earlier one's."""
    monkeypatch.setattr(text, "BATCH_BYTES", 256)  # a batch every few chosen lines: many in flight
    tokens, m = corpus(6000, spaces=False)
    m[500, 0] = np.nan
    m[5500, 0] = np.nan
    keep = {t for t in tokens if t.endswith("3")} | {tokens[500], tokens[5500]}
    path = write(tmp_path, "v.txt", text_bytes(tokens, m, header=False))
    for _ in range(5):  # the batches finish in either order from run to run
        with pytest.raises(ReindexError) as e:
            read_vectors(path, keep=keep)
        assert str(e.value).startswith(f"{path}:501: ")


def test_a_later_batchs_error_never_replaces_an_earlier_one():
    """`_drain` raises the first failed batch's error and drops what follows it, so the reader's
    clean-up (which waits for the batches still queued) cannot raise a later line's error instead."""
    import collections
    from concurrent.futures import Future

    from reindex.vectors._collect import Collector

    first, second = Future(), Future()
    first.set_exception(ReindexError("line 501"))
    second.set_exception(ReindexError("line 520"))
    queue = collections.deque([first, second])
    with pytest.raises(ReindexError, match="line 501"):
        text._drain(queue, Collector(2), wait=False)
    assert text._drain(queue, Collector(2), wait=True) == 0  # the clean-up: nothing later is left to raise


@pytest.mark.parametrize("mapped", [True, False])
def test_binary_after_a_bom_reads_from_the_right_byte(tmp_path, monkeypatch, mapped):
    """A UTF-8 BOM before the header: the memory-mapped reader starts after it, as the streamed one
    does, and byte positions in errors count it."""
    if not mapped:
        monkeypatch.setattr(binary, "plain_file", lambda stream: (None, 0))
    tokens, m = ["a", "b", "c"], np.arange(9, dtype=np.float32).reshape(3, 3)
    raw = b"\xef\xbb\xbf" + binary_bytes(tokens, m)
    got = read_vectors(write(tmp_path, "bom.bin", raw))
    assert got.tokens == tokens and np.array_equal(got.matrix, m)
    m[2, 1] = np.nan
    raw = b"\xef\xbb\xbf" + binary_bytes(tokens, m)
    with pytest.raises(ReindexError, match=f"at byte {raw.index(b'c ')}:"):
        read_vectors(write(tmp_path, "nan.bin", raw))


def test_binary_vocabulary_as_large_as_the_file_but_mostly_other_words(tmp_path, small_blocks, monkeypatch):
    """keep is larger than the header's count, so every record is read at first; the sampled share
    of the first chunk turns the reader to the key lookup, and the matrix holds about the kept rows."""
    from reindex.vectors._collect import Collector

    tokens, m = corpus(3000, spaces=False)
    keep = set(tokens[::50]) | {f"other{i}" for i in range(3000)}
    held = []
    finish = Collector.finish
    monkeypatch.setattr(Collector, "finish", lambda self, **kw: held.append(self.num_rows) or finish(self, **kw))
    got = read_vectors(binary_file(tmp_path, tokens, m), keep=keep)
    want_tokens, want_matrix = expected(tokens, m, keep)
    assert got.tokens == want_tokens and np.array_equal(got.matrix, want_matrix)
    assert held[0] < 3 * len(want_tokens) + 300  # not the 3,000 records (only the first window is unfiltered)
