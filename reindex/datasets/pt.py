""".pt files: a tensor, or a dict of tensors whose `spec.columns` keys are remapped.

Loaded with `torch.load(weights_only=True)`, which refuses pickled code instead of running it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ReindexError
from .core import FileReport, RemapSpec, remap_array


def remap_tensor(tensor: Any, spec: RemapSpec, *, path: Path, key: str | None = None) -> Any:
    """Remap an integer tensor (CPU) to a new tensor of the same shape.

    remap_tensor(torch.tensor([0, 2]), RemapSpec(np.array([2, 0, 1])), path=Path("x"))
    tensor([2, 1])
    """
    import torch

    where = "" if key is None else f"key {key!r}: "
    if not isinstance(tensor, torch.Tensor):
        raise ReindexError(f"{where}expected a tensor, got {type(tensor).__name__}", path=path)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ReindexError(f"{where}ids must be integers, got {tensor.dtype}", path=path,
                           hint="pass token ids, not floats")
    ids = tensor.detach().cpu().numpy()
    return torch.from_numpy(remap_array(ids, spec, path=path, key=key))


def remap_tensor_dict(tensors: dict[str, Any], spec: RemapSpec, *, path: Path) -> tuple[dict[str, Any], int, int]:
    """Remap the `spec.columns` keys of a dict, other keys untouched: (dict, num_ids, num_rows)."""
    missing = [c for c in spec.columns if c not in tensors]
    if missing:
        raise ReindexError(f"no key {missing[0]!r}; the file has keys {sorted(map(str, tensors))}",
                           path=path, hint="name the keys to remap with --column")
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
    if type(e).__name__ == "UnpicklingError":
        return ("cannot load with weights_only=True: the file holds pickled objects that are not "
                "tensors (UnpicklingError)")
    first = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().split("\n", 1)[0][:200]
    return f"cannot load with weights_only=True ({type(e).__name__}{': ' + first if first else ''})"


def remap_pt(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap a .pt file (tensor or dict of tensors) and `torch.save` the same structure."""
    import torch

    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for damaged files
        raise ReindexError(load_error_message(e), path=source,
                           hint="only tensors or dicts of tensors are read; pickled code is refused") from e
    if isinstance(obj, dict):
        result, num_ids, num_rows = remap_tensor_dict(obj, spec, path=source)
    else:
        result = remap_tensor(obj, spec, path=source)
        num_ids, num_rows = result.numel(), (result.shape[0] if result.dim() else 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as f:  # through Python: a full disk is an OSError, not torch's "iostream error"
        torch.save(result, f)
    return FileReport(source, output, "pt", num_ids, num_rows)
