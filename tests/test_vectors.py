"""reindex.vectors: by hand, against gensim's loader, Hypothesis round trips, exact errors, fuzz."""
from __future__ import annotations

import bz2
import gzip
import lzma
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reindex.errors import ReindexError
from reindex.vectors import Vectors, _open, detect_format, read_vectors

COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}
NA_WORDS = ["nan", "null", "NA", "None", "n/a", "NaN", "N/A", "#N/A", '"quoted', "'", "-inf"]


def text_bytes(tokens: list[str], matrix: np.ndarray, *, header: bool, trailing: str = "",
               newline: str = "\n") -> bytes:
    """GloVe (header=False) or word2vec text; numbers written with repr so float32 round-trips."""
    lines = [f"{len(tokens)} {matrix.shape[1]}"] if header else []
    for token, row in zip(tokens, matrix, strict=True):
        lines.append(token + " " + " ".join(repr(float(x)) for x in row) + trailing)
    return (newline.join(lines) + newline).encode("utf-8")


def binary_bytes(tokens: list[str], matrix: np.ndarray, *, newline: bool = True) -> bytes:
    """word2vec binary, as gensim writes it (a newline after each vector unless newline=False)."""
    out = [f"{len(tokens)} {matrix.shape[1]}\n".encode()]
    for token, row in zip(tokens, matrix, strict=True):
        out.append(token.encode("utf-8") + b" " + row.astype("<f4").tobytes() + (b"\n" if newline else b""))
    return b"".join(out)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- worked by hand -------------------------------------------------------------------------------

def test_glove_by_hand(tmp_path):
    path = write(tmp_path, "v.txt", b"the 1 2\nNew York 3 4 \r\nnan 5 6\n\nnull -1e-3 .5\n")
    v = read_vectors(path)
    assert v.tokens == ["the", "New York", "nan", "null"]
    assert v.matrix.tolist() == [[1, 2], [3, 4], [5, 6], [np.float32(-1e-3), 0.5]]
    assert (v.dim, v.format, v.num_read, v.num_duplicates) == (2, "glove", 4, 0)
    assert v.matrix.dtype == np.float32 and v.matrix.flags.c_contiguous


def test_word2vec_text_header_bom_and_keep(tmp_path):
    path = write(tmp_path, "v.vec", b"\xef\xbb\xbf3 2\nthe 1 2 \nNew York 3 4 \ncat 5 6 \n")
    v = read_vectors(path, keep={"cat", "New York", "absent"})
    assert v.tokens == ["New York", "cat"] and v.matrix.tolist() == [[3, 4], [5, 6]]
    assert (v.format, v.num_read) == ("word2vec-text", 3)


def test_binary_by_hand(tmp_path):
    m = np.array([[1, 2], [3, 4]], np.float32)
    for newline in (True, False):
        v = read_vectors(write(tmp_path, "v.bin", binary_bytes(["a", "ü"], m, newline=newline)))
        assert v.tokens == ["a", "ü"] and v.matrix.tolist() == m.tolist() and v.format == "word2vec-binary"


def test_detect_format():
    assert detect_format(b"the 0.1 0.2\n") == "glove"
    assert detect_format(b"2 2\nthe 0.1 0.2\n") == "word2vec-text"
    assert detect_format(b"2 2\nthe " + np.array([1, 2], "<f4").tobytes()) == "word2vec-binary"


def test_header_count_disagrees_is_reported_not_fatal(tmp_path):
    path = write(tmp_path, "v.vec", b"5 2\na 1 2\nb 3 4\n")
    with pytest.warns(UserWarning, match="header says 5 vectors but the file has 2"):
        v = read_vectors(path)
    assert v.tokens == ["a", "b"] and v.num_read == 2


def test_control_character_token_and_lone_cr(tmp_path):
    path = write(tmp_path, "v.txt", "a 1 2\n\x0b 3 4\n\x1c 5 6\nx\ry 7 8\n\x85 9 9\n\u2028 1 1\n".encode())
    v = read_vectors(path)
    assert v.tokens == ["a", "\x0b", "\x1c", "x\ry", "\x85", "\u2028"]
    assert v.matrix[:, 0].tolist() == [1, 3, 5, 7, 9, 1]


