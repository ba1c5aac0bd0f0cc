"""``soundtok train-codec``: stage-wise training of the sound-token codec.

Stages, in the order ``all`` runs them:

* ``vae`` -- mel L1 reconstruction + KL on the continuous latent.
* ``tokenizer`` -- VAE frozen; latent statistics measured; tokenizer, VQ,
  flow-matching decoder and MSE baseline decoder trained together
  (flow-matching loss + MSE loss + VQ codebook/commitment losses).
* ``vocoder`` -- mel -> waveform; multi-resolution STFT loss + mel L1.

Runs single-process or under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA).
The learning-rate schedule, the distributed set-up and the run logger are
:mod:`.scaffold`'s, the clips :mod:`.data`'s.  Checkpoints are atomic (see
:mod:`.checkpoint`); ``resume`` continues from the latest one, including the
optimizer and the stage reached.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.config import ARCHITECTURE, CodecConfig
from ..codec.model import SoundCodec
from ..codec.vocoder import stft_loss
from .checkpoint import latest_checkpoint, load_training_state, optimizer_from_flat, save_checkpoint
from .data import CropSampler, load_clips, validation_batches
from .health import assert_finite_weights, check_finite, claim_run_dir
from .scaffold import Distributed, Means, RunLogger, init_distributed, lr_factor, no_audio_error, set_lr

STAGES = ("vae", "tokenizer", "vocoder")


@dataclass
class TrainCodecOptions:
    """Options of one ``train-codec`` run (the CLI flags)."""

    train: list[str]
    out: str
    val: list[str] = field(default_factory=list)
    stage: str = "all"
    steps: dict = field(default_factory=lambda: {"vae": 3000, "tokenizer": 5000, "vocoder": 5000})
    batch: int = 16
    crop_seconds: dict = field(default_factory=lambda: {"vae": 1.28, "tokenizer": 1.28, "vocoder": 0.64})
    lr: float = 1e-3
    warmup: int = 100
    save_every: int = 500
    val_every: int | None = None  # default: one epoch of training audio
    seed: int = 0
    device: str = "cpu"
    resume: bool = False
    init_from: str | None = None
    codec_config: dict = field(default_factory=dict)
    tensorboard: bool = False
    vocoder_input: str = "mel"  # "mel": analysed mels; "vae": mels passed through the VAE


class VAEStage(nn.Module):
    def __init__(self, codec: SoundCodec):
        super().__init__()
        self.codec = codec

    def trainable(self):
        return self.codec.vae.parameters()

    def forward(self, wav: torch.Tensor) -> dict:
        c = self.codec
        mel = c.mel(F.pad(wav, (c.edge, c.edge)))
        mean, logvar = c.vae.encode(mel)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        rec = c.vae.decode(z)
        l1 = F.l1_loss(rec, mel)
        kl = 0.5 * torch.mean(mean.square() + logvar.exp() - 1.0 - logvar)
        return {"loss": l1 + c.cfg.kl_weight * kl, "mel_l1": l1, "kl": kl}


class TokenizerStage(nn.Module):
    def __init__(self, codec: SoundCodec):
        super().__init__()
        self.codec = codec

    def trainable(self):
        c = self.codec
        for m in (c.tokenizer, c.vq, c.flow, c.mse):
            yield from m.parameters()

    def forward(self, wav: torch.Tensor) -> dict:
        c = self.codec
        with torch.no_grad():
            zn = c.normalized_latent(F.pad(wav, (c.edge, c.edge))).float()
        q, codes, vq = c.vq(c.tokenizer(zn))
        fm = c.flow.loss(zn, q)
        mse = c.mse.loss(zn, q)
        loss = fm + mse + vq["vq_codebook"] + vq["vq_commit"]
        usage = torch.bincount(codes.flatten(), minlength=c.cfg.codebook_size).float()
        p = usage / usage.sum()
        ppl = torch.exp(-(p[p > 0] * p[p > 0].log()).sum())
        return {"loss": loss, "fm": fm, "mse": mse, **vq, "perplexity": ppl}


class VocoderStage(nn.Module):
    """``vocoder_input="vae"`` feeds the vocoder mels reconstructed by the (frozen)
    VAE, as it sees them when decoding tokens, instead of analysed mels."""

    def __init__(self, codec: SoundCodec, vocoder_input: str = "mel"):
        super().__init__()
        self.codec, self.vocoder_input = codec, vocoder_input

    def trainable(self):
        return self.codec.vocoder.parameters()

    def forward(self, wav: torch.Tensor) -> dict:
        c = self.codec
        with torch.no_grad():
            mel = c.mel(F.pad(wav, (c.edge, c.edge)))
            voc_in = c.vae.decode(c.vae.encode(mel)[0]) if self.vocoder_input == "vae" else mel
        y = c.vocoder(voc_in)
        mr = stft_loss(y, wav)
        mel_l1 = F.l1_loss(c.mel(F.pad(y, (c.edge, c.edge))), mel)
        return {"loss": mr + 0.5 * mel_l1, "stft": mr, "mel_l1": mel_l1}


STAGE_MODULES = {"vae": VAEStage, "tokenizer": TokenizerStage, "vocoder": VocoderStage}


@torch.no_grad()
def measure_latent_stats(codec: SoundCodec, sampler: CropSampler, batches: int = 20) -> None:
    """Per-channel mean/std of the VAE latent mean over training crops."""
    codec.latent_mean.zero_()
    codec.latent_std.fill_(1.0)
    zs = []
    for _ in range(batches):
        wav = next(sampler).to(codec.latent_mean.device)
        zs.append(codec.normalized_latent(F.pad(wav, (codec.edge, codec.edge))).float())
    z = torch.cat(zs, dim=-1).transpose(0, 1).reshape(codec.cfg.latent_dim, -1)
    codec.latent_mean.copy_(z.mean(dim=1))
    codec.latent_std.copy_(z.std(dim=1).clamp_min(1e-3))


def train_codec(opts: TrainCodecOptions, echo=None, on_progress=None) -> Path:
    """Train (or fine-tune, or resume) a codec; returns the final model directory.
    The run folder is claimed first (:func:`.checkpoint.claim_run_dir`).

    ``echo`` receives the log lines; ``on_progress(step, total)`` is called before the first
    step and after each one (process 0 only), counting the steps of all stages still to run."""
    with claim_run_dir(opts.out, opts.resume):
        return _train_codec(opts, echo, on_progress)


def _train_codec(opts: TrainCodecOptions, echo=None, on_progress=None) -> Path:
    from ..errors import UsageError

    stages = list(STAGES) if opts.stage == "all" else opts.stage.split(",")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise UsageError(f"unknown stage {bad[0]!r}: choose vae, tokenizer, vocoder "
                         f"(comma-separated) or all")
    run_dir = Path(opts.out)
    dist = init_distributed(opts.device)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    log = RunLogger(run_dir, echo, opts.tensorboard, enabled=dist.main)
    try:
        return _train(opts, stages, run_dir, dist, log, on_progress)
    finally:
        log.close()


def _train(opts: TrainCodecOptions, stages: list[str], run_dir: Path, dist: Distributed,
           log: RunLogger, on_progress=None) -> Path:
    rank, world, device, info = dist.rank, dist.world, dist.device, log.info

    ckpt = latest_checkpoint(run_dir, info) if opts.resume else None
    if opts.resume and ckpt is None:
        info(f"no checkpoint in {run_dir}; starting from scratch")
    state = {"completed": [], "stage": None, "stage_step": 0}
    opt_tensors = None
    if ckpt is not None:
        codec = SoundCodec.from_pretrained(ckpt, device=str(device))
        state, opt_tensors = load_training_state(ckpt)
        info(f"resuming from {ckpt.name} (stage {state['stage']}, step {state['stage_step']})")
    elif opts.init_from:
        from ..registry import load_codec
        codec = load_codec(opts.init_from, device=str(device))
        if not isinstance(codec, SoundCodec):
            from ..errors import ModelError
            raise ModelError(f"{opts.init_from} is not a {ARCHITECTURE} codec")
        info(f"fine-tuning from {opts.init_from}")
    else:
        codec = SoundCodec(CodecConfig.from_dict({**asdict(CodecConfig()), **opts.codec_config}))
        codec.to(device)
    if rank == 0:
        (run_dir / "options.json").write_text(json.dumps(asdict(opts), indent=1))

    sr = codec.cfg.sample_rate
    clips, errors = load_clips(opts.train, sr, log=info)
    for e in errors:
        info(f"skipped: {e}")
    if not clips:
        raise no_audio_error(opts.train, errors)
    val_clips, _ = load_clips(opts.val, sr) if opts.val else ([], [])
    if val_clips and len(val_clips) > 64:
        val_clips = val_clips[:: len(val_clips) // 64][:64]
    train_seconds = sum(c.wav.shape[0] for c in clips) / sr
    info(f"{len(clips)} training clips ({train_seconds / 60:.1f} min), {len(val_clips)} validation")

    t_start = time.time()
    todo = [s for s in stages if s not in state["completed"]]
    total, offset = sum(int(opts.steps.get(s, 1000)) for s in todo), 0
    for stage in todo:
        resume_step = state["stage_step"] if state.get("stage") == stage else 0
        tick = _counting(on_progress, offset, total) if on_progress and rank == 0 else None
        _run_stage(codec, stage, opts, clips, val_clips, run_dir, log, info, rank, world,
                   device, state, resume_step, opt_tensors if resume_step else None,
                   train_seconds, tick)
        offset += int(opts.steps.get(stage, 1000))
        state["completed"].append(stage)
        state["stage"], state["stage_step"] = None, 0
    final = run_dir / "final"
    if rank == 0:
        assert_finite_weights(codec, final)
        codec.save_pretrained(final)
        info(f"done in {(time.time() - t_start) / 60:.1f} min; codec saved to {final}")
    dist.barrier()
    dist.close()
    return final


def _counting(on_progress, before: int, total: int):
    """A stage's ``tick(step)``: ``on_progress`` counts the steps of earlier stages too."""
    return lambda step: on_progress(before + step, total)


