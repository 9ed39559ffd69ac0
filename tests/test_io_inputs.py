"""The inputs registry and the output rule: no command writes over, into or around a file it reads.

Each case is one that once lost a user's file. They pass because every command registers what it reads
(its path options, what globs and folders expand to, what a RUN records) in one `Inputs`, which the
output rule checks `--out` against; none of them is a special case.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reindex.io.inputs import Inputs, recorded_paths
from reindex.options import BuildOptions, InitOptions, VectorOptions

from conftest import VECTORS, VOCAB, write_glove

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def reindex(*args: object, cwd: Path | None = None, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reindex", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, preexec_fn=preexec_fn)


@pytest.fixture
def user(tmp_path: Path) -> Path:
    """A user's folder: a vocabulary, GloVe vectors and an id file."""
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB))
    write_glove(tmp_path / "vectors.txt", VECTORS)
    np.save(tmp_path / "ids.npy", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64))
    return tmp_path


def one_line_refusal(result: subprocess.CompletedProcess, *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_every_path_option_of_every_group_is_registered_without_being_listed(tmp_path):
    options = BuildOptions(vectors=VectorOptions(weights="w.safetensors"),
                           init=InitOptions(init="subwords", subword_model=tmp_path / "ft.bin"))
    inputs = Inputs()
    inputs.add_options(options)
    assert list(inputs) == [("--weights", Path("w.safetensors")), ("--subword-model", tmp_path / "ft.bin")]


def test_a_subword_model_inside_out_is_refused_and_kept(user):
    """build --out runs/x --force --init subwords --subword-model runs/x/ft.bin once deleted ft.bin."""
    run = user / "runs" / "x"
    assert reindex("build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt",
                   "--out", run, "-q").returncode == 0
    model = run / "ft.bin"
    model.write_bytes(b"\xba\x16\x4f\x2f" + bytes(60))   # the user's file, whatever it holds
    result = reindex("build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt", "--out", run,
                     "--force", "--init", "subwords", "--subword-model", model)
    one_line_refusal(result, f"--out {run} contains the input {model}")
    assert model.read_bytes()[:4] == b"\xba\x16\x4f\x2f"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["remap", "invert", "build"])
def test_a_glob_that_expands_into_out_is_refused_and_its_files_kept(user, command):
    """remap RUN 'e*c/*.npy' --out enc --force once read enc/a.npy, then deleted it with enc."""
    run = user / "run"
    assert reindex("build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt",
                   "--out", run, "-q").returncode == 0
    enc = user / "enc"
    earlier = "build" if command == "build" else "remap"
    first = (["build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt", "--out", enc]
             if earlier == "build" else ["remap", run, user / "ids.npy", "--out", enc])
    assert reindex(*first, "-q").returncode == 0           # an earlier output that --force may replace
    data = enc / "a_ids.npy"   # an id file by its name (a.npy would be skipped, with a note: test_datasets_selection)
    np.save(data, np.array([[1, 2]], dtype=np.int64))
    before = data.read_bytes()
    head = (["build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt"] if command == "build"
            else [command, run])
    result = reindex(*head, "e*c/*.npy", "--out", "enc", "--force", cwd=user)
    one_line_refusal(result, "--out enc contains the input", "a_ids.npy")
    assert data.read_bytes() == before


@pytest.mark.slow
def test_a_run_s_relative_inputs_are_protected_from_any_folder(user):
    """A run built from an earlier export `e.vec`, typed as a relative path, records `e.vec`; exported
    from another folder over ../A/e.vec with --force (an earlier export may be replaced), it was lost."""
    a = user / "A"
    a.mkdir()
    assert reindex("build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt", "--out", a / "run0",
                   "-q").returncode == 0
    assert reindex("export", a / "run0", "--out", a / "e.vec", "-q").returncode == 0
    assert reindex("build", "--vocab", user / "vocab.txt", "--vectors", "e.vec", "--out", "run", "-q",
                   cwd=a).returncode == 0
    b = user / "B"
    b.mkdir()
    before = (a / "e.vec").read_bytes()
    result = reindex("export", "../A/run", "--out", "../A/e.vec", "--force", cwd=b)
    one_line_refusal(result, "--out ../A/e.vec is the input")
    assert (a / "e.vec").read_bytes() == before
    assert reindex("export", "../A/run0", "--out", "../A/e.vec", "--force", "-q", cwd=b).returncode == 0  # not its input


def test_recorded_paths_skip_stdin_and_odd_manifests():
    manifest = {"inputs": {"vocab": {"path": "-"}, "vectors": {"path": "v.txt"}, "data": [{"path": "a.npy"}, 3]}}
    assert recorded_paths(manifest) == ["v.txt", "a.npy"]
    assert recorded_paths([1, 2]) == [] and recorded_paths({"inputs": []}) == []


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".pt", ".npy", ".safetensors", ".vec", ".bin", ".txt", ".vec.gz"])
def test_every_export_writer_reports_a_full_disk_in_one_line(user, suffix):
    run = user / "run"
    assert reindex("build", "--vocab", user / "vocab.txt", "--vectors", user / "vectors.txt",
                   "--out", run, "-q").returncode == 0

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    out = user / f"e{suffix}"
    result = reindex("export", run, "--out", out, preexec_fn=cap)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == (f"reindex: error: {out}: cannot write: file too large; nothing was written to {out} "
                        f"(free some space or choose another --out)")
    assert not out.exists() and [p.name for p in user.iterdir() if p.name.startswith(".e")] == []
