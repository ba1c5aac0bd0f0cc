"""Signal metrics between a reference and a decoded signal, and delay alignment.

Every function takes mono float numpy arrays at :data:`SCORE_SR` (16 kHz) with
values nominally in [-1, 1].  Definitions (also in ``docs/evaluate.md``):

* log-mel: STFT with a periodic Hann window of :data:`MEL_N_FFT` = 1024 samples
  (64 ms), hop :data:`MEL_HOP` = 256 (16 ms), zero padding of n_fft/2 at both
  ends (frames centred), magnitude (not power), :data:`MEL_BANDS` = 80
  triangular filters of peak 1 on the HTK mel scale from 0 to 8000 Hz, then
  ``log10(max(mel, 1e-5))``.
* mel-L1: mean absolute difference of the two log-mels over frames and bands.
* mel-L1 0-4 kHz: the same over the :data:`MEL_BANDS_4K` bands of that
  filterbank whose upper edge is at most 4 kHz (content above 4 kHz does not
  count, so codec2's 4 kHz bandwidth is not penalised).
* LSD (dB): per frame sqrt(mean over the 513 STFT bins of
  (10 log10((P_ref + 1e-10) / (P_deg + 1e-10)))^2), P = |STFT|^2, averaged
  over frames.
* STOI / ESTOI: ``pystoi.stoi`` (it resamples to 10 kHz and drops silent frames).
* PESQ: ``pesq`` package, ITU-T P.862.2 wideband and P.862 narrowband, both run
  on the 16 kHz signals.
* SI-SDR (dB): after removing the means, 10 log10(|a s|^2 / |a s - d|^2) with
  a = <d, s> / |s|^2.  Meaningless for codecs that do not keep phase.
* mel Fréchet distance: Fréchet distance between Gaussians fitted to two sets
  of log-mel frames (all 80 bands, or the 0-4 kHz bands).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

SCORE_SR = 16000
MEL_N_FFT = 1024
MEL_HOP = 256
MEL_BANDS = 80
MEL_FMIN, MEL_FMAX = 0.0, 8000.0
MEL_FLOOR = 1e-5
LSD_FLOOR = 1e-10
DEFAULT_MAX_DELAY_MS = 100.0

MEL_CONFIG = {"sample_rate": SCORE_SR, "n_fft": MEL_N_FFT, "win_length": MEL_N_FFT,
              "hop_length": MEL_HOP, "window": "hann (periodic)", "center": "zero-padded",
              "n_mels": MEL_BANDS, "f_min": MEL_FMIN, "f_max": MEL_FMAX, "mel_scale": "htk",
              "filter_norm": "peak 1", "spectrum": "magnitude", "log": "log10(max(mel, 1e-5))"}

SIGNAL_METRICS = ("mel_l1", "mel_l1_4k", "lsd_db", "stoi", "estoi", "pesq_wb", "pesq_nb",
                  "si_sdr_db", "wer", "cer", "speaker_sim", "dnsmos_ovrl", "dnsmos_sig",
                  "dnsmos_bak", "dnsmos_p808")
BAND_LIMIT_HZ = 4000.0


# --------------------------------------------------------------------------- spectra

def _stft_mag(x: np.ndarray) -> np.ndarray:
    """|STFT| of shape (frames, n_fft/2 + 1)."""
    x = np.asarray(x, dtype=np.float64)
    pad = MEL_N_FFT // 2
    x = np.pad(x, (pad, pad))
    n = 1 + max(0, (x.shape[0] - MEL_N_FFT) // MEL_HOP)
    if x.shape[0] < MEL_N_FFT:
        x = np.pad(x, (0, MEL_N_FFT - x.shape[0]))
    idx = np.arange(MEL_N_FFT)[None, :] + MEL_HOP * np.arange(n)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_N_FFT) / MEL_N_FFT)
    return np.abs(np.fft.rfft(x[idx] * window, axis=1))


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(n_mels, n_fft/2 + 1) triangular filters, HTK mel scale, peak 1."""
    freqs = np.arange(MEL_N_FFT // 2 + 1) * SCORE_SR / MEL_N_FFT
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(MEL_FMAX), MEL_BANDS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))


