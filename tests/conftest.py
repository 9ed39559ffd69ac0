"""Shared fixtures: small inputs written by hand, and the CLI runner."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"

# --doctest-modules would import the DDP worker, which loads torch.distributed and transformers (~5 s
# of every collection); torchrun runs it by path.
collect_ignore = ["_torch_ddp_worker.py"]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tests' tensors are tiny: torch's intra-op threads cost more than they save, and on a busy
    machine (or beside a second pytest-xdist worker) they spin for their share of the cores, which
    made the torch tests 3-4x slower. Only this process: child processes keep torch's default."""
    torch = sys.modules.get("torch")   # imported by the test modules, if any were collected
    if torch is not None:
        torch.set_num_threads(1)
    yield

# The worked example: 7 tokens, 4 with vectors ("The" only through its lowercase form).
VOCAB = ["<pad>", "the", "xyzzy", "cat", "The", "qwop", "dog"]
VECTORS = {"the": [1.0, 2.0, 3.0], "cat": [0.5, -1.0, 2.5], "dog": [-2.0, 0.25, 1.0],
           "unused": [9.0, 9.0, 9.0], "<pad>": [7.0, 7.0, 7.0]}


def write_glove(path: Path, vectors: dict[str, list[float]]) -> Path:
    path.write_text("".join(f"{t} {' '.join(repr(float(v)) for v in vec)}\n" for t, vec in vectors.items()),
                    encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path: Path) -> dict[str, Path]:
    """vocab.txt, vectors.txt and ids.npy (original ids) of the worked example."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    vectors = write_glove(tmp_path / "vectors.txt", VECTORS)
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[1, 2, 3], [4, 5, 6], [0, 0, 1]], dtype=np.int64))
    return {"vocab": vocab, "vectors": vectors, "ids": ids, "dir": tmp_path}


@pytest.fixture
def cli():
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from reindex.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return invoke


class NoteCollector:
    """A progress reporter that keeps the library's notes: `with progress.use(NoteCollector()) as r: ...; r.lines`."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bars = False

    def note(self, message: str, *, verbose: bool = False) -> None:
        self.lines.append(message)

    def step(self, description, *, total=None, unit="items", poll=None):
        import contextlib

        return contextlib.nullcontext(lambda amount: None)


def stderr_on_a_terminal(args: list[str], env: dict[str, str], *, columns: int | None = None,
                         timeout: float = 120) -> str:
    """Run `args` with stderr on a pseudo-terminal (`columns` wide, if given); return what it wrote there."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=timeout) == 0
    return b"".join(chunks).decode("utf-8", "replace")
