"""A small Gemma 3 text decoder for inference, without transformers.

``caption`` and ``generate`` only ever run the LLM forward (prefill and KV-cached decoding)
on a model directory of the merged-model cache (:mod:`soundtok.audiolm.merged`).  Importing
transformers and building its Gemma 3 classes costs ~4 s on 2 CPU cores, more than loading
the weights and captioning a clip together; this module is that forward in plain torch,
reading the same ``config.json`` and ``model.safetensors`` (parameter names as in
transformers' ``Gemma3ForCausalLM``, weights memory-mapped, nothing initialised first).

The architecture: token embeddings scaled by ``sqrt(hidden_size)``; per layer, RMSNorm with
a ``(1 + w)`` gain before and after attention and before and after the MLP; grouped-query
attention with RMSNorm on each query and key head, rotary position embeddings whose base
depends on the layer type (local sliding-window layers and global full-attention layers, as
``layer_types`` lists them) and queries scaled by ``query_pre_attn_scalar ** -0.5``; a
gated MLP with tanh-approximated GELU; a final RMSNorm and the (tied) output embedding.

The operations, their order and the attention kernel calls (``scaled_dot_product_attention``
with the same masks, ``is_causal`` flags and grouped-query layouts) are those transformers
uses on CPU with its default ``sdpa`` attention, so that the logits are the same to the bit
and a caption does not depend on which of the two ran it (``tests/test_llm_gemma3.py``
checks logits and captions against transformers).  Training, beam search and every other
architecture use transformers (:func:`unsupported` says why a directory is not served here).

Shapes: ``B`` batch, ``L`` new positions, ``T`` cached + new positions, ``H`` hidden size,
``N``/``K`` query/key-value heads of ``D`` dims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

SLIDING, FULL = "sliding_attention", "full_attention"

#: The checkpoint layout served here: transformers' Gemma 3 text model, decoder only.
_ARCHITECTURES = (["Gemma3ForCausalLM"], None)


@dataclass(frozen=True)
class Gemma3Config:
    """What the forward needs from a Gemma 3 ``config.json`` (text model)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    query_pre_attn_scalar: float
    rms_norm_eps: float
    sliding_window: int
    layer_types: tuple[str, ...]
    rope_theta: dict[str, float]
    tie_word_embeddings: bool = True
    final_logit_softcapping: float | None = None
    pad_token_id: int | None = None

    def get_text_config(self, decoder: bool = False) -> Gemma3Config:
        """This config (the text model's, as transformers' configs answer)."""
        return self

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Gemma3Config:
        reason = unsupported(raw)
        if reason:
            raise ModelError(f"not a Gemma 3 text model this forward serves: {reason}")
        rope = raw["rope_parameters"]
        return cls(
            vocab_size=int(raw["vocab_size"]), hidden_size=int(raw["hidden_size"]),
            intermediate_size=int(raw["intermediate_size"]), num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            num_key_value_heads=int(raw["num_key_value_heads"]), head_dim=int(raw["head_dim"]),
            query_pre_attn_scalar=raw["query_pre_attn_scalar"], rms_norm_eps=raw["rms_norm_eps"],
            sliding_window=int(raw["sliding_window"]), layer_types=tuple(raw["layer_types"]),
            rope_theta={t: rope[t]["rope_theta"] for t in (SLIDING, FULL) if t in rope},
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
            final_logit_softcapping=raw.get("final_logit_softcapping"), pad_token_id=raw.get("pad_token_id"))


def unsupported(raw: dict[str, Any]) -> str | None:
    """Why the model of this ``config.json`` is not served by this forward (None: it is)."""
    if raw.get("model_type") != "gemma3_text":
        return f"model_type {raw.get('model_type')!r}"
    if raw.get("architectures") not in _ARCHITECTURES:
        return f"architectures {raw.get('architectures')!r}"
    for key, want in (("attention_bias", False), ("attn_logit_softcapping", None),
                      ("use_bidirectional_attention", False), ("hidden_activation", "gelu_pytorch_tanh"),
                      ("quantization_config", None), ("_attn_implementation", None)):
        if raw.get(key, want) != want:
            return f"{key} {raw.get(key)!r}"
    types = raw.get("layer_types")
    if not isinstance(types, list) or len(types) != raw.get("num_hidden_layers") or not set(types) <= {SLIDING, FULL}:
        return "layer_types missing or not sliding/full attention"
    rope = raw.get("rope_parameters")
    if not isinstance(rope, dict):
        return "no per-layer-type rope_parameters"
    for t in set(types):
        p = rope.get(t)
        if not (isinstance(p, dict) and p.get("rope_type") == "default"
                and isinstance(p.get("rope_theta"), (int, float))):
            return f"rope_parameters[{t!r}] is not a default rope"
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "head_dim", "sliding_window"):
        if not isinstance(raw.get(key), int) or raw[key] <= 0:
            return f"{key} {raw.get(key)!r}"
    if raw["num_attention_heads"] % raw["num_key_value_heads"]:
        return "attention heads not a multiple of key-value heads"
    for key in ("query_pre_attn_scalar", "rms_norm_eps"):
        if not isinstance(raw.get(key), (int, float)):
            return f"{key} {raw.get(key)!r}"
    return None


