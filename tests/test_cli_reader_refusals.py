"""The readers behind every command refuse what they cannot read correctly, accept what is valid, fail fast, and warn
when a run is probably a mistake. Every case goes through the real CLI on `tmp_path`.

A refusal is: the exit code (1 bad data, 2 bad usage), exactly one `reindex: error:` line, last on
stderr, naming the file the user gave and the line / byte / tensor row; no traceback, no foreign
warning; nothing written. Cases that could hang (FIFOs, devices) run in a subprocess with a timeout.
docs/robustness.md ("Readers that refuse...") lists every case.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reindex.run import load_run

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ["<pad>", "the", "cat", "dog", "xyzzy"]
GLOVE = "the 1.0 2.0 3.0\ncat 0.5 -1.0 2.5\ndog -2.0 0.25 1.0\nunused 9.0 9.0 9.0\n"


# ---------------------------------------------------------------- helpers

# Most cases below run `reindex` in a fresh process (0.5-5 s each): the fast loop (`-m "not slow"`)
# keeps one or two per test, the full suite runs them all.
SLOW = pytest.mark.slow


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def inputs(tmp: Path) -> tuple[Path, Path]:
    """vocab.txt (VOCAB) and vectors.txt (GloVe, 3 of the 5 tokens) in `tmp`."""
    return write(tmp / "vocab.txt", "".join(t + "\n" for t in VOCAB)), write(tmp / "vectors.txt", GLOVE)


def base_run(tmp: Path, *data: Path, name: str = "base") -> Path:
    vocab, vectors = inputs(tmp)
    result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp / name, "-q", *data)
    assert result.exit_code == 0, result.stderr
    return tmp / name


def invoke(*args):
    """The CLI in-process (typer's runner); stderr kept apart from stdout."""
    from typer.testing import CliRunner

    from reindex.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"crashed: {result.exception!r}\n{result.stderr}") from result.exception
    return result


