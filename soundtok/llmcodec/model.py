"""The LLM-Codec: audio <-> tokens that are a frozen LLM's own vocabulary.

Pipeline (defaults in brackets)::

    wav (B, N) @16 kHz --MelFrontend--> log-mel (B, 80, Tm)          [100 fps]
        --conv + ConvNeXt stack--> h (B, 256, Tm)
        --FrozenEmbeddingRVQ--> codes [(B, Tm/32), (B, Tm/8), (B, Tm/4)]
                                 words @3.125 Hz, sub-words @12.5 / 25 Hz
    codes --embed + upsample, summed--> ConvNeXt stack --> log-mel --Vocoder--> wav

In training only, the first scale's quantised vectors ``(B, T0, lookup_dim)`` feed
the semantic heads (``cfg.semantic``): :class:`TeacherHead` predicts the frozen
teacher's features frame by frame; ``semantic`` (a linear map of their time mean)
predicts a label's text embedding.

``N`` is padded with zeros up to a multiple of the coarsest hop (5120
samples); :meth:`LLMCodec.encode` returns ``ceil(N / hop_k)`` codes per scale,
as the token format wants, and :meth:`LLMCodec.decode` pads them back.

Saved state (``model.safetensors``): the trainable weights plus the
vocabulary ids of each scale (``vocab_k``, int64).  The codebooks -- rows of
the LLM's input embedding -- are *not* stored; :meth:`LLMCodec.from_pretrained`
takes them from the LLM, after checking it is the one recorded in
``config.json`` (:func:`soundtok.llm.identity.llm_identity`).  Likewise with
``vocoder_from="default"`` the (frozen) vocoder is read from the built-in
soundtok codec, whose file must still have the recorded ``vocoder_sha256``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.layers import ChannelNorm, MelFrontend, Stack
from ..codec.vocoder import Vocoder
from ..errors import ModelError
from ..modelfiles import file_sha256, read_model_dir, write_model_dir
from .coding import LLMCodecInterface
from .config import ARCHITECTURE, VOCODER_FIELDS, LLMCodecConfig
from .quantizer import FrozenEmbeddingRVQ


class TeacherHead(nn.Module):
    """Scale-0 vectors ``(B, T0, lookup_dim)`` -> teacher-feature estimates ``(B, teacher_dim, T0)``,
    each frame on its own (two 1x1 layers): what a word-scale code says about its 0.32 s."""

    def __init__(self, lookup_dim: int, hidden: int, teacher_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(lookup_dim, hidden, 1), nn.GELU(),
                                 nn.Conv1d(hidden, teacher_dim, 1))

    def forward(self, q0: torch.Tensor) -> torch.Tensor:
        return self.net(q0.transpose(1, 2)).float()


class LLMCodec(LLMCodecInterface, nn.Module):
    """Multi-scale RVQ codec over frozen LLM embedding rows (see module docs);
    implements :class:`soundtok.codecs.Codec` (see :mod:`.coding`).

    Build one for an LLM with :meth:`from_llm`; load one with
    :meth:`from_pretrained`.  ``vocabularies[k]`` are the LLM token ids that
    codes ``0..V_k-1`` of scale ``k`` stand for.
    """

    def __init__(self, cfg: LLMCodecConfig, vocabularies: list[list[int]]):
        super().__init__()
        hidden = cfg.llm.get("hidden_size")
        if not isinstance(hidden, int) or hidden < 1:
            raise ValueError("config.llm must hold the LLM identity (with hidden_size)")
        if len(vocabularies) != len(cfg.strides):
            raise ValueError("one vocabulary per scale is needed")
        self.cfg = cfg
        cfg.vocab_sizes = [len(v) for v in vocabularies]
        for k, ids in enumerate(vocabularies):
            self.register_buffer(f"vocab_{k}", torch.tensor(ids, dtype=torch.long))
        d = cfg.dim
        self.mel = MelFrontend(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels,
                               cfg.f_min, cfg.f_max)
        self.inp = nn.Conv1d(cfg.n_mels, d, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.enc = Stack(d, cfg.enc_layers, cfg.kernel_size)
        self.enc_norm = ChannelNorm(d)
        self.rvq = FrozenEmbeddingRVQ(d, hidden, cfg.strides, cfg.vocab_sizes,
                                      cfg.commitment_weight, cfg.resampler,
                                      cfg.center_codebooks, cfg.entropy_weight,
                                      cfg.entropy_temperature, cfg.lookup_dim,
                                      cfg.lookup_projection)
        self.dec = Stack(d, cfg.dec_layers, cfg.kernel_size)
        self.dec_norm = ChannelNorm(d)
        self.out = nn.Conv1d(d, cfg.n_mels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        ld = self.rvq.lookup_dim
        self.semantic = nn.Linear(ld, cfg.semantic_dim) if cfg.uses_text else None
        self.teacher_head = (TeacherHead(ld, cfg.teacher_hidden, cfg.teacher_dim)
                             if cfg.uses_teacher else None)
        self.vocoder = Vocoder(cfg.vocoder_config())
        self.sha256: str = "untrained"
        self.codebooks_loaded = False

    # ------------------------------------------------------------ building
    @classmethod
    def from_llm(cls, cfg: LLMCodecConfig, model: Any, tokenizer: Any,
                 identity: dict | None = None) -> LLMCodec:
        """A fresh codec for ``model`` (an HF causal LM) and its ``tokenizer``:
        selects the vocabularies (:func:`.vocab.select_vocabularies`), records
        the LLM identity and copies the embedding rows in."""
        from ..llm.identity import llm_identity
        from .wordlists import select_vocabularies

        ident = identity or llm_identity(model)
        weight = model.get_input_embeddings().weight
        vocabs = select_vocabularies(tokenizer, cfg.vocab_sizes, cfg.min_word_letters,
                                     embedding_rows=weight.shape[0], word_filter=cfg.word_filter)
        cfg = LLMCodecConfig.from_dict({**cfg.to_dict(), "llm": dict(ident)})
        codec = cls(cfg, vocabs)
        codec.attach_embeddings(weight)
        codec.rvq.init_projections()
        codec.tokenizer = tokenizer
        return codec

    @property
    def vocabularies(self) -> list[list[int]]:
        return [getattr(self, f"vocab_{k}").tolist() for k in range(len(self.cfg.strides))]

    def attach_embeddings(self, weight: torch.Tensor) -> None:
        """Fill the frozen codebooks from the LLM input-embedding matrix ``(V, hidden)``."""
        if weight.ndim != 2 or weight.shape[1] != self.rvq.hidden:
            raise ModelError(f"LLM embedding has shape {tuple(weight.shape)}, the llm-codec "
                             f"needs hidden size {self.rvq.hidden}")
        rows = []
        for k, ids in enumerate(self.vocabularies):
            if max(ids) >= weight.shape[0]:
                raise ModelError(f"scale {k} uses token id {max(ids)} but the LLM has "
                                 f"{weight.shape[0]} embedding rows")
            rows.append(weight.detach()[getattr(self, f"vocab_{k}").to(weight.device)].float().cpu())
        with torch.no_grad():
            self.rvq.set_codebooks(rows)
        self.codebooks_loaded = True

    # ------------------------------------------------------------- pieces
    @property
    def device(self) -> torch.device:
        return self.vocab_0.device

    @property
    def edge(self) -> int:
        """Samples of zero padding on each side before the STFT."""
        return (self.cfg.n_fft - self.cfg.hop_length) // 2

    def padded_length(self, num_samples: int) -> int:
        """``num_samples`` rounded up to a multiple of the coarsest hop (at least one)."""
        h = self.cfg.max_hop
        return max(1, math.ceil(num_samples / h)) * h

    def num_frames(self, num_samples: int) -> list[int]:
        """Codes per scale for ``num_samples``: ``ceil(N / hop_k)`` (the token format's rule)."""
        return [-(-num_samples // h) for h in self.cfg.hop_lengths]

    def features(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N)`` with ``N`` a multiple of the coarsest hop -> ``(mel, h)``."""
        mel = self.mel(F.pad(wav, (self.edge, self.edge)))
        return mel, self.enc_norm(self.enc(self.inp(mel)))

    def decode_features(self, hq: torch.Tensor) -> torch.Tensor:
        """Quantised features ``(B, dim, Tm)`` -> log-mel ``(B, n_mels, Tm)``."""
        return self.out(self.dec_norm(self.dec(hq)))

    def forward(self, wav: torch.Tensor) -> dict:
        """Training pass on ``(B, N)`` (``N`` a multiple of the coarsest hop):
        ``mel``, ``mel_hat``, ``codes``, ``quantized`` and the ``commit`` loss."""
        self._check_ready()
        mel, h = self.features(wav)
        hq, codes, quantized, losses = self.rvq(h)
        return {"mel": mel, "mel_hat": self.decode_features(hq), "codes": codes,
                "quantized": quantized, **losses}

    def semantic_embedding(self, quantized0: torch.Tensor) -> torch.Tensor:
        """Pooled scale-0 vectors ``(B, T0, lookup_dim)`` -> ``(B, semantic_dim)``
        (the label loss; ``cfg.semantic`` text or both)."""
        if self.semantic is None:
            raise ModelError(f"this llm-codec has no text head (semantic {self.cfg.semantic!r})")
        return self.semantic(quantized0.mean(dim=1))

    def teacher_prediction(self, quantized0: torch.Tensor) -> torch.Tensor:
        """Scale-0 vectors ``(B, T0, lookup_dim)`` -> the teacher-feature estimate
        ``(B, teacher_dim, T0)`` (``cfg.semantic`` whisper or both)."""
        if self.teacher_head is None:
            raise ModelError(f"this llm-codec has no teacher head (semantic {self.cfg.semantic!r})")
        return self.teacher_head(quantized0)

    def _check_ready(self) -> None:
        if not self.codebooks_loaded:
            raise ModelError("the llm-codec has no codebooks: load it with its LLM "
                             "(LLMCodec.from_pretrained(path, llm=...))")

    # ------------------------------------------------------ encode / decode
    @torch.inference_mode()
    def encode(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """``(B, N)`` float audio at ``sample_rate`` -> codes per scale,
        ``[(B, ceil(N / hop_k)) for k]`` (indices into scale ``k``'s vocabulary)."""
        self._check_ready()
        if wav.ndim == 1:
            wav = wav[None]
        n = wav.shape[-1]
        wav = F.pad(wav.float(), (0, self.padded_length(n) - n)).to(self.device)
        _, h = self.features(wav)
        _, codes, _, _ = self.rvq(h)
        return [c[:, :t].cpu() for c, t in zip(codes, self.num_frames(n))]

    def _full_codes(self, codes: list[torch.Tensor], num_samples: int | None) -> tuple[list, int]:
        """Pad per-scale codes to the padded length (repeating each last code)."""
        if num_samples is None:
            num_samples = max(c.shape[-1] * h for c, h in zip(codes, self.cfg.hop_lengths))
        total = self.padded_length(num_samples)
        out = []
        for c, h in zip(codes, self.cfg.hop_lengths):
            c = torch.as_tensor(c, dtype=torch.long)
            c = c[None] if c.ndim == 1 else c
            want = total // h
            if c.shape[-1] == 0:
                c = torch.zeros(c.shape[0], want, dtype=torch.long)
            elif c.shape[-1] < want:
                c = torch.cat([c, c[:, -1:].expand(-1, want - c.shape[-1])], dim=-1)
            out.append(c[:, :want].to(self.device))
        return out, num_samples

    @torch.inference_mode()
    def decode_mel(self, codes: list[torch.Tensor], num_samples: int | None = None) -> torch.Tensor:
        """Codes per scale -> log-mel ``(B, n_mels, padded / hop_length)``."""
        self._check_ready()
        full, _ = self._full_codes(codes, num_samples)
        return self.decode_features(self.rvq.decode(full))

    @torch.inference_mode()
    def decode(self, codes: list[torch.Tensor], num_samples: int | None = None) -> torch.Tensor:
        """Codes per scale (``(B, T_k)`` or ``(T_k,)``) -> waveform ``(B, num_samples)``."""
        full, n = self._full_codes(codes, num_samples)
        wav = self.vocoder(self.decode_features(self.rvq.decode(full))).float().cpu()
        return wav[:, :n]

    # ------------------------------------------------------- save and load
    def vocoder_by_reference(self, source: str = "default") -> None:
        """Mark the vocoder as the built-in codec's (``source="default"``): it is
        then not saved, and loading reads it from that codec.  Copies the
        weights in and records the codec file's sha256."""
        from ..codec import DEFAULT_CODEC_DIR

        self.vocoder.load_state_dict(_vocoder_state(DEFAULT_CODEC_DIR, self.cfg, None))
        self.cfg.vocoder_from = source
        self.cfg.vocoder_sha256 = file_sha256(DEFAULT_CODEC_DIR / "model.safetensors")

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (trainable weights +
        ``vocab_k`` ids; never the LLM embedding rows, nor a vocoder taken by
        reference) into ``directory``."""
        by_ref = self.cfg.vocoder_from is not None
        state = {k: v for k, v in self.state_dict().items()
                 if not (by_ref and k.startswith("vocoder."))}
        d, self.sha256 = write_model_dir(
            directory, state, {"format": "pt", "architecture": ARCHITECTURE,
                               "llm_sha256": str(self.cfg.llm.get("sha256"))},
            self.cfg.save, dtype)
        return d

    @classmethod
    def from_pretrained(cls, path: str | Path, llm: Any = None, device: str = "cpu") -> LLMCodec:
        """Load a codec directory and take its codebooks from ``llm``.

        ``llm`` is a loaded HF model, a ``(model, tokenizer)`` pair, or an
        ``--llm`` spec (built-in name, directory, ``.gguf``); ``None`` means
        the LLM named in ``config.json``.  A different LLM (by
        :func:`~soundtok.llm.identity.llm_identity` sha256) is refused with a
        one-line :class:`ModelError`.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        raw, w_path = read_model_dir(path)
        if raw.get("architecture") != ARCHITECTURE:
            raise ModelError(f"{path} holds a {raw.get('architecture')!r} model, not an llm-codec")
        try:
            cfg = LLMCodecConfig.from_dict(raw)
            state = load_file(str(w_path))
            vocabs = [state[f"vocab_{k}"].tolist() for k in range(len(cfg.strides))]
            model = cls(cfg, vocabs)
        except (ValueError, TypeError, KeyError, SafetensorError, OSError) as e:
            raise ModelError(f"cannot load llm-codec from {path}: {e}") from None
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        if cfg.vocoder_from is not None:
            from ..codec import DEFAULT_CODEC_DIR

            voc = _vocoder_state(DEFAULT_CODEC_DIR, cfg, cfg.vocoder_sha256, where=str(path))
            state.update({f"vocoder.{k}": v for k, v in voc.items()})
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError:
            missing, unexpected = ["(shape mismatch)"], []
        if missing or unexpected:
            raise ModelError(f"llm-codec weights in {path} do not match its config "
                             f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
        llm_model, model.tokenizer = _resolve_llm(llm if llm is not None else cfg.llm.get("name"))
        check_llm(cfg.llm, llm_model, where=str(path))
        model.attach_embeddings(llm_model.get_input_embeddings().weight)
        model.sha256 = file_sha256(w_path)
        return model.eval().to(device)


def _vocoder_state(codec_dir: Path, cfg: LLMCodecConfig, sha256: str | None,
                   where: str = "the llm-codec") -> dict:
    """The ``vocoder.*`` weights of the soundtok codec in ``codec_dir`` (float32,
    prefix stripped), after checking its file's sha256 (when given) and that its
    mel front end and vocoder size are ``cfg``'s."""
    from safetensors import safe_open

    w = Path(codec_dir) / "model.safetensors"
    if not w.is_file():
        raise ModelError(f"{where} takes its vocoder from the codec in {codec_dir}, "
                         "which has no model.safetensors")
    if sha256 is not None and file_sha256(w) != sha256:
        raise ModelError(f"{where} takes its vocoder from the built-in codec with sha256 "
                         f"{sha256[:12]}, but {w} is another file; retrain or re-install "
                         "the llm-codec for this codec")
    raw = json.loads((Path(codec_dir) / "config.json").read_text())
    for k in VOCODER_FIELDS:
        if raw.get(k) != getattr(cfg, k):
            raise ModelError(f"the codec in {codec_dir} has {k}={raw.get(k)!r}, the "
                             f"llm-codec needs {getattr(cfg, k)!r} for its vocoder")
    with safe_open(str(w), "pt") as f:
        return {k[len("vocoder."):]: f.get_tensor(k).float() for k in f.keys()
                if k.startswith("vocoder.")}


def _resolve_llm(llm: Any) -> tuple[Any, Any]:
    """``(HF model, tokenizer or None)`` from a model, a pair or an ``--llm`` spec."""
    tokenizer = None
    if isinstance(llm, tuple):
        llm, tokenizer = llm
    if isinstance(llm, (str, os.PathLike)):
        from ..llm.loader import load_llm

        llm, tokenizer = load_llm(llm, device="cpu", dtype="float32")
    if not hasattr(llm, "get_input_embeddings"):
        raise ModelError(f"cannot use {type(llm).__name__} as the llm-codec's LLM")
    return llm, tokenizer


def check_llm(expected: dict, llm: Any, where: str = "the llm-codec") -> dict:
    """Raise a one-line :class:`ModelError` unless ``llm`` (a model, directory or
    spec) is the LLM ``expected`` (an identity dict); return its identity."""
    from ..llm.identity import llm_identity

    got = llm_identity(llm[0] if isinstance(llm, tuple) else llm)
    if got.get("sha256") != expected.get("sha256"):
        raise ModelError(f"{where} was built on LLM {expected.get('name')!r} (sha256 "
                         f"{str(expected.get('sha256'))[:12]}), not {got.get('name')!r} "
                         f"(sha256 {str(got.get('sha256'))[:12]})")
    return got


def load_llm_codec(path: str | Path, llm: Any = None, device: str = "cpu") -> LLMCodec:
    """Shorthand for :meth:`LLMCodec.from_pretrained`."""
    return LLMCodec.from_pretrained(path, llm=llm, device=device)
