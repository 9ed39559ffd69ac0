"""A word2vec binary written with big-endian floats (gensim and the word2vec tool define no such option)
is refused naming the file, the byte of the first vector and the fix, instead of being read as denormal
or huge garbage; little-endian files of any plausible values, all-zero rows included, still read."""
from __future__ import annotations

import numpy as np
import pytest

from reindex.errors import ReindexError
from reindex.vectors import read_vectors

TOKENS = ["<pad>", "the", "cat"] + [f"w{i}" for i in range(200)]


def _binary(matrix: np.ndarray, dtype: str) -> bytes:
    head = f"{len(TOKENS)} {matrix.shape[1]}\n".encode()
    return head + b"".join(t.encode() + b" " + row.astype(dtype).tobytes() + b"\n"
                           for t, row in zip(TOKENS, matrix, strict=True))


@pytest.mark.parametrize("scale", [1e-3, 0.3, 1.0, 50.0])
@pytest.mark.parametrize("keep", [None, {"the", "cat"}])
def test_big_endian_floats_are_refused_with_the_byteswap_hint(tmp_path, scale, keep):
    matrix = np.random.default_rng(0).normal(0, scale, (len(TOKENS), 50)).astype(np.float32)
    path = tmp_path / "v.bin"
    path.write_bytes(_binary(matrix, ">f4"))
    first = len(f"{len(TOKENS)} 50\n<pad> ")
    with pytest.raises(ReindexError, match=rf"v\.bin: at byte {first}: the floats look big-endian.*byteswap"):
        read_vectors(path, keep=keep)
    path.write_bytes(_binary(matrix, "<f4"))  # the same values as word2vec writes them
    np.testing.assert_array_equal(read_vectors(path).matrix, matrix)


def test_zero_rows_and_ones_read_as_written(tmp_path):
    matrix = np.zeros((len(TOKENS), 8), np.float32)
    matrix[1] = 1.0
    path = tmp_path / "v.bin"
    path.write_bytes(_binary(matrix, "<f4"))
    np.testing.assert_array_equal(read_vectors(path).matrix, matrix)


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from reindex.cli import app

    matrix = np.random.default_rng(1).normal(0, 0.3, (len(TOKENS), 20)).astype(np.float32)
    (tmp_path / "v.bin").write_bytes(_binary(matrix, ">f4"))
    (tmp_path / "vocab.txt").write_text("the\ncat\n")
    result = CliRunner().invoke(app, ["build", "--vocab", str(tmp_path / "vocab.txt"), "--vectors",
                                      str(tmp_path / "v.bin"), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "big-endian" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