def _run_stage(codec, stage, opts, clips, val_clips, run_dir, log, info, rank, world, device,
               state, start_step, opt_tensors, train_seconds, tick=None):
    from torch.nn.parallel import DistributedDataParallel as DDP

    steps = int(opts.steps.get(stage, 1000))
    crop = int(opts.crop_seconds.get(stage, 1.28) * codec.cfg.sample_rate)
    crop -= crop % codec.cfg.token_hop
    sampler = CropSampler(clips, crop, opts.batch, seed=opts.seed + 1000 * start_step, rank=rank)
    if stage == "tokenizer" and start_step == 0 and not opts.init_from:
        measure_latent_stats(codec, CropSampler(clips, crop, opts.batch, seed=opts.seed + 99))
        if world > 1:  # every rank must normalise identically
            for b in (codec.latent_mean, codec.latent_std):
                torch.distributed.broadcast(b, 0)
    if stage == "tokenizer" and start_step == 0:
        _seed_codebook(codec, sampler)
    module = VocoderStage(codec, opts.vocoder_input) if stage == "vocoder" \
        else STAGE_MODULES[stage](codec)
    for p in codec.parameters():
        p.requires_grad_(False)
    params = list(module.trainable())
    for p in params:
        p.requires_grad_(True)
    codec.train()
    opt = torch.optim.AdamW(params, lr=opts.lr, betas=(0.8, 0.99), weight_decay=1e-2)
    if opt_tensors is not None:
        optimizer_from_flat(opt, opt_tensors, state["optimizer"])
    model = DDP(module, find_unused_parameters=True) if world > 1 else module
    per_epoch = opts.val_every or max(1, int(train_seconds / (opts.batch * crop / codec.cfg.sample_rate * world)))
    info(f"stage {stage}: steps {start_step}->{steps}, batch {opts.batch}x{world}, "
         f"crop {crop / codec.cfg.sample_rate:.2f}s, validation every {per_epoch} steps")
    autocast = codec.autocast()
    means = Means()
    if tick:
        tick(start_step)
    for step in range(start_step + 1, steps + 1):
        lr = set_lr(opt, lr_factor(step, steps, opts.warmup), base=opts.lr)
        wav = next(sampler).to(device)
        if world > 1 and step == start_step + 1:
            _record_rank_data(run_dir, rank, sampler.last_ids)
        with autocast:
            out = model(wav)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        check_finite(step, loss=out["loss"], gradient_norm=gn)
        opt.step()
        if tick:
            tick(step)
        if stage == "tokenizer" and step % 100 == 0:
            with torch.no_grad():
                zn = codec.normalized_latent(F.pad(wav, (codec.edge, codec.edge)))
                codec.vq.restart_dead_codes(codec.tokenizer(zn))
        means.add({**out, "grad_norm": gn})
        means.step()
        if step % 50 == 0 or step == steps:
            log.line(stage, step, "train", {**means.take(), "lr": lr}, f"{stage} {step}/{steps}")
        if (step % per_epoch == 0 or step == steps) and val_clips and rank == 0:
            log.line(stage, step, "val", _validate(codec, module, val_clips, crop, opts.batch),
                     f"{stage} {step} val")
            codec.train()
        if (step % opts.save_every == 0 or step == steps) and rank == 0:
            st = {**state, "stage": stage, "stage_step": step, "seed": opts.seed}
            st.pop("optimizer", None)
            save_checkpoint(run_dir, codec, opt, st, name=f"{stage}-{step:07d}")
        if world > 1 and step % opts.save_every == 0:
            torch.distributed.barrier()
    for p in codec.parameters():
        p.requires_grad_(False)
    codec.eval()