def test_many_blocks_match_one_block(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    tokens = [f"w{i}" if i % 7 != 3 else f"a b{i}" for i in range(300)]
    m = rng.standard_normal((300, 4)).astype(np.float32)
    path = write(tmp_path, "v.txt", text_bytes(tokens, m, header=False))
    monkeypatch.setattr(_open, "BLOCK_BYTES", 997)
    import reindex.vectors as vectors_module
    monkeypatch.setattr(vectors_module, "BLOCK_BYTES", 997)
    v = read_vectors(path)
    assert v.tokens == tokens and np.array_equal(v.matrix, m)


# --- gensim's own loader on gensim's own test files -----------------------------------------------

def gensim_files() -> list[Path]:
    gensim = pytest.importorskip("gensim")
    folder = Path(gensim.__file__).parent / "test" / "test_data"
    names = ["test_glove.txt", "euclidean_vectors.bin", "high_precision.kv.txt", "high_precision.kv.bin",
             "lee_fasttext.vec", "crime-and-punishment.vec", "poincare_vectors.bin"]
    return [folder / n for n in names if (folder / n).exists()]


@pytest.mark.parametrize("path", gensim_files(), ids=lambda p: p.name)
def test_same_as_gensim(path):
    from gensim.models import KeyedVectors

    binary = path.suffix == ".bin"
    expected = KeyedVectors.load_word2vec_format(str(path), binary=binary, no_header=path.name == "test_glove.txt")
    v = read_vectors(path)
    assert v.tokens == list(expected.index_to_key)
    np.testing.assert_array_equal(v.matrix, expected.vectors)


def test_gensim_files_gensim_itself_refuses():
    """Two of gensim's test files that its own loader cannot read: we read or refuse them, and say why."""
    folder = Path(pytest.importorskip("gensim").__file__).parent / "test" / "test_data"
    # Header says 3 vectors, the file holds 1: read, with the disagreement reported.
    with pytest.warns(UserWarning, match="the header says 3 vectors but the file has 1"):
        v = read_vectors(folder / "pretrained.vec")
    assert v.tokens == ["dummy"] and v.dim == 5 and v.num_read == 1
    # A Windows-1252 dash (byte 0x97) as a token: refused under strict, naming the line; read with replace.
    with pytest.raises(ReindexError, match=r"pang_lee_polarity_fasttext.vec:150: token b'\\x97' is not valid UTF-8"):
        read_vectors(folder / "pang_lee_polarity_fasttext.vec")
    v = read_vectors(folder / "pang_lee_polarity_fasttext.vec", unicode_errors="replace")
    assert len(v.tokens) == 1694 and v.dim == 100 and "\ufffd" in v.tokens


# --- Hypothesis round trips -------------------------------------------------------------------------

token_text = st.one_of(
    st.sampled_from(NA_WORDS + ["New York", "a  b", " lead", "é", "日本", "\x0b", "\x1c"]),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), min_size=1, max_size=8),
).filter(lambda t: not t.strip(" ").isdigit())  # a digit token alone could read as a header


@st.composite
def vector_sets(draw, binary=False):
    tokens = draw(st.lists(token_text.filter(lambda t: not binary or " " not in t), min_size=1, max_size=12,
                           unique=True))
    dim = draw(st.integers(1, 5))
    values = draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=len(tokens) * dim,
                           max_size=len(tokens) * dim))
    return tokens, np.array(values, np.float32).reshape(len(tokens), dim)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=vector_sets(), kind=st.sampled_from(["glove", "vec", "vec-trailing", "crlf"]),
       suffix=st.sampled_from(list(COMPRESS)))
def test_text_round_trip(tmp_path, data, kind, suffix):
    tokens, m = data
    if kind == "glove" and " " in tokens[0]:  # documented: line 1 gives the dimension, so no space
        tokens[0] = "\x00first"
    raw = text_bytes(tokens, m, header=kind != "glove", trailing=" " if kind == "vec-trailing" else "",
                     newline="\r\n" if kind == "crlf" else "\n")
    v = read_vectors(write(tmp_path, "v.txt" + suffix, COMPRESS[suffix](raw)))
    assert v.tokens == tokens and np.array_equal(v.matrix, m)
    assert v.format == ("glove" if kind == "glove" else "word2vec-text")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=vector_sets(binary=True), suffix=st.sampled_from(list(COMPRESS)), newline=st.booleans())
