"""Issue 19, item 7: a structured file is checked for shape before use, and a run missing a member is
refused, each in one line naming the file and the key (or the member), by every command that reads it.

The class: manifest.json (every command that takes RUN, and `load_run`), a sharded checkpoint's index
(both readers: `--vectors` and `audit`), tokenizer.json (`--vocab`) and a `save_to_disk` state.json.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reindex.errors import ReindexError
from reindex.run import load_run

from conftest import VECTORS, VOCAB, write_glove

COMMANDS = ("inspect", "export", "verify", "build", "remap", "invert", "to-text")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    from reindex.commands.build import build

    tmp = tmp_path_factory.mktemp("shapes")
    (tmp / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    write_glove(tmp / "vectors.txt", VECTORS)
    np.save(tmp / "ids.npy", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64))
    build(vocab=tmp / "vocab.txt", vectors=tmp / "vectors.txt", data=[tmp / "ids.npy"], out=tmp / "run",
          pad="<pad>")
    np.save(tmp / "sorted.npy", np.array([[1, 2, 3]], dtype=np.int64))
    return {"dir": tmp, "run": tmp / "run", "vocab": tmp / "vocab.txt", "ids": tmp / "ids.npy",
            "sorted": tmp / "sorted.npy"}


def command_args(command: str, run: Path, built: dict[str, Path], out: Path) -> list[object]:
    return {"inspect": ["inspect", run], "verify": ["verify", run],
            "export": ["export", run, "--out", out / "e.npy"],
            "build": ["build", "--vocab", built["vocab"], "--vectors", run, "--out", out / "b"],
            "remap": ["remap", run, built["ids"], "--out", out / "r"],
            "invert": ["invert", run, built["sorted"], "--out", out / "i"],
            "to-text": ["invert", run, built["sorted"], "--to-text", "--out", out / "t"]}[command]


def refused_everywhere(cli, built, run: Path, tmp_path: Path, *needles: str) -> None:
    """Every command that takes RUN exits 1 with one line holding each needle; `load_run` raises it."""
    for command in COMMANDS:
        out = tmp_path / command
        code, stdout, stderr = cli(*command_args(command, run, built, out))
        lines = [line for line in stderr.splitlines() if line.startswith("reindex: ")]  # not progress notes
        assert code == 1, (command, stdout, stderr)
        assert len(lines) == 1 and stderr.endswith(lines[0] + "\n") and "Traceback" not in stderr, (command, stderr)
        assert all(needle in lines[0] for needle in needles), (command, lines[0])
        assert not out.exists() or not any(out.iterdir()), command
    with pytest.raises(ReindexError) as error:
        _ = load_run(run).tokens
    assert all(needle in str(error.value) for needle in needles)


def edited(built, tmp_path: Path, edit) -> Path:
    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps(edit(manifest)))
    return run


BAD_MANIFESTS = {
    "a list": (lambda m: [m], "holds a list, expected an object"),
    "counts a list": (lambda m: {**m, "counts": [1, 2]}, "`counts` is a list"),
    "inputs a list": (lambda m: {**m, "inputs": [m["inputs"]]}, "`inputs` is a list"),
    "inputs.vocab a number": (lambda m: {**m, "inputs": {**m["inputs"], "vocab": 5}}, "`inputs.vocab` is the number 5"),
    "an input's path a number": (lambda m: {**m, "inputs": {**m["inputs"], "data": [{"path": 3}]}},
                                 "`inputs.data[0].path` is the number 3"),
    "datasets a string": (lambda m: {**m, "datasets": "x"}, "`datasets` is the string 'x'"),
    "a dataset's output a list": (lambda m: {**m, "datasets": [{**m["datasets"][0], "output": []}]},
                                  "`datasets[0].output` is a list"),
    "outputs an object": (lambda m: {**m, "outputs": {}}, "`outputs` is an object"),
    "an output's size a string": (lambda m: {**m, "outputs": [{**m["outputs"][0], "size": "9"}]},
                                  "`outputs[0].size` is the string '9'"),
    "options a list": (lambda m: {**m, "options": []}, "`options` is a list"),
    "options.columns a string": (lambda m: {**m, "options": {**m["options"], "columns": "input_ids"}},
                                 "`options.columns` is the string"),
    "counts.vocab negative": (lambda m: {**m, "counts": {**m["counts"], "vocab": -1}}, "`counts.vocab` is the number -1"),
    "counts.pad_id a string": (lambda m: {**m, "counts": {**m["counts"], "pad_id": "0"}}, "`counts.pad_id`"),
    "counts.pad_id outside": (lambda m: {**m, "counts": {**m["counts"], "pad_id": 99}}, "99"),  # verify: the pad
    "counts.fallback a list": (lambda m: {**m, "counts": {**m["counts"], "fallback": []}}, "`counts.fallback`"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_manifest_of_the_wrong_shape_is_one_line_naming_the_key_in_every_command(cli, built, tmp_path, case):
    edit, needle = BAD_MANIFESTS[case]
    run = edited(built, tmp_path, edit)
    refused_everywhere(cli, built, run, tmp_path, "pad" if case == "counts.pad_id outside" else "manifest.json: ",
                       needle)


def test_the_intact_run_passes_every_command(cli, built, tmp_path):
    for command in COMMANDS:
        code, _, stderr = cli(*command_args(command, built["run"], built, tmp_path / command))
        assert code == 0, (command, stderr)


@pytest.mark.parametrize("member", ["vocab.txt", "embedding.safetensors", "manifest.json"])
def test_a_run_missing_a_member_is_one_line_naming_it_in_every_command(cli, built, tmp_path, member):
    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    (run / member).unlink()
    refused_everywhere(cli, built, run, tmp_path, member)


def test_tokens_of_a_run_whose_vocab_went_after_loading_is_one_line(built, tmp_path):
    shutil.copytree(built["run"], tmp_path / "run")
    run = load_run(tmp_path / "run")
    (tmp_path / "run" / "vocab.txt").unlink()
    with pytest.raises(ReindexError, match=r"run: no vocab\.txt \(the run directory is incomplete"):
        _ = run.tokens


def test_verify_names_a_vocab_that_is_not_utf8_and_nothing_else_about_it(cli, built, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(built["run"], run)
    (run / "vocab.txt").write_bytes(b"\xff\n" * 7)
    code, _, stderr = cli("verify", run)
    assert code == 1
    assert "vocab.txt: not UTF-8 at byte 0" in stderr and "duplicate" not in stderr


# ------------------------------------------------------------- a sharded checkpoint's index, both readers

BAD_INDEXES = {
    "weight_map a list": ({"weight_map": ["model-1.safetensors"]}, "`weight_map` is a list"),
    "a key mapped to a number": ({"weight_map": {"embed_tokens.weight": 3}},
                                 "`weight_map` maps 'embed_tokens.weight' to 3, not a shard file name"),
    "no weight_map": ({"metadata": {}}, "no `weight_map`"),
    "a list at the top": ([1], "no `weight_map`"),
}


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
def test_a_sharded_index_of_the_wrong_shape_is_one_line_in_every_reader(cli, tmp_path, case):
    from reindex.audit.sources import open_source
    from reindex.vectors.hf_model import read_model_embedding

    content, needle = BAD_INDEXES[case]
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors.index.json").write_text(json.dumps(content))
    for read in (read_model_embedding, open_source):
        with pytest.raises(ReindexError, match="model.safetensors.index.json: ") as error:
            read(model)
        assert needle in str(error.value), read
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    code, _, stderr = cli("build", "--vocab", tmp_path / "vocab.txt", "--vectors", model, "--out", tmp_path / "r")
    assert code == 1 and needle in stderr and "Traceback" not in stderr


# ------------------------------------------------------------------------------------ tokenizer.json

def _tokenizer_json() -> dict:
    from tokenizers import Tokenizer, models

    tokenizer = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "b": 2}, unk_token="<unk>"))
    return json.loads(tokenizer.to_str())


BAD_TOKENIZERS = {
    "a list": (lambda t: [t], "the file holds a list, expected an object"),
    "model a list": (lambda t: {**t, "model": []}, "`model` is a list"),
    "vocab a list": (lambda t: {**t, "model": {**t["model"], "vocab": [["a", 1]]}},
                     "`model.vocab` of a WordLevel model must be an object of token: id"),
    "added_tokens an object": (lambda t: {**t, "added_tokens": {}}, "`added_tokens` must be a list"),
    "an added id a string": (lambda t: {**t, "added_tokens": [{"id": "1", "content": "a"}]},
                             "`added_tokens[0]` needs an integer `id`"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENIZERS))
def test_a_tokenizer_json_of_the_wrong_shape_names_the_key(cli, tmp_path, case):
    from reindex.vocab import read_vocab

    edit, needle = BAD_TOKENIZERS[case]
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(edit(_tokenizer_json())))
    with pytest.raises(ReindexError, match="tokenizer.json: cannot read the tokenizer: ") as error:
        read_vocab(path)
    assert needle in str(error.value)
    write_glove(tmp_path / "v.txt", VECTORS)
    code, _, stderr = cli("build", "--vocab", path, "--vectors", tmp_path / "v.txt", "--out", tmp_path / "r")
    assert code == 1 and needle in stderr and "Traceback" not in stderr


# ------------------------------------------------------------------------- a save_to_disk state.json

@pytest.mark.parametrize("key, value", [("_fingerprint", 5), ("_split", []), ("_format_type", 1),
                                        ("_format_kwargs", []), ("_format_columns", "input_ids"),
                                        ("_output_all_columns", "no")])
def test_a_state_json_key_datasets_cannot_load_is_refused_naming_it(cli, built, tmp_path, key, value):
    import datasets

    datasets.disable_progress_bars()
    folder = tmp_path / "hf"
    datasets.Dataset.from_dict({"input_ids": [[1, 2], [3]]}).save_to_disk(str(folder))
    state = json.loads((folder / "state.json").read_text())
    (folder / "state.json").write_text(json.dumps({**state, key: value}))
    code, _, stderr = cli("remap", built["run"], folder, "--out", tmp_path / "out")
    assert code == 1 and "Traceback" not in stderr
    assert f"state.json: `{key}` is {type(value).__name__}, expected" in stderr
    assert not (tmp_path / "out").exists()
