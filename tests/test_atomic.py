"""Issue 7: outputs are atomic. A build killed at any point leaves no RUN, or the previous complete
RUN; a write that fails removes its temporary files and says why in one line.

A SIGKILLed process cannot clean up, so its `.RUN.tmp-*` sibling may stay behind, but never under
the final name; the next write into the same directory removes such siblings (their lock is free).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reindex.atomic import atomic_directory, atomic_file, remove_stale
from reindex.errors import ReindexError

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    """Inputs that take a second or two to build: 50k tokens, 40k binary vectors, 5M ids."""
    tmp = tmp_path_factory.mktemp("big")
    vocab_size, dim = 50_000, 32
    tokens = [f"w{i}" for i in range(vocab_size)]
    (tmp / "vocab.txt").write_text("\n".join(tokens) + "\n")
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((vocab_size * 8 // 10, dim)).astype("<f4")
    with open(tmp / "v.bin", "wb") as f:
        f.write(f"{matrix.shape[0]} {dim}\n".encode())
        f.write(b"".join(t.encode() + b" " + row.tobytes() + b"\n" for t, row in zip(tokens, matrix)))
    np.save(tmp / "ids.npy", rng.integers(0, vocab_size, size=5_000_000, dtype=np.int64))
    return {"vocab": tmp / "vocab.txt", "vectors": tmp / "v.bin", "ids": tmp / "ids.npy", "dir": tmp}


def build_command(big: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reindex", "build", "-q", "--vocab", str(big["vocab"]), "--vectors",
            str(big["vectors"]), "--out", str(out), str(big["ids"]), *extra]


def siblings(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*"))


def verify(run: Path) -> tuple[int, str]:
    from typer.testing import CliRunner

    from reindex.cli import app

    result = CliRunner().invoke(app, ["verify", str(run)])
    return result.exit_code, result.stdout + result.stderr


# Kill points: a file appearing inside the temporary directory (or the directory itself), then a
# fixed delay after it. Whenever the kill lands, the assertions are the same.
POINTS = [("", 0.0), ("", 0.2), ("embedding.safetensors", 0.0), ("vocab.txt", 0.0), ("manifest.json", 0.0)]


def kill_at(command: list[str], out: Path, inside: str, delay: float) -> bool:
    """Start `command`, SIGKILL it once `.OUT.tmp-*/inside` exists (+ delay); True if it was still running."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            if any((t / inside).exists() for t in siblings(out)):
                break
            time.sleep(0.001)
        time.sleep(delay)
        alive = process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        return alive
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_killed_first_build_leaves_no_run(big, tmp_path):
    out = tmp_path / "run"
    landed = 0
    for inside, delay in POINTS:
        landed += kill_at(build_command(big, out), out, inside, delay)
        # Either nothing under the final name, or (killed after the rename) a complete run.
        if out.exists():
            assert verify(out)[0] == 0, verify(out)[1]
            break
    assert landed >= 1  # at least the first kill (the temporary directory exists) hit a running build


@pytest.mark.slow
def test_killed_forced_rebuild_keeps_the_previous_complete_run(big, tmp_path):
    out = tmp_path / "run"
    subprocess.run(build_command(big, out, "--seed", "1"), env=ENV, check=True)
    old = json.loads((out / "manifest.json").read_text())
    for inside, delay in POINTS:
        kill_at(build_command(big, out, "--seed", "2", "--force"), out, inside, delay)
        code, text = verify(out)
        assert code == 0, text
        seed = json.loads((out / "manifest.json").read_text())["options"]["seed"]
        assert seed in (1, 2)
        if seed == 1:
            assert json.loads((out / "manifest.json").read_text()) == old
    # Killed writers leave siblings behind; the next build removes them (their lock is free).
    subprocess.run(build_command(big, out, "--seed", "3", "--force"), env=ENV, check=True)
    assert siblings(out) == []
    assert verify(out)[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 130), (signal.SIGINT, 130)])
def test_interrupted_build_cleans_up(big, tmp_path, sig, code):
    out = tmp_path / "run"
    process = subprocess.Popen(build_command(big, out), env=ENV, stderr=subprocess.PIPE, text=True)
    while process.poll() is None and not siblings(out):
        time.sleep(0.001)
    process.send_signal(sig)
    _, stderr = process.communicate()
    if process.returncode == 0:  # finished before the signal: nothing to check
        pytest.skip("the build finished before the signal arrived")
    assert process.returncode == code
    assert stderr.strip().splitlines()[-1] == "reindex: interrupted; nothing was written"
    assert "Traceback" not in stderr
    assert not out.exists() and siblings(out) == [], (stderr, [list(s.rglob("*")) for s in siblings(out)])


