"""Issue 19, item 5: every export format gives the same bytes every time, gzip and torch's zip included.

Each format is written twice under the same final name in different folders: once in this process and
once in a fresh interpreter (torch's zip writer and gzip's header are where a random temporary name,
a clock or a process-wide counter would show).
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reindex.commands.export import SUFFIXES, export
from reindex.options import EXPORT_FORMATS

from _runs import make_run
from conftest import ROOT

#: One final name per format, from the suffix table itself, so a new format is tested without an edit here.
NAMES = {fmt: "embedding" + suffix for suffix, fmt in SUFFIXES.items()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(here, there): every format exported in this process and in a subprocess, same names."""
    tmp = tmp_path_factory.mktemp("exp")
    make_run(tmp / "run", vocab_size=300, num_fixed=120, dim=16)
    here, there = tmp / "here", tmp / "there"
    here.mkdir()
    there.mkdir()
    for fmt, name in NAMES.items():
        export(tmp / "run", out=here / name, format=fmt)
    script = ("import json, sys; from pathlib import Path; from reindex.commands.export import export\n"
              "names = json.loads(sys.argv[2])\n"
              "for fmt, name in names.items(): export(sys.argv[1], out=Path(sys.argv[3]) / name, format=fmt)\n")
    subprocess.run([sys.executable, "-c", script, str(tmp / "run"), json.dumps(NAMES), str(there)],
                   check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return here, there


def test_the_suffix_table_covers_every_format():
    assert sorted(NAMES) == sorted(EXPORT_FORMATS)


@pytest.mark.parametrize("fmt", sorted(NAMES))
def test_every_format_is_byte_identical_when_written_again(exported, fmt):
    here, there = exported
    first, second = (here / NAMES[fmt]).read_bytes(), (there / NAMES[fmt]).read_bytes()
    assert len(first) > 0
    assert first == second


@pytest.mark.parametrize("fmt", [f for f in sorted(NAMES) if f.endswith("-gz")])
def test_gzip_header_holds_no_name_and_no_time(exported, fmt):
    here, _ = exported
    data = (here / NAMES[fmt]).read_bytes()
    flags, mtime = data[3], int.from_bytes(data[4:8], "little")
    assert flags & 0x08 == 0, "FNAME set: the header stores a (temporary) file name"
    assert mtime == 0
    assert b".tmp" not in data[:64]
    plain = NAMES[fmt.removesuffix("-gz")]
    assert gzip.decompress(data) == (here / plain).read_bytes()   # the same text as the plain format


def test_pt_export_holds_no_path_or_temporary_name(exported):
    here, _ = exported
    data = (here / NAMES["pt"]).read_bytes()
    assert b"tmp" not in data and str(here).encode() not in data
