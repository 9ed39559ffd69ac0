"""Issue 19, item 8: `verify` refuses what it cannot vouch for: a manifest a newer reindex wrote, another
program's manifest, or one that does not say what it is. Every other command that reads RUN refuses the
first two as well (it cannot know what a newer version means), and accepts the current version.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reindex.errors import ReindexError
from reindex.formats import FORMAT_VERSION, RUN_FORMAT
from reindex.run import load_run

from conftest import VECTORS, VOCAB, write_glove


@pytest.fixture(scope="module")
def intact(tmp_path_factory) -> Path:
    from reindex.commands.build import build

    tmp = tmp_path_factory.mktemp("fmt")
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    write_glove(tmp / "vectors.txt", VECTORS)
    np.save(tmp / "ids.npy", np.array([[1, 2, 3]], dtype=np.int64))
    build(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", data=[tmp / "ids.npy"], out=tmp / "run", pad="<pad>")
    return tmp / "run"


def with_manifest(intact: Path, tmp_path: Path, **changes: object) -> Path:
    run = tmp_path / "run"
    shutil.copytree(intact, run)
    manifest = json.loads((run / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            del manifest[key]
        else:
            manifest[key] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


CANNOT_VOUCH: dict[str, tuple[dict[str, object], str]] = {   # manifest changes -> the one line
    "a newer version": ({"format_version": FORMAT_VERSION + 1},
                        f"`format_version` is {FORMAT_VERSION + 1}; this reindex reads up to {FORMAT_VERSION}"),
    "version 999": ({"format_version": 999}, "`format_version` is 999"),
    "version 0": ({"format_version": 0}, "`format_version` is 0; versions start at 1"),
    "a foreign format": ({"format": "acme.model"}, f"`format` is 'acme.model', not '{RUN_FORMAT}'"),
    "another reindex format": ({"format": "reindex.export"}, "`format` is 'reindex.export'"),
    "a version as a string": ({"format_version": "1"}, "`format_version` is the string '1'"),
    "no format": ({"format": None}, "no `format`: not a manifest reindex wrote"),
    "no version": ({"format_version": None}, "no `format_version`"),
}


@pytest.mark.parametrize("case", sorted(CANNOT_VOUCH))
def test_verify_refuses_a_manifest_it_cannot_vouch_for(cli, intact, tmp_path, case):
    changes, needle = CANNOT_VOUCH[case]
    run = with_manifest(intact, tmp_path, **changes)
    code, stdout, stderr = cli("verify", run)
    assert code == 1 and "ok" not in stdout
    assert stderr.splitlines() == [line for line in stderr.splitlines() if needle in line] != []
    assert f"manifest.json: {needle}" in stderr


@pytest.mark.parametrize("case", ["a newer version", "version 999", "a foreign format", "another reindex format"])
@pytest.mark.parametrize("command", ["inspect", "export", "remap"])
def test_every_reader_of_a_run_refuses_a_newer_or_foreign_manifest(cli, intact, tmp_path, case, command):
    changes, needle = CANNOT_VOUCH[case]
    run = with_manifest(intact, tmp_path, **changes)
    with pytest.raises(ReindexError, match="manifest.json: ") as error:
        load_run(run)
    assert needle in str(error.value)
    args = {"inspect": [run], "export": [run, "--out", tmp_path / "e.npy"],
            "remap": [run, tmp_path / "run" / "data" / "ids.npy", "--out", tmp_path / "r"]}[command]
    code, _, stderr = cli(command, *args)
    assert code == 1 and needle in stderr and "Traceback" not in stderr


def test_the_current_version_is_vouched_for(cli, intact):
    manifest = json.loads((intact / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"]) == (RUN_FORMAT, FORMAT_VERSION)
    code, stdout, stderr = cli("verify", intact)
    assert (code, stderr) == (0, "") and stdout.strip().endswith(": ok")
