"""What each stage of ``train-codec`` trains and its losses (one module per stage).

Every stage module takes ``(wav (B, N), feats=None)`` -- audio crops at the
codec's rate and, in the tokenizer stage with a teacher, the teacher's features
on the token grid ``(B, teacher_dim, N / token_hop)`` -- and returns a dict of
0-d tensors: ``loss`` (what is minimised) and the terms it is made of, logged
as they are.  ``trainable()`` yields the parameters the stage updates.

* :class:`VAEStage` -- mel L1 + ``kl_weight`` x KL + ``level_weight`` x level;
* :class:`TokenizerStage` -- VAE frozen; tokenizer, VQ, flow and MSE decoders and
  the semantic head: flow-matching + MSE + VQ codebook/commitment + level (of the
  MSE latent through the VAE decoder) + ``semantic_weight`` x semantic distillation
  + ``text_weight`` x CTC of the text head on whole utterances (``utt``, a third
  argument: :class:`~soundtok.train.data.Utterances`; :func:`text_loss`);
* :class:`DecoderStage` -- tokenizer and VQ frozen (the codes stay the same); the
  flow and MSE decoders train on;
* :class:`VocoderStage` -- mel -> waveform: multi-resolution STFT +
  ``voc_mel_weight`` x mel L1 + level, and adversarial + feature matching losses
  while the training loop lends it the discriminators (:mod:`.discriminators`).

**Level.** An L1 loss on log-mel bins is median-seeking per bin and lets
uncertain reconstructions come out several dB quiet; the level term is the L1
distance between per-frame log energies (:func:`frame_log_energy`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..codec.model import SoundCodec
from ..codec.vocoder import stft_loss
from .discriminators import generator_losses

GAN_WINDOW = 5120  # samples (0.32 s at 16 kHz) the discriminators see per item and step


def frame_log_energy(mel: torch.Tensor) -> torch.Tensor:
    """Log-mel ``(B, n_mels, Tm)`` (natural-log magnitudes) -> per-frame log RMS ``(B, Tm)``."""
    return 0.5 * torch.logsumexp(2.0 * mel.float(), dim=1)


def level_loss(mel_hat: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """L1 between per-frame log energies: keeps the output as loud as the input."""
    return F.l1_loss(frame_log_energy(mel_hat), frame_log_energy(mel))


def semantic_loss(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L1, 1 - cosine)`` between ``(B, D, T)`` estimates and standardised teacher features;
    the cosine is over channels, per frame, averaged."""
    l1 = F.l1_loss(pred, target)
    cos = F.cosine_similarity(pred, target, dim=1).mean()
    return l1, 1.0 - cos


def text_loss(codec, utt) -> torch.Tensor:
    """CTC between the text head's spelling of whole utterances and their transcripts
    (``utt``: :class:`~soundtok.train.data.Utterances`), mean over characters."""
    with torch.no_grad():
        zn = codec.normalized_latent(F.pad(utt.wav, (codec.edge, codec.edge))).float()
    q, _, _ = codec.vq(codec.tokenizer(zn))
    logp = codec.text_head(q)  # (B, Tt, C)
    frames = utt.frames.clamp(max=logp.shape[1])
    return F.ctc_loss(logp.transpose(0, 1), utt.targets, frames, utt.target_lengths,
                      blank=0, reduction="mean", zero_infinity=True)


class VAEStage(nn.Module):
    def __init__(self, codec: SoundCodec):
        super().__init__()
        self.codec = codec

    def trainable(self):
        return self.codec.vae.parameters()

    def forward(self, wav: torch.Tensor, feats=None) -> dict:
        c = self.codec
        mel = c.mel(F.pad(wav, (c.edge, c.edge)))
        mean, logvar = c.vae.encode(mel)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        rec = c.vae.decode(z)
        l1 = F.l1_loss(rec, mel)
        kl = 0.5 * torch.mean(mean.square() + logvar.exp() - 1.0 - logvar)
        lvl = level_loss(rec, mel)
        return {"loss": l1 + c.cfg.kl_weight * kl + c.cfg.level_weight * lvl, "mel_l1": l1,
                "kl": kl, "level": lvl}


