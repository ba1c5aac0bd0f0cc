"""``evaluate_recon``: reconstruction metrics for soundtok and classical codecs.

Three ways to get (reference, decoded) pairs:

* codec in the loop: ``codec`` given; every reference is tokenized and
  detokenized with each of ``decoders`` (``flow``, ``mse``);
* pairs: ``deg`` is a folder of decoded files matched to the references by
  relative path without extension (then by file stem when that is unique), or
  the single input is a ``.jsonl``/``.csv`` manifest with ``ref`` and ``deg``
  columns (optional ``id``; relative paths are relative to the manifest);
* baselines only: the references are round-tripped through ``baselines``.

Baselines can be added to any of them.  All audio is scored at 16 kHz
(references and outputs are resampled with soxr HQ); the delay of each output
is found (band-envelope, then waveform cross-correlation; see
:func:`.metrics.find_delay`) within +-``max_delay_ms`` and removed before
scoring.  See ``docs/evaluate.md`` for the metric definitions.

Optional metrics, each skipped with one note line when its packages are
missing (nothing is ever downloaded): ASR word/character error rates
(:mod:`.asr`, Whisper via faster-whisper; the reference text is a manifest
field, by default ``text``, else Whisper's transcript of the reference),
speaker similarity (:mod:`.speaker`, resemblyzer d-vectors) and DNSMOS
(speechmos).

The clips are gathered by :mod:`.recon_inputs`; the result and its JSON rows are
:mod:`.recon_result`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import AudioError, UsageError
from . import metrics as M
from .baselines import Baseline, parse_baselines
from .recon_inputs import collect_clips, load_clip_audio
from .recon_result import ClipScore, Example, ReconResult, SystemResult
from .tokenstats import stream_stats, token_stats

SCORE_SR = M.SCORE_SR

SI_SDR_NOTE = ("SI-SDR compares waveforms sample by sample: it is meaningless for codecs that do "
               "not keep phase (soundtok's decoders generate phase; codec2 is parametric), "
               "so do not rank such systems by it")
RESAMPLE_NOTE = "all audio is resampled to 16 kHz (soxr HQ) before scoring"
FRECHET_NOTE = ("mel Fréchet distance: Gaussians fitted to the pooled log-mel frames of the "
                "references and of the outputs (not FAD: no pretrained embedding is used); "
                "its spread is the bootstrap standard deviation over clips")
POOLED_NOTE = ("WER/CER in the summary are pooled over clips (total edits / total reference "
               "words or characters); per-clip means are in the JSON summaries")


# --------------------------------------------------------------------------- main entry

def evaluate_recon(inputs: list[str], deg: str | None = None, codec: Any = None,
                   decoders: tuple[str | None, ...] | list[str | None] = (None,),
                   steps: int | None = None,
                   seed: int = 0, baselines: str | list[str] | None = None,
                   tokens: str | None = None, name: str = "decoded", device: str = "cpu",
                   max_delay_ms: float = M.DEFAULT_MAX_DELAY_MS, extended_stoi: bool = False,
                   dnsmos: bool = True, asr: bool = True, asr_model: str = "base",
                   text_field: str | None = "text", speaker: bool = True,
                   codecs: list[tuple[str, Any]] | None = None,
                   examples: int | list[str] | tuple[str, ...] = 3,
                   limit: int | None = None, bootstrap: int = 100,
                   on_clip: Callable[[str], None] | None = None,
                   on_error: Callable[[str], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None, llm: Any = None) -> ReconResult:
    """Score reconstructions of the references in ``inputs`` (files, folders,
    globs, manifests; see the module docstring for the three modes).

    ``codec``: anything :func:`soundtok.registry.load_codec` takes (a codec
    directory, ``"default"``, ``"llm-codec"``, a loaded codec; ``llm`` is passed
    on to it), its systems ``soundtok-<decoder>``; the references are
    tokenized and decoded as ``tokenize`` and ``detokenize`` do.  ``codecs``:
    more codecs as ``(label, codec)`` pairs, scored the same way as
    ``<label>-<decoder>`` (e.g. a previous version side by side);
    ``decoders``/``steps``/``seed`` select how they decode (``None``: each
    codec's default decoder; a codec with one decoder ignores them).
    ``baselines``: e.g. ``"codec2-450,opus-6k"``.  ``tokens``: in pairs mode, the
    token stream the decoded files came from (for the exact bitrate and token
    statistics).  ``dnsmos``, ``asr``, ``speaker``: compute
    DNSMOS, WER/CER (Whisper ``asr_model``) and speaker similarity when their
    packages work here (else one note line each).  ``text_field``: the
    manifest field holding what is said (``text``; ``label`` for digit
    strings); clips without it, or all clips when None, are scored against
    Whisper's transcript of the reference.  ``examples``: keep the waveforms of
    this many clips (the first ones), or of the clips with these ids (in this
    order; an id not among the inputs is a UsageError), for report figures.  ``limit``: score only the first N
    clips.  ``bootstrap``: resamples for the spread of the mel Fréchet
    distances (0: none).  Unreadable clips are skipped, reported through
    ``on_error`` and listed in ``result.failed``.  ``on_progress(done, total)``
    is called before the first clip (``done`` 0) and after each clip, scored or
    failed; ``total`` is the number of clips.
    """
    decoders = list(dict.fromkeys(decoders or [None]))
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    if max_delay_ms < 0:
        raise UsageError("--max-delay-ms must be >= 0")
    from .asr import ASR_MODELS

    if asr and asr_model not in ASR_MODELS:
        raise UsageError(f"unknown ASR model {asr_model!r}: use {' or '.join(ASR_MODELS)}")
    base_list: list[Baseline] = parse_baselines(baselines)
    codec_list: list[tuple[str, Any]] = ([("soundtok", codec)] if codec is not None else []) \
        + list(codecs or [])
    labels = [label for label, _ in codec_list]
    if len(set(labels)) != len(labels) or any(not label or "/" in label for label in labels):
        raise UsageError(f"codec labels must be unique and non-empty: {labels}")
    if codec_list and deg is not None:
        raise UsageError("give either --codec (codec in the loop) or --deg (decoded files), "
                         "not both")
    if tokens is not None and codec_list:
        raise UsageError("--tokens is for pairs mode (--deg or a ref/deg manifest); with "
                         "--codec the tokens are made here")
    if not inputs:
        raise UsageError("no reference audio given")
    from .baselines import check_available

    for b in base_list:
        check_available(b)  # fail before any work
    # Problems are reported once something has been scored; if nothing can be, a lone
    # problem becomes the error itself (one line), several are listed before a summary.
    user_on_error, pending = on_error, []

    def on_error(msg: str) -> None:
        if pending is None:
            if user_on_error:
                user_on_error(msg)
        else:
            pending.append(msg)

    def flush_pending() -> None:
        nonlocal pending
        for msg in pending or []:
            if user_on_error:
                user_on_error(msg)
        pending = None

    clips, pairs, failed = collect_clips(list(inputs), deg, on_error)
    if not codec_list and not pairs and not base_list:
        raise UsageError("nothing to compare: give --codec DIR|default, decoded files (--deg "
                         "DIR or a manifest with ref and deg columns) or --baselines")
    if tokens is not None and not pairs:
        raise UsageError("--tokens needs decoded files (--deg or a ref/deg manifest)")
    if limit is not None:
        clips = clips[:limit]
    wanted = None if isinstance(examples, int) else list(dict.fromkeys(examples))
    if wanted:
        have = {c.id for c in clips} | {i for i, _ in failed}
        missing = [i for i in wanted if i not in have]
        if missing:
            shown = ", ".join(sorted(have)[:5]) + (", ..." if len(have) > 5 else "")
            raise UsageError(f"--report-clips: no clip {missing[0]!r} among the inputs (ids: {shown})")

    notes = [RESAMPLE_NOTE, "delay removed before scoring: band-envelope, then waveform "
             f"cross-correlation within +-{max_delay_ms:g} ms", SI_SDR_NOTE, FRECHET_NOTE,
             f"mel-L1 0-4k and mel FD 0-4k: the first {M.MEL_BANDS_4K} of the "
             f"{M.MEL_BANDS} mel bands (upper edges <= 4 kHz)"]
    use_dnsmos = use_asr = use_speaker = False
    if dnsmos:
        use_dnsmos, why = M.dnsmos_status()
        notes.append(why)
    asr_judge = spk_encoder = None
    if asr:
        from .asr import asr_status

        use_asr, why = asr_status(asr_model)
        notes.append(why)
        if use_asr:
            asr_judge = _asr_judge(asr_model)
            notes.append(POOLED_NOTE)
    if speaker:
        from .speaker import speaker_status

        use_speaker, why = speaker_status()
        notes.append(why)
        if use_speaker:
            spk_encoder = _speaker_encoder()
    systems: list[SystemResult] = []
    models: list[tuple[str, Any, list[str]]] = []  # (label, codec, its decoders)
    from ..registry import load_codec

    for label, c in codec_list:
        model = load_codec("default" if c == "" else c, device=device, llm=llm)
        # a codec with one decoder uses it whatever was asked
        decs = list(model.decoders) if len(model.decoders) == 1 else \
            list(dict.fromkeys(d or model.decoders[0] for d in decoders))
        for d in decs:
            if d not in model.decoders:
                raise UsageError(f"unknown decoder {d!r}: use {' or '.join(model.decoders)}")
        models.append((label, model, decs))
        where = "" if label == "soundtok" else f" from {c if isinstance(c, str) else label}"
        for d in decs:
            desc = (f"soundtok codec {model.name}{where} (weights {model.sha256[:12]}), "
                    + model.describe_decoder(d, steps=steps, seed=seed))
            systems.append(SystemResult(
                f"{label}-{d}", "soundtok", desc,
                bitrate_method="token stream: sum over codebooks of len(codes) x "
                               "log2(codebook size) / duration"))
    if pairs:
        systems.append(SystemResult(name, "pairs", f"decoded files ({deg or inputs[0]})"))
    for b in base_list:
        systems.append(SystemResult(b.name, "baseline", b.description,
                                    bitrate_method=b.bitrate_method))
    if len({s.name for s in systems}) != len(systems):
        raise UsageError(f"two systems share a name: {[s.name for s in systems]}")
    reference = SystemResult("reference", "reference",
                             "the references themselves (DNSMOS; ASR against the manifest text)")
    codes_all: dict[str, list[list[list[int]]]] = {label: [] for label, _, _ in models}
    kept: list[Example] = []
    by_name = {s.name: s for s in systems}
    text_sources = {"manifest": 0, "whisper": 0}
    languages: dict[str, int] = {}

    scored = 0
    if on_progress:
        on_progress(0, len(clips))
    for done, clip in enumerate(clips, 1):
        try:
            ref = load_clip_audio(clip.ref, SCORE_SR, clip.id if not isinstance(clip.ref, str) else clip.ref)
            outputs: dict[str, tuple[np.ndarray, float | None]] = {}
            if pairs:
                outputs[name] = (load_clip_audio(clip.deg, SCORE_SR, clip.deg), None)
        except AudioError as e:
            failed.append((clip.id, str(e)))
            if on_error:
                on_error(str(e))
            if on_progress:
                on_progress(done, len(clips))
            continue
        dur = len(ref) / SCORE_SR
        for label, model, decs in models:
            codes, decoded = _codec_roundtrip(model, ref, decs, steps, seed)
            codes_all[label].append(codes)
            bits = sum(len(row) * math.log2(size) for row, size in zip(codes, model.codebook_sizes))
            for d, y in decoded.items():
                outputs[f"{label}-{d}"] = (y, bits)
        from .baselines import roundtrip

        for b in base_list:
            y, bits = roundtrip(b, ref, SCORE_SR)
            outputs[b.name] = (y, float(bits))

        ref_metrics: dict[str, float] = {}
        ref_notes: list[str] = []
        ref_asr = None
        truth = clip.text(text_field)
        if asr_judge is not None:
            from .asr import whisper_language

            lang = whisper_language(clip.fields.get("language"))
            languages[lang] = languages.get(lang, 0) + 1
            try:
                ref_hyp = asr_judge.transcribe(ref, lang)
            except Exception as e:  # a broken ctranslate2 install, etc.
                ref_hyp = None
                ref_notes.append(f"ASR failed: {type(e).__name__}: {e}")
            if truth is None:
                truth = ref_hyp
                src = "whisper"
            else:
                src = f"manifest:{text_field}"
            text_sources["manifest" if src != "whisper" else "whisper"] += 1
            if src != "whisper" and ref_hyp is not None:
                ref_asr = _asr_row(truth, src, ref_hyp, ref_metrics, ref_notes)
        ref_emb = None
        if spk_encoder is not None:
            try:
                ref_emb = spk_encoder.embed(ref)
            except Exception as e:
                ref_notes.append(f"speaker embedding failed: {type(e).__name__}: {e}")
            if ref_emb is None:
                ref_notes.append("speaker similarity: no voiced audio in the reference "
                                 "(webrtcvad)")
        for sys_name, (y, bits) in outputs.items():
            s = by_name[sys_name]
            ps = M.score_pair(ref, y, max_delay_ms=max_delay_ms, extended_stoi=extended_stoi,
                              dnsmos=use_dnsmos)
            asr_row = None
            if asr_judge is not None and truth is not None:
                try:
                    asr_row = _asr_row(truth, src, asr_judge.transcribe(y, lang), ps.metrics,
                                       ps.notes)
                except Exception as e:
                    ps.notes.append(f"ASR failed: {type(e).__name__}: {e}")
            if spk_encoder is not None and ref_emb is not None:
                from .speaker import cosine

                try:
                    emb = spk_encoder.embed(y)
                except Exception as e:
                    emb = None
                    ps.notes.append(f"speaker embedding failed: {type(e).__name__}: {e}")
                ps.metrics["speaker_sim"] = cosine(ref_emb, emb)
                if emb is None:
                    ps.notes.append("speaker similarity: no voiced audio in the output "
                                    "(webrtcvad)")
            s.clips.append(ClipScore(clip.id, dur, 1000.0 * ps.delay / SCORE_SR, ps.metrics,
                                     bits, ps.notes + ref_notes, asr_row))
            s._ref_stats.append(M.GaussStats.of(ps.ref_mel))
            s._deg_stats.append(M.GaussStats.of(ps.deg_mel))
        if use_dnsmos:
            try:
                ref_metrics.update(M.dnsmos_scores(ref))
            except Exception as e:  # onnxruntime problems, silence
                ref_notes.append(f"DNSMOS failed: {e}")
        if use_dnsmos or ref_asr is not None:
            reference.clips.append(ClipScore(clip.id, dur, 0.0, ref_metrics, notes=ref_notes,
                                             asr=ref_asr))
        if (clip.id in wanted) if wanted is not None else len(kept) < examples:
            kept.append(Example(clip.id, {"reference": ref,
                                          **{k: v for k, (v, _) in outputs.items()}}))
        scored += 1
        if pending is not None:
            flush_pending()
        if on_clip:
            on_clip(clip.id)
        if on_progress:
            on_progress(done, len(clips))

    if not any(s.clips for s in systems):
        if len(failed) == 1 and pending is not None:
            raise AudioError(failed[0][1])
        flush_pending()
        raise AudioError(f"no clip could be scored ({len(failed)} failed)")
    flush_pending()
    if asr_judge is not None:
        notes.append(f"ASR reference text: manifest field {text_field!r} for "
                     f"{text_sources['manifest']} clips, Whisper's transcript of the reference "
                     f"for {text_sources['whisper']}"
                     + (" (the reference row has no WER then)" if text_sources["whisper"] else ""))
        if set(languages) != {"en"}:
            notes.append("ASR languages (from the manifest's language field): "
                         + ", ".join(f"{k} {v} clips" for k, v in sorted(languages.items())))
    for s in systems:
        if s._ref_stats:
            ra, da = s._ref_stats[0], s._deg_stats[0]
            for a, b in zip(s._ref_stats[1:], s._deg_stats[1:]):
                ra, da = ra + a, da + b
            k = M.MEL_BANDS_4K
            s.mel_frechet = M.frechet_from_stats(ra, da)
            s.mel_frechet_4k = M.frechet_from_stats(ra.bands(k), da.bands(k))
            if bootstrap:
                s.mel_frechet_std = M.frechet_bootstrap(s._ref_stats, s._deg_stats, bootstrap)
                s.mel_frechet_4k_std = M.frechet_bootstrap(
                    [x.bands(k) for x in s._ref_stats], [x.bands(k) for x in s._deg_stats],
                    bootstrap)
        s._ref_stats, s._deg_stats = [], []
        if s.kind in ("soundtok", "baseline"):
            total_bits = sum(c.bits or 0.0 for c in s.clips)
            total_s = sum(c.duration_s for c in s.clips)
            s.bitrate_bps = total_bits / total_s if total_s else None
    for label, model, decs in models:
        stats = token_stats(model.codebook_sizes, codes_all[label])
        for d in decs:
            by_name[f"{label}-{d}"].token_stats = stats
    if tokens is not None:
        rate, stats, n = stream_stats(tokens)
        s = by_name[name]
        s.bitrate_bps, s.token_stats = rate, stats
        s.bitrate_method = (f"token stream {tokens} ({n} items): sum over codebooks of "
                            f"len(codes) x log2(codebook size) / duration")
    if reference.clips:
        systems.insert(0, reference)
    return ReconResult(systems=systems, notes=notes, clips=scored, failed=failed,
                       examples=sorted(kept, key=lambda e: wanted.index(e.id)) if wanted else kept,
                       max_delay_ms=max_delay_ms)


@functools.lru_cache(maxsize=2)
def _asr_judge(model: str):
    """One Whisper per model and process (loading takes a second or two)."""
    from .asr import WhisperASR

    return WhisperASR(model)


@functools.lru_cache(maxsize=1)
def _speaker_encoder():
    from .speaker import SpeakerEncoder

    return SpeakerEncoder()


def _asr_row(truth: str, source: str, hyp: str, metrics: dict[str, float],
             notes: list[str]) -> dict[str, Any]:
    """Score one transcript: sets ``metrics['wer'/'cer']``; returns the clip's ``asr`` record."""
    from .asr import error_counts, normalize_text

    e = error_counts(truth, hyp)
    metrics["wer"], metrics["cer"] = e.wer, e.cer
    if not e.ref_words:
        notes.append("WER/CER: the reference text is empty after normalisation")
    return {"reference_text": truth, "reference_source": source, "hypothesis": hyp,
            "reference_norm": normalize_text(truth), "hypothesis_norm": normalize_text(hyp),
            "ref_words": e.ref_words, "word_edits": e.word_edits, "ref_chars": e.ref_chars,
            "char_edits": e.char_edits}


def _codec_roundtrip(model, ref16: np.ndarray, decoders: list[str], steps: int | None,
                     seed: int) -> tuple[list[list[int]], dict[str, np.ndarray]]:
    """Tokenize and detokenize one clip as ``tokenize``/``detokenize`` do
    -> (codes per codebook, {decoder: 16 kHz wav})."""
    import soxr
    import torch

    sr = model.sample_rate
    x = ref16 if sr == SCORE_SR else soxr.resample(ref16, SCORE_SR, sr, quality="HQ")
    n = len(x)
    codes = model.encode_clips([np.ascontiguousarray(x, dtype=np.float32)], batch_size=1)[0]
    out = {}
    for d in decoders:
        y = torch.cat(list(model.decode_codes(codes, n, decoder=d, steps=steps, seed=seed)))
        y = y.detach().cpu().numpy().astype(np.float32)
        out[d] = y if sr == SCORE_SR else soxr.resample(y, sr, SCORE_SR, quality="HQ")
    return codes, out


__all__ = ["evaluate_recon"]