def _band_count_below(limit_hz: float) -> int:
    """Number of leading mel bands whose upper edge is at most ``limit_hz``."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(MEL_FMAX), MEL_BANDS + 2))
    return int(np.sum(edges[2:] <= limit_hz + 1e-6))


MEL_BANDS_4K = _band_count_below(BAND_LIMIT_HZ)  # 60 of the 80 bands: 0 - 3.97 kHz


def band_edges_hz() -> np.ndarray:
    """(MEL_BANDS + 2,) edges of the triangular filters in Hz: band ``i`` rises
    from ``edges[i]``, peaks at ``edges[i + 1]`` and ends at ``edges[i + 2]``."""
    return _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(MEL_FMAX), MEL_BANDS + 2))


def log_mel(x: np.ndarray) -> np.ndarray:
    """log10 mel magnitude spectrogram, shape (frames, MEL_BANDS)."""
    return np.log10(np.maximum(_stft_mag(x) @ mel_filterbank().T, MEL_FLOOR))


def mel_l1(ref: np.ndarray, deg: np.ndarray, bands: int = MEL_BANDS) -> float:
    """mean |log-mel difference| over frames and the first ``bands`` bands
    (``MEL_BANDS_4K``: the 0-4 kHz mel-L1)."""
    a, b = log_mel(ref), log_mel(deg)
    n = min(len(a), len(b))
    return float(np.mean(np.abs(a[:n, :bands] - b[:n, :bands])))


def lsd(ref: np.ndarray, deg: np.ndarray) -> float:
    """Log-spectral distance in dB (see the module docstring)."""
    a, b = _stft_mag(ref) ** 2, _stft_mag(deg) ** 2
    n = min(len(a), len(b))
    d = 10.0 * np.log10((a[:n] + LSD_FLOOR) / (b[:n] + LSD_FLOOR))
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=1))))


def si_sdr(ref: np.ndarray, deg: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant signal-to-distortion ratio (dB)."""
    s = np.asarray(ref, dtype=np.float64)
    d = np.asarray(deg, dtype=np.float64)
    n = min(len(s), len(d))
    s, d = s[:n] - s[:n].mean(), d[:n] - d[:n].mean()
    a = float(np.dot(d, s)) / (float(np.dot(s, s)) + eps)
    target = a * s
    noise = d - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def stoi(ref: np.ndarray, deg: np.ndarray, extended: bool = False) -> tuple[float, str | None]:
    """(STOI or ESTOI, note).  pystoi needs at least 30 frames (~384 ms of speech
    after silence removal); shorter input gives NaN with a note."""
    from pystoi import stoi as _stoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(np.asarray(ref, np.float64), np.asarray(deg, np.float64), SCORE_SR,
                            extended=extended))
    name = "ESTOI" if extended else "STOI"
    for w in caught:
        if "30 frames" in str(w.message) or "Not enough" in str(w.message):
            return math.nan, f"{name}: not enough speech frames (pystoi needs 30)"
    return value, None


def pesq_score(ref: np.ndarray, deg: np.ndarray, mode: str) -> tuple[float, str | None]:
    """(PESQ MOS-LQO, note) with ``mode`` ``wb`` or ``nb`` at 16 kHz; errors of the
    pesq package (e.g. no utterances detected) give NaN and a note."""
    from pesq import pesq

    r, d = np.asarray(ref, np.float32), np.asarray(deg, np.float32)
    if not np.abs(r).max(initial=0) and not np.abs(d).max(initial=0):
        return math.nan, f"PESQ-{mode.upper()}: both signals are silent"
    try:
        return float(pesq(SCORE_SR, r, d, mode)), None
    except Exception as e:  # the pesq package raises its own error types
        arg = e.args[0] if e.args else ""
        msg = arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
        msg = (msg.strip().splitlines() or [type(e).__name__])[0]
        return math.nan, f"PESQ-{mode.upper()}: {msg}"


# --------------------------------------------------------------------------- DNSMOS

@functools.lru_cache(maxsize=1)
def dnsmos_status() -> tuple[bool, str]:
    """(available, reason).  DNSMOS runs the ONNX models bundled in the
    ``speechmos`` package (offline); it needs librosa and onnxruntime."""
    try:
        from speechmos import dnsmos  # noqa: F401
    except Exception as e:  # ImportError, or whatever its imports raise
        return False, (f"DNSMOS skipped: speechmos cannot be imported ({type(e).__name__}: {e}; "
                       f"pip install 'soundtok[eval]' installs speechmos, librosa, onnxruntime)")
    return True, "DNSMOS: speechmos (bundled ONNX models, offline)"


