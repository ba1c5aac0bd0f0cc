"""``soundtok train-codec``: stage-wise training of the sound-token codec.

Stages (what each trains and its losses: :mod:`.codec_stages`), in the order
``all`` runs them:

* ``vae`` -- mel L1 reconstruction + KL on the continuous latent + level.
* ``tokenizer`` -- VAE frozen; latent statistics measured; tokenizer, VQ,
  flow-matching decoder, MSE decoder and semantic head trained together
  (flow-matching + MSE + VQ codebook/commitment + level + semantic
  distillation against a frozen teacher, see :mod:`soundtok.teacher`).
* ``decoder`` (optional, not in ``all``) -- tokenizer and VQ frozen; the flow
  and MSE decoders train on.
* ``vocoder`` -- mel -> waveform; multi-resolution STFT + mel L1 + level losses,
  adversarial (multi-period + multi-resolution discriminators, feature
  matching; :mod:`.discriminators`).

With semantic distillation on (``semantic_weight > 0``) and the tokenizer
stage to run, training clips are packed into 30 s windows (:mod:`.packing`)
and the teacher's features of every window are computed once and cached in
``OUT/teacher/`` (or ``teacher_cache``; :mod:`.teacher_cache`).

Runs single-process or under ``torchrun`` (DDP; gloo on CPU, nccl on CUDA).
The learning-rate schedule, the distributed set-up and the run logger are
:mod:`.scaffold`'s, the clips :mod:`.data`'s.  Checkpoints are atomic (see
:mod:`.checkpoint`); ``resume`` continues from the latest one, including the
optimizer (and the discriminators) and the stage reached.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..codec.config import ARCHITECTURE, CodecConfig
from ..codec.model import SoundCodec
from .checkpoint import latest_checkpoint, load_training_state, optimizer_from_flat, save_checkpoint
from .codec_stages import STAGE_MODULES, TokenizerStage, VocoderStage
from .data import CropSampler, load_clips, validation_batches
from .discriminators import Adversary
from .health import assert_finite_weights, claim_run_dir
from .scaffold import Distributed, Means, RunLogger, init_distributed, lr_factor, no_audio_error, optimizer_step, set_lr

STAGES = ("vae", "tokenizer", "decoder", "vocoder")
DEFAULT_STAGES = ("vae", "tokenizer", "vocoder")  # what "all" runs


@dataclass
class TrainCodecOptions:
    """Options of one ``train-codec`` run (the CLI flags)."""

    train: list[str]
    out: str
    val: list[str] = field(default_factory=list)
    stage: str = "all"
    steps: dict = field(default_factory=lambda: {"vae": 3000, "tokenizer": 5000, "decoder": 5000,
                                                 "vocoder": 5000})
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
    teacher_cache: str | None = None  # default: OUT/teacher
    pack_gap_seconds: float = 0.1  # silence after each clip in a packed teacher window (rounded up to a token)
    text_batch: int = 8  # whole utterances per step for the text head (codec config text_weight > 0)
    text_max_seconds: float = 8.0  # longer transcribed clips are not used by the text head


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

    stages = list(DEFAULT_STAGES) if opts.stage == "all" else opts.stage.split(",")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise UsageError(f"unknown stage {bad[0]!r}: choose {', '.join(STAGES)} "
                         f"(comma-separated) or all (= {','.join(DEFAULT_STAGES)})")
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
        from ..errors import UsageError
        try:
            cfg = CodecConfig.from_dict({**asdict(CodecConfig()), **opts.codec_config})
        except (ValueError, TypeError) as e:
            raise UsageError(f"codec config: {e}") from None
        codec = SoundCodec(cfg)
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

    todo = [s for s in stages if s not in state["completed"]]
    teacher = None
    text_clips = clips  # whole clips (teacher packing joins them)
    if "tokenizer" in todo and codec.cfg.semantic_weight > 0:
        clips, teacher = _teacher_features(codec, clips, opts, run_dir, info, dist)
    t_start = time.time()
    total, offset = sum(int(opts.steps.get(s, 1000)) for s in todo), 0
    for stage in todo:
        resume_step = state["stage_step"] if state.get("stage") == stage else 0
        tick = _counting(on_progress, offset, total) if on_progress and rank == 0 else None
        _run_stage(codec, stage, opts, clips, val_clips, run_dir, log, info, rank, world,
                   device, state, resume_step, opt_tensors if resume_step else None,
                   train_seconds, tick, teacher, ckpt if resume_step else None, text_clips)
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


def _teacher_features(codec, clips, opts, run_dir, info, dist: Distributed):
    """Pack ``clips`` into teacher windows and get their cached (or new) teacher
    features on the token grid -> ``(packed clips, TeacherFeatures)``."""
    from ..errors import ModelError, UsageError
    from ..teacher import load_teacher
    from .packing import pack_clips
    from .teacher_cache import build_or_load

    cfg = codec.cfg
    if cfg.sample_rate != 16000:
        raise UsageError(f"semantic distillation needs a 16 kHz codec (this one is {cfg.sample_rate} Hz)")
    packed = pack_clips(clips, align=cfg.token_hop, gap_seconds=opts.pack_gap_seconds)
    info(f"teacher {cfg.teacher}: {len(clips)} clips packed into {len(packed)} windows")
    teacher = load_teacher(cfg.teacher, threads=torch.get_num_threads())
    directory = Path(opts.teacher_cache) if opts.teacher_cache else run_dir / "teacher"
    if not dist.main:
        dist.barrier()  # rank 0 computes the cache first
    feats = build_or_load(teacher, packed, cfg.token_hop, directory, log=info)
    if dist.main:
        dist.barrier()
    if feats.dim != cfg.teacher_dim:
        raise ModelError(f"teacher {cfg.teacher} gives {feats.dim}-channel features but the codec "
                         f"expects teacher_dim {cfg.teacher_dim}")
    return packed, feats


def _counting(on_progress, before: int, total: int):
    """A stage's ``tick(step)``: ``on_progress`` counts the steps of earlier stages too."""
    return lambda step: on_progress(before + step, total)


