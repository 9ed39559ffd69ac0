"""reindex.checkpoint: the one reader of Hugging Face checkpoints that `build --vectors MODEL` and `audit` share."""
from __future__ import annotations

import numpy as np
import pytest

from reindex.checkpoint.files import matrix_tensor, pick, tensor_files
from reindex.checkpoint.tensors import read_rows
from reindex.errors import ReindexError, UsageError


def test_gpt_neox_names_are_found_and_bfloat16_rows_read_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    embedding = torch.randn(6, 4).to(torch.bfloat16)
    save_file({"gpt_neox.embed_in.weight": embedding, "embed_out.weight": torch.zeros(6, 4),
               "gpt_neox.layers.0.weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    files, directory, kind = tensor_files(tmp_path)
    assert (directory, kind) == (tmp_path, "model")
    key = pick(files, None, path=tmp_path, option="--key")
    assert key == "gpt_neox.embed_in.weight"
    assert pick(files, None, head=True, path=tmp_path, option="--head-key") == "embed_out.weight"
    rows = read_rows(matrix_tensor(files, key, path=tmp_path, option="--key"), 5)
    assert rows.dtype == np.float32 and rows.flags.c_contiguous
    np.testing.assert_array_equal(rows, embedding[:5].float().numpy())


def test_each_caller_names_its_own_flag(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a.weight": np.zeros((3, 2), np.float32), "b.weight": np.zeros(3, np.float32)},
              str(tmp_path / "model.safetensors"))
    files, _, _ = tensor_files(tmp_path)
    with pytest.raises(ReindexError, match="name it with --vectors-key"):
        pick(files, None, path=tmp_path, option="--vectors-key")
    with pytest.raises(UsageError, match="--key 'nope' is not a tensor here"):
        pick(files, "nope", path=tmp_path, option="--key")
    assert pick(files, None, head=True, path=tmp_path, option="--head-key", required=False) is None
    with pytest.raises(ReindexError, match=r"'b.weight' is F32 \[3\], not a float matrix.*--vectors-key"):
        matrix_tensor(files, "b.weight", path=tmp_path, option="--vectors-key")
