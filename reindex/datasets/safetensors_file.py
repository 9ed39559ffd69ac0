""".safetensors files: like a .pt dict; other tensors and the metadata are kept."""
from __future__ import annotations

from pathlib import Path

from ..errors import ReindexError
from ..io.tensorfile import canonicalize
from .core import FileReport, RemapSpec
from .pt import remap_tensor_dict


def remap_safetensors(source: Path, output: Path, spec: RemapSpec) -> FileReport:
    """Remap the `spec.columns` tensors of a .safetensors file, keeping everything else.

    remap_safetensors(Path("a.safetensors"), Path("out/a.safetensors"), spec)
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ..io.temporary import as_new_file

    try:
        # The "pt" framework reads every dtype (numpy has no bfloat16 for the untouched tensors).
        with safe_open(str(source), framework="pt") as f:
            metadata = f.metadata()
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise ReindexError(f"cannot read safetensors file: {e}", path=source) from e
    result, num_ids, num_rows = remap_tensor_dict(tensors, spec, path=source)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in result.items()}, str(output), metadata=metadata)
    as_new_file(output)  # safetensors creates the file 0600: give it the umask's mode, as any output
    canonicalize(output)  # byte-identical outputs for identical inputs (safetensors#584)
    return FileReport(source, output, "safetensors", num_ids, num_rows)