def run_cli(*args, cwd: Path, timeout: int = 60) -> subprocess.CompletedProcess:
    """The CLI in a fresh process: real stderr (Python warnings included), and a hang is a failure."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "reindex", *map(str, args)], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def error_line(stderr: str) -> str:
    """The one error line, last on stderr; lines before it are progress notes or our own warnings."""
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("reindex: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    return errors[0]


def refused(result, code: int, *where: str, out: Path | None = None) -> str:
    """Assert a refusal (see the module docstring); return the error line."""
    rc = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    assert rc == code, result.stderr
    line = error_line(result.stderr)
    for pattern in where:
        assert re.search(pattern, line), (pattern, line)
    if out is not None:
        assert not out.exists(), f"{out} was written"
        assert not list(out.parent.glob(f".{out.name}.tmp-*")), "a temporary sibling was left behind"
    return line


def no_foreign_warning(stderr: str) -> None:
    assert not re.search(r"Warning|warnings\.warn|Traceback", stderr), stderr


# ---------------------------------------------------------------- multi-stream Arrow IPC

def _ipc_bytes(table, *, file: bool) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with (pa.ipc.new_file if file else pa.ipc.new_stream)(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("name, file", [("two.arrows", False), ("two.arrow", True)])
@pytest.mark.parametrize("command", ["build", "remap", "invert", "inspect"])
def test_two_concatenated_ipc_streams_are_refused_naming_the_byte(tmp_path, name, file, command):
    import pyarrow as pa

    one = _ipc_bytes(pa.table({"input_ids": pa.array([[1, 2], [3]])}), file=file)
    # A second schema: its footer has another length, so the end of the first file must be found
    # from the first file's own footer, not the last one.
    two = _ipc_bytes(pa.table({"input_ids": pa.array([[4, 0]]), "label": pa.array([1])}), file=file)
    data = write(tmp_path / name, one + two)
    # Where the first stream ends: after it, for a file, come its footer, footer length and magic.
    end = len(one)
    if command == "build":
        vocab, vectors = inputs(tmp_path)
        result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out", data)
    elif command == "inspect":
        result = invoke("inspect", base_run(tmp_path), data)
    else:
        result = invoke(command, base_run(tmp_path), data, "--out", tmp_path / "out")
    refused(result, 1, re.escape(name), rf"byte {end} of {len(one) + len(two)}\b", out=tmp_path / "out")


def test_one_ipc_stream_or_file_is_still_read_whole(tmp_path):
    import pyarrow as pa

    table = pa.table({"input_ids": pa.array([[1, 2], [3], [4, 0]])})
    for name, file in (("one.arrows", False), ("one.arrow", True)):
        write(tmp_path / name, _ipc_bytes(table, file=file))
    run = base_run(tmp_path, tmp_path / "one.arrows", tmp_path / "one.arrow")
    loaded = load_run(run)
    for name in ("one.arrows", "one.arrow"):
        reader = pa.ipc.open_file if name.endswith("arrow") else pa.ipc.open_stream
        got = reader(str(run / "data" / name)).read_all()["input_ids"].to_pylist()
        assert got == [loaded.to_sorted(np.array(row)).tolist() for row in table["input_ids"].to_pylist()]


# ---------------------------------------------------------------- a repeated --column

@pytest.mark.parametrize("command", ["build", "build-no-data", "remap", "invert", "inspect", "inspect-no-data"])
def test_a_repeated_column_is_a_usage_error(tmp_path, command):
    np.save(tmp_path / "ids.npy", np.array([1, 2]))
    twice = ("--column", "input_ids", "--column", "input_ids")
    if command.startswith("build"):
        vocab, vectors = inputs(tmp_path)
        data = () if command == "build-no-data" else (tmp_path / "ids.npy",)
        result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out", *twice, *data)
    elif command.startswith("inspect"):
        data = () if command == "inspect-no-data" else (tmp_path / "ids.npy",)
        result = invoke("inspect", base_run(tmp_path), *data, *twice)
    else:
        result = invoke(command, base_run(tmp_path), tmp_path / "ids.npy", "--out", tmp_path / "out", *twice)
    refused(result, 2, "--column 'input_ids' is given more than once", out=tmp_path / "out")


# ---------------------------------------------------------------- tokens vocab.txt cannot hold

@pytest.mark.parametrize("name, data, where", [
    ("vocab.txt", b"<pad>\nthe\nca\rt\ndog\n", r"vocab\.txt:3: token 'ca\\+rt' holds a carriage return"),
    ("vocab.txt", b"<pad>\r\nthe\r\ncat\r\r\n", r"vocab\.txt:3: token 'cat\\+r'"),   # CRLF file, one \r extra
    ("vocab.tsv", b"the\t5\nc\rat\t3\n", r"vocab\.tsv:2: .*carriage return"),
    ("vocab.json", b'{"the": 0, "c\\rat": 1}', r"vocab\.json: token with id 1"),
    ("vocab.json", b'{"the": 0, "c\\nat": 1}', r"vocab\.json: token with id 1"),
    ("vocab.json", b'{"the": 0, "c\\ud800t": 1}', r"vocab\.json: token with id 1: .*lone surrogate U\+D800"),
], ids=["lone-cr", "crlf-plus-cr", "counts-cr", "json-cr", "json-lf", "json-surrogate"])
def test_a_token_the_run_cannot_store_is_refused(tmp_path, name, data, where):
    vocab = write(tmp_path / name, data)
    vectors = write(tmp_path / "vectors.txt", GLOVE)
    result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out")
    refused(result, 1, where, out=tmp_path / "out")


@pytest.mark.parametrize("name", ["vocab.json", "vocab.txt"])
def test_odd_tokens_the_run_can_store_round_trip_and_pass_verify(tmp_path, name):
    """Line separators other than \\n and \\r (U+0085, U+2028, \\x0b, \\x0c, \\x1c) are real tokens."""
    tokens = ["<pad>", "the", "a\x85b", "c\u2028d", "e\x0bf", "g\x0ch", "\x1c", "tab\tin"]
    text = (json.dumps({t: i for i, t in enumerate(tokens)}) if name.endswith(".json") else
            "".join(t + "\n" for t in tokens))
    vocab = write(tmp_path / name, text)
    vectors = write(tmp_path / "vectors.txt", GLOVE)
    result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert load_run(tmp_path / "run").original_tokens == tokens
    verified = invoke("verify", tmp_path / "run")
    assert verified.exit_code == 0 and "ok" in verified.stdout, verified.stderr


@pytest.mark.parametrize("compress", ["gzip", "bz2", "lzma"])
def test_a_compressed_vocabulary_is_read(tmp_path, compress):
    import importlib

    module = importlib.import_module(compress)
    write(tmp_path / "vocab.txt.z", module.compress("".join(t + "\n" for t in VOCAB).encode()))
    write(tmp_path / "vocab.json.z", module.compress(json.dumps({t: i for i, t in enumerate(VOCAB)}).encode()))
    vectors = write(tmp_path / "vectors.txt", GLOVE)
    for name in ("vocab.txt.z", "vocab.json.z"):
        out = tmp_path / ("run-" + name.split(".")[1])
        result = invoke("build", "--vocab", tmp_path / name, "--vectors", vectors, "--out", out)
        assert result.exit_code == 0, result.stderr
        assert load_run(out).original_tokens == VOCAB


def _tar(path: Path) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        data = b"the\ncat\n"
        info = tarfile.TarInfo("vocab.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _zip(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.writestr("vocab.txt", "the\ncat\n")


@pytest.mark.parametrize("make, where", [
    (_tar, "is a tar archive.*tar -xf"), (_zip, "is a zip archive.*unzip"),
    (lambda p: write(p, b"\x28\xb5\x2f\xfd" + b"\x00" * 16), "is zstd-compressed.*zstd -d"),
    (lambda p: write(p, __import__("gzip").compress(b"the\ncat\n" * 100)[:30]), "corrupt or truncated gzip"),
], ids=["tar", "zip", "zstd", "truncated-gzip"])
def test_an_archive_or_unreadable_compression_as_vocabulary_is_refused(tmp_path, make, where):
    make(tmp_path / "vocab.bin")
    vectors = write(tmp_path / "vectors.txt", GLOVE)
    result = invoke("build", "--vocab", tmp_path / "vocab.bin", "--vectors", vectors, "--out", tmp_path / "out")
    refused(result, 1, r"vocab\.bin: " + where, out=tmp_path / "out")


@pytest.mark.parametrize("name, data, where", [
    ("vocab.json", b"[" * 100_000 + b"]" * 100_000, r"vocab\.json: invalid JSON: nested too deeply"),
    ("deep.txt", b'{"a":' * 100_000 + b"0" + b"}" * 100_000, r"deep\.txt: invalid JSON: nested too deeply"),
    ("vocab.txt", "the\ncat\n".encode("utf-16"), r"vocab\.txt:1: invalid UTF-8 at byte 0 \(the file is UTF-16\)"),
], ids=["deep-json", "deep-json-by-content", "utf-16"])
def test_vocabularies_python_cannot_parse_plainly_are_one_line(tmp_path, name, data, where):
    vocab = write(tmp_path / name, data)
    vectors = write(tmp_path / "vectors.txt", GLOVE)
    result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out")
    refused(result, 1, where, out=tmp_path / "out")


# ---------------------------------------------------------------- counts in token<TAB>count

@pytest.mark.parametrize("data, where", [
    ("the\t5\ncat\t99999999999999999999\n", r":2: count 99999999999999999999 is larger than 2\^63 - 1"),
    ("the\t9223372036854775808\n", r":1: count 9223372036854775808 is larger"),
    ("the\t5\ncat\t-3\n", r":2: count -3 is negative"),
    ("the\t-3\ncat\t5\n", r":1: count -3 is negative"),
    ("the\t5\ncat\tmany\n", r":2: count 'many' is not a whole number"),
    ("the\t1.5\ncat\t5\n", r":1: count '1.5' is not a whole number"),
    ("the\t5\ncat\t1e3\n", r":2: count '1e3' is not a whole number"),
], ids=["above-2^63", "2^63-line-1", "negative", "negative-line-1", "word", "float-line-1", "exponent"])
def test_a_bad_count_names_the_line(tmp_path, data, where):
    vocab = write(tmp_path / "counts.tsv", data)
    vectors = write(tmp_path / "vectors.txt", GLOVE)
    result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out")
    refused(result, 1, r"counts\.tsv" + where, out=tmp_path / "out")


def test_spaces_around_a_count_are_accepted(tmp_path):
    from reindex.vocab import read_vocab

    vocab = read_vocab(write(tmp_path / "counts.tsv", "the\t5 \ncat\t 3\nNew York\t2\n"))
    assert vocab.format == "counts" and vocab.tokens == ["the", "cat", "New York"]
    assert vocab.counts.tolist() == [5, 3, 2]


def test_the_largest_int64_count_is_kept(tmp_path):
    from reindex.vocab import read_vocab

    vocab = read_vocab(write(tmp_path / "counts.tsv", "the\t9223372036854775807\ncat\t0\n"))
    assert vocab.counts.tolist() == [2**63 - 1, 0] and vocab.tokens == ["the", "cat"]


# ---------------------------------------------------------------- --weights: finite and float32

def _weights(path: Path, values: np.ndarray) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({"trainable": values}, str(path))
    else:
        import torch

        torch.save({"trainable": torch.from_numpy(values)}, path)
    return path


@pytest.mark.parametrize("name, bad, shown", [
    ("w.pt", float("nan"), "nan"), ("w.pt", float("inf"), "inf"), ("w.pt", 1e39, "1e\\+39"),
    ("w.safetensors", float("-inf"), "-inf"), ("w.safetensors", -1e39, "-1e\\+39"),
])
@pytest.mark.parametrize("command", ["build", "export"])
def test_weights_must_be_finite_and_fit_float32(tmp_path, name, bad, shown, command):
    base = base_run(tmp_path)
    values = np.zeros((2, 3), np.float64)   # the base run has 2 trainable rows of dimension 3
    values[1, 2] = bad
    weights = _weights(tmp_path / name, values)
    if command == "build":
        write(tmp_path / "bigger.txt", "".join(t + "\n" for t in VOCAB + ["new"]))
        result = invoke("build", "--vocab", tmp_path / "bigger.txt", "--vectors", base, "--weights", weights,
                        "--out", tmp_path / "out")
    else:
        result = invoke("export", base, "--weights", weights, "--out", tmp_path / "out.npy")
    out = tmp_path / ("out" if command == "build" else "out.npy")
    refused(result, 1, re.escape(name), r"`trainable` row 1 holds " + shown, "float32", out=out)


@pytest.mark.parametrize("make", [lambda torch: torch.zeros(2, 3).to_sparse(),
                                  lambda torch: torch.empty(2, 3, device="meta")], ids=["sparse", "meta"])
def test_weights_that_hold_no_dense_values_are_refused(tmp_path, make):
    import torch

    base = base_run(tmp_path)
    torch.save({"trainable": make(torch)}, tmp_path / "w.pt")
    result = invoke("export", base, "--weights", tmp_path / "w.pt", "--out", tmp_path / "e.npy")
    refused(result, 1, r"w\.pt: `trainable` is a sparse, nested or meta tensor", out=tmp_path / "e.npy")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["complex64", "bool"])
def test_weights_that_are_not_real_numbers_are_refused(tmp_path, dtype):
    import torch

    base = base_run(tmp_path)
    torch.save({"trainable": torch.ones(2, 3, dtype=getattr(torch, dtype))}, tmp_path / "w.pt")
    result = run_cli("export", base, "--weights", "w.pt", "--out", "e.npy", cwd=tmp_path)
    refused(result, 1, rf"w\.pt: `trainable` holds torch\.{dtype} values; weights must be floats",
            out=tmp_path / "e.npy")
    no_foreign_warning(result.stderr)


def test_bfloat16_safetensors_weights_are_read_exactly(tmp_path):
    import torch
    from safetensors.torch import save_file

    base = base_run(tmp_path)
    values = torch.tensor([[0.5, -2.0, 3.0], [1.0, 0.0, -7.5]], dtype=torch.bfloat16)
    save_file({"trainable": values}, str(tmp_path / "w.safetensors"))
    result = invoke("export", base, "--weights", tmp_path / "w.safetensors", "--out", tmp_path / "e.npy")
    assert result.exit_code == 0, result.stderr
    run = load_run(base)
    exported = np.load(tmp_path / "e.npy")
    assert exported[run.sorted_to_original[run.num_fixed:]].tolist() == values.float().tolist()


def test_float64_weights_that_fit_are_accepted_exactly(tmp_path):
    base = base_run(tmp_path)
    values = np.array([[0.5, -2.0, 3e38], [1e-3, 0.0, -3e38]])
    result = invoke("export", base, "--weights", _weights(tmp_path / "w.pt", values), "--out", tmp_path / "e.npy")
    assert result.exit_code == 0, result.stderr
    run = load_run(base)
    exported = np.load(tmp_path / "e.npy")
    trainable_original_ids = run.sorted_to_original[run.num_fixed:]
    assert exported[trainable_original_ids].tolist() == values.astype(np.float32).tolist()


# ---------------------------------------------------------------- FIFOs, sockets, devices, directories

def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("option", ["--vocab", "--vectors", *(pytest.param(option, marks=SLOW) for option in (
    "dataset", "dataset-in-folder", "--weights", "export --weights", "remap dataset", "invert dataset",
    "inspect dataset"))])
def test_a_fifo_is_refused_not_waited_on(tmp_path, option):
    vocab, vectors = inputs(tmp_path)
    out = tmp_path / "out"
    if option == "--vocab":
        args = ["build", "--vocab", _fifo(tmp_path / "v.txt"), "--vectors", vectors, "--out", out]
    elif option == "--vectors":
        args = ["build", "--vocab", vocab, "--vectors", _fifo(tmp_path / "g.txt"), "--out", out]
    elif option == "dataset":
        args = ["build", "--vocab", vocab, "--vectors", vectors, "--out", out, _fifo(tmp_path / "ids.npy")]
    elif option == "dataset-in-folder":
        (tmp_path / "corpus").mkdir()
        np.save(tmp_path / "corpus" / "a.npy", np.arange(3))
        _fifo(tmp_path / "corpus" / "ids.npy")
        args = ["build", "--vocab", vocab, "--vectors", vectors, "--out", out, tmp_path / "corpus"]
    else:
        base = base_run(tmp_path)
        fifo = _fifo(tmp_path / ("w.pt" if "weights" in option else "ids.npy"))
        if option == "--weights":
            write(tmp_path / "bigger.txt", "".join(t + "\n" for t in VOCAB + ["new"]))
            args = ["build", "--vocab", tmp_path / "bigger.txt", "--vectors", base, "--weights", fifo, "--out", out]
        elif option == "export --weights":
            out = tmp_path / "out.npy"
            args = ["export", base, "--weights", fifo, "--out", out]
        elif option == "inspect dataset":
            args = ["inspect", base, fifo]
        else:
            args = [option.split()[0], base, fifo, "--out", out]
    result = run_cli(*args, cwd=tmp_path)
    refused(result, 1, r"is a FIFO \(named pipe\)", out=out)


@pytest.mark.parametrize("kind", ["socket", pytest.param("char-device", marks=SLOW),
                                  pytest.param("directory", marks=SLOW)])
def test_other_non_regular_files_are_refused_as_vocab_and_vectors(tmp_path, kind):
    vocab, vectors = inputs(tmp_path)
    if kind == "socket":
        odd = tmp_path / "odd.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(odd))
        expected = "is a socket"
    elif kind == "char-device":
        odd, expected = Path("/dev/zero"), "is a character device"
    else:
        odd = tmp_path / "folder"
        odd.mkdir()
        expected = "directory"
    try:
        for args in (["--vocab", odd, "--vectors", vectors], ["--vocab", vocab, "--vectors", odd]):
            result = run_cli("build", *args, "--out", tmp_path / "out", cwd=tmp_path)
            refused(result, 1, re.escape(str(odd)), expected, out=tmp_path / "out")
    finally:
        if kind == "socket":
            server.close()


def test_dash_is_left_for_standard_input():
    """`-` is never refused as a non-regular file: it is read as standard input."""
    from reindex.errors import ReindexError
    from reindex.io.inputfile import check_regular

    check_regular("-", what="a vocabulary")   # passes: no stat of a file named "-"
    with pytest.raises(ReindexError, match="/dev/null: is a character device, not a vocabulary file"):
        check_regular("/dev/null", what="a vocabulary")


# ---------------------------------------------------------------- .pt: sparse, nested, code

def _pt(make):
    def write_pt(path: Path) -> None:
        import torch

        torch.save(make(torch), path)
    return write_pt


def _torchscript(path: Path) -> None:
    import torch

    torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(path))


# Each case is a fresh `reindex` process that imports torch (1.5-5 s): one runs in the fast loop.
@pytest.mark.parametrize("make, where", [
    pytest.param(_pt(lambda torch: {"input_ids": torch.tensor([[1, 0], [2, 3]]).to_sparse()}),
                 r"key 'input_ids': a sparse tensor \(torch\.sparse_coo\)", id="sparse-coo"),
    pytest.param(_pt(lambda torch: torch.tensor([[1, 0], [2, 3]]).to_sparse_csr()),
                 r"a sparse tensor \(torch\.sparse_csr\)", id="sparse-csr", marks=SLOW),
    pytest.param(_pt(lambda torch: {"input_ids": torch.nested.nested_tensor([torch.tensor([1, 2]),
                                                                             torch.tensor([3])])}),
                 r"key 'input_ids': a nested tensor", id="nested", marks=SLOW),
    pytest.param(_pt(lambda torch: {"input_ids": torch.nested.nested_tensor([torch.tensor([1, 2]), torch.tensor([3])],
                                                                            layout=torch.jagged)}),
                 r"cannot load with weights_only=True",   # torch itself refuses to unpickle a jagged tensor
                 id="nested-jagged", marks=SLOW),
    pytest.param(_torchscript, r"TorchScript archive", id="torchscript", marks=SLOW),
    pytest.param(_pt(lambda torch: {"input_ids": torch.empty(2, 3, dtype=torch.long, device="meta")}),
                 r"key 'input_ids': a meta tensor, which holds no data", id="meta", marks=SLOW),
])
@pytest.mark.parametrize("command", ["build", pytest.param("remap", marks=SLOW)])
def test_pt_tensors_that_are_not_dense_ids_are_refused_without_torch_warnings(tmp_path, make, where, command):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch warns while *making* these files; reindex must not
        make(tmp_path / "ids.pt")
    if command == "build":
        vocab, vectors = inputs(tmp_path)
        args = ["build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out", tmp_path / "ids.pt"]
    else:
        args = ["remap", base_run(tmp_path), tmp_path / "ids.pt", "--out", tmp_path / "out"]
    result = run_cli(*args, cwd=tmp_path)
    refused(result, 1, r"ids\.pt", where, out=tmp_path / "out")
    no_foreign_warning(result.stderr)


# ---------------------------------------------------------------- Hugging Face save_to_disk folders

def _hf_dataset(path: Path, rows=([1, 2], [3, 4, 0], [])) -> Path:
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_dict({"input_ids": list(rows), "label": list(range(len(rows)))}).save_to_disk(str(path))
    return path


def _hf_dict(path: Path) -> Path:
    import datasets

    datasets.disable_progress_bars()
    train = datasets.Dataset.from_dict({"input_ids": [[1, 2], [3, 4, 0]]})
    test = datasets.Dataset.from_dict({"input_ids": [[4], [2, 2, 1]]})
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("make, splits", [(_hf_dataset, [None]), (_hf_dict, ["train", "test"])],
                         ids=["Dataset", "DatasetDict"])
def test_build_remap_invert_verify_on_save_to_disk_folders(tmp_path, make, splits):
    import datasets

    from reindex.run import sha256_file

    source = make(tmp_path / "hf")
    run = base_run(tmp_path, source)
    loaded = load_run(run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["data"][0]["path"] == str(source)
    assert manifest["inputs"]["data"][0]["sha256"] == sha256_file(source)
    assert manifest["datasets"][0]["format"] == "hf-dataset"
    assert invoke("verify", run).exit_code == 0

    def ids(folder: Path, split: str | None) -> list:
        ds = datasets.load_from_disk(str(folder))
        return (ds if split is None else ds[split])["input_ids"]

    for split in splits:
        expected = [loaded.to_sorted(np.array(row, np.int64)).tolist() for row in ids(source, split)]
        assert ids(run / "data" / "hf", split) == expected
    assert invoke("remap", run, source, "--out", tmp_path / "enc").exit_code == 0
    assert invoke("invert", run, tmp_path / "enc" / "hf", "--out", tmp_path / "dec").exit_code == 0
    for split in splits:
        assert ids(tmp_path / "enc" / "hf", split) == ids(run / "data" / "hf", split)
        assert ids(tmp_path / "dec" / "hf", split) == ids(source, split)

    # verify sees damage to any file of the folder
    arrow = sorted((run / "data" / "hf").rglob("*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[:-1] + b"\x01")
    result = invoke("verify", run)
    assert result.exit_code == 1 and "data/hf: sha256 differs" in result.stderr


def test_a_folder_digest_covers_names_and_contents(tmp_path):
    from reindex.run import describe_file, sha256_file

    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    write(folder / "a.txt", "x")
    write(folder / "sub" / "b.txt", "yz")
    before = describe_file(folder)
    assert before["size"] == 3
    import hashlib

    lines = "".join(f"{name}\0{hashlib.sha256(data).hexdigest()}\n" for name, data in
                    (("a.txt", b"x"), ("sub/b.txt", b"yz")))
    assert before["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    (folder / "sub" / "b.txt").rename(folder / "sub" / "c.txt")
    assert sha256_file(folder) != before["sha256"]


@pytest.mark.parametrize("file, content, where", [
    ("state.json", "{not json", r"state\.json:1: invalid JSON"),
    ("state.json", "[1, 2]", r"state\.json: expected a JSON object, got list"),
    ("state.json", '{"_data_files": "data.arrow"}', r"state\.json: .*_data_files"),
    ("state.json", '{"_data_files": [{"filename": 7}]}', r"state\.json: .*_data_files"),
    ("state.json", '{"_data_files": [{"filename": "../x.arrow"}]}', r"state\.json: .*_data_files"),
    ("state.json", b"\xff\xfe{}", r"state\.json: invalid UTF-8"),
    ("dataset_info.json", "[]", r"dataset_info\.json: expected a JSON object"),
    ("dataset_info.json", '{"features": ', r"dataset_info\.json:1: invalid JSON"),
    ("dataset_dict.json", "null", r"dataset_dict\.json: expected a JSON object, got NoneType"),
    ("dataset_dict.json", '{"splits": "train"}', r"dataset_dict\.json: expected `splits`"),
    ("dataset_dict.json", '{"splits": ["train", "test", "train"]}',
     r"dataset_dict\.json: split 'train' is listed twice"),
    ("state.json", '{"_data_files": [{"filename": "nope.arrow"}]}', r"state\.json: .*'nope\.arrow', which is missing"),
    ("dataset_info.json", None, r"dataset_info\.json: missing file of a `save_to_disk` folder"),
    ("state.json", "[" * 100_000 + "]" * 100_000, r"state\.json: invalid JSON: nested too deeply"),
])
@pytest.mark.parametrize("command", ["build", "remap"])
def test_malformed_save_to_disk_json_is_one_line(tmp_path, file, content, where, command):
    if file == "dataset_dict.json":
        folder = _hf_dict(tmp_path / "hf")
    else:
        folder = _hf_dataset(tmp_path / "hf")
    if content is None:
        (folder / file).unlink()
    else:
        write(folder / file, content)
    if command == "build":
        vocab, vectors = inputs(tmp_path)
        result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out", folder)
    else:
        result = invoke("remap", base_run(tmp_path), folder, "--out", tmp_path / "out")
    refused(result, 1, where, out=tmp_path / "out")


# ---------------------------------------------------------------- inspect --plot

@pytest.mark.parametrize("plot, where", [
    ("missing_dir/p.png", r"missing_dir/p\.png: the folder 'missing_dir' does not exist"),
    ("p.txt", r"p\.txt: --plot needs an image suffix, got '\.txt'"),
    ("p", r"--plot needs an image suffix, got 'none'"),
    ("adir.png", r"adir\.png: is a directory"),
    ("fifo.png", r"fifo\.png: exists and is not a regular file"),
])
def test_plot_paths_that_cannot_be_written_are_usage_errors_before_any_work(tmp_path, plot, where):
    (tmp_path / "adir.png").mkdir()
    os.mkfifo(tmp_path / "fifo.png")
    # The run does not exist: the --plot error coming first shows that nothing was read before it.
    result = run_cli("inspect", tmp_path / "no_run", "--plot", plot, cwd=tmp_path)
    refused(result, 2, where)
    assert not (tmp_path / "p.txt").exists() and not (tmp_path / "missing_dir").exists()


@pytest.mark.slow
def test_a_failed_plot_write_is_one_line(tmp_path):
    """The plot cannot be written (a file size limit: the write fails with EFBIG, as it would with
    ENOSPC on a full disk): one line naming the path, exit 1."""
    import resource
    import signal

    np.save(tmp_path / "ids.npy", np.array([1, 2, 3]))
    run = base_run(tmp_path, tmp_path / "ids.npy")

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "reindex", "inspect", str(run), "--plot", "p.png"],
                            cwd=tmp_path, env=env, text=True, capture_output=True, timeout=60,
                            preexec_fn=limit_file_size)
    refused(result, 1, r"p\.png: cannot write: file too large; nothing was written to p\.png")


def test_a_valid_plot_is_written(tmp_path):
    np.save(tmp_path / "ids.npy", np.array([1, 2, 3, 1]))
    run = base_run(tmp_path, tmp_path / "ids.npy")
    result = invoke("inspect", run, "--plot", tmp_path / "coverage.svg")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "coverage.svg").read_text().lstrip().startswith("<?xml")


# ---------------------------------------------------------------- fail fast: datasets before vectors

def _parquet(column: str, values) -> callable:
    def make(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({column: values}), path)
    return make


@pytest.mark.parametrize("name, make, where", [
    ("train.parquet", _parquet("tokens", [[1, 2]]), r"no column 'input_ids'"),
    ("train.parquet", _parquet("input_ids", [[1.5, 2.0]]), r"ids must be integers"),
    ("ids.npy", lambda p: np.save(p, np.array([1.0, 2.0])), r"ids must be integers, got float64"),
    ("ids.npy", lambda p: np.save(p, np.array([1, 2], np.int8)), None),   # int8 holds ids < 5: accepted
    ("ids.safetensors", lambda p: __import__("safetensors.numpy").numpy.save_file(
        {"input_ids": np.zeros(2, np.float32)}, str(p)), r"key 'input_ids': ids must be integers, got F32"),
    ("ids.safetensors", lambda p: __import__("safetensors.numpy").numpy.save_file(
        {"labels": np.zeros(2, np.int64)}, str(p)), r"no key 'input_ids'"),
    ("ids.pt", _pt(lambda torch: {"ids": torch.tensor([1])}), r"no key 'input_ids'"),
    ("ids.pt", _pt(lambda torch: torch.tensor([0.5])), r"ids must be integers"),
    ("data.arrow", lambda p: write(p, _ipc_bytes(__import__("pyarrow").table({"x": [1]}), file=True)),
     r"no column 'input_ids'"),
    ("hf", lambda p: (_hf_dataset(p), write(p / "state.json", "{")), r"state\.json:1: invalid JSON"),
])
def test_build_checks_every_dataset_before_it_reads_the_vectors(tmp_path, monkeypatch, name, make, where):
    import reindex.commands.match

    def never(*args, **kwargs):
        raise AssertionError("the vectors were read before the datasets were checked")

    make(tmp_path / name)
    np.save(tmp_path / "good.npy", np.array([1, 2]))
    vocab, vectors = inputs(tmp_path)
    if where is None:   # the control: a valid dataset does reach the vectors
        from reindex.commands.build import build

        build(vocab=vocab, vectors=vectors, out=tmp_path / "out", data=[tmp_path / name])
        assert (tmp_path / "out" / "data" / name).exists()
        return
    monkeypatch.setattr(reindex.commands.match, "match", never)
    # the bad dataset after a good one: all are checked, not only the first
    result = invoke("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "out",
                    tmp_path / "good.npy", tmp_path / name)
    refused(result, 1, re.escape(name), where, out=tmp_path / "out")


def test_fail_fast_check_also_covers_the_id_dtype(tmp_path, monkeypatch):
    import reindex.commands.match

    monkeypatch.setattr(reindex.commands.match, "match", lambda *a, **k: pytest.fail("vectors read"))
    np.save(tmp_path / "ids.npy", np.array([1, 2], np.int8))
    write(tmp_path / "vocab.txt", "".join(f"w{i}\n" for i in range(300)))
    write(tmp_path / "vectors.txt", "w1 1 2 3\n")
    result = invoke("build", "--vocab", tmp_path / "vocab.txt", "--vectors", tmp_path / "vectors.txt",
                    "--out", tmp_path / "out", tmp_path / "ids.npy")
    refused(result, 1, r"ids\.npy", r"int8 cannot hold ids up to 299")


# ---------------------------------------------------------------- runs that are probably a mistake

def _gensim_vectors(tmp: Path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=4)
    words = [f"word{i}" for i in range(30)]
    kv.add_vectors(words, np.arange(120, dtype=np.float32).reshape(30, 4) / 7)
    for i, w in enumerate(words):
        kv.set_vecattr(w, "count", 100 - i)
    return kv


def _vector_file(tmp: Path) -> Path:
    kv = _gensim_vectors(tmp)
    kv.save_word2vec_format(str(tmp / "as_vocab.vec"))   # "N D" header, then token + numbers
    return tmp / "as_vocab.vec"


def _glove_file(tmp: Path) -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data" / "test_glove.txt"


def _word_count_file(tmp: Path) -> Path:
    kv = _gensim_vectors(tmp)
    kv.save_word2vec_format(str(tmp / "ignored.vec"), fvocab=str(tmp / "counts.txt"))  # "word 123" lines
    return tmp / "counts.txt"


def _gensim_dictionary(tmp: Path) -> Path:
    from gensim.corpora import Dictionary

    Dictionary([["the", "cat", "sat"], ["the", "dog"], ["a", "cat"]]).save_as_text(str(tmp / "dict.txt"))
    return tmp / "dict.txt"


@pytest.mark.parametrize("make, cause", [
    pytest.param(_vector_file, "a vector file", id="word2vec-text"),
    pytest.param(_glove_file, "a vector file", id="glove", marks=SLOW),
    pytest.param(_word_count_file, "a `word count` list", id="word-count", marks=SLOW),
    pytest.param(_gensim_dictionary, "a gensim Dictionary.save_as_text file", id="gensim-dictionary", marks=SLOW),
])
def test_a_vocabulary_that_is_another_kind_of_file_is_warned_about(tmp_path, make, cause):
    vocab = make(tmp_path)
    vectors = write(tmp_path / "vectors.txt", "the 1 2 3\ncat 4 5 6\nword1 7 8 9\n")
    # Not -q: --quiet silences everything but errors, these warnings included (the manifest keeps them).
    result = run_cli("build", "--vocab", vocab, "--vectors", vectors, "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any(f"looks like {cause}" in line and str(vocab) in line for line in warned), result.stderr
    assert any("no vocabulary token has a pretrained vector" in line and f"probably the vocabulary is {cause}"
               in line for line in warned), result.stderr
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())["counts"]["warnings"]
    assert recorded == [line.removeprefix("warning: ") for line in warned]
    no_foreign_warning(result.stderr)


@pytest.mark.parametrize("matched, warned", [(0, True), (4, True), (5, False), (100, False)])
def test_a_low_match_share_is_warned_about(tmp_path, matched, warned):
    from reindex import progress
    from reindex.commands.build import build

    from conftest import NoteCollector

    write(tmp_path / "vocab.txt", "".join(f"w{i}\n" for i in range(100)))
    write(tmp_path / "vectors.txt", "".join(f"w{i} 1 2 3\n" for i in range(matched)) + "other 1 2 3\n")
    with progress.use(NoteCollector()) as collector:
        result = build(vocab=tmp_path / "vocab.txt", vectors=tmp_path / "vectors.txt", out=tmp_path / "run")
    lines = collector.lines
    notes = [n for n in lines if n.startswith("warning: ")]
    if not warned:
        assert notes == [] and "warnings" not in result.manifest["counts"]
        return
    expected = ("no vocabulary token has a pretrained vector (0 of 100)" if matched == 0 else
                f"only {matched} of 100 vocabulary tokens ({matched / 100:.2%}) have a pretrained vector")
    assert len(notes) == 1 and notes[0].startswith(f"warning: {expected}: probably the vocabulary and the "
                                                   "vectors come from different tokenizers"), notes
    assert result.manifest["counts"]["warnings"] == [notes[0].removeprefix("warning: ")]


def test_the_pad_token_does_not_count_as_matched(tmp_path):
    from reindex import progress
    from reindex.commands.build import build

    from conftest import NoteCollector

    write(tmp_path / "vocab.txt", "".join(["<pad>\n"] + [f"w{i}\n" for i in range(30)]))
    write(tmp_path / "vectors.txt", "<pad> 0 0 0\nother 1 2 3\n")
    with progress.use(NoteCollector()) as collector:
        build(vocab=tmp_path / "vocab.txt", vectors=tmp_path / "vectors.txt", out=tmp_path / "run", pad="<pad>")
    notes = collector.lines
    assert any("no vocabulary token has a pretrained vector (0 of 30)" in n for n in notes), notes


def test_ordinary_vocabularies_are_not_mistaken_for_other_files(tmp_path):
    from reindex.vocab import misread_as, read_vocab

    ordinary = ["<pad>", "the", "New York", "1", "2", "3.5", "a 1", "nan", "1 2 3", "x\t5\t6"]
    assert misread_as(read_vocab(write(tmp_path / "v.txt", "".join(t + "\n" for t in ordinary)))) is None
    counted = read_vocab(write(tmp_path / "c.tsv", "the\t5\ncat\t3\n"))
    assert misread_as(counted) is None


# ---------------------------------------------------------------- no foreign warning on odd inputs

@pytest.mark.slow   # three fresh processes
def test_no_foreign_warning_on_odd_inputs(tmp_path):
    """Inputs that make numpy, torch or pyarrow warn in naive code: only our one line reaches stderr."""
    import torch

    base = base_run(tmp_path)
    torch.save({"trainable": torch.full((2, 3), 1e39, dtype=torch.float64)}, tmp_path / "big.pt")
    write(tmp_path / "counts.tsv", "the\t5\ncat\t1" + "0" * 30 + "\n")
    np.save(tmp_path / "f16.npy", np.array([1, 2], np.float16))
    _, vectors = inputs(tmp_path)
    for args in (["export", base, "--weights", tmp_path / "big.pt", "--out", tmp_path / "e.npy"],
                 ["build", "--vocab", tmp_path / "counts.tsv", "--vectors", vectors, "--out", tmp_path / "o"],
                 ["remap", base, tmp_path / "f16.npy", "--out", tmp_path / "o"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 1
        error_line(result.stderr)
        no_foreign_warning(result.stderr)


# ---------------------------------------------------------------- an export given as --vectors

@pytest.mark.parametrize("tokens, weight, where", [
    pytest.param("not json", None, "the `tokens` metadata is not a JSON list of strings", id="not-json"),
    pytest.param('{"the": 0, "cat": 1}', None, "the `tokens` metadata is not a JSON list of strings", id="not-a-list",
                 marks=SLOW),
    pytest.param('["the", "the"]', None, "the `tokens` metadata names a token twice", id="duplicate", marks=SLOW),
    pytest.param('["the", "cat"]', (1, 1, float("nan")), r"`weight` row 1 holds nan", id="nan"),
    pytest.param('["the", "cat"]', (0, 2, 1e39), r"`weight` row 0 holds 1e\+39", id="beyond-float32", marks=SLOW),
])
def test_a_damaged_export_as_vectors_is_one_line(tmp_path, tokens, weight, where):
    from safetensors.numpy import save_file

    matrix = np.ones((2, 3))
    if weight is not None:
        matrix[weight[0], weight[1]] = weight[2]
    save_file({"weight": matrix}, str(tmp_path / "export.safetensors"), metadata={"tokens": tokens})
    vocab, _ = inputs(tmp_path)
    result = run_cli("build", "--vocab", vocab, "--vectors", "export.safetensors", "--out", "out", cwd=tmp_path)
    refused(result, 1, r"export\.safetensors: " + where, out=tmp_path / "out")
    no_foreign_warning(result.stderr)


@pytest.mark.parametrize("metadata", [b"not json", b"[1]", b'{"info": 3}'])
def test_foreign_huggingface_schema_metadata_is_kept_not_a_crash(tmp_path, metadata):
    """`--id-dtype` updates Hugging Face's features in the schema metadata; metadata that is not
    theirs is left as it was."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"input_ids": pa.array([[1, 2], [3]])}).replace_schema_metadata({b"huggingface": metadata})
    pq.write_table(table, tmp_path / "train.parquet")
    run = base_run(tmp_path)
    result = invoke("remap", run, tmp_path / "train.parquet", "--out", tmp_path / "enc", "--id-dtype", "int32")
    assert result.exit_code == 0, result.stderr
    written = pq.read_table(tmp_path / "enc" / "train.parquet")
    assert written.schema.metadata[b"huggingface"] == metadata
    assert pa.types.is_int32(written.schema.field("input_ids").type.value_type)
    loaded = load_run(run)
    assert written["input_ids"].to_pylist() == [loaded.to_sorted(np.array(r)).tolist() for r in ([1, 2], [3])]
