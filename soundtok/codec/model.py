"""The sound-token codec: audio -> ~25 tokens/s -> audio.

Pipeline (defaults in brackets)::

    wav (B, N) @16 kHz --MelFrontend--> log-mel (B, 80, N/160)
        --VAE.encode--> latent mean (B, 32, N/320)        [continuous, 50 Hz]
        --normalise, TokenEncoder--> (B, 128, N/640)
        --VectorQuantizer--> codes (B, 1, N/640)           [25 Hz x 10 bit = 250 bit/s]
    codes --MSEDecoder--> prior mu (B, 32, N/320)
          --FlowDecoder.sample (conditioned on the codes and mu; or mu itself,
            the MSE decoder)--> latent --VAE.decode--> mel --Vocoder--> wav (B, N)

In training only, :class:`~.semantic.SemanticHead` reads the quantised
embedding and predicts a frozen teacher's features (semantic distillation), and
:class:`~.semantic.TextHead` spells the transcript from it (CTC, ``text_weight > 0``).

``N`` is padded up to a multiple of ``cfg.token_hop`` (640 samples). Long audio
is processed in chunks with context on both sides (see :meth:`encode_long`,
:meth:`decode_long`); memory is flat in duration.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..modelfiles import file_sha256, read_model_dir, write_model_dir
from .autoencoder import VAE, TokenEncoder
from .coding import ENCODE_CONTEXT_TOKENS, SoundCodecInterface, StreamEncoder
from .config import ARCHITECTURE, CodecConfig
from .flow import FlowDecoder, MSEDecoder, block_noise
from .layers import MelFrontend
from .quantizer import VectorQuantizer
from .semantic import SemanticHead, TextHead
from .vocoder import Vocoder


class SoundCodec(SoundCodecInterface, nn.Module):
    """VAE + VQ tokenizer + flow-matching / MSE decoders + vocoder.

    Implements :class:`soundtok.codecs.Codec` (see :mod:`.coding`)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = MelFrontend(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels,
                               cfg.f_min, cfg.f_max)
        self.vae = VAE(cfg)
        self.tokenizer = TokenEncoder(cfg)
        self.vq = VectorQuantizer(cfg.tok_dim, cfg.codebook_size, cfg.codebook_dim,
                                  cfg.commitment_weight)
        self.flow = FlowDecoder(cfg)
        self.mse = MSEDecoder(cfg)
        self.vocoder = Vocoder(cfg)
        self.semantic = SemanticHead(cfg) if cfg.semantic_weight > 0 else None
        self.text_head = TextHead(cfg) if cfg.text_weight > 0 else None
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("latent_std", torch.ones(cfg.latent_dim))
        self.sha256: str = "untrained"
        self.precision: str = "auto"

    # ----------------------------------------------------------------- pieces
    @property
    def edge(self) -> int:
        """Samples of zero padding on each side before the STFT."""
        return (self.cfg.n_fft - self.cfg.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """Token frames for ``num_samples`` of audio: ``ceil(N / token_hop)``."""
        return max(1, math.ceil(num_samples / self.cfg.token_hop))

    def autocast(self):
        """bf16 autocast where it is fast (CUDA, CPUs with AMX/AVX512-BF16), else nothing."""
        dev = self.latent_mean.device.type
        if self.precision == "fp32" or (self.precision == "auto" and not bf16_fast(dev)):
            return contextlib.nullcontext()
        return torch.autocast(dev, dtype=torch.bfloat16)

    def normalized_latent(self, padded_wav: torch.Tensor) -> torch.Tensor:
        """Edge-padded ``(B, N + 2*edge)`` -> normalised VAE mean ``(B, latent_dim, N/latent_hop)``."""
        mean, _ = self.vae.encode(self.mel(padded_wav))
        return (mean - self.latent_mean[:, None]) / self.latent_std[:, None]

    def denormalize(self, zn: torch.Tensor) -> torch.Tensor:
        return zn * self.latent_std[:, None] + self.latent_mean[:, None]

    def codes_from_padded(self, padded_wav: torch.Tensor) -> torch.Tensor:
        """Edge-padded audio ``(B, N + 2*edge)`` -> codes ``(B, 1, N/token_hop)``."""
        codes, _ = self.vq.codes_from_latent(self.tokenizer(self.normalized_latent(padded_wav)))
        return codes[:, None]

    def latent_to_wav(self, zn: torch.Tensor) -> torch.Tensor:
        """Normalised latent ``(B, latent_dim, Tl)`` -> waveform ``(B, Tl * latent_hop)``."""
        return self.vocoder(self.vae.decode(self.denormalize(zn)))

    # ------------------------------------------------------------- encoding
    @torch.inference_mode()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Whole-batch encode: ``(B, N)`` float audio at ``sample_rate`` -> codes ``(B, 1, ceil(N/token_hop))``."""
        t = self.num_frames(wav.shape[-1])
        wav = F.pad(wav, (self.edge, t * self.cfg.token_hop - wav.shape[-1] + self.edge))
        with self.autocast():
            return self.codes_from_padded(wav.to(self.latent_mean.device))

    def encode_long(self, wav: torch.Tensor, chunk_tokens: int = 750,
                    context_tokens: int = ENCODE_CONTEXT_TOKENS) -> torch.Tensor:
        """Encode one long signal ``(N,)`` in chunks -> codes ``(1, T)``.

        Each chunk of ``chunk_tokens`` frames is encoded with ``context_tokens``
        frames of real audio on both sides and only its own frames are kept
        (:class:`~.coding.StreamEncoder`, fed the whole signal).  Because every
        layer is local and the context exceeds the receptive field, the
        pre-quantisation features equal whole-file encoding up to float
        rounding, and the codes are identical unless rounding flips a near-tie
        between two codewords.
        """
        enc = StreamEncoder(self, chunk_tokens, context_tokens)
        enc.push(wav.reshape(-1))
        return enc.finish_tensor()

    # ------------------------------------------------------------- decoding
    @torch.inference_mode()
    def decode_latent(self, codes: torch.Tensor, decoder: str | None = None,
                      steps: int | None = None, guidance: float | None = None, seed: int = 0,
                      start: int = 0, solver: str = "euler") -> torch.Tensor:
        """Codes ``(B, 1, Tt)`` -> normalised latent ``(B, latent_dim, Tt*token_stride)``.

        ``decoder``/``steps``/``guidance`` default to the codec's (``cfg.decoder``,
        ``cfg.fm_steps``, ``cfg.fm_guidance``). ``start`` is the latent-frame offset
        of ``codes`` in its stream (for noise)."""
        decoder = decoder or self.cfg.decoder
        q = self.vq.embed(codes[:, 0].to(self.latent_mean.device))
        if decoder == "mse":
            return self.mse(q)
        if decoder != "flow":
            raise ValueError(f"unknown decoder {decoder!r} (flow or mse)")
        tl = codes.shape[-1] * self.cfg.token_stride
        noise = block_noise((codes.shape[0], self.cfg.latent_dim, tl), start, seed)
        prior = self.mse(q) if self.cfg.fm_prior == "mse" else None
        g = self.cfg.fm_guidance if guidance is None else guidance
        return self.flow.sample(q, steps or self.cfg.fm_steps, g, noise.to(q.device), solver,
                                prior=prior)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, num_samples: int | None = None, **kw) -> torch.Tensor:
        """Whole-batch decode: codes ``(B, 1, Tt)`` -> waveform ``(B, num_samples or Tt*token_hop)``."""
        with self.autocast():
            wav = self.latent_to_wav(self.decode_latent(codes, **kw)).float().cpu()
        return wav[:, :num_samples] if num_samples else wav

    def decode_context(self, steps: int | None) -> int:
        """Token frames of context for chunked decoding: the flow ODE widens the
        receptive field with every step, so context grows with ``steps``."""
        return 24 + 12 * (steps or self.cfg.fm_steps) + (8 if self.cfg.fm_prior == "mse" else 0)

    def iter_decode_long(self, codes: torch.Tensor, num_samples: int | None = None,
                         chunk_tokens: int = 750, context_tokens: int | None = None, **kw):
        """Decode one long code sequence ``(1, T)`` chunk by chunk, yielding
        waveform pieces ``(n,)`` whose concatenation is :meth:`decode_long`'s result.

        Noise is drawn per block of latent frames from ``(seed, block)``, so a
        chunk sees the same noise as whole-file decoding; with enough context
        the result equals whole-file decoding up to float rounding."""
        ctx = self.decode_context(kw.get("steps")) if context_tokens is None else context_tokens
        total, hop = codes.shape[-1], self.cfg.token_hop
        left = num_samples if num_samples else total * hop
        for a in range(0, total, chunk_tokens):
            b = min(total, a + chunk_tokens)
            s, e = max(0, a - ctx), min(total, b + ctx)
            with torch.inference_mode(), self.autocast():
                zn = self.decode_latent(codes[None, :, s:e], start=s * self.cfg.token_stride, **kw)
                wav = self.latent_to_wav(zn).float().cpu()[0]
            piece = wav[(a - s) * hop:(b - s) * hop][:left]
            left -= piece.shape[0]
            yield piece
            if left <= 0:
                return

    def decode_long(self, codes: torch.Tensor, num_samples: int | None = None,
                    chunk_tokens: int = 750, context_tokens: int | None = None,
                    **kw) -> torch.Tensor:
        """Decode one long code sequence ``(1, T)`` in chunks -> waveform ``(N,)``
        (see :meth:`iter_decode_long`)."""
        return torch.cat(list(self.iter_decode_long(codes, num_samples, chunk_tokens,
                                                    context_tokens, **kw)))

    # ------------------------------------------------------- save and load
    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically each)."""
        d, self.sha256 = write_model_dir(directory, self.state_dict(),
                                         {"format": "pt", "architecture": ARCHITECTURE},
                                         self.cfg.save, dtype)
        return d

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> SoundCodec:
        """Load from a directory holding ``config.json`` + ``model.safetensors``."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        raw, w_path = read_model_dir(path)
        if raw.get("architecture", ARCHITECTURE) != ARCHITECTURE:
            raise ModelError(f"{path} holds a {raw.get('architecture')!r} model, not a {ARCHITECTURE} codec")
        try:
            cfg = CodecConfig.from_dict(raw)
            model = cls(cfg)
            state = load_file(str(w_path))
        except (ValueError, TypeError, SafetensorError, OSError) as e:
            raise ModelError(f"cannot load codec from {path}: {e}") from None
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError:  # tensor shapes disagree with config.json
            missing, unexpected = ["(shape mismatch)"], []
        if missing or unexpected:
            raise ModelError(f"codec weights in {path} do not match its config "
                             f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
        model.sha256 = file_sha256(w_path)
        return model.eval().to(device)


def bf16_fast(device_type: str) -> bool:
    """True where bf16 matmuls beat fp32: CUDA, or a CPU with AMX / AVX512-BF16."""
    if device_type == "cuda":
        return True
    if device_type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
