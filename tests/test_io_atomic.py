"""Outputs are atomic (reindex.io.atomic) and --out replaces only what it may (reindex.io.outputs).

A build killed at any point leaves no RUN, or the previous complete RUN; a write that fails removes
its temporary files and says why in one line; two writers racing for one --out leave one winner.

A SIGKILLed process cannot clean up, so its `.RUN.tmp-*` sibling may stay behind, but never under
the final name; the next write into the same directory removes such siblings (their lock is free).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reindex.errors import ReindexError
from reindex.io.atomic import atomic_directory, atomic_file, remove_stale

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
        f.write(b"".join(t.encode() + b" " + row.tobytes() + b"\n"
                         for t, row in zip(tokens[:len(matrix)], matrix, strict=True)))  # 80% have a vector
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
    for _attempt in range(3):  # a build that finished before the signal proves nothing: try again
        # A shell starts background jobs (a CI runner's, say) with SIGINT ignored, and the child would
        # inherit that: give it the default disposition, as a terminal's foreground process has.
        process = subprocess.Popen(build_command(big, out), env=ENV, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while process.poll() is None and not siblings(out):
            time.sleep(0.001)
        process.send_signal(sig)
        _, stderr = process.communicate()
        if process.returncode != 0:
            break
        shutil.rmtree(out)
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == "reindex: interrupted; nothing was written"
    assert "Traceback" not in stderr
    assert not out.exists()
    # An interrupt in the few bytecodes between creating the temporary and recording it can leave it (no
    # signal handler is swapped to close that window): it is then stale, and the next write removes it.
    left = siblings(out)
    assert remove_stale(out) == left, (stderr, [list(s.rglob("*")) for s in left])


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


def test_an_interrupt_right_after_the_temporary_exists_still_removes_it(tmp_path, monkeypatch, request):
    """SIGINT the moment the temporary exists, before `create` returns (as from a pyarrow thread):
    the temporary is removed on the way out, and no signal handler of the process was touched."""
    import reindex.io.atomic as atomic

    create = atomic.create

    def create_then_interrupt(final, *, directory, pending):
        create(final, directory=directory, pending=pending)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, before `create` returns
        pytest.fail("SIGINT did not arrive")  # pragma: no cover

    monkeypatch.setattr(atomic, "create", create_then_interrupt)
    # Python's own SIGINT handler, whatever this process inherited (a background job's SIGINT is ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out):
            pytest.fail("the block must not start")  # pragma: no cover
    assert not out.exists() and siblings(out) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- what --out may replace

def _user_tree(tmp: Path) -> dict[Path, str]:
    """Inputs and unrelated files of a user: all must survive every refused command unchanged."""
    from conftest import VECTORS, VOCAB, write_glove

    data = tmp / "mydata"
    data.mkdir()
    (data / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB))
    write_glove(data / "vectors.txt", VECTORS)
    np.save(data / "ids.npy", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64))
    (data / "notes.txt").write_text("my notes")
    (tmp / "somedir").mkdir()
    (tmp / "somedir" / "f.txt").write_text("keep")
    (tmp / "notes.txt").write_text("my notes\n")
    return {p: p.read_bytes().hex() for p in tmp.rglob("*") if p.is_file()}


def _snapshot(tmp: Path) -> dict[Path, str]:
    return {p: p.read_bytes().hex() for p in tmp.rglob("*") if p.is_file()}


BUILD = ("build", "-q", "--vocab", "mydata/vocab.txt", "--vectors", "mydata/vectors.txt")

# (arguments, the words the one error line must hold); run from tmp, after `run` (a build) exists.
REFUSED = [
    pytest.param((*BUILD, "--out", "mydata", "--force", "mydata/ids.npy"), "--out mydata contains the input",
                 id="build --out the folder holding the inputs"),
    pytest.param((*BUILD, "--out", "mydata/vocab.txt", "--force"), "is the input", id="build --out the vocabulary"),
    pytest.param((*BUILD, "--out", "mydata/ids.npy/../ids.npy", "--force", "mydata/ids.npy"), "is the input",
                 id="build --out a dataset, through .."),
    pytest.param((*BUILD, "--out", "mydata/sub", "--force", "mydata"), "lies inside the input mydata",
                 id="build --out inside a dataset folder"),
    pytest.param(("build", "-q", "--vocab", "mydata/vocab.txt", "--vectors", "run", "--out", "run", "--force"),
                 "is the input run", id="build --out the old run it expands"),
    pytest.param((*BUILD, "--out", "hardlink.txt", "--force"), "is the input mydata/vocab.txt",
                 id="build --out a hard link to the vocabulary"),
    pytest.param((*BUILD, "--out", "somedir", "--force"), "not a run directory", id="build --force over a user dir"),
    pytest.param((*BUILD, "--out", "notes.txt", "--force"), "not a directory", id="build --force over a file"),
    pytest.param((*BUILD, "--out", "link", "--force"), "symbolic link", id="build --force over a symlink to a run"),
    pytest.param(("export", "run", "--out", "run", "--force"), "is the input run", id="export --out the run"),
    pytest.param(("export", "run", "--out", "run/x.npy"), "lies inside the input run",
                 id="export --out inside the run"),
    pytest.param(("export", "run", "--out", "somedir", "--force"), "is a directory", id="export --force over a dir"),
    pytest.param(("export", "run", "--out", "notes.txt", "--force"), "not an embedding file",
                 id="export --force over a user's text file"),
    pytest.param(("export", "run", "--out", "mydata/vectors.txt", "--force"), "refusing to replace|is the input",
                 id="export --force over the vectors (not an input of export, but not an export either)"),
    pytest.param(("export", "run", "--out", "w.npy", "--weights", "w.npy", "--force"), "is the input w.npy",
                 id="export --out the --weights"),
    pytest.param(("remap", "run", "mydata/ids.npy", "--out", "run", "--force"), "is the input run",
                 id="remap --out the run it reads"),
    pytest.param(("remap", "run", "mydata/ids.npy", "--out", "mydata", "--force"), "contains the input",
                 id="remap --out the folder of its dataset"),
    pytest.param(("remap", "run", "mydata/ids.npy", "--out", "somedir", "--force"), "remap` or `invert",
                 id="remap --force over a user dir"),
    pytest.param(("invert", "run", "mydata/ids.npy", "--out", "run/dec", "--force"), "lies inside the input run",
                 id="invert --out inside the run"),
    pytest.param(("remap", "run", "mydata/ids.npy", "--out", "encoded"), "already exists",
                 id="remap over its own earlier output without --force"),
    pytest.param(("inspect", "run", "mydata/ids.npy", "--plot", "mine.png"),
                 "not a plot written by `reindex inspect --plot`",
                 id="inspect --plot over a user's image"),
    pytest.param(("inspect", "run", "mydata/ids.npy", "--plot", "run/p.png"),
                 "--plot run/p.png lies inside the input run",
                 id="inspect --plot inside the run"),
]


@pytest.fixture
def user_tree(tmp_path, monkeypatch, cli):
    before = _user_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli(*BUILD, "--out", "run", "--pad", "<pad>")[0] == 0
    assert cli("remap", "run", "mydata/ids.npy", "--out", "encoded")[0] == 0
    (tmp_path / "link").symlink_to("run")
    np.save(tmp_path / "w.npy", np.zeros(3))
    (tmp_path / "mine.png").write_bytes(b"\x89PNG\r\n\x1a\n a user's picture")
    os.link(tmp_path / "mydata" / "vocab.txt", tmp_path / "hardlink.txt")
    return tmp_path, before


@pytest.mark.parametrize("args, reason", REFUSED)
def test_out_that_is_not_ours_or_is_an_input_is_refused(user_tree, cli, args, reason):
    tmp, before = user_tree
    snapshot = _snapshot(tmp)
    code, stdout, stderr = cli(*args)
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("reindex: error: ") and re.search(reason, lines[0]), stderr
    assert ".tmp-" not in stderr
    assert _snapshot(tmp) == snapshot  # nothing removed, nothing changed, nothing added
    assert {p: v for p, v in snapshot.items() if p in before} == before


@pytest.mark.parametrize("args", [
    (*BUILD, "--out", "run", "--force", "--seed", "3"),
    ("remap", "run", "mydata/ids.npy", "--out", "encoded", "--force"),
    ("invert", "run", "encoded/ids.npy", "--out", "decoded"),
    ("export", "run", "--out", "e.npy"),
    ("inspect", "run", "mydata/ids.npy", "--plot", "p.png"),
], ids=["build over a run", "remap over a remap output", "invert (new)", "export (new)", "plot (new)"])
def test_force_replaces_an_earlier_output_of_the_same_kind(user_tree, cli, args):
    tmp, before = user_tree
    code, _, stderr = cli(*args)
    assert code == 0, stderr
    assert _snapshot(tmp).items() >= before.items()   # the user's files are all still there
    out = Path(args[args.index("--out" if "--out" in args else "--plot") + 1])
    assert out.exists() and not list(tmp.glob(f".{out.name}.tmp-*"))
    if args[0] == "inspect":   # a second plot replaces the first: inspect has no --force
        out.write_bytes(out.read_bytes()[:100])
        assert cli(*args)[0] == 0 and len(out.read_bytes()) > 100


def test_export_replaces_only_an_export(user_tree, cli):
    tmp, _ = user_tree
    for fmt in ("npy", "safetensors", "word2vec", "word2vec-binary", "glove"):
        assert cli("export", "run", "--out", "e.out", "--format", fmt, "--force")[0] == 0
        assert cli("export", "run", "--out", "e.out", "--format", "npy", "--force")[0] == 0, fmt
    (tmp / "plain.npy").write_bytes(b"not an export")
    code, _, stderr = cli("export", "run", "--out", "plain.npy", "--force")
    assert code == 2 and "not an embedding file" in stderr and (tmp / "plain.npy").read_bytes() == b"not an export"


def test_a_remap_output_is_marked_and_the_marker_is_not_a_dataset(user_tree, cli):
    tmp, _ = user_tree
    from reindex.io.outputs import DATASETS_FORMAT, MARKER

    marker = json.loads((tmp / "encoded" / MARKER).read_text())
    assert marker["format"] == DATASETS_FORMAT and marker["command"] == "remap"
    # the output folder is read back as datasets: the dot-named marker is skipped
    code, _, stderr = cli("invert", "run", "encoded", "--out", "decoded")
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp / "decoded").rglob("*") if p.is_file()) == [MARKER, "ids.npy"]
    np.testing.assert_array_equal(np.load(tmp / "decoded" / "encoded" / "ids.npy"), np.load(tmp / "mydata" / "ids.npy"))


def test_trainable_format_is_the_same_in_formats_and_torch():
    from reindex.formats import TRAINABLE_FORMAT
    from reindex.torch import TRAINABLE_FORMAT as TORCH_FORMAT

    assert TRAINABLE_FORMAT == TORCH_FORMAT


def test_save_trainable_replaces_its_own_file_but_not_a_users(tmp_path):
    import torch

    from reindex.torch import SplitEmbedding

    emb = SplitEmbedding(torch.zeros(2, 3), torch.ones(2, 3))
    path = tmp_path / "t.safetensors"
    emb.save_trainable(path)
    emb.save_trainable(path)                     # a checkpoint is overwritten, the normal case
    (tmp_path / "mine.safetensors").write_bytes(b"mine")
    with pytest.raises(ReindexError, match="save_trainable"):
        emb.save_trainable(tmp_path / "mine.safetensors")
    assert (tmp_path / "mine.safetensors").read_bytes() == b"mine"


# ---------------------------------------------------------------- racing writers

# One of two processes publishing to the same `final` (argv[1]) at the same instant: each completes
# its temporary, says so with a file, waits until the other has too, then renames.
RACER = """
import sys, time
from pathlib import Path
from reindex.io.atomic import atomic_directory
from reindex.errors import ReindexError
final, name = Path(sys.argv[1]), sys.argv[2]
other = "b" if name == "a" else "a"
try:
    with atomic_directory(final) as tmp:
        (tmp / "who").write_text(name)
        (final.parent / f"ready-{final.name}-{name}").touch()
        deadline = time.monotonic() + 30
        while not (final.parent / f"ready-{final.name}-{other}").exists() and time.monotonic() < deadline:
            pass  # spin: both renames start within microseconds
    print("won")