def test_binary_round_trip(tmp_path, data, suffix, newline):
    tokens, m = data
    tokens = [t.lstrip("\n") or "x" for t in tokens]
    if len(set(tokens)) != len(tokens):
        return
    v = read_vectors(write(tmp_path, "v.bin" + suffix, COMPRESS[suffix](binary_bytes(tokens, m, newline=newline))))
    assert v.tokens == tokens and np.array_equal(v.matrix, m) and v.format == "word2vec-binary"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=vector_sets(), chosen=st.data(), fmt=st.sampled_from(["vec", "bin"]))
def test_keep_selects_exactly(tmp_path, data, chosen, fmt):
    tokens, m = data
    if fmt == "bin":
        tokens = [t.replace(" ", "_").lstrip("\n") or "x" for t in tokens]
        if len(set(tokens)) != len(tokens):
            return
    keep = set(chosen.draw(st.lists(st.sampled_from(tokens)))) | {"not-in-file"}
    raw = text_bytes(tokens, m, header=True) if fmt == "vec" else binary_bytes(tokens, m)
    v = read_vectors(write(tmp_path, "v." + fmt, raw), keep=keep)
    expected = [i for i, t in enumerate(tokens) if t in keep]
    assert v.tokens == [tokens[i] for i in expected] and np.array_equal(v.matrix, m[expected])
    assert v.num_read == len(tokens)


# --- duplicates and unicode ---------------------------------------------------------------------------

def test_duplicates_first_last_error(tmp_path):
    path = write(tmp_path, "v.txt", b"a 1\nb 2\na 3\nc 4\nb 5\n")
    first = read_vectors(path)
    assert first.tokens == ["a", "b", "c"] and first.matrix[:, 0].tolist() == [1, 2, 4]
    assert first.num_duplicates == 2
    last = read_vectors(path, duplicates="last")
    assert last.tokens == ["a", "c", "b"] and last.matrix[:, 0].tolist() == [3, 4, 5]
    with pytest.raises(ReindexError) as e:
        read_vectors(path, duplicates="error")
    assert str(e.value) == (f"{path}: duplicate token 'a' at lines 1 and 3 "
                            "(pass --duplicates first (or last) to keep one)")


def test_duplicates_with_keep_count_only_kept(tmp_path):
    path = write(tmp_path, "v.txt", b"a 1\nb 2\na 3\nb 4\n")
    v = read_vectors(path, keep={"b"}, duplicates="last")
    assert v.tokens == ["b"] and v.matrix.tolist() == [[4]] and v.num_duplicates == 1


def test_unicode_errors_text(tmp_path):
    path = write(tmp_path, "v.txt", b"ok 1\nbad\xff 2\n\xe9t\xe9 3\n")
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value).startswith(f"{path}:2: token b'bad\\xff' is not valid UTF-8")
    assert "--unicode-errors replace" in str(e.value)
    assert read_vectors(path, unicode_errors="replace").tokens == ["ok", "bad\ufffd", "\ufffdt\ufffd"]
    assert read_vectors(path, unicode_errors="ignore").tokens == ["ok", "bad", "t"]
    assert read_vectors(path, unicode_errors="ignore", keep={"t"}).tokens == ["t"]


def test_binary_token_cut_mid_character(tmp_path):
    # word2vec's C tool cuts long tokens at a byte limit, splitting a UTF-8 character (gensim #567)
    raw = b"2 1\nab\xe6\x97 " + np.float32(1).tobytes() + b"\ncd " + np.float32(2).tobytes()
    path = write(tmp_path, "v.bin", raw)
    with pytest.raises(ReindexError, match=r"v\.bin: at byte 4: token b'ab\\xe6\\x97' is not valid UTF-8"):
        read_vectors(path)
    assert read_vectors(path, unicode_errors="ignore").tokens == ["ab", "cd"]


# --- bad input: one ReindexError naming the file and the line --------------------------------------