def _run_stage(codec, stage, opts, clips, val_clips, run_dir, log, info, rank, world, device,
               state, start_step, opt_tensors, train_seconds, tick=None, teacher=None, ckpt=None,
               text_clips=None):
    from torch.nn.parallel import DistributedDataParallel as DDP

    steps = int(opts.steps.get(stage, 1000))
    crop = int(opts.crop_seconds.get(stage, 1.28) * codec.cfg.sample_rate)
    crop -= crop % codec.cfg.token_hop
    use_teacher = stage == "tokenizer" and teacher is not None
    sampler = CropSampler(clips, crop, opts.batch, seed=opts.seed + 1000 * start_step, rank=rank,
                          features=teacher.feats if use_teacher else None,
                          align=codec.cfg.token_hop)
    if stage == "tokenizer" and start_step == 0 and not opts.init_from:
        measure_latent_stats(codec, CropSampler(clips, crop, opts.batch, seed=opts.seed + 99))
        if world > 1:  # every rank must normalise identically
            for b in (codec.latent_mean, codec.latent_std):
                torch.distributed.broadcast(b, 0)
    if stage == "tokenizer" and start_step == 0:
        _seed_codebook(codec, sampler)
    utterances = None
    if stage == "tokenizer" and codec.text_head is not None:
        utterances = _utterances(codec, text_clips or clips, opts, rank, start_step, info)
    if stage == "vocoder":
        module = VocoderStage(codec, opts.vocoder_input)
    elif use_teacher:
        module = TokenizerStage(codec, teacher.mean.to(device), teacher.std.to(device))
    else:
        module = STAGE_MODULES[stage](codec)
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
    adversary = None
    if stage == "vocoder" and codec.cfg.voc_adv_weight > 0:
        adversary = Adversary(codec.cfg.disc_dim, opts.lr, device, world)
        if ckpt is not None and adversary.restore(ckpt):
            info(f"discriminators restored from {ckpt.name}")
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
        feats = sampler.last_features
        if world > 1 and step == start_step + 1:
            _record_rank_data(run_dir, rank, sampler.last_ids)
        gan_on = adversary is not None and step > codec.cfg.voc_gan_start
        if stage == "vocoder":
            module.disc = adversary.model if gan_on else None
            if gan_on:
                adversary.freeze()  # the generator's step does not train the discriminators
        utt = next(utterances).to(device) if utterances is not None else None
        with autocast:
            out = model(wav, feats, utt) if utt is not None else model(wav, feats)
        y_hat, y_real = out.pop("_y", None), out.pop("_real", None)
        gn = optimizer_step(opt, out["loss"], params, step)
        if gan_on:
            out["d_loss"] = adversary.step(y_real, y_hat, lr, autocast)
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
            st.pop("extra_optimizers", None)
            save_checkpoint(run_dir, codec, opt, st, name=f"{stage}-{step:07d}",
                            extra=adversary.checkpoint_extra() if adversary is not None else None)
        if world > 1 and step % opts.save_every == 0:
            torch.distributed.barrier()
    if stage == "vocoder":
        module.disc = None
    for p in codec.parameters():
        p.requires_grad_(False)
    codec.eval()


