"""Bad and odd inputs to every command, as a table, each run through the real CLI on `tmp_path`.

Every case ends in one of two outcomes:
- a correct result, checked by hand (`Ok(check)`), or
- a refusal (`Refused(code, *where)`): exit code 1 (2 for bad usage), exactly one error line on
  stderr, `reindex: error: ...`, the last one (progress notes like `read 5 vocabulary tokens` may
  come before it), containing each `where` pattern (the file name and the line or position); no
  traceback; and nothing written: no `--out`, no `.NAME.tmp-*` sibling.

docs/robustness.md lists every case and its outcome.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from reindex.run import load_run

VOCAB = ["<pad>", "the", "cat", "dog", "xyzzy"]
VECS = {"the": [1.0, 2.0, 3.0], "cat": [0.5, -1.0, 2.5], "dog": [-2.0, 0.25, 1.0], "unused": [9.0, 9.0, 9.0]}


# ---------------------------------------------------------------- helpers that write inputs

def write_vocab(path: Path, tokens: list[str] = VOCAB) -> Path:
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def glove_bytes(vectors: dict[str, list[float]], *, eol: str = "\n") -> bytes:
    return "".join(f"{t} {' '.join(repr(v) for v in vec)}{eol}" for t, vec in vectors.items()).encode()


def w2v_binary(vectors: dict[str, list[float]]) -> bytes:
    dim = len(next(iter(vectors.values())))
    body = b"".join(t.encode() + b" " + struct.pack(f"<{dim}f", *v) + b"\n" for t, v in vectors.items())
    return f"{len(vectors)} {dim}\n".encode() + body


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def build_args(tmp: Path, vectors: Path, *data: Path, vocab: Path | None = None, extra: tuple = ()) -> list:
    vocab = vocab or write_vocab(tmp / "vocab.txt")
    return ["build", "--vocab", vocab, "--vectors", vectors, "--out", tmp / "run", "-q", *extra, *data]


def base_run(tmp: Path, *, name: str = "base", extra: tuple = ()) -> Path:
    """A complete run (vocab VOCAB, vectors VECS) built through the library, outside the table's --out."""
    from reindex.commands.build import build

    write_vocab(tmp / "vocab.txt")
    write(tmp / "vectors.txt", glove_bytes(VECS))
    build(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", out=tmp / name, init="zeros", **dict(extra))
    return tmp / name


def vector(run_dir: Path, token: str) -> list[float] | None:
    """The fixed vector of `token` in a run, or None if it is trainable."""
    run = load_run(run_dir)
    s = run.tokens.index(token)
    return run.fixed[s].tolist() if s < run.num_fixed else None


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


# ---------------------------------------------------------------- the table

@dataclass
class Ok:
    check: Callable[[Path], None]      # receives tmp; the output is tmp / "run" unless the case says


class Refused:
    def __init__(self, code: int, *where: str) -> None:
        self.code = code
        self.where = where             # regexes the error line must contain


@dataclass
class Case:
    id: str
    setup: Callable[[Path], list]       # writes inputs into tmp, returns the CLI arguments
    outcome: Ok | Refused
    out: str = "run"                    # the output path (relative to tmp) that must not appear
    out_exists: bool = False            # the output existed before: it must be left untouched
    marks: tuple = ()


CASES: list[Case] = []


def case(id: str, outcome: Ok | Refused, **kwargs) -> Callable:
    def register(setup: Callable[[Path], list]) -> Callable:
        CASES.append(Case(id, setup, outcome, **kwargs))
        return setup
    return register


def ok(check: Callable[[Path], None]) -> Ok:
    return Ok(check)


# ---- vector files: odd but valid -> a correct result

def _has_vectors(expected: dict[str, list[float]], *, trainable: tuple[str, ...] = ("<pad>", "xyzzy"),
                 run: str = "run") -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        for token, vec in expected.items():
            assert vector(tmp / run, token) == pytest.approx(vec), token
        for token in trainable:
            assert vector(tmp / run, token) is None, token
    return check


THREE = {k: VECS[k] for k in ("the", "cat", "dog")}


@case("glove tokens with spaces", ok(_has_vectors({"new york": [1.0, 0.0, -1.0], "the": VECS["the"]},
                                                  trainable=("xyzzy",))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", ["<pad>", "the", "new york", "xyzzy"])
    vectors = write(tmp / "v.txt", "the 1.0 2.0 3.0\nnew york 1.0 0.0 -1.0\n<pad> 5 5 5\n")
    return build_args(tmp, vectors, vocab=vocab, extra=("--pad", "<pad>"))


@case("CRLF line endings (vectors and vocab)", ok(_has_vectors(THREE)))
def _(tmp):
    vocab = write(tmp / "vocab.txt", "".join(t + "\r\n" for t in VOCAB))
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(THREE, eol="\r\n")), vocab=vocab)


@case("UTF-8 byte order mark (vectors and vocab)", ok(_has_vectors(THREE)))
def _(tmp):
    vocab = write(tmp / "vocab.txt", "\ufeff" + "".join(t + "\n" for t in VOCAB))
    return build_args(tmp, write(tmp / "v.txt", b"\xef\xbb\xbf" + glove_bytes(THREE)), vocab=vocab)


NANS = ["nan", "null", "NA", "None", "n/a", "NaN", "#N/A", "inf", "-"]


@case("words nan/null/NA/None/n/a are tokens, not missing values",
      ok(_has_vectors({w: [float(i), 1.0, 2.0] for i, w in enumerate(NANS)}, trainable=("xyzzy",))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", NANS + ["xyzzy"])
    vectors = write(tmp / "v.txt", "".join(f"{w} {i} 1 2\n" for i, w in enumerate(NANS)))
    return build_args(tmp, vectors, vocab=vocab)


@case(".vec header count larger than the lines", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.vec", b"10 3\n" + glove_bytes(THREE)))


@case(".vec header count smaller than the lines", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.vec", b"1 3\n" + glove_bytes(THREE)))


@case("trailing spaces and a last line without newline", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", "the 1.0 2.0 3.0  \ncat 0.5 -1.0 2.5 \ndog -2.0 0.25 1.0"))


@case("more fields than the dimension: the extra ones belong to the token (parsed from the right)",
      ok(_has_vectors({"the": [1.0, 2.0], "cat 1": [2.0, 3.0]}, trainable=("cat", "xyzzy"))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", ["the", "cat", "cat 1", "xyzzy"])
    return build_args(tmp, write(tmp / "v.txt", b"the 1 2\ncat 1 2 3\n"), vocab=vocab)


@case("damage on a line of a token outside the vocabulary is not looked at", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(THREE) + b"zebra 1 x 3\nzulu 1 2\n"))


def _all_trainable(tmp: Path) -> None:
    counts = manifest(tmp / "run")["counts"]
    assert (counts["fixed"], counts["trainable"], counts["vectors_read"]) == (0, len(VOCAB), 0)


@case("a .vec with a header and no vectors: everything trainable", ok(_all_trainable))
def _(tmp):
    return build_args(tmp, write(tmp / "v.vec", b"0 3\n"))


@case("no vector for any vocabulary token: everything trainable", ok(lambda tmp: _no_overlap(tmp)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", b"zebra 1 2 3\nzulu 4 5 6\n"))


def _no_overlap(tmp: Path) -> None:
    counts = manifest(tmp / "run")["counts"]
    assert (counts["fixed"], counts["trainable"], counts["vectors_read"]) == (0, len(VOCAB), 2)


def _duplicates(winner: list[float]) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert vector(tmp / "run", "the") == winner
        assert manifest(tmp / "run")["counts"]["duplicate_vectors_skipped"] == 1
    return check


DUPLICATED = "the 1 2 3\ncat 0.5 -1 2.5\nthe 7 8 9\n"


@case("duplicate vectors, --duplicates first (default)", ok(_duplicates([1.0, 2.0, 3.0])))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", DUPLICATED))


@case("duplicate vectors, --duplicates last", ok(_duplicates([7.0, 8.0, 9.0])))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", DUPLICATED), extra=("--duplicates", "last"))


@case("duplicate vectors, --duplicates error", Refused(1, r"v\.txt", r"\b1\b", r"\b3\b", "duplicate"))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", DUPLICATED), extra=("--duplicates", "error"))


@case("duplicate vectors of a token not in the vocabulary are not an error", ok(_has_vectors(THREE)))
def _(tmp):
    text = glove_bytes(THREE) + b"zebra 1 1 1\nzebra 2 2 2\n"
    return build_args(tmp, write(tmp / "v.txt", text), extra=("--duplicates", "error"))


@case("gzip vectors", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt.gz", gzip.compress(glove_bytes(VECS))))


@case("bz2 vectors", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt.bz2", bz2.compress(glove_bytes(VECS))))


@case("xz vectors", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt.xz", lzma.compress(glove_bytes(VECS))))


@case("gzip .vec with a header, misleading suffix (.dat)", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.dat", gzip.compress(b"4 3\n" + glove_bytes(VECS))))


@case("word2vec binary", ok(_has_vectors(THREE)))
def _(tmp):
    return build_args(tmp, write(tmp / "v.bin", w2v_binary(VECS)))


@case("word2vec binary, gzip compressed, rows without newline", ok(_has_vectors(THREE)))
def _(tmp):
    body = b"".join(t.encode() + b" " + struct.pack("<3f", *v) for t, v in VECS.items())
    return build_args(tmp, write(tmp / "v.bin.gz", gzip.compress(b"4 3\n" + body)))


@case("a control character and U+2028 as tokens (glove.twitter)",
      ok(_has_vectors({"\x1c": [1.0, 1.0, 1.0], "a\u2028b": [2.0, 2.0, 2.0]}, trainable=("xyzzy",))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", ["\x1c", "a\u2028b", "xyzzy"])
    return build_args(tmp, write(tmp / "v.txt", "\x1c 1 1 1\na\u2028b 2 2 2\n"), vocab=vocab)


@case("invalid UTF-8 with --unicode-errors replace", ok(_has_vectors({"caf\ufffd": [4.0, 5.0, 6.0]},
                                                                      trainable=("xyzzy",))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", ["the", "caf\ufffd", "xyzzy"])
    vectors = write(tmp / "v.txt", b"the 1 2 3\ncaf\xe9 4 5 6\n")
    return build_args(tmp, vectors, vocab=vocab, extra=("--unicode-errors", "replace"))


@case("a multibyte character cut in half in word2vec binary, --unicode-errors ignore",
      ok(_has_vectors({"caf": [4.0, 5.0, 6.0]}, trainable=("xyzzy",))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", ["the", "caf", "xyzzy"])
    body = b"the " + struct.pack("<3f", 1, 2, 3) + b"\ncaf\xc3 " + struct.pack("<3f", 4, 5, 6) + b"\n"
    return build_args(tmp, write(tmp / "v.bin", b"2 3\n" + body), vocab=vocab,
                      extra=("--unicode-errors", "ignore"))


# ---- vocabularies: odd but valid

@case("vocab.json (Hugging Face)", ok(lambda tmp: (
    _has_vectors(THREE)(tmp),
    # original ids come from the JSON values, not the key order
    np.testing.assert_array_equal(load_run(tmp / "run").original_tokens, ["<pad>", "the", "cat", "dog", "xyzzy"]))))
def _(tmp):
    vocab = write(tmp / "vocab.json", json.dumps({"cat": 2, "<pad>": 0, "xyzzy": 4, "the": 1, "dog": 3}))
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)), vocab=vocab)


@case("token<TAB>count vocabulary, a token with a space", ok(lambda tmp: (
    _has_vectors(THREE, trainable=("a b",))(tmp),
    np.testing.assert_array_equal(load_run(tmp / "run").original_tokens, ["the", "cat", "dog", "a b"]))))
def _(tmp):
    vocab = write(tmp / "vocab.txt", "the\t10\ncat\t5\ndog\t3\na b\t1\n")
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)), vocab=vocab)


# ---- datasets: odd but valid

@case("--id-dtype int32 on an int64 .npy", ok(lambda tmp: (
    np.testing.assert_array_equal(np.load(tmp / "run" / "data" / "ids.npy"),
                                  load_run(tmp / "run").original_to_sorted[[[1, 2], [3, 4]]]),
    _dtype_is(tmp / "run" / "data" / "ids.npy", np.int32))))
def _(tmp):
    np.save(tmp / "ids.npy", np.array([[1, 2], [3, 4]], np.int64))
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)), tmp / "ids.npy", extra=("--id-dtype", "int32"))


def _dtype_is(path: Path, dtype) -> None:
    assert np.load(path).dtype == dtype


BIG = [f"w{i}" for i in range(40_000)]


@case("int16 .npy with a vocabulary > 32768 and --id-dtype int32: widened on request", ok(lambda tmp: (
    _dtype_is(tmp / "run" / "data" / "ids.npy", np.int32),
    np.testing.assert_array_equal(np.load(tmp / "run" / "data" / "ids.npy"),
                                  load_run(tmp / "run").original_to_sorted[[0, 5, 32767]]))))
def _(tmp):
    vocab = write_vocab(tmp / "vocab.txt", BIG)
    np.save(tmp / "ids.npy", np.array([0, 5, 32767], np.int16))
    vectors = write(tmp / "v.txt", "w39999 1 2 3\nw5 1 1 1\n")
    return build_args(tmp, vectors, tmp / "ids.npy", vocab=vocab, extra=("--id-dtype", "int32"))


@case("Parquet list column with null rows and null ids: nulls stay null", ok(lambda tmp: _parquet_nulls(tmp)))
def _(tmp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"input_ids": pa.array([[1, 2], None, [3, None, 4]], pa.list_(pa.int32())),
                      "label": [0, 1, 2]})
    pq.write_table(table, tmp / "train.parquet")
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)), tmp / "train.parquet")


def _parquet_nulls(tmp: Path) -> None:
    import pyarrow.parquet as pq

    s = load_run(tmp / "run").original_to_sorted.tolist()
    got = pq.read_table(tmp / "run" / "data" / "train.parquet")
    assert got["input_ids"].to_pylist() == [[s[1], s[2]], None, [s[3], None, s[4]]]
    assert got["label"].to_pylist() == [0, 1, 2]


# ---- vector files: refused

def vectors_refused(id: str, name: str, data: bytes | None, *where: str, extra: tuple = (), code: int = 1,
                    **kw) -> None:
    def setup(tmp):
        return build_args(tmp, tmp / name if data is None else write(tmp / name, data), extra=extra)
    CASES.append(Case(id, setup, Refused(code, re.escape(name), *where), **kw))


vectors_refused("a vector line with too few numbers", "v.txt", b"the 1 2 3\ncat 1 2\ndog 1 2 3\n", r":2\b")
vectors_refused("a line with only a token", "v.txt", b"the 1 2 3\ncat 1 2 3\ndog\n", r":3\b")
vectors_refused("a line with only a token, CRLF", "v.txt", b"the 1 2 3\r\ncat 1 2 3\r\ndog\r\n", r":3\b")

vectors_refused("a non-numeric field", "v.txt", b"the 1 2 3\ncat 1 x 3\n", r":2\b")

vectors_refused("NaN in a vector", "v.txt", b"the 1 2 3\ncat 1 nan 3\n", r":2\b")
vectors_refused("Inf in a vector", "v.txt", b"the 1 2 3\ncat 1 2 3\ndog -inf 2 3\n", r":3\b")
vectors_refused("a float32 overflow (1e39) in a vector", "v.txt", b"the 1 2 3\ncat 1 1e39 3\n", r":2\b")
vectors_refused("an empty vector file", "v.txt", b"")

vectors_refused("a .vec header with the wrong dimension", "v.vec", b"3 4\n" + glove_bytes(THREE), r":2\b")
vectors_refused("a truncated gzip", "v.txt.gz", gzip.compress(glove_bytes(VECS) * 50)[:-30], "gzip")
vectors_refused("a truncated bz2", "v.txt.bz2", bz2.compress(glove_bytes(VECS) * 50)[:-30], "bz2")
vectors_refused("a truncated word2vec binary", "v.bin", w2v_binary(VECS)[:-7], r"(line|offset|byte|row|at)")
vectors_refused("invalid UTF-8 in vectors (strict)", "v.txt", b"the 1 2 3\ncaf\xe9 4 5 6\n", r":2\b",
                "unicode-errors")
vectors_refused("a binary file that is no vector file (PNG)", "v.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
vectors_refused("--vectors that does not exist", "missing.txt", None, "no such file")


# ---- vocabularies: refused

def vocab_refused(id: str, name: str, data: bytes | str, *where: str, code: int = 1) -> None:
    def setup(tmp):
        return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)), vocab=write(tmp / name, data))
    CASES.append(Case(id, setup, Refused(code, re.escape(name), *where)))


vocab_refused("a vocabulary with a duplicate (names both lines)", "vocab.txt", "a\nthe\nb\nthe\n", r":4\b",
              r"line 2")
vocab_refused("a vocabulary with a blank line", "vocab.txt", "a\nthe\n\nb\n", r":3\b")
vocab_refused("a vocabulary with a whitespace-only line", "vocab.txt", "a\n \t \nb\n", r":2\b")
vocab_refused("an empty vocabulary", "vocab.txt", "")
vocab_refused("invalid UTF-8 in the vocabulary", "vocab.txt", b"a\nb\ncaf\xe9\n", r":3\b")
vocab_refused("token<TAB>count with a line missing its count", "vocab.txt", "a\t3\nb\t2\nc\n", r":3\b")
vocab_refused("JSON ids not 0..V-1 (a gap)", "vocab.json", '{"a": 0, "b": 2}', "'b'", r"\b2\b")
vocab_refused("JSON ids not 0..V-1 (one id twice)", "vocab.json", '{"a": 0, "b": 0}', "'a'", "'b'")
vocab_refused("JSON id that is a float", "vocab.json", '{"a": 0, "b": 1.0}', "'b'")
vocab_refused("JSON with a duplicate key", "vocab.json", '{"a": 0, "b": 1, "a": 2}', "'a'")
vocab_refused("invalid JSON (names the line)", "vocab.json", '{"a": 0,\n "b": 1,\n}', r":3\b")


# ---- datasets: refused

def data_refused(id: str, name: str, make: Callable[[Path], None], *where: str, code: int = 1,
                 extra: tuple = (), vocab: list[str] | None = None, vectors: bytes | None = None, **kw) -> None:
    def setup(tmp):
        make(tmp / name)
        v = write_vocab(tmp / "vocab.txt", vocab) if vocab else None
        vec = write(tmp / "v.txt", vectors or glove_bytes(VECS))
        return build_args(tmp, vec, tmp / name, vocab=v, extra=extra)
    CASES.append(Case(id, setup, Refused(code, re.escape(name), *where), **kw))


def _parquet(column: str = "input_ids", values=None, type=None) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        v = values if values is not None else [[1, 2], [3, 4]]
        pq.write_table(pa.table({column: pa.array(v, type), "label": [0] * len(v)}), path)
    return make


def _pt_code(path: Path) -> None:
    import torch

    torch.save({"input_ids": Payload(str(path.parent / "PWNED"))}, path)


class Payload:
    """Pickled code: unpickling it would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _no_marker(tmp: Path) -> None:
    assert not (tmp / "PWNED").exists(), "the pickled payload ran"


data_refused("a dataset id out of range (.npy)", "ids.npy",
             lambda p: np.save(p, np.array([[1, 2, 3], [4, 5, 0]])), r"index \[1, 1\]", r"\b5\b")
data_refused("a negative dataset id (.npy)", "ids.npy", lambda p: np.save(p, np.array([1, -1, 2])),
             r"index 1\b", "-1")
data_refused("a dataset id out of range (Parquet: row and element)", "train.parquet",
             _parquet(values=[[1, 2], [3, 99, 4]]), r"row 1\b", r"element 1\b", r"\b99\b")
data_refused("a negative dataset id (.pt dict)", "train.pt",
             lambda p: __import__("torch").save({"input_ids": __import__("torch").tensor([[0, 1], [2, -3]])}, p),
             r"index \[1, 1\]", "-3")
data_refused("an id out of range in the second of two datasets", "b.npy",
             lambda p: (np.save(p.parent / "a.npy", np.arange(5)), np.save(p, np.array([0, 7]))),
             r"index 1\b", r"\b7\b")
data_refused("a float dataset column (Parquet)", "train.parquet", _parquet(values=[[1.0, 2.0]]), "input_ids",
             "float|double")
data_refused("a float .npy", "ids.npy", lambda p: np.save(p, np.array([1.0, 2.0])), "float")
data_refused("a string Parquet column", "train.parquet", _parquet(values=[["the", "cat"]]), "input_ids")
data_refused("a missing Parquet column (lists the existing ones)", "train.parquet", _parquet(column="tokens"),
             "input_ids", "tokens", "label")
data_refused("a missing key in a .pt dict (lists the keys)", "train.pt",
             lambda p: __import__("torch").save({"ids": __import__("torch").tensor([1])}, p), "input_ids", "'ids'")
data_refused("a .pt file that contains pickled code (not executed)", "evil.pt", _pt_code, "weights_only|pickle")
data_refused("an object-dtype (pickled) .npy", "obj.npy",
             lambda p: np.save(p, np.array([1, "x"], dtype=object), allow_pickle=True), "object|O")
data_refused("a truncated .npy", "ids.npy",
             lambda p: p.write_bytes(_npy_bytes(np.arange(100))[:-40]), "truncated")
data_refused("a Parquet file of random bytes", "train.parquet", lambda p: p.write_bytes(b"PAR1" + b"\x00" * 64))
data_refused("a corrupted .safetensors dataset", "ids.safetensors",
             lambda p: p.write_bytes(b"\xff" * 8 + b"{not json"))
data_refused("an unknown dataset file type", "ids.csv", lambda p: p.write_text("1,2,3\n"), "unknown")
data_refused("a dataset that does not exist", "nothere.npy", lambda p: None)
data_refused("int16 .npy with a vocabulary > 32768 (refused: widen with --id-dtype)", "ids16.npy",
             lambda p: np.save(p, np.array([0, 5], np.int16)), "int16", "--id-dtype", vocab=BIG,
             vectors=b"w5 1 2 3\n")
data_refused("two datasets with the same file name", "a.npy",
             lambda p: (p.parent.joinpath("x").mkdir(), np.save(p, np.arange(3)), np.save(p.parent / "x" / "a.npy",
                                                                                            np.arange(3))),
             "a.npy", extra=("x/a.npy",))


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ---- usage errors (exit 2)

@case("an output directory that exists (exit 2, left untouched)", Refused(2, "run", "exists", "--force"),
      out_exists=True)
def _(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "mine.txt").write_text("keep me")
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)))


@case("a --pad not in the vocabulary (exit 2)", Refused(2, r"vocab\.txt", "<nope>"))
def _(tmp):
    return build_args(tmp, write(tmp / "v.txt", glove_bytes(VECS)), extra=("--pad", "<nope>"))


# ---- expansion from an old run

@case("expansion: an old token missing from the new vocabulary", Refused(1, "base", "'dog'"))
def _(tmp):
    base_run(tmp)
    vocab = write_vocab(tmp / "vocab2.txt", ["<pad>", "the", "cat", "xyzzy", "new"])
    return build_args(tmp, tmp / "base", vocab=vocab)


@case("expansion: --pad differs from the old run's (exit 2)", Refused(2, "base", "pad"))
def _(tmp):
    base_run(tmp, extra=(("pad", "<pad>"),))
    vocab = write_vocab(tmp / "vocab2.txt", VOCAB + ["new"])
    return build_args(tmp, tmp / "base", vocab=vocab, extra=("--pad", "xyzzy"))


@case("expansion: old rows kept exactly, new token appended", ok(lambda tmp: (
    np.testing.assert_array_equal(load_run(tmp / "run").sorted_to_original[:5],
                                  load_run(tmp / "base").sorted_to_original),
    # every old token is fixed with its old row (trainable ones too); only the new token is trainable
    _has_vectors({**THREE, "xyzzy": [0.0, 0.0, 0.0]}, trainable=("new",))(tmp))))
def _(tmp):
    base_run(tmp)
    return build_args(tmp, tmp / "base", vocab=write_vocab(tmp / "vocab2.txt", VOCAB + ["new"]))


@case("expansion in place: --vectors RUN --out RUN --force (exit 2: --out is an input, kept)",
      Refused(2, "--out", "run", "is the input"), out_exists=True)
def _(tmp):
    base_run(tmp, name="run")
    return build_args(tmp, tmp / "run", vocab=write_vocab(tmp / "vocab2.txt", VOCAB + ["new"]), extra=("--force",))


# ---- other commands

@case("export --weights of the wrong shape", Refused(1, r"w\.safetensors", r"\(2, 3\)|\(1, 3\)"), out="e.safetensors")
def _(tmp):
    from safetensors.numpy import save_file

    base_run(tmp)
    save_file({"trainable": np.zeros((1, 3), np.float32)}, str(tmp / "w.safetensors"))
    return ["export", tmp / "base", "--weights", tmp / "w.safetensors", "--out", tmp / "e.safetensors"]


@case("export --weights holding pickled code (.pt)", Refused(1, r"w\.pt", "weights_only"), out="e.npy")
def _(tmp):
    import torch

    base_run(tmp)
    torch.save({"trainable": Payload(str(tmp / "PWNED"))}, tmp / "w.pt")
    return ["export", tmp / "base", "--weights", tmp / "w.pt", "--out", tmp / "e.npy"]


@case("export --format word2vec of a token with a space", Refused(1, r"e\.vec", "'a b'", "glove"), out="e.vec")
def _(tmp):
    from reindex.commands.build import build

    write_vocab(tmp / "vocab.txt", ["the", "a b"])
    build(vocab=tmp / "vocab.txt", vectors=write(tmp / "v.txt", glove_bytes(VECS)), out=tmp / "base")
    return ["export", tmp / "base", "--out", tmp / "e.vec"]


@case("remap on a directory that is not a run", Refused(1, "notarun"), out="enc")
def _(tmp):
    (tmp / "notarun").mkdir()
    np.save(tmp / "ids.npy", np.arange(3))
    return ["remap", tmp / "notarun", tmp / "ids.npy", "--out", tmp / "enc"]


@case("remap with a corrupted embedding.safetensors", Refused(1, r"embedding\.safetensors"), out="enc")
def _(tmp):
    base = base_run(tmp)
    raw = bytearray((base / "embedding.safetensors").read_bytes())
    raw[9] ^= 0xFF  # inside the JSON header
    (base / "embedding.safetensors").write_bytes(bytes(raw))
    np.save(tmp / "ids.npy", np.arange(3))
    return ["remap", base, tmp / "ids.npy", "--out", tmp / "enc"]


@case("build from a corrupted embedding.safetensors (truncated)", Refused(1, r"embedding\.safetensors"))
def _(tmp):
    base = base_run(tmp)
    path = base / "embedding.safetensors"
    path.write_bytes(path.read_bytes()[:-20])
    return build_args(tmp, base, vocab=write_vocab(tmp / "vocab2.txt", VOCAB + ["new"]))


@case("invert with a sorted id out of range", Refused(1, r"ids\.npy", r"index 2\b", r"\b5\b"), out="dec")
def _(tmp):
    base = base_run(tmp)
    np.save(tmp / "ids.npy", np.array([0, 1, 5]))
    return ["invert", base, tmp / "ids.npy", "--out", tmp / "dec"]


# ---------------------------------------------------------------- the test

@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


def the_error_line(stderr: str) -> str:
    """The one error line: stderr's last line; any lines before it are progress notes (`read 5 ...`)."""
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("reindex: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert not any(re.search(r"error|exception|traceback", line, re.I) for line in lines[:-1]), stderr
    return errors[0]


def siblings(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*")) + sorted(out.parent.glob(f".{out.name}.old-*"))


def test_the_table_has_enough_cases():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(isinstance(c.outcome, Refused) for c in CASES) >= 30


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, runner) -> None:
    from reindex.cli import app

    args = [str(a) for a in case.setup(tmp_path)]
    out = tmp_path / case.out
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if case.out_exists else None
    result = runner.invoke(app, args)
    stderr, stdout = result.stderr, result.stdout
    # An exception that escaped the CLI (a crash) is never an acceptable outcome.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"crashed: {result.exception!r}\n{stderr}") from result.exception
    assert "Traceback" not in stderr + stdout
    _no_marker(tmp_path)
    assert not siblings(out), siblings(out)
    if isinstance(case.outcome, Ok):
        assert result.exit_code == 0, stderr
        case.outcome.check(tmp_path)
        return
    assert result.exit_code == case.outcome.code, stderr
    line = the_error_line(stderr)
    for pattern in case.outcome.where:
        assert re.search(pattern, line), (pattern, line)
    if case.out_exists:
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    else:
        assert not out.exists(), f"{out} was written"


# ---------------------------------------------------------------- safety: nothing is ever unpickled

PACKAGE = Path(__file__).resolve().parent.parent / "reindex"


def _calls(name: str):
    """(file, line, call) for every call of `<something>.<name>(...)` or `<name>(...)` in the package."""
    import ast

    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    yield path.relative_to(PACKAGE.parent).as_posix(), node.lineno, node


def _keyword(call, name: str):
    import ast

    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else keyword.value
    return None


def test_every_torch_load_uses_weights_only():
    loads = list(_calls("load"))
    torch_loads = [(f, n, c) for f, n, c in loads
                   if getattr(getattr(c.func, "value", None), "id", None) == "torch"]
    assert torch_loads, "expected torch.load calls (datasets/pt.py, export.py)"
    unsafe = [f"{f}:{n}" for f, n, c in torch_loads if _keyword(c, "weights_only") is not True]
    assert unsafe == []
    # np.load never with allow_pickle=True; no pickle / dill / joblib loading anywhere.
    assert [f"{f}:{n}" for f, n, c in loads if _keyword(c, "allow_pickle") not in (None, False)] == []
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    for unsafe_import in ("import pickle", "import dill", "import joblib", "import cloudpickle"):
        assert unsafe_import not in source


@pytest.mark.slow   # a fresh process runs the payload
def test_the_pickled_payload_is_live_and_reindex_refuses_it(tmp_path):
    """The table's payload really runs code when unpickled; `reindex` never runs it."""
    import subprocess
    import sys

    import torch

    marker = tmp_path / "PWNED"
    torch.save({"input_ids": Payload(str(marker))}, tmp_path / "evil.pt")
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(tmp_path / 'evil.pt')!r}, "
                    "weights_only=False)"], check=True, cwd=Path(__file__).parent)
    assert marker.exists()   # a plain torch.load runs it
    marker.unlink()
    from reindex.commands.export import load_trainable
    from reindex.datasets import RemapSpec, remap_dataset
    from reindex.errors import ReindexError

    with pytest.raises(ReindexError, match="weights_only"):
        remap_dataset(tmp_path / "evil.pt", tmp_path / "out.pt", RemapSpec(np.arange(5)))
    with pytest.raises(ReindexError, match="weights_only"):
        load_trainable(tmp_path / "evil.pt", shape=(1, 3), fixed=np.zeros((1, 3), np.float32))
    assert not marker.exists() and not (tmp_path / "out.pt").exists()
