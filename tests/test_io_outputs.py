"""The overwrite rule (reindex.io.outputs) on the writers outside `build`: `save_trainable` (Hugging Face
and SplitEmbedding) never replaces a user's file and is byte-identical across saves, `inspect --plot`
never lands on a dataset it reads, and a deeply nested manifest is one error line in every command."""
from __future__ import annotations

import os
import stat

import pytest

pytest.importorskip("transformers")

import reindex.hf as rh  # noqa: E402
from reindex.errors import ReindexError  # noqa: E402

from _hf_models import MIDDLE_IDS, tiny_model  # noqa: E402


def test_hf_save_trainable_never_replaces_a_users_file(tmp_path):
    model = rh.train_only(tiny_model("gpt2"), MIDDLE_IDS)
    notes = tmp_path / "notes.safetensors"
    notes.write_bytes(b"the user's own file")
    with pytest.raises(ReindexError, match="refusing to replace"):
        rh.save_trainable(model, notes)
    assert notes.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.safetensors"]  # no temporary left


def test_hf_save_trainable_replaces_its_own_file_with_the_umask_mode(tmp_path):
    model = rh.train_only(tiny_model("llama"), MIDDLE_IDS)
    path = tmp_path / "rows.safetensors"
    old = os.umask(0o022)
    try:
        rh.save_trainable(model, path)
        first = path.read_bytes()
        rh.save_trainable(model, path)       # an earlier save_trainable file: replaced
    finally:
        os.umask(old)
    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_split_embedding_save_trainable_is_byte_identical_across_saves(tmp_path):
    import torch

    from reindex.torch import SplitEmbedding

    embedding = SplitEmbedding.from_embedding(torch.nn.Embedding(10, 4), frozen_rows=[0, 1, 2, 5])
    embedding.save_trainable(tmp_path / "a.safetensors")
    for _ in range(5):  # safetensors writes metadata in a random order; reindex sorts it
        embedding.save_trainable(tmp_path / "b.safetensors")
        assert (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "a.safetensors").read_bytes()


def test_inspect_plot_never_lands_inside_or_on_a_dataset_it_reads(tmp_path, cli):
    import shutil

    from conftest import DATA

    run = tmp_path / "run"
    assert cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run, "-q")[0] == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "train.parquet", corpus / "train.parquet")
    before = sorted(p.name for p in corpus.iterdir())
    code, _, err = cli("inspect", run, corpus, "--plot", corpus / "coverage.png")
    assert code == 2 and "lies inside the input" in err, err
    assert sorted(p.name for p in corpus.iterdir()) == before
    code, _, err = cli("inspect", run, corpus, "--plot", tmp_path / "coverage.png")
    assert code == 0, err
    assert (tmp_path / "coverage.png").read_bytes()[:4] == b"\x89PNG"


def test_a_deeply_nested_manifest_is_one_line_in_every_command_that_reads_a_run(tmp_path, cli):
    from conftest import DATA

    run = tmp_path / "run"
    assert cli("build", "--vocab", DATA / "vocab.txt", "--vectors", DATA / "vectors.txt", "--out", run, "-q")[0] == 0
    (run / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    for args in (("verify", run), ("inspect", run), ("export", run, "--out", tmp_path / "e.npy"),
                 ("remap", run, DATA / "train.parquet", "--out", tmp_path / "enc")):
        code, _, err = cli(*args)
        assert code == 1, (args, err)
        assert "Traceback" not in err and "manifest.json" in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "enc").exists()
