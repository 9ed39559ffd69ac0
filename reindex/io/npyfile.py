"""`.npy` files written through Python's file writes, so a full disk is reported with its errno."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def header_bytes(shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> bytes:
    """A fresh header, in the oldest format version that can hold it (as np.save does)."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
    try:
        np.lib.format.write_array_header_1_0(buffer, header)
    except ValueError:
        buffer = io.BytesIO()
        np.lib.format.write_array_header_2_0(buffer, header)
    return buffer.getvalue()


def save_npy(path: Path, array: np.ndarray) -> None:
    """`np.save` through Python's file writes: numpy's own (`tofile`) reports a full disk as
    "N requested and M written", without the errno that says why.

    save_npy(Path("counts.npy"), np.zeros(3, np.int64))
    """
    array = np.require(array, requirements="C")  # ascontiguousarray would make a 0-d array 1-d
    with open(path, "wb") as f:
        f.write(header_bytes(array.shape, False, array.dtype))
        if array.size:
            f.write(array.reshape(-1).data.cast("B"))
