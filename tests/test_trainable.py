"""reindex.run.trainable: the one reader and checker of trained-row files, shared by the CLI and the torch side."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from reindex.commands.export import load_trainable as export_load_trainable
from reindex.errors import ReindexError, UsageError
from reindex.run.trainable import read_safetensors, replaceable
from reindex.torch import SplitEmbedding


def test_bfloat16_is_widened_exactly(tmp_path):
    values = torch.randn(4, 3).to(torch.bfloat16)
    save_file({"trainable": values, "ids": torch.arange(4)}, str(tmp_path / "r.safetensors"), metadata={"a": "b"})
    tensors, metadata = read_safetensors(tmp_path / "r.safetensors")
    assert tensors["trainable"].dtype == np.float32 and metadata == {"a": "b"}
    assert np.array_equal(tensors["trainable"], values.float().numpy())
    assert tensors["ids"].tolist() == [0, 1, 2, 3]


def test_an_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ReindexError, match=r"bad\.safetensors: cannot read safetensors file"):
        read_safetensors(bad)
    with pytest.raises(ReindexError, match=r"bad\.safetensors: cannot read safetensors file"):
        SplitEmbedding(torch.zeros(2, 3), torch.zeros(1, 3)).load_trainable(bad)


def test_save_trainable_replaces_only_its_own_files(tmp_path):
    emb = SplitEmbedding(torch.zeros(2, 3), torch.ones(1, 3))
    mine, theirs = tmp_path / "rows.safetensors", tmp_path / "notes.safetensors"
    emb.save_trainable(mine)
    with torch.no_grad():
        emb.trainable.fill_(2.0)
    emb.save_trainable(mine)                      # an earlier save: replaced
    assert read_safetensors(mine)[0]["trainable"].tolist() == [[2.0, 2.0, 2.0]]
    save_file({"x": torch.zeros(1)}, str(theirs))
    before = theirs.read_bytes()
    with pytest.raises(UsageError, match="not a file written by `save_trainable`"):
        emb.save_trainable(theirs)
    assert theirs.read_bytes() == before and replaceable(theirs) is not None and replaceable(mine) is None


def test_the_cli_and_the_module_read_the_same_file_the_same_way(tmp_path):
    emb = SplitEmbedding(torch.zeros(2, 3), torch.arange(6.).view(2, 3))
    path = tmp_path / "rows.safetensors"
    emb.save_trainable(path)
    rows = export_load_trainable(path, shape=(2, 3), fixed=np.zeros((2, 3), np.float32))
    other = SplitEmbedding(torch.zeros(2, 3), torch.zeros(2, 3))
    other.load_trainable(path)
    assert np.array_equal(rows, other.trainable.detach().numpy())
    with pytest.raises(ReindexError, match="saved with 2 fixed rows, the run has 3"):
        export_load_trainable(path, shape=(2, 3), fixed=np.zeros((3, 3), np.float32))
    save_file({"trainable": torch.tensor([[0.0, float("nan"), 0.0], [0, 0, 0]])}, str(path))
    for load in (lambda: export_load_trainable(path, shape=(2, 3), fixed=np.zeros((2, 3), np.float32)),
                 lambda: other.load_trainable(path)):
        with pytest.raises(ReindexError, match="`trainable` row 0 holds nan"):
            load()