except ReindexError as e:
    print(e)
"""


@pytest.mark.slow   # 100 processes, spinning
def test_two_processes_racing_for_one_out_exactly_one_wins(tmp_path):
    """Without --force, the rename refuses an existing name atomically: 50 races, one winner each."""
    for round_ in range(50):
        final = tmp_path / f"run{round_}"
        racers = {name: subprocess.Popen([sys.executable, "-c", RACER, str(final), name], env=ENV,
                                         stdout=subprocess.PIPE, text=True) for name in ("a", "b")}
        said = {name: p.communicate(timeout=60)[0].strip() for name, p in racers.items()}
        winners = [name for name, text in said.items() if text == "won"]
        assert len(winners) == 1, said
        loser = "b" if winners == ["a"] else "a"
        assert said[loser] == f"{final} already exists (choose another --out or pass --force)"
        assert (final / "who").read_text() == winners[0]
        assert siblings(final) == []


@pytest.mark.slow
def test_two_builds_started_together_without_force(small, tmp_path):
    """Through the CLI (a race once seen there: both exited 0 and one run replaced the other)."""
    command = [sys.executable, "-m", "reindex", "build", "-q", "--vocab", str(small["vocab"]), "--vectors",
               str(small["vectors"]), "--out", "", str(small["ids"])]
    for round_ in range(10):
        out = tmp_path / f"run{round_}"
        command[command.index("--out") + 1] = str(out)
        processes = [subprocess.Popen([*command, "--seed", str(seed)], env=ENV, stderr=subprocess.PIPE, text=True)
                     for seed in (1, 2)]
        results = [(p.wait(), p.stderr.read()) for p in processes]
        for p in processes:
            p.stderr.close()
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        loser = next(err for code, err in results if code == 2)
        assert loser.strip().splitlines()[-1] == \
            f"reindex: error: {out} already exists (choose another --out or pass --force)"
        winner_seed = 1 + [code for code, _ in results].index(0)
        assert json.loads((out / "manifest.json").read_text())["options"]["seed"] == winner_seed
        assert verify(out)[0] == 0 and siblings(out) == []


# ---------------------------------------------------------------- permissions

@pytest.fixture
def umask_of():
    """Set the process umask for the test, restore it after."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_outputs_get_the_permissions_of_new_files_under_the_umask(small, tmp_path, umask_of, mask):
    """tempfile's 0700/0600 was the bug: runs on shared storage were unreadable to others."""
    import torch
    from safetensors.numpy import save_file

    from reindex.commands.build import build
    from reindex.commands.export import export
    from reindex.commands.remap import remap_files

    ids = np.array([[1, 2, 3]], dtype=np.int64)
    data = [small["ids"]]
    torch.save(torch.from_numpy(ids), tmp_path / "ids.pt")
    save_file({"input_ids": ids}, str(tmp_path / "st.safetensors"))
    data += [tmp_path / "ids.pt", tmp_path / "st.safetensors"]
    umask_of(mask)
    build(vocab=small["vocab"], vectors=small["vectors"], out=tmp_path / "out" / "run", data=data)
    remap_files(tmp_path / "out" / "run", data, out=tmp_path / "out" / "encoded")
    export(tmp_path / "out" / "run", out=tmp_path / "out" / "e.safetensors")
    export(tmp_path / "out" / "run", out=tmp_path / "out" / "e.npy")
    export(tmp_path / "out" / "run", out=tmp_path / "out" / "e.txt")
    from reindex.commands.inspect import plot_coverage
    from reindex.run import load_run

    plot_coverage(load_run(tmp_path / "out" / "run"), tmp_path / "out" / "p.png")
    written = [p for p in (tmp_path / "out").rglob("*")]
    assert len(written) >= 16
    for path in written:
        mode = path.stat().st_mode & 0o777
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode == expected, f"{path.relative_to(tmp_path)}: {oct(mode)}, umask {oct(mask)} gives {oct(expected)}"