# --------------------------------------------------------------------------- layers


class RMSNorm(nn.Module):
    """RMS normalisation with a ``(1 + weight)`` gain, computed in float32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).type_as(x)


class Linear(nn.Linear):
    """``nn.Linear`` without a bias and without initialising its weight (it is loaded)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__(n_in, n_out, bias=False)

    def reset_parameters(self) -> None:
        pass


class ScaledEmbedding(nn.Embedding):
    """Token embeddings times ``embed_scale`` (``sqrt(hidden_size)``, a float32 scalar); the
    weight is not initialised (it is loaded)."""

    def __init__(self, num: int, dim: int, padding_idx: int | None) -> None:
        super().__init__(num, dim, padding_idx)
        self.register_buffer("embed_scale", torch.tensor(dim ** 0.5, device="cpu"), persistent=False)

    def reset_parameters(self) -> None:
        pass

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids) * self.embed_scale.to(self.weight.dtype)


class MLP(nn.Module):
    def __init__(self, cfg: Gemma3Config) -> None:
        super().__init__()
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_inverse_frequencies(base: float, dim: int) -> torch.Tensor:
    """``(D/2,)`` float32 inverse frequencies ``base ** (-2i/D)`` of the rotary embedding,
    computed on the CPU (as transformers computes them)."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float, device="cpu") / dim))


class Attention(nn.Module):
    def __init__(self, cfg: Gemma3Config, index: int) -> None:
        super().__init__()
        self.index = index
        self.head_dim = cfg.head_dim
        self.groups = cfg.num_attention_heads // cfg.num_key_value_heads
        self.scaling = cfg.query_pre_attn_scalar ** -0.5
        h, n, k, d = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = Linear(h, n * d)
        self.k_proj = Linear(h, k * d)
        self.v_proj = Linear(h, k * d)
        self.o_proj = Linear(n * d, h)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(d, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None,
                cache: KVCache | None) -> torch.Tensor:
        """``x`` ``(B, L, H)`` -> ``(B, L, H)``; ``mask`` ``(B, 1, L, T)`` bool or None (causal)."""
        shape = (*x.shape[:-1], -1, self.head_dim)
        q = self.q_norm(self.q_proj(x).view(shape).transpose(1, 2))  # (B, N, L, D)
        k = self.k_norm(self.k_proj(x).view(shape).transpose(1, 2))  # (B, K, L, D)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        cos, sin = rope[0].unsqueeze(1), rope[1].unsqueeze(1)
        q = (q * cos) + (_rotate_half(q) * sin)
        k = (k * cos) + (_rotate_half(k) * sin)
        if cache is not None:
            k, v = cache.update(self.index, k, v)
        out = self._attend(q, k, v, mask)
        return self.o_proj(out.reshape(*x.shape[:-1], -1).contiguous())

    def _attend(self, q, k, v, mask):
        """Scaled dot-product attention laid out as transformers' sdpa path lays it out (the
        kernel and its summation order depend on the layout): grouped-query attention inside
        the kernel when there is no mask, query heads folded into positions for one-position
        decoding with a mask, key-value heads repeated otherwise."""
        length = q.shape[2]
        extra = {}
        if self.groups > 1:
            if mask is None and k.shape[-1] == v.shape[-1] <= 256:
                extra["enable_gqa"] = True
            elif length == 1:
                q = q.reshape(q.shape[0], q.shape[1] // self.groups, self.groups, q.shape[-1])
            else:
                k = _repeat_heads(k, self.groups)
                v = _repeat_heads(v, self.groups)
        causal = length > 1 and mask is None
        if causal and k.shape[2] > length:
            k, v = k[:, :, :length], v[:, :, :length]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=self.scaling,
                                             is_causal=causal, **extra)
        return out.reshape(out.shape[0], -1, length, v.shape[-1]).transpose(1, 2).contiguous()


def _repeat_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, K, T, D)`` -> ``(B, K * n, T, D)``, each key-value head ``n`` times in a row."""
    b, k, t, d = x.shape
    return x[:, :, None].expand(b, k, n, t, d).reshape(b, k * n, t, d)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: Gemma3Config, index: int) -> None:
        super().__init__()
        eps = cfg.rms_norm_eps
        self.self_attn = Attention(cfg, index)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, eps)
        self.pre_feedforward_layernorm = RMSNorm(cfg.hidden_size, eps)
        self.post_feedforward_layernorm = RMSNorm(cfg.hidden_size, eps)

    def forward(self, x, rope, mask, cache):
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), rope, mask, cache))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


# --------------------------------------------------------------------------- cache and masks


class KVCache:
    """Keys and values ``(B, K, T, D)`` per layer.  A sliding-window layer keeps only its last
    ``sliding_window - 1`` positions between calls (all a next position can see)."""

    def __init__(self, cfg: Gemma3Config) -> None:
        self.window = cfg.sliding_window
        self.sliding = [t == SLIDING for t in cfg.layer_types]
        self.keys: list[torch.Tensor | None] = [None] * len(self.sliding)
        self.values: list[torch.Tensor | None] = [None] * len(self.sliding)
        self.seen = [0] * len(self.sliding)  # positions each layer has been given

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions; return all keys and values this call attends to."""
        if self.keys[layer] is None:
            self.keys[layer] = torch.tensor([], dtype=k.dtype, device=k.device)
            self.values[layer] = torch.tensor([], dtype=v.dtype, device=v.device)
        keys = torch.cat([self.keys[layer], k], dim=-2)
        values = torch.cat([self.values[layer], v], dim=-2)
        self.seen[layer] += k.shape[-2]
        if self.sliding[layer]:
            self.keys[layer], self.values[layer] = keys[:, :, -self.window + 1:], values[:, :, -self.window + 1:]
        else:
            self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def seq_length(self, layer: int = 0) -> int:
        return self.seen[layer]

    def mask_span(self, layer: int, length: int) -> tuple[int, int]:
        """``(kv_length, kv_offset)``: how many keys the next call of ``length`` new positions
        attends to in ``layer``, and the position of the first."""
        seen = self.seen[layer]
        if not self.sliding[layer]:
            return seen + length, 0
        offset = max(seen - self.window + 1, 0)
        return (self.window - 1 + length if seen >= self.window else seen + length), offset


def causal_mask(padding: torch.Tensor | None, batch: int, length: int, kv_length: int, q_offset: int,
                   kv_offset: int, window: int | None, device) -> torch.Tensor | None:
    """The ``(B, 1, L, kv_length)`` boolean mask (True: attend) of causal attention, within
    ``window`` positions when given, over the unpadded keys of ``padding`` ``(B, >= T)``; or
    None where the kernel's own causal flag (or no mask, for one position) does the same."""
    if padding is not None and (short := kv_length + kv_offset - padding.shape[-1]) > 0:
        padding = F.pad(padding, (0, short))
    if _plain_causal(padding, length, kv_length, q_offset, kv_offset, window):
        return None
    q = (torch.arange(length, device=device) + q_offset)[None, None, :, None]
    kv = (torch.arange(kv_length, device=device) + kv_offset)[None, None, None, :]
    mask = kv <= q
    if window is not None:
        mask = (kv > q - window) & mask
    if padding is not None:
        mask = mask & padding[torch.arange(batch, device=device)[:, None, None, None], kv]
    return mask.expand(batch, -1, length, kv_length)


def _plain_causal(padding, length, kv_length, q_offset, kv_offset, window) -> bool:
    """Whether a causal mask adds nothing to ``is_causal`` (no padding among the keys, no window cut)."""
    if padding is not None and padding.shape[-1] > kv_length:
        padding = padding[:, torch.arange(kv_length, device=padding.device) + kv_offset]
    if window is not None and kv_length >= window:
        return False
    if (length == 1 or kv_length == length) and (padding is None or bool(padding.all())):
        return True
    return q_offset == 0 and (padding is None or (bool(padding[:, :length].all())
                                                  and bool((~padding[:, length:]).all())))


@dataclass
class DecoderOutput:
    """``last_hidden_state`` ``(B, L, H)`` (final norm applied) and the cache."""

    last_hidden_state: torch.Tensor
    cache: KVCache | None


# --------------------------------------------------------------------------- model


