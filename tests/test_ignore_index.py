"""`--ignore-index`: a value that is a real id of the vocabulary is refused, in every command that takes
the option and for every dataset format, naming the token; values outside the vocabulary pass through."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _datasets import KINDS, build_small_run, write_dataset

from reindex.datasets import RemapSpec
from reindex.errors import UsageError

from conftest import VOCAB

IDS = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ignore")
    build_small_run(root)
    return root


def _args(command, root, source, out):
    if command == "build":
        return ["build", "--vocab", root / "vocab.txt", "--vectors", root / "vectors.txt", "--out", out, source]
    if command == "inspect":
        return ["inspect", root / "run", source]
    return [command, root / "run", source, "--out", out]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["build", "remap", "invert", "inspect"])
def test_an_ignore_value_inside_the_vocabulary_is_refused_naming_its_token(built, tmp_path, cli, command, kind):
    from reindex import load_run

    source = write_dataset(kind, tmp_path / "data", IDS, tokens=VOCAB)
    out = tmp_path / "out"
    # invert reads sorted ids: id 2 is the run's sorted token 2; the others read original ids
    token = load_run(built / "run").tokens[2] if command == "invert" else VOCAB[2]
    code, stdout, err = cli(*_args(command, built, source, out), "--ignore-index", "-100", "--ignore-index", "2")
    assert code == 2 and stdout == "", err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"--ignore-index 2 is the id of the token {token!r}" in err
    assert "ignore values must lie outside the vocabulary [0, 7)" in err and "-100" in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["build", "remap", "invert", "inspect"])
def test_ignore_values_outside_the_vocabulary_are_taken(built, tmp_path, cli, command):
    source = write_dataset("npy", tmp_path / "data", IDS)
    for value in ("-100", "7", "-1"):  # 7 == len(VOCAB): the first id past the vocabulary
        out = tmp_path / f"out{value}"
        code, _, err = cli(*_args(command, built, source, out), "--ignore-index", value, "-q")
        assert code == 0, err


def test_the_library_check_is_in_the_spec_every_command_makes():
    with pytest.raises(UsageError, match=r"--ignore-index 0 is the id of the token 'a': ignore values must lie "
                                         r"outside the vocabulary \[0, 3\) \(use a value such as -100\)"):
        RemapSpec(table=np.arange(3), tokens=["a", "b", "c"], ignore=(-100, 0))
    with pytest.raises(UsageError, match=r"--ignore-index 2 is the id of a token"):
        RemapSpec(table=np.arange(3), ignore=(2,))
    assert RemapSpec(table=np.arange(3), ignore=(-100, 3)).ignore == (-100, 3)


def test_verify_reports_a_run_recorded_with_an_ignore_value_inside_the_vocabulary(tmp_path, cli, small):
    run = tmp_path / "built"
    code, _, err = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--out", run,
                       small["ids"], "--ignore-index", "-100", "-q")
    assert code == 0, err
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["options"]["ignore_index"] = [2]   # as a run written before the check would record it
    (run / "manifest.json").write_text(json.dumps(manifest))
    from reindex.commands.verify import _check_data

    problems = _check_data(run, manifest)
    assert problems and "--ignore-index 2 is the id of a token" in problems[0]
