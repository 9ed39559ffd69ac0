""".pt files: a tensor, or a dict of tensors whose `spec.columns` keys are remapped.

Loaded with `torch.load(weights_only=True)`, which refuses pickled code instead of running it.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ReindexError
from .core import FileReport, RemapSpec, output_dtype, remap_array


def remap_tensor(tensor: Any, spec: RemapSpec, *, path: Path, key: str | None = None) -> Any:
    """Remap an integer tensor (CPU) to a new tensor of the same shape.

    remap_tensor(torch.tensor([0, 2]), RemapSpec(np.array([2, 0, 1])), path=Path("x"))
    tensor([2, 1])
    """
    import torch

    check_tensor(tensor, spec, path=path, key=key)
    ids = tensor.detach().cpu().numpy()
    return torch.from_numpy(remap_array(ids, spec, path=path, key=key))


def check_tensor(tensor: Any, spec: RemapSpec, *, path: Path, key: str | None = None) -> None:
    """Refuse what is not a dense integer tensor whose ids fit the output dtype."""
    import torch

    where = "" if key is None else f"key {key!r}: "
    if not isinstance(tensor, torch.Tensor):
        raise ReindexError(f"{where}expected a tensor, got {type(tensor).__name__}", path=path)
    # Asked before any other tensor call: most of them raise (or warn) on nested and sparse tensors.
    if tensor.is_nested:
        raise ReindexError(f"{where}a nested tensor; ids must be one dense tensor", path=path,
                           hint="pad the rows into one dense tensor, or save ragged rows as Parquet lists")
    if tensor.layout != torch.strided:
        raise ReindexError(f"{where}a sparse tensor ({tensor.layout}); ids must be dense", path=path,
                           hint="save tensor.to_dense() instead")
    if tensor.is_meta:
        raise ReindexError(f"{where}a meta tensor, which holds no data", path=path,
                           hint="save the tensor after its values were computed")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ReindexError(f"{where}ids must be integers, got {tensor.dtype}", path=path,
                           hint="pass token ids, not floats")
    try:
        dtype = np.dtype(str(tensor.dtype).removeprefix("torch."))
    except TypeError:  # quantized and other torch-only integer types
        raise ReindexError(f"{where}ids must be plain integers, got {tensor.dtype}", path=path) from None
    output_dtype(dtype, spec, path=path)


def check_keys(keys: Any, spec: RemapSpec, *, path: Path) -> None:
    """Refuse a dict (or safetensors file) that lacks one of the `spec.columns` keys."""
    missing = [c for c in spec.columns if c not in keys]
    if missing:
        raise ReindexError(f"no key {missing[0]!r}; the file has keys {sorted(map(str, keys))}",
                           path=path, hint="name the keys to remap with --column")


def check_pt(source: Path, spec: RemapSpec) -> None:
    """Load a .pt dataset and check its keys and tensors, remapping nothing."""
    obj = load_pt(source)
    if isinstance(obj, dict):
        check_keys(obj, spec, path=source)
        for key in spec.columns:
            check_tensor(obj[key], spec, path=source, key=key)
    else:
        check_tensor(obj, spec, path=source)


def remap_tensor_dict(tensors: dict[str, Any], spec: RemapSpec, *, path: Path) -> tuple[dict[str, Any], int, int]:
    """Remap the `spec.columns` keys of a dict, other keys untouched: (dict, num_ids, num_rows)."""
    check_keys(tensors, spec, path=path)
    out = dict(tensors)
    num_ids = num_rows = 0
    for i, key in enumerate(spec.columns):
        out[key] = remap_tensor(tensors[key], spec, path=path, key=key)
        num_ids += out[key].numel()
        if i == 0:
            num_rows = out[key].shape[0] if out[key].dim() else 1
    return out, num_ids, num_rows


def load_error_message(e: Exception) -> str:
    """Why `torch.load(weights_only=True)` refused a file, without torch's advice to turn it off.

    >>> load_error_message(EOFError("Ran out of input"))
    'cannot load with weights_only=True (EOFError: Ran out of input)'
    """
    if "TorchScript" in str(e):
        return "a TorchScript archive (compiled code), not tensors: cannot load with weights_only=True"
    if type(e).__name__ == "UnpicklingError":
        return ("cannot load with weights_only=True: the file holds pickled objects that are not "
                "tensors (UnpicklingError)")
    first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().split("\n", 1)[0][:200]
    return f"cannot load with weights_only=True ({type(e).__name__}{': ' + first if first else ''})"


def load_pt(source: Path, *, hint: str = "only tensors or dicts of tensors are read; pickled code is refused"
            ) -> Any:
    """`torch.load(weights_only=True)` on the CPU; torch's own warnings (about the file's pickled
    contents, prototype tensor layouts...) are dropped: the error, if any, says what matters."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for damaged files
        raise ReindexError(load_error_message(e), path=source, hint=hint) from e


def remap_pt(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap a .pt file (tensor or dict of tensors) and `torch.save` the same structure."""
    import torch

    obj = load_pt(source)
    if isinstance(obj, dict):
        result, num_ids, num_rows = remap_tensor_dict(obj, spec, path=source)
    else:
        result = remap_tensor(obj, spec, path=source)
        num_ids, num_rows = result.numel(), (result.shape[0] if result.dim() else 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as f:  # through Python: a full disk is an OSError, not torch's "iostream error"
        torch.save(result, f)
    return FileReport(source, output, "pt", num_ids, num_rows)