def dnsmos_scores(x: np.ndarray) -> dict[str, float]:
    """DNSMOS P.835 (sig, bak, ovrl) and P.808 MOS of one 16 kHz signal."""
    from speechmos import dnsmos

    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    if x.size < SCORE_SR // 10 or not np.abs(x).max():
        raise ValueError("signal is silent or shorter than 0.1 s")  # speechmos would loop
    r = dnsmos.run(x, SCORE_SR)
    return {"dnsmos_ovrl": float(r["ovrl_mos"]), "dnsmos_sig": float(r["sig_mos"]),
            "dnsmos_bak": float(r["bak_mos"]), "dnsmos_p808": float(r["p808_mos"])}


# --------------------------------------------------------------------------- delay

ENV_HOP = 16  # samples (1 ms at 16 kHz) between band-envelope frames


def _band_envelopes(x: np.ndarray, sr: int = SCORE_SR) -> np.ndarray:
    """Square-root-compressed energies of 24 log-spaced bands (100 Hz - 7 kHz),
    one frame per :data:`ENV_HOP` samples, each band standardised: ``(24, frames)``."""
    from scipy.signal import stft as _stft

    f, _, z = _stft(x, sr, nperseg=512, noverlap=512 - ENV_HOP, boundary=None, padded=False)
    power = np.abs(z) ** 2
    edges = np.geomspace(100.0, 7000.0, 25)
    bands = np.stack([power[(f >= lo) & (f < hi)].sum(axis=0) for lo, hi in zip(edges[:-1], edges[1:])])
    env = np.sqrt(bands)
    env = env - env.mean(axis=1, keepdims=True)
    return env / (env.std(axis=1, keepdims=True) + 1e-12)


def find_delay(ref: np.ndarray, deg: np.ndarray, max_lag: int) -> int:
    """Lag ``L`` in samples (|L| <= ``max_lag``) by which ``deg`` lags ``ref``.

    Two steps. (1) Coarse, robust to codecs that do not keep the waveform's
    phase (soundtok's generated phase, codec2's parametric synthesis): the lag,
    at 1 ms resolution, maximising the summed cross-correlation of band-energy
    envelopes (see :func:`_band_envelopes`). (2) Fine: within +-1 ms of that,
    the lag maximising the waveform cross-correlation, which recovers the exact
    sample delay when the waveform is kept (a pure delay, PCM codecs, Opus).
    Plain waveform cross-correlation alone picks arbitrary peaks for
    phase-incoherent outputs (tens of ms off on soundtok and codec2).
    """
    from scipy.signal import correlate

    r = np.asarray(ref, dtype=np.float64)
    d = np.asarray(deg, dtype=np.float64)
    if not r.any() or not d.any():
        return 0
    coarse = 0
    if min(len(r), len(d)) > 512 + 4 * ENV_HOP:
        er, ed = _band_envelopes(r), _band_envelopes(d)
        c = sum(correlate(ed[b], er[b], mode="full", method="fft") for b in range(er.shape[0]))
        lags = np.arange(-(er.shape[1] - 1), ed.shape[1]) * ENV_HOP
        keep = np.abs(lags) <= max_lag + ENV_HOP
        coarse = int(lags[keep][np.argmax(c[keep])])
    c = correlate(d, r, mode="full", method="fft")
    lags = np.arange(-(len(r) - 1), len(d))
    keep = (np.abs(lags - coarse) <= ENV_HOP) & (np.abs(lags) <= max_lag)
    if not keep.any():
        return int(np.clip(coarse, -max_lag, max_lag))
    return int(lags[keep][np.argmax(c[keep])])


