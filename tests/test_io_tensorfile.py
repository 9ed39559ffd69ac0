"""`save_safetensors` writes the format itself: the exact bytes of safetensors' writer with the
canonical header, read back by safetensors, with the mode a new file gets under the umask."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from reindex.io.tensorfile import DTYPES, canonicalize, save_safetensors


def every_dtype() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {f"t_{name}": rng.integers(0, 100, (3, 2)).astype(name) for name in DTYPES}
    tensors.update({"scalar": np.array(3.5, np.float32), "empty": np.zeros((0, 5), np.float32),
                    "Big_endian": np.arange(4, dtype=">i8"),
                    "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))})
    return tensors


@pytest.mark.parametrize("metadata", [None, {}, {"format": "reindex.embedding", "b": 'é"\\\n', "a": "x" * 13}])
def test_bytes_equal_safetensors_save_file_then_canonicalize(tmp_path, metadata):
    from safetensors.numpy import save_file

    tensors = every_dtype()
    save_safetensors(tmp_path / "ours.safetensors", tensors, metadata=metadata)
    save_file({k: v.copy(order="C") for k, v in tensors.items()}, str(tmp_path / "theirs.safetensors"),
              metadata=metadata)
    canonicalize(tmp_path / "theirs.safetensors")
    assert (tmp_path / "ours.safetensors").read_bytes() == (tmp_path / "theirs.safetensors").read_bytes()


def test_read_back_by_safetensors_and_laid_out_by_hand(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "e.safetensors"
    fixed, order = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 0], np.int64)
    save_safetensors(path, {"fixed": fixed, "sorted_to_original": order}, metadata={"format": "x"})
    head = canonical = (b'{"__metadata__":{"format":"x"},"fixed":{"data_offsets":[16,40],"dtype":"F32","shape":[2,3]},'
                        b'"sorted_to_original":{"data_offsets":[0,16],"dtype":"I64","shape":[2]}}')
    head += b" " * (-len(canonical) % 8)
    # int64 (higher rank in safetensors' order) before float32
    assert path.read_bytes() == struct.pack("<Q", len(head)) + head + order.tobytes() + fixed.tobytes()
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"format": "x"}
        assert np.array_equal(f.get_tensor("fixed"), fixed)
        assert np.array_equal(f.get_tensor("sorted_to_original"), order)
    for name, tensor in every_dtype().items():
        save_safetensors(path, {name: tensor})
        with safe_open(str(path), framework="numpy") as f:
            got = f.get_tensor(name)
        assert got.shape == tensor.shape and np.array_equal(got, tensor), name


def test_refuses_a_dtype_safetensors_cannot_hold_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="'z'.*complex64"):
        save_safetensors(tmp_path / "c.safetensors", {"z": np.zeros(2, np.complex64)})
    assert not (tmp_path / "c.safetensors").exists()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_mode_follows_the_umask(tmp_path, mask):
    previous = os.umask(mask)
    try:
        save_safetensors(tmp_path / "m.safetensors", {"a": np.zeros(1, np.float32)})
    finally:
        os.umask(previous)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask
