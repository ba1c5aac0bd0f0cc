"""A tiny random Gemma3-style causal LM directory for tests (:func:`tiny_llm`)."""

from __future__ import annotations

import os
from pathlib import Path

from .hf import quiet_transformers, transformers_auto


def tiny_llm(tmp_dir: str | os.PathLike, *, vocab_size: int = 128, seed: int = 0) -> Path:
    """Write a tiny random Gemma3-style causal LM directory and return its path.

    Hidden size 16, 2 layers (one sliding, one full attention), 2 heads; the
    tokenizer is a character-level BPE (no merges) over ``<pad> <eos> <bos>
    <unk>`` (ids 0-3, as in Gemma), printable ASCII and ``<unusedN>`` fillers,
    wrapped in ``PreTrainedTokenizerFast`` and prepending ``<bos>``.  It is
    built offline and loads through the same directory code path as a real
    model.  Weights depend only on ``seed``; the caller's RNG is untouched.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, processors

    transformers_auto()
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    if vocab_size < len(specials) + 2:
        raise ValueError(f"vocab_size must be at least {len(specials) + 2}")
    tokens = (specials + [chr(c) for c in range(32, 127)])[:vocab_size]
    tokens += [f"<unused{i}>" for i in range(vocab_size - len(tokens))]
    backend = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[], unk_token="<unk>"))
    backend.add_special_tokens(specials)
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"
    )
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        query_pre_attn_scalar=8,
        max_position_embeddings=512,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForCausalLM(config)
    out = Path(tmp_dir)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out
