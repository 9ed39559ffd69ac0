"""Which files of a DATA folder or glob are remapped: only id files. A `.npy`/`.pt`/`.safetensors` file is
one when its name holds `ids`, `tokens` or a `--column` name, or `--include` picks it; a file named on the
command line is always taken; columnar files are chosen by `--column`. Every skipped file is listed (a note,
`--json`, the manifest). Coverage leaves out the pad token and the ignore values, and says so."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _datasets import KINDS, build_small_run, write_dataset

from reindex import progress
from reindex.datasets.plan import NOT_IDS, plan_datasets

from conftest import NoteCollector

IDS = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
LABELS = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.int64)
ARRAYS = ("npy", "pt", "safetensors")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_small_run(tmp_path_factory.mktemp("selection"))


def _folder(tmp_path, kind):
    folder = tmp_path / "data"
    write_dataset(kind, folder, IDS, stem="input_ids", tokens=["<pad>", "a", "b", "c", "d", "e", "f"])
    labels = write_dataset(kind, folder, LABELS, stem="labels", tokens=["<pad>", "a"])
    return folder, labels


@pytest.mark.parametrize("kind", KINDS)
def test_in_a_folder_only_id_files_are_taken_and_every_skip_is_listed(tmp_path, kind):
    folder, labels = _folder(tmp_path, kind)
    with progress.use(NoteCollector()) as notes:
        plan = plan_datasets([folder], tmp_path / "out")
    taken = sorted(s.name for s, _ in plan.pairs)
    if kind in ARRAYS:   # a bare array: its name decides
        assert taken == [f"input_ids{labels.suffix}"] and plan.skipped == [(labels, NOT_IDS)]
        assert notes.lines == [f"note: skipping {labels}: {NOT_IDS}"]
    else:                # columnar files (and text) hold named columns: --column decides, not the name
        assert taken == sorted(["input_ids" + labels.suffix, labels.name]) and plan.skipped == []


@pytest.mark.parametrize("kind", ARRAYS)
def test_a_column_name_include_or_a_direct_name_takes_a_file(tmp_path, kind):
    folder, labels = _folder(tmp_path, kind)
    for how in ({"columns": ["input_ids", "labels"]}, {"include": ["*"]}):
        plan = plan_datasets([folder], tmp_path / "out", **how)
        assert labels in [s for s, _ in plan.pairs] and plan.skipped == [], how
    plan = plan_datasets([labels], tmp_path / "out")       # named on the command line: always taken
    assert [s for s, _ in plan.pairs] == [labels]
    plan = plan_datasets([str(folder / f"*{labels.suffix}")], tmp_path / "out")   # a glob follows the rule
    assert [s.name for s, _ in plan.pairs] == [f"input_ids{labels.suffix}"] and plan.skipped == [(labels, NOT_IDS)]
    plan = plan_datasets([str(folder / f"*{labels.suffix}")], tmp_path / "out", include=["labels*"])
    assert labels in [s for s, _ in plan.pairs]


@pytest.mark.parametrize("kind", ARRAYS)
@pytest.mark.parametrize("command", ["build", "remap", "invert", "inspect"])
def test_every_command_leaves_labels_alone_and_lists_them(run, tmp_path, cli, command, kind):
    folder, labels = _folder(tmp_path, kind)
    out = tmp_path / "out"
    if command == "build":
        args = ["build", "--vocab", run.parent / "vocab.txt", "--vectors", run.parent / "vectors.txt", "--out", out]
    elif command == "inspect":
        args = ["inspect", run]
    else:
        args = [command, run, "--out", out]
    code, stdout, err = cli(*args, folder, "--json")
    assert code == 0, err
    assert f"note: skipping {labels}: not an id file by its name" in err
    result = json.loads(stdout)
    assert result["skipped"] == [{"path": str(labels), "reason": NOT_IDS}]
    if command == "build":
        assert json.loads((out / "manifest.json").read_text())["counts"]["skipped_datasets"] == result["skipped"]
        assert [d["source"] for d in result["datasets"]] == [str(folder / f"input_ids{labels.suffix}")]
        assert not (out / "data" / "data" / labels.name).exists()
    elif command == "inspect":
        assert result["corpus"]["tokens"] == IDS.size
    else:
        assert [f["source"] for f in result["files"]] == [str(folder / f"input_ids{labels.suffix}")]
        assert not (out / "data" / labels.name).exists()
        marker = next(p for p in out.iterdir() if p.name.startswith("."))
        assert json.loads(marker.read_text())["skipped"] == result["skipped"]


def test_coverage_leaves_out_the_pad_token_and_says_so(small, cli):
    ids = np.array([[1, 3, 0, 0], [6, 2, 0, 0]])   # half padding: <pad> is original id 0
    np.save(small["dir"] / "input_ids.npy", ids)
    run = small["dir"] / "run"
    code, out, err = cli("build", "--vocab", small["vocab"], "--vectors", small["vectors"], "--pad", "<pad>",
                         "--out", run, small["dir"] / "input_ids.npy", "--json")
    assert code == 0, err
    built = json.loads(out)
    corpus = built["corpus"]
    # the, cat, dog have vectors; xyzzy not: 3 of 4 real tokens, the 4 pads not counted
    assert (corpus["tokens"], corpus["fixed_tokens"], corpus["pad_tokens"]) == (4, 3, 4)
    assert corpus["fixed_share"] == 0.75 and corpus["not_counted"] == ["pad", "ignore_index"]
    assert built["fixed_includes_pad"] is True
    code, out, _ = cli("inspect", run, small["dir"] / "input_ids.npy", "--json")
    assert json.loads(out)["corpus"] == {**corpus, "top_trainable": json.loads(out)["corpus"]["top_trainable"]}
    code, out, _ = cli("inspect", run)
    assert code == 0 and "fixed (pretrained) incl. the pad row" in out and "75.0%" in out
    assert "leave out the --pad token and --ignore-index ids" in " ".join(out.split())
    assert "pad tokens (not counted)" in out
    code, out, _ = cli("inspect", small["dir"] / "run", "--json")
    assert json.loads(out)["corpus"]["fixed_share"] == 0.75    # the stored counts, read the same way


@pytest.mark.parametrize("command", ["build", "remap", "invert"])
def test_a_skipped_file_inside_out_is_still_protected_by_the_output_rule(run, tmp_path, cli, command):
    """`*/*.npy` takes other/input_ids.npy and skips enc/labels.npy; `--out enc --force` must not delete it."""
    np.save(tmp_path / "ids.npy", IDS)
    earlier = (["build", "--vocab", run.parent / "vocab.txt", "--vectors", run.parent / "vectors.txt"]
               if command == "build" else ["remap", run, tmp_path / "ids.npy"])
    assert cli(*earlier, "--out", tmp_path / "enc", "-q")[0] == 0   # an output --force may replace
    write_dataset("npy", tmp_path / "other", IDS)
    np.save(tmp_path / "enc" / "labels.npy", LABELS)
    head = earlier[:5] if command == "build" else [command, run]
    code, _, err = cli(*head, str(tmp_path / "*" / "*.npy"), "--out", tmp_path / "enc", "--force")
    assert code == 2 and "contains the input" in err and "labels.npy" in err, err
    assert np.load(tmp_path / "enc" / "labels.npy").tolist() == LABELS.tolist()


# --- an empty selection is never silent (item 11) ---------------------------------------------------

def _command(command, run, out):
    if command == "build":
        return ["build", "--vocab", run.parent / "vocab.txt", "--vectors", run.parent / "vectors.txt", "--out", out]
    if command == "inspect":
        return ["inspect", run]
    return [command, run, "--out", out]


def _one_line(code, stdout, err):
    assert code == 1 and stdout == "", err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["build", "remap", "invert", "inspect"])
def test_an_include_that_matches_no_dataset_is_one_line_and_exit_1(run, tmp_path, cli, command, kind):
    folder, _ = _folder(tmp_path, kind)
    out = tmp_path / "out"
    err = _one_line(*cli(*_command(command, run, out), folder, "--include", "*.nothing", "--json"))
    assert f"{folder}: no file in this directory matches --include *.nothing" in err
    assert not out.exists()


@pytest.mark.parametrize("command", ["build", "remap", "invert", "inspect"])
def test_an_empty_directory_or_one_with_no_id_file_is_one_line_and_exit_1(run, tmp_path, cli, command):
    out = tmp_path / "out"
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    (tmp_path / "empty" / ".hidden" / "input_ids.npy").write_bytes(b"")   # hidden: never a dataset
    err = _one_line(*cli(*_command(command, run, out), tmp_path / "empty"))
    assert f"{tmp_path / 'empty'}: no dataset in this directory (pass --include GLOB" in err
    for kind in ARRAYS:   # only files skipped by their name: the error names them, and no note is printed
        write_dataset(kind, tmp_path / "labels_only", LABELS, stem="labels")
    (tmp_path / "labels_only" / "notes.md").write_text("# notes\n")
    err = _one_line(*cli(*_command(command, run, out), tmp_path / "labels_only"))
    assert "no dataset in this directory: 4 file(s) skipped (labels.npy, labels.pt, labels.safetensors, ...)" in err
    err = _one_line(*cli(*_command(command, run, out), str(tmp_path / "labels_only" / "*.npy")))
    assert "no dataset in this pattern: 1 file(s) skipped (labels.npy)" in err
    assert not out.exists()


def test_one_empty_directory_among_good_inputs_is_still_refused(tmp_path):
    from reindex.errors import ReindexError

    write_dataset("npy", tmp_path / "good", IDS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReindexError, match="empty: no dataset in this directory"):
        plan_datasets([tmp_path / "good", tmp_path / "empty"], tmp_path / "out")
    assert len(plan_datasets([tmp_path / "good"], tmp_path / "out").pairs) == 1
