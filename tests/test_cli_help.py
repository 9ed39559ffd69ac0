"""`-q` help says what each command keeps: only `build` writes a manifest that keeps warnings."""
from __future__ import annotations

import re

import pytest


def _help(command: str) -> str:
    from typer.testing import CliRunner

    from reindex.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    return re.sub(r"[\s│]+", " ", result.output)   # the same text however Rich wrapped or boxed it


def test_build_quiet_keeps_warnings_in_the_manifest():
    assert "Print nothing but errors (warnings stay in the manifest)." in _help("build")


@pytest.mark.parametrize("command", ["remap", "invert", "export", "inspect", "verify"])
def test_quiet_help_names_no_manifest_where_there_is_none(command):
    text = _help(command)
    assert "Print nothing but errors." in text and "warnings stay in the manifest" not in text
