"""Summary tables and the ``--report DIR`` output: PNG figures and ``report.md``.

Figures (matplotlib, Agg backend, no display needed):

* ``metrics.png`` -- one bar chart per metric (bitrate, WER, CER, mel-L1 and
  its 0-4 kHz version, LSD, STOI, PESQ, SI-SDR, speaker similarity, mel
  Fréchet distances, DNSMOS, where present), one bar per system (its mean,
  from the floor of the metric's scale: 1 for PESQ and DNSMOS) with a dot per
  clip (the spread);
* ``spectrogram_NN_<clip>.png`` -- log-mel spectrograms (the scoring mel
  configuration, frequency axis in Hz) of the reference and every system's
  output for the first few clips, or the clips ``--report-clips ID,...`` names;
* ``metrics.jsonl`` -- the ``--json --per-clip`` rows;
* ``report.md`` -- the summary table, systems, token statistics, notes, and
  links to all of the above.

Every file is written atomically (complete or absent).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fileio import atomic_write
from . import metrics as M

if TYPE_CHECKING:
    from .recon_result import ReconResult

# key, column header, format, better ("up", "down" or "")
COLUMNS = [
    ("bitrate_bps", "bit/s", "{:.0f}", ""),
    ("wer", "WER", "{:.3f}", "down"),
    ("cer", "CER", "{:.3f}", "down"),
    ("mel_l1", "mel-L1", "{:.3f}", "down"),
    ("mel_l1_4k", "mel-L1 0-4k", "{:.3f}", "down"),
    ("lsd_db", "LSD dB", "{:.2f}", "down"),
    ("stoi", "STOI", "{:.3f}", "up"),
    ("estoi", "ESTOI", "{:.3f}", "up"),
    ("pesq_wb", "PESQ-WB", "{:.2f}", "up"),
    ("pesq_nb", "PESQ-NB", "{:.2f}", "up"),
    ("si_sdr_db", "SI-SDR dB*", "{:.1f}", "up"),
    ("speaker_sim", "spk sim", "{:.3f}", "up"),
    ("mel_frechet", "mel FD", "{:.2f}", "down"),
    ("mel_frechet_4k", "mel FD 0-4k", "{:.2f}", "down"),
    ("dnsmos_ovrl", "DNSMOS", "{:.2f}", "up"),
    ("delay_ms_mean", "delay ms", "{:.1f}", ""),
    ("clips", "clips", "{:d}", ""),
]
ARROW = {"up": " ↑", "down": " ↓", "": ""}
TITLES = {"bitrate_bps": "Payload bitrate", "wer": "Word error rate (Whisper)",
          "cer": "Character error rate (Whisper)", "mel_l1": "mel-L1 (log10 mel magnitude)",
          "mel_l1_4k": "mel-L1, 0-4 kHz bands", "speaker_sim": "Speaker similarity (d-vector)",
          "mel_frechet_4k": "mel Fréchet distance, 0-4 kHz",
          "lsd_db": "Log-spectral distance", "stoi": "STOI", "estoi": "ESTOI",
          "pesq_wb": "PESQ wideband (P.862.2)", "pesq_nb": "PESQ narrowband (P.862)",
          "si_sdr_db": "SI-SDR (meaningless without phase)",
          "mel_frechet": "mel Fréchet distance", "dnsmos_ovrl": "DNSMOS overall"}
UNITS = {"bitrate_bps": "bit/s", "wer": "edits / word", "cer": "edits / character",
         "mel_l1_4k": "mean |Δ log10 mel|", "speaker_sim": "cosine",
         "mel_frechet_4k": "distance", "mel_l1": "mean |Δ log10 mel|", "lsd_db": "dB", "stoi": "score",
         "estoi": "score", "pesq_wb": "MOS-LQO", "pesq_nb": "MOS-LQO", "si_sdr_db": "dB",
         "mel_frechet": "distance", "dnsmos_ovrl": "MOS"}


#: Where a metric's bars start and the axis range, where the scale has a floor (PESQ's
#: MOS-LQO and DNSMOS start at 1, STOI lies in 0..1); other bars start at 0.
BAR_BASE = {"pesq_wb": 1.0, "pesq_nb": 1.0, "dnsmos_ovrl": 1.0}
BAR_RANGE = {"stoi": (0.0, 1.0), "estoi": (0.0, 1.0), "pesq_wb": (1.0, 4.64), "pesq_nb": (1.0, 4.64),
             "dnsmos_ovrl": (1.0, 5.0)}


def system_values(result: ReconResult) -> list[tuple[str, dict[str, Any]]]:
    """(system name, {column key: value}) for every system, NaN for missing."""
    out = []
    for s in result.systems:
        means, _ = s.aggregate()
        v: dict[str, Any] = dict(means)
        v["bitrate_bps"] = s.bitrate_bps if s.bitrate_bps is not None else math.nan
        v["mel_frechet"] = s.mel_frechet if s.mel_frechet is not None else math.nan
        v["mel_frechet_4k"] = s.mel_frechet_4k if s.mel_frechet_4k is not None else math.nan
        pooled = s.pooled_asr()  # WER/CER: total edits / total reference words (characters)
        v["wer"] = pooled["wer"] if pooled else math.nan
        v["cer"] = pooled["cer"] if pooled else math.nan
        v["delay_ms_mean"] = s.delay_ms_mean if s.kind != "reference" else math.nan
        v["clips"] = len(s.clips)
        out.append((s.name, v))
    return out


def summary_table(result: ReconResult) -> tuple[list[str], list[list[str]]]:
    """Column headers and formatted rows of the summary; columns no system has
    are left out."""
    vals = system_values(result)
    cols = [c for c in COLUMNS if any(
        isinstance(v.get(c[0]), (int, float)) and not (isinstance(v.get(c[0]), float)
                                                       and math.isnan(v[c[0]]))
        for _, v in vals) or c[0] in ("bitrate_bps", "clips")]
    headers = ["system"] + [h + ARROW[b] for _, h, _, b in cols]
    rows = []
    for name, v in vals:
        row = [name]
        for key, _, fmt, _ in cols:
            x = v.get(key, math.nan)
            row.append("–" if x is None or (isinstance(x, float) and math.isnan(x))
                       else fmt.format(x))
        rows.append(row)
    return headers, rows


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "clip"


def _save(fig, path: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def _hz_ticks(freqs=(0, 250, 500, 1000, 2000, 4000, 8000)) -> tuple[list[float], list[str]]:
    """Positions (in mel-band units of the image, band centres) and labels of
    frequency ticks for a log-mel image drawn with extent 0..MEL_BANDS."""
    centres = M.band_edges_hz()[1:-1]  # peak frequency of each band
    pos = np.interp(freqs, centres, np.arange(M.MEL_BANDS) + 0.5, left=0.0, right=M.MEL_BANDS)
    return [float(p) for p in pos], [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in freqs]


def _spectrogram_figure(example, path: str, max_seconds: float = 10.0) -> None:
    import matplotlib.pyplot as plt

    names = list(example.wavs)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.9 * len(names) + 0.6), squeeze=False,
                             sharex=True)
    n = int(max_seconds * M.SCORE_SR)
    mels = {k: M.log_mel(np.asarray(w)[:n]) for k, w in example.wavs.items()}
    lo = min(float(m.min()) for m in mels.values())
    hi = max(float(m.max()) for m in mels.values())
    im = None
    ticks, tick_labels = _hz_ticks()
    for ax, key in zip(axes[:, 0], names):
        m = mels[key]
        seconds = m.shape[0] * M.MEL_HOP / M.SCORE_SR
        im = ax.imshow(m.T, origin="lower", aspect="auto", vmin=max(lo, hi - 5), vmax=hi,
                       extent=(0, seconds, 0, M.MEL_BANDS), cmap="magma")
        ax.set_title(key, fontsize=10)
        ax.set_yticks(ticks)
        ax.set_yticklabels(tick_labels, fontsize=8)
        ax.set_ylabel("frequency (Hz)")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"Log-mel spectrograms: {example.id}")
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=axes[:, 0].tolist(), label="log10 mel magnitude", shrink=0.8)
    _save(fig, path)
    plt.close(fig)


def bar_floor(key: str, ys) -> tuple[float, bool]:
    """``(where the bars of metric key start, log axis?)`` for the values ``ys``: the floor of the
    metric's scale (1 for PESQ and DNSMOS, else 0); bitrates on a log axis from the decade
    below the lowest, when all are positive."""
    ys = np.asarray(ys, dtype=float)
    if key == "bitrate_bps" and ys.size and bool(np.all(np.isfinite(ys) & (ys > 0))):
        return float(10 ** math.floor(math.log10(ys.min()))), True
    return BAR_BASE.get(key, 0.0), False


def _metrics_figure(result: ReconResult, path: str) -> None:
    import matplotlib.pyplot as plt

    vals = [(n, v) for n, v in system_values(result)
            if any(n == s.name and s.kind != "reference" for s in result.systems)]
    keys = [k for k, *_ in COLUMNS if k in TITLES and any(
        np.isfinite(v.get(k, math.nan)) for _, v in vals)]
    by_name = {s.name: s for s in result.systems}
    cols = 3
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    names = [n for n, _ in vals]
    colors = plt.get_cmap("tab10")(np.arange(len(names)) % 10)
    jitter = np.random.default_rng(0)
    for ax, key in zip(axes.ravel(), keys):
        ys = np.array([v.get(key, math.nan) for _, v in vals], dtype=float)
        base, log = bar_floor(key, ys)
        ok = np.isfinite(ys)  # a system without the metric gets "n/a", not a zero bar
        ax.bar(np.arange(len(names))[ok], ys[ok] - base, bottom=base, color=colors[ok])
        for i in np.flatnonzero(~ok):
            ax.text(i, base, "n/a", ha="center", va="bottom", fontsize=8)
        for i, name in enumerate(names):  # the spread: one dot per clip
            per_clip = [c.metrics.get(key, math.nan) for c in by_name[name].clips]
            per_clip = [y for y in per_clip if y is not None and np.isfinite(y)]
            if len(per_clip) > 1:
                ax.scatter(i + jitter.uniform(-0.25, 0.25, len(per_clip)), per_clip, s=7, color="black",
                           alpha=0.45, linewidths=0, zorder=3)
        if key in BAR_RANGE:
            lo, hi = BAR_RANGE[key]
            ax.set_ylim(lo, hi)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        better = next(b for k, _, _, b in COLUMNS if k == key)
        ax.set_title(TITLES[key] + {"up": " (higher is better)", "down": " (lower is better)",
                                    "": ""}[better], fontsize=9)
        ax.set_ylabel(UNITS[key])
        ax.set_xlabel("system")
        if log:
            ax.set_yscale("log")
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"Reconstruction metrics ({result.clips} clips, 16 kHz; bars: means, dots: clips)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def check_report_dir(directory: str) -> None:
    """UsageError unless ``directory`` can be a report folder (missing, or a folder): checked
    before an evaluation starts, not after it."""
    from ..errors import UsageError

    if not str(directory).strip():
        raise UsageError("--report: the folder name is empty")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--report {directory}: it is a file, not a folder")


def write_report(result: ReconResult, directory: str, title: str = "soundtok evaluation",
                 command: str | None = None) -> list[str]:
    """Write the figures and ``report.md`` into ``directory`` (created);
    returns the written paths."""
    import matplotlib

    from ..errors import SoundtokError

    matplotlib.use("Agg", force=True)
    check_report_dir(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise SoundtokError(f"cannot create the report folder {directory}: {e.strerror or e}") from None
    written = []
    metrics_png = os.path.join(directory, "metrics.png")
    _metrics_figure(result, metrics_png)
    written.append(metrics_png)
    specs = []
    for i, ex in enumerate(result.examples, 1):
        p = os.path.join(directory, f"spectrogram_{i:02d}_{_safe(ex.id)}.png")
        _spectrogram_figure(ex, p)
        specs.append((ex.id, os.path.basename(p)))
        written.append(p)

    headers, rows = summary_table(result)
    md = [f"# {title}", ""]
    if command:
        md += ["Command:", "", "```", command, "```", ""]
    md += [f"{result.clips} clips scored at {result.sample_rate} Hz"
           + (f"; {len(result.failed)} failed" if result.failed else "") + ".", "",
           "## Summary", "", _md_table(headers, rows), "",
           "↑ higher is better, ↓ lower is better. *SI-SDR is meaningless for codecs that do "
           "not keep phase (soundtok, codec2). Metric definitions: `docs/evaluate.md` in the "
           "soundtok repository.", "",
           "![Bar charts of the metrics per system](metrics.png)", ""]
    md += ["## Systems", ""]
    for s in result.systems:
        md.append(f"- **{s.name}** ({s.kind}): {s.description}"
                  + (f". Bitrate: {s.bitrate_method}" if s.bitrate_method else ""))
    md.append("")
    stats = [(s.name, t) for s in result.systems for t in (s.token_stats or [])]
    if stats:
        md += ["## Token statistics", "",
               _md_table(["system", "codebook", "size", "tokens", "used", "usage", "entropy (bits)",
                          "perplexity"],
                         [[n, str(t.codebook), str(t.size), str(t.tokens), str(t.used),
                           f"{t.usage:.3f}", f"{t.entropy_bits:.2f}", f"{t.perplexity:.1f}"]
                          for n, t in stats]), ""]
    if specs:
        md += ["## Spectrograms", ""]
        for cid, fname in specs:
            md += [f"### {cid}", "", f"![Log-mel spectrograms of {cid}]({fname})", ""]
    notes = list(result.notes) + [f"{s.name}: {n}" for s in result.systems for n in s.notes()]
    notes += [f"failed: {name}: {msg}" for name, msg in result.failed]
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    cfg = ", ".join(f"{k}={v}" for k, v in M.MEL_CONFIG.items())
    md += ["## Mel configuration (mel-L1, mel Fréchet distance, spectrograms)", "", cfg, ""]
    rows_path = os.path.join(directory, "metrics.jsonl")
    with atomic_write(rows_path, "w") as f:
        for row in result.rows(per_clip=True):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    written.append(rows_path)
    md += ["The same numbers, per system and per clip, as JSON Lines: "
           "[metrics.jsonl](metrics.jsonl).", ""]
    report = os.path.join(directory, "report.md")
    with atomic_write(report, "w") as f:
        f.write("\n".join(md))
    written.append(report)
    return written
