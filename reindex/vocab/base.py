"""The vocabulary as every reader returns it: tokens in original-id order."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Vocab:
    """Tokens in original-id order, with their counts when the file gives them."""

    tokens: list[str]
    counts: np.ndarray | None
    format: str  # "lines" | "counts" | "json"
    path: Path
    record: dict | None = None  # read from stdin: {"path": "-", "size", "sha256"} for the manifest

    def __len__(self) -> int:
        return len(self.tokens)