BAD_TEXT = [
    (b"a 1 2\nb 3\n", "2", "expected a token and 2 numbers, found 2 fields"),
    (b"a 1 2\nb 3 x\n", "2", "field b'x' is not a number"),
    (b"a 1 2\nb 3 nan\n", "2", "vector has nan at number 2"),
    (b"a 1 2\nb inf 3\n", "2", "vector has inf at number 1"),
    (b"a 1 2\nb 1e39 3\n", "2", "vector has inf at number 1"),
    (b"2 3\na 1 2\nb 1 2 3\n", "2", "dimension mismatch: the header says 3 but line 2 has 2 numbers"),
    (b"a 1 2\nb 3  4\n", "2", "is not a number"),
    (b"a\n", "1", "line 1 has no numbers after the token"),
]


@pytest.mark.parametrize("raw,line,message", BAD_TEXT)
def test_bad_text_names_file_and_line(tmp_path, raw, line, message):
    path = write(tmp_path, "bad.txt", raw)
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value).startswith(f"{path}:{line}: ") and message in str(e.value)


def test_exact_messages(tmp_path):
    path = write(tmp_path, "bad.txt", b"a 1 2\nb 3\n")
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value) == (f"{path}:2: expected a token and 2 numbers, found 2 fields "
                            "(every line needs 2 numbers (the dimension of line 1))")
    path = write(tmp_path, "empty.txt", b"\n \n")
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value) == f"{path}: empty file: no vectors (check the --vectors path)"


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_truncated_compressed_stream(tmp_path, suffix):
    raw = COMPRESS[suffix](text_bytes([f"w{i}" for i in range(500)], np.ones((500, 8), np.float32), header=False))
    path = write(tmp_path, "v.txt" + suffix, raw[:len(raw) // 2])
    kind = dict(gz="gzip").get(suffix[1:], suffix[1:])
    with pytest.raises(ReindexError, match=f"truncated or corrupt {kind} stream"):
        read_vectors(path)


def test_truncated_binary(tmp_path):
    raw = binary_bytes(["a", "b"], np.ones((2, 4), np.float32))
    path = write(tmp_path, "v.bin", raw[:-7])
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value) == (f"{path}: at byte 23: truncated binary file: record 2 needs 16 bytes of vector, "
                            "only 10 left (the file was cut short; download it again)")


def test_nan_in_binary_names_offset(tmp_path):
    path = write(tmp_path, "v.bin", binary_bytes(["a", "b"], np.array([[1], [np.nan]], np.float32)))
    with pytest.raises(ReindexError, match=r"at byte \d+: vector has nan"):
        read_vectors(path)


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(ReindexError, match="cannot open vector file"):
        read_vectors(tmp_path / "nope.txt")
    with pytest.raises(ReindexError, match="unknown vector format"):
        read_vectors(tmp_path / "nope.txt", format="fasttext")


# --- fuzz: whatever the bytes, only ReindexError ------------------------------------------------------

SEEDS = [b"3 2\na 1 2\nb 3 4\nc 5 6\n", b"a 1.5 -2\nNew York 3 4\n",
         binary_bytes(["a", "b"], np.array([[1, 2], [3, 4]], np.float32))]


@pytest.mark.slow   # 300 damaged files; the fast loop fuzzes every reader in test_readers_fuzz.py
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), edits=st.lists(st.tuples(st.integers(0, 60), st.binary(max_size=3)), max_size=4),
       cut=st.integers(0, 80), suffix=st.sampled_from(list(COMPRESS)), noise=st.binary(max_size=40),
       fmt=st.sampled_from([None, None, "glove", "word2vec-text", "word2vec-binary"]))