class TokenizerStage(nn.Module):
    """Tokenizer + VQ + decoders (+ semantic head). ``feats (B, teacher_dim, Tt)``:
    raw teacher features on the token grid, standardised here with ``teacher_mean``
    / ``teacher_std`` ``(teacher_dim,)``; without them the semantic loss is skipped
    (validation)."""

    train_tokenizer = True

    def __init__(self, codec: SoundCodec, teacher_mean: torch.Tensor | None = None,
                 teacher_std: torch.Tensor | None = None):
        super().__init__()
        self.codec = codec
        self.teacher_mean, self.teacher_std = teacher_mean, teacher_std

    def trainable(self):
        c = self.codec
        mods = [c.tokenizer, c.vq, c.flow, c.mse] if self.train_tokenizer else [c.flow, c.mse]
        if self.train_tokenizer and c.semantic is not None:
            mods.append(c.semantic)
        if self.train_tokenizer and c.text_head is not None:
            mods.append(c.text_head)
        for m in mods:
            yield from m.parameters()

    def forward(self, wav: torch.Tensor, feats: torch.Tensor | None = None, utt=None) -> dict:
        c = self.codec
        with torch.no_grad():
            padded = F.pad(wav, (c.edge, c.edge))
            zn = c.normalized_latent(padded).float()
        if self.train_tokenizer:
            q, codes, vq = c.vq(c.tokenizer(zn))
        else:
            with torch.no_grad():
                q, codes, vq = c.vq(c.tokenizer(zn))
        out = {}
        mse_z = c.mse(q)
        mse = F.mse_loss(mse_z, zn)
        prior = mse_z.detach() if c.cfg.fm_prior == "mse" else None  # the flow never trains the MSE decoder
        fm = c.flow.loss(zn, q, prior=prior)
        loss = fm + mse
        if self.train_tokenizer:
            loss = loss + vq["vq_codebook"] + vq["vq_commit"]
            out.update(vq)
        if c.cfg.level_weight > 0:
            with torch.no_grad():
                mel = c.mel(padded)
            lvl = level_loss(c.vae.decode(c.denormalize(mse_z)), mel)
            loss = loss + c.cfg.level_weight * lvl
            out["level"] = lvl
        if self.train_tokenizer and c.semantic is not None and feats is not None:
            target = (feats.to(q.device) - self.teacher_mean[:, None]) / self.teacher_std[:, None]
            sl1, scos = semantic_loss(c.semantic(q), target)
            loss = loss + c.cfg.semantic_weight * (sl1 + scos)
            out.update(sem_l1=sl1, sem_cos=1.0 - scos)
        if self.train_tokenizer and c.text_head is not None and utt is not None:
            tl = text_loss(c, utt)
            loss = loss + c.cfg.text_weight * tl
            out["text_ctc"] = tl
        usage = torch.bincount(codes.flatten(), minlength=c.cfg.codebook_size).float()
        p = usage / usage.sum()
        ppl = torch.exp(-(p[p > 0] * p[p > 0].log()).sum())
        return {"loss": loss, "fm": fm, "mse": mse, **out, "perplexity": ppl}


class DecoderStage(TokenizerStage):
    """Tokenizer and VQ frozen (the codes of a given input no longer change); the
    flow and MSE decoders train on (longer)."""

    train_tokenizer = False


class VocoderStage(nn.Module):
    """Mel -> waveform: multi-resolution STFT loss + ``voc_mel_weight`` x log-mel L1 +
    ``level_weight`` x frame log-energy L1, and, while ``disc`` is set (by the
    training loop: from step ``voc_gan_start`` with ``voc_adv_weight > 0``),
    least-squares adversarial + ``voc_feat_weight`` x feature-matching losses on one
    random window of :data:`GAN_WINDOW` samples; the output then also holds that
    window of real (``_real``) and generated (``_y``, detached) audio ``(B, GAN_WINDOW)``
    for the discriminators' own step.

    ``vocoder_input="vae"`` feeds the vocoder mels reconstructed by the (frozen)
    VAE, as it sees them when decoding tokens, instead of analysed mels."""

    def __init__(self, codec: SoundCodec, vocoder_input: str = "mel"):
        super().__init__()
        self.codec, self.vocoder_input = codec, vocoder_input
        self.disc = None  # set by the training loop while adversarial training is on

    def trainable(self):
        return self.codec.vocoder.parameters()

    def forward(self, wav: torch.Tensor, feats=None) -> dict:
        c, cfg = self.codec, self.codec.cfg
        with torch.no_grad():
            mel = c.mel(F.pad(wav, (c.edge, c.edge)))
            voc_in = c.vae.decode(c.vae.encode(mel)[0]) if self.vocoder_input == "vae" else mel
        y = c.vocoder(voc_in)
        mr = stft_loss(y, wav)
        mel_hat = c.mel(F.pad(y, (c.edge, c.edge)))
        mel_l1 = F.l1_loss(mel_hat, mel)
        lvl = level_loss(mel_hat, mel)
        loss = mr + cfg.voc_mel_weight * mel_l1 + cfg.level_weight * lvl
        out = {"stft": mr, "mel_l1": mel_l1, "level": lvl}
        if self.disc is not None:
            a = int(torch.randint(0, max(1, y.shape[-1] - GAN_WINDOW + 1), (1,)))
            real_w, fake_w = wav[:, a:a + GAN_WINDOW], y[:, a:a + GAN_WINDOW]
            with torch.no_grad():
                real = self.disc(real_w)
            adv, fmatch = generator_losses(real, self.disc(fake_w))
            loss = loss + cfg.voc_adv_weight * adv + cfg.voc_feat_weight * fmatch
            out.update(g_adv=adv, feat_match=fmatch, _real=real_w, _y=fake_w.detach())
        out["loss"] = loss
        return out


STAGE_MODULES = {"vae": VAEStage, "tokenizer": TokenizerStage, "decoder": DecoderStage,
                 "vocoder": VocoderStage}