# ---------------------------------------------------------------- disk full on every writer
#
# Each case runs the real CLI with its output on a small file system that fills up at one chosen
# file: a tmpfs mounted in a private mount namespace (`unshare -rm`, no privileges needed where
# user namespaces are on), pre-filled so that the files written before the target fit and the
# target does not (sizes from a reference run on the normal disk). Where no tmpfs can be mounted,
# the same cases run under RLIMIT_FSIZE (writes past half the target's size fail with EFBIG).
# Either way: exit 1, one error line naming the --out the user gave (never a temporary), the
# reason ("no space left on device" / "file too large"), no traceback, nothing under the final name.

def _tmpfs_works(tmp: Path) -> bool:
    (tmp / "probe").mkdir(exist_ok=True)
    try:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp / 'probe'}"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


# Inside the namespace: fill the disk to leave `free` bytes, run the command, report what is there.
FULL_DISK_DRIVER = """
import json, os, subprocess, sys
disk, free, command = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
stat = os.statvfs(disk)
with open(os.path.join(disk, ".filler"), "wb") as f:
    f.write(b"\\0" * max(0, stat.f_bavail * stat.f_frsize - free))
result = subprocess.run(command, capture_output=True, text=True)
left = sorted(os.path.relpath(os.path.join(root, name), disk) for root, dirs, files in os.walk(disk)
              for name in dirs + files)
print(json.dumps({"code": result.returncode, "stderr": result.stderr, "left": left}))
"""

