"""What :func:`soundtok.evaluate.recon.evaluate_recon` returns, and its JSON rows.

A :class:`ReconResult` holds one :class:`SystemResult` per evaluated system (a
soundtok decoder, a pairs folder, a baseline, the references themselves), each
with one :class:`ClipScore` per clip, plus the waveforms of a few clips
(:class:`Example`) for the report.  :meth:`ReconResult.rows` is the
``--json``/``--per-clip`` form (strict JSON: NaN and infinities become null).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics as M
from .tokenstats import CodebookStats


@dataclass
class ClipScore:
    """Scores of one system on one clip; ``delay_ms`` > 0: the output lags."""

    id: str
    duration_s: float
    delay_ms: float
    metrics: dict[str, float]
    bits: float | None = None
    notes: list[str] = field(default_factory=list)
    asr: dict[str, Any] | None = None  # texts and edit counts behind wer/cer

    @property
    def bitrate_bps(self) -> float | None:
        return self.bits / self.duration_s if self.bits is not None and self.duration_s else None


@dataclass
class SystemResult:
    """One evaluated system (a soundtok decoder, a pairs folder or a baseline)."""

    name: str
    kind: str  # "soundtok", "pairs", "baseline" or "reference"
    description: str = ""
    clips: list[ClipScore] = field(default_factory=list)
    bitrate_bps: float | None = None
    bitrate_method: str | None = None
    token_stats: list[CodebookStats] | None = None
    mel_frechet: float | None = None
    mel_frechet_4k: float | None = None
    mel_frechet_std: float | None = None
    mel_frechet_4k_std: float | None = None
    _ref_stats: list[M.GaussStats] = field(default_factory=list, repr=False)
    _deg_stats: list[M.GaussStats] = field(default_factory=list, repr=False)

    def aggregate(self) -> tuple[dict[str, float], dict[str, int]]:
        """(mean of each metric over the clips where it is finite, count of
        clips where it is NaN)."""
        keys = [k for k in M.SIGNAL_METRICS if any(k in c.metrics for c in self.clips)]
        means, nans = {}, {}
        for k in keys:
            v = np.array([c.metrics.get(k, math.nan) for c in self.clips], dtype=np.float64)
            ok = np.isfinite(v)
            means[k] = float(v[ok].mean()) if ok.any() else math.nan
            if (~ok).sum():
                nans[k] = int((~ok).sum())
        return means, nans

    def summary(self) -> dict[str, dict[str, float]]:
        """Per metric over the clips where it is finite: mean, std (ddof 1),
        median, min, max, n and the 95% confidence half-width of the mean
        (1.96 std / sqrt(n), normal approximation)."""
        out = {}
        for k in [k for k in M.SIGNAL_METRICS if any(k in c.metrics for c in self.clips)]:
            v = np.array([c.metrics.get(k, math.nan) for c in self.clips], dtype=np.float64)
            v = v[np.isfinite(v)]
            if not len(v):
                out[k] = {"mean": math.nan, "n": 0}
                continue
            std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            out[k] = {"mean": float(v.mean()), "std": std, "median": float(np.median(v)),
                      "min": float(v.min()), "max": float(v.max()), "n": int(len(v)),
                      "ci95": 1.96 * std / math.sqrt(len(v)) if len(v) > 1 else math.nan}
        return out

    def pooled_asr(self) -> dict[str, float] | None:
        """WER and CER pooled over the clips with a non-empty reference text
        (sum of edits / sum of reference words or characters), or None."""
        rows = [c.asr for c in self.clips if c.asr and c.asr.get("ref_words")]
        if not rows:
            return None
        words = sum(r["ref_words"] for r in rows)
        chars = sum(r["ref_chars"] for r in rows)
        return {"wer": sum(r["word_edits"] for r in rows) / words,
                "cer": sum(r["char_edits"] for r in rows) / chars,
                "ref_words": words, "ref_chars": chars, "clips": len(rows)}

    @property
    def delay_ms_mean(self) -> float:
        return float(np.mean([c.delay_ms for c in self.clips])) if self.clips else math.nan

    def notes(self) -> list[str]:
        """Distinct clip notes with the number of clips each applies to."""
        counts: dict[str, int] = {}
        for c in self.clips:
            for n in c.notes:
                counts[n] = counts.get(n, 0) + 1
        return [f"{n} ({k} clip{'s' if k > 1 else ''})" for n, k in counts.items()]


@dataclass
class Example:
    """Waveforms (16 kHz) of one clip for the report: ``"reference"`` and each system."""

    id: str
    wavs: dict[str, np.ndarray]


@dataclass
class ReconResult:
    """Everything ``evaluate_recon`` measured; ``rows()`` is the JSON form."""

    systems: list[SystemResult]
    notes: list[str]
    clips: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    max_delay_ms: float = M.DEFAULT_MAX_DELAY_MS
    sample_rate: int = M.SCORE_SR

    def system(self, name: str) -> SystemResult:
        return next(s for s in self.systems if s.name == name)

    def rows(self, per_clip: bool = False) -> list[dict[str, Any]]:
        """JSON-ready rows: one ``run`` row, one ``system`` row per system and,
        with ``per_clip``, one ``clip`` row per system and clip.  NaN -> null."""
        out: list[dict[str, Any]] = [{
            "type": "run", "sample_rate": self.sample_rate, "clips": self.clips,
            "failed": len(self.failed), "max_delay_ms": self.max_delay_ms,
            "mel_config": M.MEL_CONFIG, "systems": [s.name for s in self.systems],
            "notes": self.notes}]
        for s in self.systems:
            means, nans = s.aggregate()
            out.append({
                "type": "system", "system": s.name, "kind": s.kind, "description": s.description,
                "clips": len(s.clips), "bitrate_bps": s.bitrate_bps,
                "bitrate_method": s.bitrate_method, "metrics": means, "metrics_nan": nans,
                "summary": s.summary(), "asr_pooled": s.pooled_asr(),
                "mel_frechet": s.mel_frechet, "mel_frechet_std": s.mel_frechet_std,
                "mel_frechet_4k": s.mel_frechet_4k, "mel_frechet_4k_std": s.mel_frechet_4k_std,
                "delay_ms_mean": s.delay_ms_mean,
                "token_stats": None if s.token_stats is None else [t.to_dict()
                                                                   for t in s.token_stats],
                "notes": s.notes()})
        if per_clip:
            for s in self.systems:
                for c in s.clips:
                    row = {"type": "clip", "system": s.name, "id": c.id,
                           "duration_s": c.duration_s, "delay_ms": c.delay_ms,
                           "bitrate_bps": c.bitrate_bps, "metrics": c.metrics,
                           "notes": c.notes}
                    if c.asr is not None:
                        row["asr"] = c.asr
                    out.append(row)
        return [_clean(r) for r in out]


def _clean(x: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python numbers (for strict JSON)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


__all__ = ["ReconResult", "SystemResult", "ClipScore", "Example"]
