"""Dataset readers and writers: remap token ids in .npy, .pt, .safetensors, Parquet, Arrow IPC,
Hugging Face `save_to_disk` folders and whitespace-tokenized text. Re-exports only.

from reindex.datasets import RemapSpec, plan_outputs, remap_many
remap_many(plan_outputs(["corpus/"], Path("run/data")), RemapSpec(table))
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .check import check_datasets
from .core import FileReport, RemapSpec
from .plan import detect_format, plan_outputs
from .remap import remap_dataset, remap_many

if TYPE_CHECKING:
    from .arrow import remap_record_batch

__all__ = ["FileReport", "RemapSpec", "check_datasets", "detect_format", "plan_outputs", "remap_dataset", "remap_many",
           "remap_record_batch"]


def __getattr__(name: str) -> Any:
    # pyarrow is imported only when the batch function is first asked for.
    if name == "remap_record_batch":
        from .arrow import remap_record_batch

        return remap_record_batch
    raise AttributeError(name)