def align(ref: np.ndarray, deg: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove ``lag`` (from :func:`find_delay`) and crop both to their overlap."""
    if lag > 0:
        deg = deg[lag:]
    elif lag < 0:
        ref = ref[-lag:]
    n = min(len(ref), len(deg))
    return ref[:n], deg[:n]


# --------------------------------------------------------------------------- Fréchet

def one_blas_thread():
    """Context: BLAS/LAPACK on one thread (threadpoolctl, when installed).  The
    many small eigendecompositions of the Fréchet distances run several times
    faster so on a busy machine than with threads that wait for cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


@dataclass
class GaussStats:
    """Sufficient statistics of a set of feature rows for a Gaussian fit:
    count ``n``, sum ``s`` (D,) and sum of outer products ``ss`` (D, D), float64.
    Statistics of several clips add up, so a set's fit (and bootstrap
    resamples over clips) need no second pass over the frames."""

    n: int
    s: np.ndarray
    ss: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> GaussStats:
        x = np.asarray(x, np.float64)
        return cls(len(x), x.sum(0), x.T @ x)

    def __add__(self, other: GaussStats) -> GaussStats:
        return GaussStats(self.n + other.n, self.s + other.s, self.ss + other.ss)

    def bands(self, k: int) -> GaussStats:
        """The statistics of the first ``k`` feature dimensions."""
        return GaussStats(self.n, self.s[:k], self.ss[:k, :k])

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        mu = self.s / self.n
        cov = (self.ss - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, (cov + cov.T) / 2


def frechet_from_stats(a: GaussStats, b: GaussStats) -> float:
    """Fréchet distance between the Gaussians fitted to two sets:
    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)); NaN below 2 rows."""
    if a.n < 2 or b.n < 2:
        return math.nan
    mu_a, ca = a.mean_cov()
    mu_b, cb = b.mean_cov()
    mu = mu_a - mu_b
    w, v = np.linalg.eigh(ca)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_a @ cb @ sqrt_a  # symmetric PSD; tr sqrt(ca cb) = tr sqrt(m)
    tr_sqrt = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None))))
    return float(max(0.0, mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * tr_sqrt))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b``
    ((N, D) arrays): |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))."""
    return frechet_from_stats(GaussStats.of(a), GaussStats.of(b))


def frechet_bootstrap(ref: list[GaussStats], deg: list[GaussStats], resamples: int = 200,
                      seed: int = 0) -> float:
    """Standard deviation of the set-level Fréchet distance over ``resamples``
    bootstrap resamples of the clips (the same clips drawn for both sides);
    NaN with fewer than 2 clips."""
    if len(ref) < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    vals = []
    with one_blas_thread():
        for _ in range(resamples):
            idx = rng.integers(0, len(ref), len(ref))
            a, b = ref[idx[0]], deg[idx[0]]
            for i in idx[1:]:
                a, b = a + ref[i], b + deg[i]
            vals.append(frechet_from_stats(a, b))
    vals = np.array(vals)
    vals = vals[np.isfinite(vals)]
    return float(vals.std(ddof=1)) if len(vals) > 1 else math.nan


# --------------------------------------------------------------------------- one pair

@dataclass
class PairScore:
    """Metrics of one (reference, decoded) pair after delay removal.
    ``delay`` is in samples at 16 kHz (positive: decoded lags)."""

    metrics: dict[str, float]
    delay: int
    notes: list[str] = field(default_factory=list)
    ref_mel: np.ndarray | None = None
    deg_mel: np.ndarray | None = None


def score_pair(ref: np.ndarray, deg: np.ndarray, max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
               extended_stoi: bool = False, dnsmos: bool = False) -> PairScore:
    """Find and remove the delay, then compute every signal metric."""
    ref = np.asarray(ref, np.float32)
    deg = np.asarray(deg, np.float32)
    lag = find_delay(ref, deg, int(round(max_delay_ms * SCORE_SR / 1000)))
    r, d = align(ref, deg, lag)
    notes: list[str] = []
    m: dict[str, float] = {}
    rm, dm = log_mel(r), log_mel(d)
    m["mel_l1"] = float(np.mean(np.abs(rm - dm)))
    m["mel_l1_4k"] = float(np.mean(np.abs(rm[:, :MEL_BANDS_4K] - dm[:, :MEL_BANDS_4K])))
    m["lsd_db"] = lsd(r, d)
    m["stoi"], note = stoi(r, d)
    notes += [note] if note else []
    if extended_stoi:
        m["estoi"], note = stoi(r, d, extended=True)
        notes += [note] if note else []
    for mode in ("wb", "nb"):
        m[f"pesq_{mode}"], note = pesq_score(r, d, mode)
        notes += [note] if note else []
    m["si_sdr_db"] = si_sdr(r, d)
    if dnsmos:
        try:
            m.update(dnsmos_scores(deg))
        except Exception as e:  # a broken onnxruntime install, etc.
            notes.append(f"DNSMOS failed: {type(e).__name__}: {e}")
    return PairScore(m, lag, notes, rm, dm)