class Gemma3TextModel(nn.Module):
    """Embeddings, decoder layers and the final norm."""

    def __init__(self, cfg: Gemma3Config) -> None:
        super().__init__()
        self.config = cfg
        self.embed_tokens = ScaledEmbedding(cfg.vocab_size, cfg.hidden_size, cfg.pad_token_id)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        for t in set(cfg.layer_types):
            self.register_buffer(f"{t}_inv_freq", rope_inverse_frequencies(cfg.rope_theta[t], cfg.head_dim),
                                 persistent=False)

    def rope(self, x: torch.Tensor, positions: torch.Tensor, layer_type: str):
        """``(cos, sin)`` ``(B, L, D)`` in ``x``'s dtype for ``positions`` ``(B, L)``."""
        inv = getattr(self, f"{layer_type}_inv_freq").to(device=x.device, dtype=torch.float)
        freqs = positions[..., None].float() * inv
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(dtype=x.dtype), angles.sin().to(dtype=x.dtype)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                use_cache: bool = False) -> DecoderOutput:
        """``inputs_embeds`` ``(B, L, H)``; ``attention_mask`` ``(B, T)`` (1 = a real position,
        covering the cached ones too); ``position_ids`` ``(B, L)`` (default: after the cache)."""
        cfg = self.config
        batch, length = inputs_embeds.shape[:2]
        if use_cache and cache is None:
            cache = KVCache(cfg)
        if position_ids is None:
            past = cache.seq_length() if cache is not None else 0
            position_ids = (torch.arange(length, device=inputs_embeds.device) + past).unsqueeze(0)
        padding = attention_mask.to(device=inputs_embeds.device, dtype=torch.bool) if attention_mask is not None \
            else None
        masks, ropes = {}, {}
        for t in set(cfg.layer_types):
            if cache is not None:
                layer = cfg.layer_types.index(t)
                q_offset = cache.seq_length(layer)
                kv_length, kv_offset = cache.mask_span(layer, length)
            else:
                q_offset, kv_offset = 0, 0
                kv_length = padding.shape[-1] if padding is not None else length
            masks[t] = causal_mask(padding, batch, length, kv_length, q_offset, kv_offset,
                                   cfg.sliding_window if t == SLIDING else None, inputs_embeds.device)
            ropes[t] = self.rope(inputs_embeds, position_ids, t)
        h = inputs_embeds
        for layer, t in zip(self.layers, cfg.layer_types):
            h = layer(h, ropes[t], masks[t], cache)
        return DecoderOutput(self.norm(h), cache)


class Gemma3ForCausalLM(nn.Module):
    """The decoder and its output head, with the calls :class:`soundtok.audiolm.model.AudioLM`
    makes of a transformers causal LM (embeddings, head, decoder, config, ``name_or_path``)."""

    #: set on this class so callers can tell it from a transformers model
    soundtok_native = True

    def __init__(self, cfg: Gemma3Config, name_or_path: str = "") -> None:
        super().__init__()
        self.config = cfg
        self.name_or_path = name_or_path
        self.model = Gemma3TextModel(cfg)
        self.lm_head = Linear(cfg.hidden_size, cfg.vocab_size)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self._transformers = None

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def get_decoder(self) -> Gemma3TextModel:
        return self.model

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def transformers_model(self):
        """The same weights as a transformers ``Gemma3ForCausalLM`` (loaded once, from the
        same directory), for what this forward does not do (beam search)."""
        if self._transformers is None:
            from .loader import load_model_dir

            hf = load_model_dir(Path(self.name_or_path), self.dtype)
            self._transformers = [hf.to(self.device).eval()]  # a list: not a submodule of this one
        return self._transformers[0]


def load(directory: str | Path, dtype: torch.dtype | None = None, device="cpu") -> Gemma3ForCausalLM:
    """The model of a directory holding ``config.json`` and one ``model.safetensors``, its
    weights memory-mapped (no copy, none initialised first) and converted only where ``dtype``
    differs from the file's; eval mode.  :class:`ModelError` when it cannot be read or does not
    fit the config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        raw = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        state = load_file(str(directory / "model.safetensors"), device=str(device))
    except (OSError, ValueError, SafetensorError) as e:
        raise ModelError(f"cannot load LLM from {directory}: {str(e).splitlines()[0] if str(e) else e}") from None
    cfg = Gemma3Config.from_dict(raw)
    with torch.device("meta"):  # parameters without storage, replaced by the file's tensors below
        model = Gemma3ForCausalLM(cfg, str(directory))
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    if dtype is not None:
        state = {k: v if v.dtype == dtype or not v.is_floating_point() else v.to(dtype) for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:
        raise ModelError(f"{directory}: weights do not fit config.json ({str(e).splitlines()[0]})") from None
    missing = [k for k in missing if not (cfg.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ModelError(f"{directory}: weights do not fit config.json "
                         f"(missing {missing[:1]}, unexpected {unexpected[:1]})")
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()  # moves the buffers (not in the file), computed on the CPU