PAGE = 4096


def _pages(size: int) -> int:
    return -(-size // PAGE) * PAGE


def _disk_full_inputs(tmp: Path, target: str) -> tuple[list[str], str, list[str]]:
    """Inputs in `tmp` for a command whose write of `target` should fail; (args, out name, write order)."""
    import pyarrow as pa
    import pyarrow.feather
    import pyarrow.parquet as pq
    import torch
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    vocab_size = 1500 if target == "vocab.txt" else 100_000
    long = "x" * 1000 if target == "vocab.txt" else ""
    tokens = [f"t{i}{long}" for i in range(vocab_size)]
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
    dim = 600 if target == "embedding.safetensors" else 1
    (tmp / "vectors.txt").write_text(f"{tokens[0]} " + " ".join(["0.5"] * dim) + "\n")
    if target == "embedding.safetensors":
        (tmp / "vocab.txt").write_text("".join(t + "\n" for t in tokens[:1000]))
    ids = rng.integers(0, vocab_size if target not in ("vocab.txt", "embedding.safetensors") else 1000,
                       size=(1000, 300) if target.startswith("data/") else (2, 3), dtype=np.int64)
    flat = pa.array(ids.reshape(-1))
    data = {"data/ids.npy": lambda p: np.save(p, ids),
            "data/ids.pt": lambda p: torch.save(torch.from_numpy(ids), p),
            "data/ids.safetensors": lambda p: save_file({"input_ids": ids}, str(p)),
            "data/ids.parquet": lambda p: pq.write_table(pa.table({"input_ids": flat}), p, compression="none"),
            "data/ids.arrow": lambda p: pyarrow.feather.write_feather(pa.table({"input_ids": flat}), p,
                                                                      compression="uncompressed"),
            "data/ids.txt": lambda p: p.write_text("\n".join(" ".join(tokens[i] for i in row) for row in ids))}
    name = target.split(":")[-1] if target.split(":")[-1] in data else "data/ids.npy"
    data[name](tmp / Path(name).name)
    dataset = str(tmp / Path(name).name)
    build = ["build", "-q", "--vocab", str(tmp / "vocab.txt"), "--vectors", str(tmp / "vectors.txt")]
    if target.startswith("export:"):
        from reindex.commands.build import build as build_run

        build_run(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", out=tmp / "base")
        fmt = target.split(":")[1]
        return ["export", str(tmp / "base"), "--format", fmt], "e.out", ["e.out"]
    if target.startswith("remap:"):
        from reindex.commands.build import build as build_run

        build_run(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", out=tmp / "base")
        return ["remap", str(tmp / "base"), dataset], "enc", [Path(name).name]
    order = [name.replace(".txt", ".parquet"), "embedding.safetensors", "vocab.txt", "corpus_counts.npy",
             "manifest.json"]
    return [*build, dataset], "run", order


DISK_FULL = ["data/ids.npy", "data/ids.pt", "data/ids.safetensors", "data/ids.parquet", "data/ids.arrow",
             "data/ids.txt", "embedding.safetensors", "vocab.txt", "corpus_counts.npy", "manifest.json",
             "export:safetensors", "export:npy", "export:word2vec", "export:word2vec-binary", "export:glove",
             "remap:data/ids.parquet"]


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory) -> bool:
    return _tmpfs_works(tmp_path_factory.mktemp("probe"))


@pytest.mark.slow
@pytest.mark.parametrize("target", DISK_FULL)
def test_disk_full_on_every_writer(tmp_path, tmpfs, target):
    import resource

    args, out_name, order = _disk_full_inputs(tmp_path, target)
    # Reference run on the normal disk: the size of every file the command writes.
    reference = tmp_path / "reference"
    reference.mkdir()
    done = subprocess.run([sys.executable, "-m", "reindex", *args, "--out", str(reference / out_name)], env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    final = reference / out_name
    sizes = {name: (final / name if final.is_dir() else final).stat().st_size
             for name in ([out_name] if final.is_file() else order)}
    aim = order[0] if target.startswith(("data/", "remap:", "export:")) else target
    before = list(sizes)[: list(sizes).index(aim)]
    free = sum(_pages(sizes[name]) for name in before) + (_pages(sizes[aim]) // 2 // PAGE) * PAGE
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / out_name
    command = [sys.executable, "-m", "reindex", *args, "--out", str(out)]
    if tmpfs:
        size = _pages(sum(sizes.values())) + (1 << 20)
        script = (f"mount -t tmpfs -o size={size} tmpfs {disk} && "
                  f"exec {sys.executable} -c '{FULL_DISK_DRIVER}' {disk} {free} '{json.dumps(command)}'")
        ran = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=ENV, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        result = json.loads(ran.stdout)
        reason = "no space left on device"
    else:
        limit = max(PAGE, sizes[aim] // 2)

        def cap() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        ran = subprocess.run(command, env=ENV, capture_output=True, text=True, preexec_fn=cap)
        result = {"code": ran.returncode, "stderr": ran.stderr,
                  "left": sorted(str(p.relative_to(disk)) for p in disk.rglob("*"))}
        reason = "file too large"
    stderr = result["stderr"]
    lines = [line for line in stderr.strip().splitlines() if line.startswith("reindex: error: ")]
    assert result["code"] == 1, stderr
    assert len(lines) == 1 and stderr.strip().splitlines()[-1] == lines[0], stderr   # progress notes may precede
    assert reason in lines[0] and f"nothing was written to {out}" in lines[0], lines[0]
    assert "Traceback" not in stderr and ".tmp-" not in stderr and "cannot read" not in stderr
    if tmpfs:
        assert lines[0].startswith(f"reindex: error: {out}"), lines[0]
    assert [name for name in result["left"] if name != ".filler"] == []   # no output, no temporary


@pytest.mark.parametrize("error, said", [
    (OSError(28, "No space left on device"), "no space left on device"),
    (OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device"), "no space left on device"),
    (RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
     "no space left on device"),                                      # safetensors
    (OSError(27, "File too large"), "file too large"),
    (OSError(122, "Disk quota exceeded"), "disk quota exceeded"),
    (OSError(2, "No such file or directory"), None),
    (ValueError("os error 2"), None),
])
def test_disk_full_is_recognised_in_every_writers_words(error, said):
    from reindex.io.write_error import disk_full

    assert disk_full(error) == said
    wrapped = ReindexError("cannot read Parquet file: ...")   # how a reader wraps a writer's error
    wrapped.__cause__ = error
    assert disk_full(wrapped) == said


@pytest.mark.parametrize("array", [np.arange(5), np.zeros((3, 4), np.float32), np.zeros((0, 2), np.float32),
                                   np.arange(6).reshape(2, 3)[:, ::2], np.array(3.0, np.float32)])
def test_save_npy_writes_what_np_save_writes(tmp_path, array):
    from reindex.datasets.npy import save_npy

    save_npy(tmp_path / "a.npy", array)
    np.save(tmp_path / "b.npy", array)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


@pytest.fixture(scope="module")
def big_run(big, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bigrun") / "run"
    subprocess.run(build_command(big, out), env=ENV, check=True)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "remap"])
def test_killed_export_or_remap_leaves_nothing_under_the_final_name(big, big_run, tmp_path, command):
    """SIGKILL at four points of the write: no output, or a complete one; never a partial file."""
    from reindex.run import load_run

    run = load_run(big_run)
    for i, delay in enumerate((0.0, 0.02, 0.1, 0.3)):
        out = tmp_path / (f"e{i}.npy" if command == "export" else f"enc{i}")
        args = ["export", str(big_run), "--out", str(out)] if command == "export" else \
            ["remap", str(big_run), str(big["ids"]), "--out", str(out)]
        kill_at([sys.executable, "-m", "reindex", *args], out, "", delay)
        if out.exists():   # killed after the rename: complete
            if command == "export":
                assert np.load(out).shape == (run.vocab_size, run.dim)
            else:
                np.testing.assert_array_equal(np.load(out / "ids.npy"), run.to_sorted(np.load(big["ids"])))
    # what a kill left behind is a `.NAME.tmp-*` sibling, never NAME; the next write removes it
    out = tmp_path / ("e0.npy" if command == "export" else "enc0")
    if not out.exists():
        subprocess.run([sys.executable, "-m", "reindex", *(["export", str(big_run)] if command == "export" else
                                                           ["remap", str(big_run), str(big["ids"])]),
                        "--out", str(out)], env=ENV, check=True)
    assert out.exists() and siblings(out) == []