@torch.no_grad()
def _seed_codebook(codec: SoundCodec, sampler: CropSampler, batches: int = 4) -> None:
    """Initialise every code from encoder outputs of real crops (better than random)."""
    feats = []
    for _ in range(batches):
        wav = next(sampler).to(codec.latent_mean.device)
        feats.append(codec.tokenizer(codec.normalized_latent(F.pad(wav, (codec.edge, codec.edge)))))
    codec.vq.usage.zero_()
    codec.vq.restart_dead_codes(torch.cat(feats, dim=-1).float())


@torch.no_grad()
def _validate(codec, module, val_clips, crop, batch) -> dict:
    codec.eval()
    total, n = {}, 0
    torch.manual_seed(0)
    with codec.autocast():
        for wav in validation_batches(val_clips, crop, batch):
            out = module(wav.to(codec.latent_mean.device))
            for k, v in out.items():
                total[k] = total.get(k, 0.0) + float(v) * wav.shape[0]
            n += wav.shape[0]
    return {k: v / n for k, v in total.items()}


def _record_rank_data(run_dir: Path, rank: int, ids: list[str]) -> None:
    d = run_dir / "ranks"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "first_batch_ids": ids}))


def train_from_request(req, echo=None, on_progress=None, notice=None) -> Path:
    """``soundtok train-codec`` for this codec (a :class:`soundtok.train.CodecTrainingRequest`)."""
    from ..configcheck import check_memory, check_overrides
    from ..errors import UsageError

    # --config is validated (keys, types, sizes) and the model it describes measured
    # before anything is built or written (soundtok.configcheck)
    check_overrides(CodecConfig, req.codec_config)
    check_memory(lambda: SoundCodec(CodecConfig.from_dict({**asdict(CodecConfig()), **req.codec_config})),
                 "the codec", req.device)
    for flag, value in (("--llm", req.llm), ("--crop-seconds", req.crop_seconds),
                        ("--freeze-vocoder", req.freeze_vocoder)):
        if value:
            raise UsageError(f"{flag} needs --arch llm-codec")
    steps = {k: req.steps for k in req.stage_steps} if req.steps else dict(req.stage_steps)
    opts = TrainCodecOptions(train=list(req.train), out=req.out, val=list(req.val), stage=req.stage,
                             steps=steps, batch=req.batch, lr=req.lr, save_every=req.save_every,
                             val_every=req.val_every, seed=req.seed, device=req.device,
                             resume=req.resume, init_from=req.init_from,
                             codec_config=req.codec_config, tensorboard=req.tensorboard,
                             vocoder_input=req.vocoder_input)
    return train_codec(opts, echo=echo, on_progress=on_progress)
