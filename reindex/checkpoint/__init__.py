"""Hugging Face checkpoints as safetensors files: which files, which tensors, and their rows.

`files` finds a checkpoint's tensors (a `save_pretrained` directory, a sharded index, one file) and
the ones named like its input embedding and output head; `tensors` reads headers and rows without
torch. `build --vectors MODEL` (`vectors.hf_model`) and `reindex audit` both read checkpoints here.
"""
