"""Vocabulary readers: the three formats, and every refusal with its exact message."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reindex.errors import ReindexError
from reindex.vocab import read_vocab


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_lines(tmp_path):
    vocab = read_vocab(write(tmp_path, "v.txt", "<pad>\nthe\nNew York\nnan\n"))
    assert vocab.tokens == ["<pad>", "the", "New York", "nan"] and vocab.format == "lines"
    assert vocab.counts is None


def test_counts_crlf_and_bom(tmp_path):
    vocab = read_vocab(write(tmp_path, "v.tsv", "\ufeffthe\t10\r\ncat\t3\r\n"))
    assert vocab.tokens == ["the", "cat"] and vocab.counts.tolist() == [10, 3] and vocab.format == "counts"


def test_json(tmp_path):
    vocab = read_vocab(write(tmp_path, "vocab.json", json.dumps({"b": 1, "a": 0, "c": 2})))
    assert vocab.tokens == ["a", "b", "c"] and vocab.format == "json"


@pytest.mark.parametrize("content, message", [
    ("a\nb\na\n", "v.txt:3: duplicate token 'a' (also on line 1) (each token must appear once)"),
    ("a\n\nb\n", "v.txt:2: blank line in the vocabulary (remove it; every line must hold one token)"),
    ("", "v.txt: the vocabulary is empty (give one token per line)"),
    ("a\t1\nb\n", "v.txt:2: expected token<TAB>count like line 1, got 'b' (use one format for the whole file)"),
])
def test_line_errors(tmp_path, content, message):
    with pytest.raises(ReindexError) as info:
        read_vocab(write(tmp_path, "v.txt", content))
    assert str(info.value) == f"{tmp_path / message}"


@pytest.mark.parametrize("obj, fragment", [
    ({"a": 0, "b": 2}, "token 'b' has id 2; ids must be exactly 0..1"),
    ({"a": 0, "b": "1"}, "token 'b' has id '1'"),
    ({"a": 1, "b": 1}, "id 1 is given to both 'a' and 'b'"),
    ({"a\nb": 0}, "holds a line break"),
    ([1, 2], "expected a non-empty JSON object"),
])
def test_json_errors(tmp_path, obj, fragment):
    with pytest.raises(ReindexError, match=fragment):
        read_vocab(write(tmp_path, "vocab.json", json.dumps(obj)))


def test_json_duplicate_key_and_syntax(tmp_path):
    with pytest.raises(ReindexError, match=r"duplicate token 'a' \(ids 0 and 1\)"):
        read_vocab(write(tmp_path, "vocab.json", '{"a": 0, "a": 1}'))
    with pytest.raises(ReindexError, match=r"vocab.json:2: invalid JSON"):
        read_vocab(write(tmp_path, "vocab.json", '{"a": 0,\n}'))


def test_invalid_utf8_names_line(tmp_path):
    with pytest.raises(ReindexError, match=r"v.txt:2: invalid UTF-8 at byte 2"):
        read_vocab(write(tmp_path, "v.txt", b"a\n\xff\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ReindexError, match="no such file"):
        read_vocab(tmp_path / "nope.txt")


tokens = st.lists(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r\t"), min_size=1)
                  .filter(lambda t: t.strip() != ""), min_size=1, max_size=30, unique=True)


@given(tokens)
def test_round_trip_lines_and_json(tmp_path_factory, toks):
    tmp = tmp_path_factory.mktemp("v")
    toks = [t for t in toks if not t.startswith("\ufeff")] or ["x"]
    assert read_vocab(write(tmp, "v.txt", "".join(t + "\n" for t in toks))).tokens == toks
    assert read_vocab(write(tmp, "v.json", json.dumps({t: i for i, t in enumerate(toks)}))).tokens == toks