@torch.no_grad()
def _utterances(codec, clips, opts, rank, start_step, info):
    """The text head's sampler of whole transcribed clips (a usage error when there are none)."""
    from ..errors import UsageError
    from .data import UtteranceSampler

    try:
        sampler = UtteranceSampler(clips, opts.text_batch, int(opts.text_max_seconds * codec.cfg.sample_rate),
                                   codec.cfg.token_hop, seed=opts.seed + 1000 * start_step, rank=rank)
    except ValueError as e:
        raise UsageError(f"text_weight > 0: {e}") from None
    info(f"text head: {len(sampler.items)} transcribed clips, {opts.text_batch} per step")
    return sampler


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
    if hasattr(module, "disc"):
        module.disc = None  # validation reports the reconstruction losses only
    total, n = {}, 0
    torch.manual_seed(0)
    with codec.autocast():
        for wav in validation_batches(val_clips, crop, batch):
            out = module(wav.to(codec.latent_mean.device))
            for k in ("_y", "_real"):
                out.pop(k, None)
            for k, v in out.items():
                total[k] = total.get(k, 0.0) + float(v) * wav.shape[0]
            n += wav.shape[0]
    return {k: v / n for k, v in total.items()}


def _record_rank_data(run_dir: Path, rank: int, ids: list[str]) -> None:
    d = run_dir / "ranks"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "first_batch_ids": ids}))


def _check_crops(cfg: CodecConfig, stage: str) -> None:
    """UsageError if one token frame of ``cfg`` is longer than the crops a stage to train
    learns from (nothing would be left of a crop once cut to whole frames)."""
    from ..errors import UsageError

    crops = TrainCodecOptions(train=[], out="").crop_seconds
    for s in DEFAULT_STAGES if stage == "all" else [s for s in stage.split(",") if s in STAGES]:
        seconds = crops.get(s, 1.28)
        if int(seconds * cfg.sample_rate) < cfg.token_hop:
            raise UsageError(f"--config: one token frame is {cfg.token_hop} samples "
                             f"({cfg.token_hop / cfg.sample_rate:g} s), longer than the {seconds:g} s crops "
                             f"the {s} stage trains on; lower hop_length, vae_stride or token_stride")


def train_from_request(req, echo=None, on_progress=None, notice=None) -> Path:
    """``soundtok train-codec`` for this codec (a :class:`soundtok.train.CodecTrainingRequest`)."""
    from ..configcheck import check_memory, check_overrides
    from ..errors import UsageError

    # --config is validated (keys, types, sizes) and the model it describes measured
    # before anything is built or written (soundtok.configcheck)
    check_overrides(CodecConfig, req.codec_config)
    check_memory(lambda: SoundCodec(CodecConfig.from_dict({**asdict(CodecConfig()), **req.codec_config})),
                 "the codec", req.device)
    _check_crops(CodecConfig.from_dict({**asdict(CodecConfig()), **req.codec_config}), req.stage)
    for flag, value in (("--llm", req.llm), ("--crop-seconds", req.crop_seconds),
                        ("--freeze-vocoder", req.freeze_vocoder)):
        if value:
            raise UsageError(f"{flag} needs --arch llm-codec")
    steps = {**TrainCodecOptions(train=[], out="").steps, **req.stage_steps}
    if req.steps:
        steps = {k: req.steps for k in steps}
    opts = TrainCodecOptions(train=list(req.train), out=req.out, val=list(req.val), stage=req.stage,
                             steps=steps, batch=req.batch, lr=req.lr, save_every=req.save_every,
                             val_every=req.val_every, seed=req.seed, device=req.device,
                             resume=req.resume, init_from=req.init_from,
                             codec_config=req.codec_config, tensorboard=req.tensorboard,
                             vocoder_input=req.vocoder_input, teacher_cache=req.teacher_cache)
    return train_codec(opts, echo=echo, on_progress=on_progress)
