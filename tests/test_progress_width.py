"""Progress bars keep to one line each on an 80-column terminal (a real pty, not a pipe)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from conftest import stderr_on_a_terminal

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _terminal_stderr(args: list[str], *, columns: int) -> str:
    """stderr of `python -m reindex ARGS` on a pty `columns` wide, as the lines the terminal was sent."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    return stderr_on_a_terminal([sys.executable, "-m", "reindex", *args], env, columns=columns)


@pytest.mark.slow
@pytest.mark.parametrize("columns", [80, 60])
def test_each_bar_stays_on_one_line(tmp_path, columns):
    raw = _terminal_stderr(["build", "--vocab", str(DATA / "vocab.txt"), "--vectors", str(DATA / "vectors.txt"),
                            "--out", str(tmp_path / "run"), str(DATA / "train.parquet"), str(DATA / "train.pt")],
                           columns=columns)
    # Each redraw starts at a carriage return; a line that Rich wrapped would show up as a segment
    # without a bar (e.g. "   kB ?", the rate on a line of its own) or one wider than the terminal.
    segments = [s for line in ESCAPE.sub("", raw).split("\n") for s in line.split("\r") if s.strip()]
    bars = [s for s in segments if "━" in s]
    assert bars, raw
    assert max(len(s) for s in segments) <= columns, [s for s in segments if len(s) > columns]
    assert [s for s in segments if s[0] == " " and "━" not in s] == []
    assert any("kB" in s and "%" in s for s in bars)            # size and rate on the bar's own line
    assert any("2/2 files" in s for s in bars)
    notes = [s for s in segments if "━" not in s]
    assert notes == ["read 3,000 vocabulary tokens", "matched 2,531 fixed and 469 trainable tokens",
                     "remapped 15,936 ids in 2 file(s)"]
