"""Text vector files whose separators are not what GloVe and word2vec write: old-Mac CR-only line ends
and TABs standing where spaces should are refused with a hint, at the first line concerned, in every
text reader (GloVe, word2vec text, compressed or not, with or without a vocabulary to keep), never
read as something else. Through the CLI: one line, exit 1, nothing written."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from reindex.errors import ReindexError
from reindex.vectors import read_vectors

FILLER = "".join(f"w{i} 0.5 1.5 2.5\n" for i in range(3000))  # later lines reach the streaming parser


def _file(tmp: Path, text: str, *, header: bool, gz: bool) -> Path:
    data = ((f"{text.count(chr(10)) or 3} 3\n" if header else "") + text).encode()
    path = tmp / ("v.txt.gz" if gz else "v.txt")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("keep", [None, {"the", "cat"}])
def test_cr_only_line_ends_are_refused_with_a_hint(tmp_path, gz, header, keep):
    path = tmp_path / ("v.txt.gz" if gz else "v.txt")
    data = ((b"3 3\r" if header else b"") + b"the 1 2 3\rcat 4 5 6\rdog 7 8 9\r")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ReindexError, match=r"v\.txt(\.gz)?:1: lines end in a lone CR .*tr '\\r' '\\n'"):
        read_vectors(path, keep=keep)


def test_crlf_and_a_lone_cr_inside_a_token_still_read(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"the 1 2 3\r\ncat 4 5 6\r\n")
    assert read_vectors(path).tokens == ["the", "cat"]
    path.write_bytes(b"a\rb 1 2 3\ncat 4 5 6\n")
    assert read_vectors(path).tokens == ["a\rb", "cat"]


# lines where a TAB stands where a space should (between the token and its numbers, or between numbers)
TABBED = ["cat\t4 5 6", "cat 4\t5 6", "cat 4 5\t6", "cat\t4\t5\t6", "cat 4 5 6\t"]


@pytest.mark.parametrize("line", TABBED)
@pytest.mark.parametrize("at", ["line 2", "line 3002"])
@pytest.mark.parametrize("keep", [None, {"the", "cat"}])
@pytest.mark.parametrize("header", [False, True])
def test_tabs_between_numbers_are_refused_at_the_first_line_holding_one(tmp_path, line, at, keep, header):
    body = "the 1 2 3\n" + (FILLER if at == "line 3002" else "") + line + "\ndog 7\t8 9\n"
    path = _file(tmp_path, body, header=header, gz=False)
    number = (2 if at == "line 2" else 3002) + header
    with pytest.raises(ReindexError, match=rf"v\.txt:{number}: TABs and spaces mix as separators.*tr '\\t' ' '"):
        read_vectors(path, keep=keep)


def test_a_tab_inside_a_token_before_its_numbers_is_the_tokens(tmp_path):
    path = _file(tmp_path, "a\tb 1 2 3\n" + FILLER + "c\td 4 5 6\n", header=False, gz=False)
    table = read_vectors(path, keep={"a\tb", "c\td"})
    assert table.tokens == ["a\tb", "c\td"]
    np.testing.assert_array_equal(table.matrix, [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("data, message", [
    (b"the 1 2 3\rcat 4 5 6\r", r"v\.txt:1: lines end in a lone CR"),
    (b"the\t1 2 3\ncat 4 5 6\n", r"v\.txt:1: TABs and spaces mix"),
])
def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, data, message):
    from typer.testing import CliRunner

    from reindex.cli import app

    (tmp_path / "v.txt").write_bytes(data)
    (tmp_path / "vocab.txt").write_text("the\ncat\n")
    result = CliRunner().invoke(app, ["build", "--vocab", str(tmp_path / "vocab.txt"), "--vectors",
                                      str(tmp_path / "v.txt"), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1, result.stderr
    assert result.stderr.count("\n") == 1 and re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()
