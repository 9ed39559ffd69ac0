"""Train only some token rows of a Hugging Face model's embedding and output head (optional extra).

The public import path; the code lives in `reindex.torch.hf`, beside the split modules it uses.

    import reindex.hf
    model = reindex.hf.train_only(model, new_token_ids)
"""
from __future__ import annotations

from .torch.hf import ROWS_FILE, load_trainable, merge, save_trainable, train_only, trainable_ids
from .torch.hf_rows import init_rows, set_rows

__all__ = ["ROWS_FILE", "init_rows", "load_trainable", "merge", "save_trainable", "set_rows", "train_only",
           "trainable_ids"]
