"""The --json contract on failure: an error keeps stdout empty and prints one line on stderr.

A script reading `reindex ... --json` sees either one JSON object on stdout (exit 0; `verify` also
exit 1 with `"ok": false`) or nothing on stdout and a non-zero exit, with the reason on stderr.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def run(cli, small) -> Path:
    out = small["dir"] / "run"
    code, _, err = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", out, "-q",
                       small["ids"])
    assert code == 0, err
    return out


def _failures(small: dict[str, Path], run: Path) -> list[tuple[int, tuple]]:
    d = small["dir"]
    (d / "mine.vec").write_text("not an export\n")
    return [
        (1, ("build", "--vocab", d / "missing.txt", "--vectors", small["vectors"], "--out", d / "r")),
        (2, ("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", run)),   # exists
        (1, ("remap", run, d / "missing.npy", "--out", d / "enc")),
        (1, ("invert", d / "not-a-run", small["ids"], "--out", d / "dec")),
        (1, ("export", d / "not-a-run", "--out", d / "e.vec")),
        (2, ("export", run, "--out", d / "mine.vec", "--force")),                           # not ours to replace
        (1, ("inspect", d / "not-a-run")),
        (1, ("verify", d / "not-a-run")),
    ]


def test_an_error_keeps_stdout_empty_and_says_one_line(cli, small, run):
    failures = _failures(small, run)
    assert {args[0] for _, args in failures} == {"build", "remap", "invert", "export", "inspect", "verify"}
    for expected, args in failures:
        code, out, err = cli(*args, "--json")
        assert (code, out) == (expected, ""), (args, out, err)
        assert len(err.splitlines()) == 1 and err.startswith("reindex: error: "), (args, err)


@pytest.mark.parametrize("command", ["build", "remap", "invert", "export", "inspect", "verify"])
def test_a_command_line_that_does_not_parse_prints_no_json(cli, command):
    code, out, err = cli(command, "--json", "--no-such-option")
    assert (code, out) == (2, "") and "No such option" in err


def test_verify_that_finds_problems_still_prints_its_object(cli, run):
    np.save(run / "data" / "ids.npy", np.zeros((3, 3), dtype=np.int64))   # no longer what the manifest hashed
    code, out, err = cli("verify", run, "--json")
    report = json.loads(out)
    assert code == 1 and report["command"] == "verify" and report["ok"] is False
    assert any("data/ids.npy" in problem for problem in report["problems"])