def test_failing_write_mid_way_cleans_up_and_says_why(big, tmp_path):
    """The output file system fills up (RLIMIT_FSIZE: writes past 1 MB fail with EFBIG)."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    out = tmp_path / "run"
    small = tmp_path / "ids.npy"
    np.save(small, np.arange(1_000_000) % 1000)   # 8 MB in: the remapped copy cannot be written
    command = build_command(big, out)
    command[command.index(str(big["ids"]))] = str(small)
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, preexec_fn=limit)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("reindex: error: ")]
    assert len(lines) == 1 and result.stderr.splitlines()[-1] == lines[0], result.stderr
    assert "file too large" in lines[0] and str(out) in lines[0] and ".tmp-" not in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() and siblings(out) == []


def test_output_whose_parent_is_a_file(tmp_path, cli_small):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "run"
    code, stdout, stderr = cli_small("--out", out)
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.startswith("reindex: error: ")]
    assert len(lines) == 1 and stderr.splitlines()[-1] == lines[0] and str(tmp_path / "afile") in lines[0]
    assert (tmp_path / "afile").read_text() == "x"


@pytest.fixture
def cli_small(small, cli):
    def invoke(*args):
        return cli("build", "-q", "--vocab", small["vocab"], "--vectors", small["vectors"], *args)
    return invoke


def test_failure_inside_the_block_removes_the_temporary(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert not out.exists() and siblings(out) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(tmp_path / "f.txt") as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_os_error_inside_the_block_is_one_line_naming_the_final_path(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ReindexError) as info:
        with atomic_directory(out) as tmp:
            raise OSError(28, "No space left on device", str(tmp / "data" / "x.npy"))
    message = str(info.value)
    assert message.startswith(f"{out}/data/x.npy: cannot write: no space left on device")
    assert "\n" not in message and not out.exists() and siblings(out) == []


def test_force_replaces_atomically_and_refuses_without(tmp_path):
    out = tmp_path / "run"
    with atomic_directory(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ReindexError, match="already exists"):
        with atomic_directory(out):
            pass
    with pytest.raises(ReindexError, match="refusing to replace"):   # force, but no `replace` rule
        with atomic_directory(out, force=True):
            pass
    with atomic_directory(out, force=True, replace=lambda final: None) as tmp:
        (tmp / "b").write_text("2")
        assert (out / "a").read_text() == "1"   # the old one stays visible while the new is written
    assert sorted(p.name for p in out.iterdir()) == ["b"] and siblings(out) == []


def test_stale_siblings_are_removed_but_not_a_live_writers(tmp_path):
    out = tmp_path / "run"
    stale_dir = tmp_path / ".run.tmp-dead0001"      # the names reindex gives its temporaries
    stale_dir.mkdir()
    (stale_dir / "embedding.safetensors").write_text("partial")
    stale_file = tmp_path / ".run.tmp-dead0002"
    stale_file.write_text("partial")
    other = tmp_path / ".other.tmp-x"
    other.mkdir()
    users = [tmp_path / ".run.tmp-notes", tmp_path / ".run.tmp-dead00012", tmp_path / ".run.tmp-DEAD0003"]
    for path in users:                                # a user's files that only look alike
        path.write_text("mine")
    with atomic_directory(out) as live:
        assert not stale_dir.exists() and not stale_file.exists()   # removed when this writer started
        stale_dir.mkdir()
        assert remove_stale(out) == [stale_dir]                     # the live writer's is kept
        assert live.exists()
    assert out.exists() and other.exists()                          # another name's siblings are kept
    assert [p.read_text() for p in users] == ["mine"] * 3           # names reindex never gives: kept


def test_an_interrupt_during_creation_is_deferred_until_cleanup_is_possible(tmp_path, monkeypatch):
    """SIGINT right after the temporary exists (as from a pyarrow thread): still removed."""
    import reindex.atomic as atomic

    create = atomic._create

    def create_then_interrupt(final, *, directory):
        made = create(final, directory=directory)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler would have run here, between creation and the `try`
        return made

    monkeypatch.setattr(atomic, "_create", create_then_interrupt)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out):
            pytest.fail("the block must not start")  # pragma: no cover
    assert not out.exists() and siblings(out) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