def test_fuzz_only_reindex_error(tmp_path, seed, edits, cut, suffix, noise, fmt):
    data = bytearray(seed)
    for at, new in edits:
        data[at:at + len(new)] = new
    raw = COMPRESS[suffix](bytes(data[:cut] + noise if noise else data))
    if suffix and edits:
        raw = raw[:max(1, len(raw) - edits[0][0])]
    path = write(tmp_path, "f" + suffix, raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = read_vectors(path, format=fmt)
        except ReindexError:
            return
    assert isinstance(v, Vectors) and v.matrix.shape == (len(v.tokens), v.dim)
    assert np.isfinite(v.matrix).all()


def test_import_stays_light():
    import subprocess
    import sys

    code = "import sys, reindex.vectors; print(sorted(m for m in ('pyarrow', 'gensim') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- readers refuse what they cannot read correctly, and read what they can -------------

def zstd_compress(raw: bytes) -> bytes:
    import pyarrow as pa

    return pa.compress(raw, codec="zstd", asbytes=True)


HEADERS_REFUSED = [
    (b"0 0\nthe 1 2\ncat 3 4\n", "its dimension 0 is not positive"),
    (b"-3 3\nthe 1 2 3\ncat 3 4 5\n", "its count -3 is negative"),
    (b"3 -3\nthe 1 2 3\n", "its dimension -3 is not positive"),
    (b"99999999999999999999 3\nthe 1 2 3\n", "larger than 2^63 - 1"),
    (b"0 3\nthe 1 2 3\ncat 3 4 5\n", "the header says 0 vectors but the file holds 2"),
]


@pytest.mark.parametrize("raw,message", HEADERS_REFUSED, ids=lambda x: x[:12] if isinstance(x, bytes) else None)
@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_vec_header_counts_checked(tmp_path, raw, message, suffix):
    """A `.vec` header of 0, a negative or a huge count never drops real vectors silently."""
    data = zstd_compress(raw) if suffix == ".zst" else COMPRESS.get(suffix, lambda b: b)(raw)
    path = write(tmp_path, "v.vec" + suffix, data)
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value).startswith(f"{path}:1: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_vec_header_zero_without_vectors_is_an_empty_file(tmp_path):
    v = read_vectors(write(tmp_path, "v.vec", b"0 3\n"))
    assert v.tokens == [] and v.matrix.shape == (0, 3) and v.num_read == 0


def test_header_shaped_first_line_read_as_glove_when_asked(tmp_path):
    v = read_vectors(write(tmp_path, "v.txt", b"0 0\n1 1\n"), format="glove")
    assert v.tokens == ["0", "1"] and v.matrix.tolist() == [[0], [1]]


def _binary_with_short_record(short: int) -> tuple[bytes, int]:
    """Records a, b, c, d of dim 4; record `short` (1-based) lacks its last float. Returns (bytes, its offset)."""
    out, offsets = [b"4 4\n"], []
    for i, token in enumerate([b"a", b"b", b"c", b"d"], 1):
        offsets.append(sum(map(len, out)))
        vector = np.arange(4 * i, 4 * i + 4, dtype="<f4").tobytes()
        out.append(token + b" " + (vector[:-4] if i == short else vector) + b"\n")
    return b"".join(out), offsets


@pytest.mark.parametrize("short", [2, 3])
def test_binary_record_one_float_short_names_record_and_byte(tmp_path, short):
    raw, offsets = _binary_with_short_record(short)
    path = write(tmp_path, "v.bin", raw)
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    message = str(e.value)
    assert message.startswith(f"{path}: at byte ")
    assert f"record {short} is shorter or longer" in message or f"record {short + 1}" in message
    assert "--format " not in message  # only options that exist (--vectors-format)


def test_binary_one_float_short_by_hand(tmp_path):
    raw, offsets = _binary_with_short_record(2)
    path = write(tmp_path, "v.bin", raw)
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    # record 2 takes 4 bytes of record 3 ("\nc " and one byte of c's first float); record 3 is then
    # looked for after that and does not start on a new line
    assert str(e.value) == (f"{path}: at byte {offsets[2] + 3}: record 3 does not start on a new line as the "
                            "records before it do: record 2 is shorter or longer than a token, a space and 16 bytes "
                            "(the file is damaged (a record one number short or long); export it again)")


def test_binary_must_end_after_its_records(tmp_path):
    m = np.ones((3, 2), np.float32)
    raw = binary_bytes(["a", "b", "c"], m)
    more = write(tmp_path, "more.bin", raw.replace(b"3 2\n", b"2 2\n", 1))
    with pytest.raises(ReindexError, match=r"more\.bin: at byte \d+: the header says 2 vectors but record 3 follows"):
        read_vectors(more)
    fewer = write(tmp_path, "fewer.bin", raw.replace(b"3 2\n", b"4 2\n", 1))
    with pytest.raises(ReindexError,
                       match=r"fewer\.bin: at byte \d+: the header says 4 vectors but the file ends after 3"):
        read_vectors(fewer)
    assert read_vectors(write(tmp_path, "ok.bin", raw)).tokens == ["a", "b", "c"]


@pytest.mark.parametrize("kind", ["glove", "vec", "bin"])
def test_zstd_through_every_reader(tmp_path, kind):
    tokens = ["the", "New York", "cat"] if kind != "bin" else ["the", "New_York", "cat"]
    m = np.arange(9, dtype=np.float32).reshape(3, 3)
    raw = binary_bytes(tokens, m) if kind == "bin" else text_bytes(tokens, m, header=kind == "vec")
    path = write(tmp_path, "v.data", zstd_compress(raw))  # found from the magic bytes, not the suffix
    v = read_vectors(path)
    assert v.tokens == tokens and np.array_equal(v.matrix, m)
    assert read_vectors(path, keep={"cat"}).tokens == ["cat"]


def test_zstd_made_by_the_zstd_tool(tmp_path):
    import shutil
    import subprocess

    assert shutil.which("zstd") is not None, "the zstd tool is needed (apt-get install zstd; `make test` installs it)"
    raw = text_bytes([f"w{i}" for i in range(3000)], np.ones((3000, 5), np.float32), header=False)
    plain = write(tmp_path, "v.txt", raw)
    subprocess.run(["zstd", "-q", "-19", str(plain), "-o", str(tmp_path / "v.txt.zst")], check=True)
    v = read_vectors(tmp_path / "v.txt.zst")
    assert v.tokens == [f"w{i}" for i in range(3000)] and v.matrix.shape == (3000, 5)


def test_truncated_zstd(tmp_path):
    raw = zstd_compress(text_bytes([f"w{i}" for i in range(500)], np.ones((500, 8), np.float32), header=False))
    with pytest.raises(ReindexError, match="truncated or corrupt zstd stream"):
        read_vectors(write(tmp_path, "v.txt.zst", raw[:len(raw) // 2]))


def _tar(tmp_path: Path, inner: bytes, mode: str) -> Path:
    import io
    import tarfile

    path = tmp_path / ("v.tar" + {"w": "", "w:gz": ".gz"}[mode])
    with tarfile.open(path, mode) as tar:
        info = tarfile.TarInfo("glove.txt")
        info.size = len(inner)
        tar.addfile(info, io.BytesIO(inner))
    return path


def test_archives_refused_with_a_hint_to_extract(tmp_path):
    import zipfile

    inner = b"the 1 2\ncat 3 4\n"
    with zipfile.ZipFile(tmp_path / "glove.zip", "w") as z:
        z.writestr("glove.txt", inner)
    cases = [(tmp_path / "glove.zip", "this is a zip archive", "unzip"),
             (_tar(tmp_path, inner, "w"), "this is a tar archive", "tar -xf"),
             (_tar(tmp_path, inner, "w:gz"), "this is a gzip-compressed tar archive", "tar -xf")]
    for path, what, hint in cases:
        for fmt in (None, "glove", "word2vec-binary"):
            with pytest.raises(ReindexError) as e:
                read_vectors(path, format=fmt)
            assert str(e.value).startswith(f"{path}: at byte 0: {what}, not a vector file") and hint in str(e.value)


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_glove_first_line_token_with_a_space(tmp_path, suffix):
    raw = b"New York 1 2 3\nthe 4 5 6\ncat 7 8 9\n"
    v = read_vectors(write(tmp_path, "v.txt" + suffix, COMPRESS[suffix](raw)))
    assert v.tokens == ["New York", "the", "cat"] and v.dim == 3
    assert v.matrix.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    path = write(tmp_path, "k.txt" + suffix, COMPRESS[suffix](raw))
    assert read_vectors(path, keep={"New York"}).tokens == ["New York"]


def test_dimension_from_most_lines_not_line_one(tmp_path):
    """Line 1 with a two-word token (4 fields) gives way to the 3 numbers of the other lines."""
    raw = b"San Jose 7 1 2\nthe 4 5 6\ncat 7 8 9\ndog 1 1 1\n"
    v = read_vectors(write(tmp_path, "v.txt", raw))
    assert v.tokens == ["San Jose", "the", "cat", "dog"] and v.dim == 3 and v.matrix[0].tolist() == [7, 1, 2]
    path = write(tmp_path, "bad.txt", b"the 1 2 3\ncat 1 2\ndog 1 2 3\n")
    with pytest.raises(ReindexError) as e:
        read_vectors(path)
    assert str(e.value) == (f"{path}:2: expected a token and 3 numbers, found 3 fields "
                            "(every line needs 3 numbers (the dimension of line 1))")


@pytest.mark.slow   # the reader on a 2 MB line: 1-4 s per case
@pytest.mark.parametrize("keep,block", [(None, None), ({"big"}, None), (None, 1 << 16)])
def test_a_line_of_2_megabytes(tmp_path, monkeypatch, keep, block):
    """Dimension 100,000: one line is longer than pyarrow's block and (with `block`) than ours."""
    if block:
        import reindex.vectors as vectors_module
        monkeypatch.setattr(vectors_module, "BLOCK_BYTES", block)
    dim = 100_000
    rng = np.random.default_rng(0)
    m = rng.uniform(-1, 1, (2, dim)).astype(np.float32)
    raw = text_bytes(["big", "small"], m, header=False)
    assert raw.index(b"\n") > 1_900_000  # about 2 MB: the reported 2.3 MB line had longer numbers
    v = read_vectors(write(tmp_path, "v.txt", raw), keep=keep)
    assert v.dim == dim and v.tokens == (["big", "small"] if keep is None else ["big"])
    assert np.array_equal(v.matrix, m[:len(v.tokens)])


def test_messages_name_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "bad.vec", b"-3 3\nthe 1 2 3\n")
    with pytest.raises(ReindexError) as e:
        read_vectors("bad.vec")
    assert str(e.value).startswith("bad.vec:1: ")


def test_digest_is_the_sha256_of_the_file(tmp_path):
    import hashlib

    from reindex.vectors import FileDigest

    raw = text_bytes([f"w{i}" for i in range(2000)], np.ones((2000, 4), np.float32), header=False)
    for suffix, data in [("", raw), (".gz", gzip.compress(raw)), (".zst", zstd_compress(raw)),
                         (".bin", binary_bytes(["a", "b"], np.ones((2, 4), np.float32)))]:
        path = write(tmp_path, "v" + suffix, data)
        for keep in (None, {"w3"}):
            digest = FileDigest()
            read_vectors(path, keep=keep, digest=digest)
            assert digest.complete and digest.record() == {"size": len(data),
                                                           "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("kind", ["glove", "vec", "bin"])
@pytest.mark.parametrize("compress", ["", "gzip", "zstd"])
def test_build_reads_every_format_compressed_and_hashes_it_in_one_pass(tmp_path, kind, compress):
    """Compressed inputs go through `build`; the manifest's sha256 is the file's, hashed while parsed."""
    import hashlib
    import json

    from reindex.commands.build import build
    from reindex.commands.verify import verify_run

    tokens = ["the", "cat", "dog", "unused"]
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    raw = binary_bytes(tokens, m) if kind == "bin" else text_bytes(tokens, m, header=kind == "vec")
    data = {"": raw, "gzip": gzip.compress(raw), "zstd": zstd_compress(raw)}[compress]
    vectors = write(tmp_path, "vectors.data", data)
    vocab = write(tmp_path, "vocab.txt", b"<pad>\nthe\ncat\ndog\nxyzzy\n")
    result = build(vocab=vocab, vectors=vectors, out=tmp_path / "run", pad="<pad>", init="zeros")
    assert result.counts["fixed"] == 4 and result.counts["trainable"] == 1
    assert result.run.fixed[1:].tolist() == m[:3].tolist()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["inputs"]["vectors"] == {"path": str(vectors), "size": len(data),
                                             "sha256": hashlib.sha256(data).hexdigest()}
    assert verify_run(tmp_path / "run") == []
