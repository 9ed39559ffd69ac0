"""Tiny transformers models built from configs (nothing downloaded), one per family the HF tests cover."""
from __future__ import annotations

import torch

VOCAB = 96
MIDDLE_IDS = [5, 30, 31, 40]   # trainable ids in the middle of the vocabulary, not only at its end


def tiny_model(family: str, *, seed: int = 0):
    """Llama (untied head), GPT-2 (tied), Gemma (tied, scaled embedding), Phi (untied head with a bias)."""
    import transformers as T

    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "llama":
        config = T.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                               num_key_value_heads=2, tie_word_embeddings=False, **common)
        return T.LlamaForCausalLM(config)
    if family == "gpt2":
        return T.GPT2LMHeadModel(T.GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=32, **common))
    if family == "gemma":
        config = T.GemmaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                               num_key_value_heads=1, head_dim=8, **common)
        return T.GemmaForCausalLM(config)
    if family == "phi":
        config = T.PhiConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, **common)
        return T.PhiForCausalLM(config)
    raise ValueError(family)


def plain_weights(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(embedding, head weight, head bias) in the model's id order, whether patched or not."""
    state = model.state_dict()
    emb_key = next(k for k in state if k.endswith("embed_tokens.weight") or k.endswith("wte.weight"))
    head_bias = state.get("lm_head.bias")
    return state[emb_key].clone(), state["lm_head.weight"].clone(), None if head_bias is None else head_bias.clone()
