"""Configuration of the LLM-Codec (one dataclass, saved as ``config.json``).

Audio at ``sample_rate`` Hz is analysed into log-mel frames every
``hop_length`` samples (100 fps at the defaults, the same front end as the
default soundtok codec, so its vocoder can initialise ours).  Scale ``k`` of
the residual VQ runs ``strides[k]`` mel frames per token: at the defaults
32, 8, 4 -> 3.125 Hz (words), 12.5 Hz and 25 Hz (sub-words), i.e. hop lengths
5120, 1280 and 640 samples.  ``vocab_sizes[k]`` caps how many LLM tokens scale
``k`` may use (scale 0: whole words, see :mod:`.wordlists`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..modelconfig import MelConfig

ARCHITECTURE = "llm-codec"

#: ``semantic`` choices: what the first scale's vectors are trained to predict
SEMANTIC_TARGETS = ("text", "whisper", "both")
#: ``lookup_projection`` choices (with ``lookup_dim`` > 0)
LOOKUP_PROJECTIONS = ("pca", "learned")

#: Values of fields a config.json written before they existed lacks: what those
#: codecs did (label-embedding semantic loss only, full-size fixed lookup, no usage loss).
LEGACY = {"semantic": "text", "teacher": None, "lookup_projection": "pca", "lookup_dim": 0,
          "entropy_weight": 0.0}

#: Config fields a soundtok codec must share with an llm-codec to lend it its vocoder.
VOCODER_FIELDS = ("sample_rate", "n_fft", "hop_length", "n_mels", "voc_dim", "voc_layers",
                  "kernel_size")


@dataclass
class LLMCodecConfig(MelConfig):
    """All hyper-parameters of :class:`soundtok.llmcodec.model.LLMCodec` (the front-end
    fields and the ``config.json`` round trip come from :class:`~soundtok.modelconfig.MelConfig`)."""

    ARCHITECTURE: ClassVar[str] = ARCHITECTURE
    KIND: ClassVar[str] = "llm-codec"
    EXTRA_KEYS: ClassVar[tuple[str, ...]] = ("architecture", "soundtok_version", "vocab_lengths")
    LEGACY: ClassVar[dict] = LEGACY

    name: str = "llm-codec-16k"
    # encoder / decoder (ConvNeXt at the mel frame rate)
    dim: int = 256
    enc_layers: int = 4
    dec_layers: int = 4
    kernel_size: int = 7
    # multi-scale residual VQ over frozen LLM embedding rows
    strides: list[int] = field(default_factory=lambda: [32, 8, 4])
    vocab_sizes: list[int] = field(default_factory=lambda: [4096, 8192, 8192])
    min_word_letters: int = 3
    word_filter: str = "english"  # "english" (MiniLM's BERT word list) or "none"
    commitment_weight: float = 0.25
    # "separable": depthwise strided conv + 1x1 (small); "conv": full strided conv
    resampler: str = "separable"
    # cosine nearest-row search after subtracting each codebook's mean row: the
    # LLM rows share a common direction (mean pairwise cosine ~0.2-0.3 for
    # Gemma 3), which otherwise funnels most frames onto a few "hub" tokens
    center_codebooks: bool = True
    # > 0: nearest rows are searched (and the quantised vectors live) in a
    # lookup_dim-dimensional projection of each scale's (centred) rows; 0: full hidden size.
    # Low-d lookup + the usage loss are what keep the codebooks from collapsing
    # (bench/llmcodec_code_use.py; docs/llm-codec.md)
    lookup_dim: int = 16
    # that projection: "pca" -- the rows' top lookup_dim principal directions (fixed);
    # "learned" -- starts there and is trained by a codebook loss (factorised codes,
    # as ViT-VQGAN / DAC; the rows themselves stay frozen), stored in the weights
    lookup_projection: str = "pca"
    # weight of the code-usage loss (per-frame entropy minus batch entropy of
    # the soft assignments, / log V); 0 disables it
    entropy_weight: float = 1.0
    entropy_temperature: float = 0.05
    # what the first (coarsest) scale is trained to mean:
    #   "whisper" -- its vectors predict the frozen teacher's features (a small head,
    #     L1 + (1 - cos) on per-channel standardised features pooled to its frame rate);
    #   "text" -- time-pooled, projected to semantic_dim, cosine to the MiniLM embedding
    #     of the clip's label (clips without a label get none);  "both" -- the two losses
    semantic: str = "whisper"
    teacher: str | None = "whisper-base"
    teacher_dim: int = 512
    teacher_weight: float = 1.0
    teacher_hidden: int = 256  # width of the teacher head (per frame: lookup_dim -> hidden -> teacher_dim)
    # the label (text) loss: MiniLM embedding size and weight
    semantic_dim: int = 384
    semantic_weight: float = 1.0
    # vocoder (soundtok.codec.vocoder.Vocoder)
    voc_dim: int = 192
    voc_layers: int = 8
    # "default": the vocoder is the built-in soundtok codec's (frozen), read
    # from it at load time and not stored in model.safetensors; its file's
    # sha256 is ``vocoder_sha256``.  None: the vocoder is stored with the codec.
    vocoder_from: str | None = None
    vocoder_sha256: str | None = None
    # filled in when a codec is built from an LLM (llm_identity of it)
    llm: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.strides, self.vocab_sizes = list(self.strides), list(self.vocab_sizes)
        if not self.strides or len(self.strides) != len(self.vocab_sizes):
            raise ValueError("strides and vocab_sizes must be non-empty lists of equal length")
        for s in self.strides:
            if not isinstance(s, int) or s < 1 or (s & (s - 1)):
                raise ValueError(f"stride {s!r} is not a power of two")
        if self.strides != sorted(self.strides, reverse=True):
            raise ValueError("strides must run from the coarsest scale to the finest")
        if any(not isinstance(v, int) or v < 2 for v in self.vocab_sizes):
            raise ValueError("every vocab size must be an integer >= 2")
        if self.resampler not in ("separable", "conv"):
            raise ValueError(f"resampler {self.resampler!r}: choose separable or conv")
        if self.vocoder_from not in (None, "default"):
            raise ValueError(f"vocoder_from {self.vocoder_from!r}: only 'default' (the "
                             "built-in codec's vocoder) or null (stored) are known")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even")

    def validate(self) -> None:
        """ValueError (one line) for settings that do not fit together."""
        if self.semantic not in SEMANTIC_TARGETS:
            raise ValueError(f"semantic {self.semantic!r}: choose {', '.join(SEMANTIC_TARGETS)}")
        if self.lookup_projection not in LOOKUP_PROJECTIONS:
            raise ValueError(f"lookup_projection {self.lookup_projection!r}: choose "
                             f"{' or '.join(LOOKUP_PROJECTIONS)}")
        if not isinstance(self.lookup_dim, int) or self.lookup_dim < 0:
            raise ValueError(f"lookup_dim {self.lookup_dim!r} must be an integer >= 0 (0 = full size)")
        if self.lookup_projection == "learned" and self.lookup_dim == 0:
            raise ValueError("lookup_projection \"learned\" needs lookup_dim > 0")
        for k in ("entropy_weight", "teacher_weight", "semantic_weight"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} must be >= 0")
        if self.entropy_temperature <= 0:
            raise ValueError("entropy_temperature must be > 0")
        if self.uses_teacher:
            from ..teacher import TEACHERS
            from ..teacher.align import TEACHER_HOP

            if not self.teacher:
                raise ValueError(f"semantic {self.semantic!r} needs a teacher (e.g. \"whisper-base\")")
            if self.teacher not in TEACHERS:
                raise ValueError(f"unknown teacher {self.teacher!r} (known: {', '.join(TEACHERS)})")
            if TEACHERS[self.teacher][1] != self.teacher_dim:
                raise ValueError(f"teacher {self.teacher} has {TEACHERS[self.teacher][1]} "
                                 f"channels, not teacher_dim {self.teacher_dim}")
            if self.sample_rate != 16000 or self.teacher_hop % TEACHER_HOP:
                raise ValueError(f"the teacher needs 16 kHz audio and a finest hop that is a multiple of "
                                 f"{TEACHER_HOP} samples (have {self.sample_rate} Hz, hop {self.teacher_hop})")

    @property
    def uses_teacher(self) -> bool:
        """Whether the first scale learns the teacher's features (``semantic`` whisper or both)."""
        return self.semantic in ("whisper", "both")

    @property
    def uses_text(self) -> bool:
        """Whether the first scale learns label embeddings (``semantic`` text or both)."""
        return self.semantic in ("text", "both")

    @property
    def teacher_hop(self) -> int:
        """Samples per frame of the cached teacher features: the finest scale's hop
        (640 = 25 Hz at the defaults, the built-in codec's token grid, so its cache fits)."""
        return self.hop_lengths[-1]

    @property
    def hop_lengths(self) -> list[int]:
        """Audio samples per token of each scale."""
        return [self.hop_length * s for s in self.strides]

    @property
    def frame_rates(self) -> list[float]:
        """Tokens per second of each scale (Hz)."""
        return [self.sample_rate / h for h in self.hop_lengths]

    def chunk_step(self, chunk_seconds: float) -> int:
        """Samples per chunk of long-audio coding: ``chunk_seconds`` rounded down
        to a multiple of the coarsest hop (at least one hop)."""
        return max(1, int(chunk_seconds * self.sample_rate) // self.max_hop) * self.max_hop

    @property
    def max_hop(self) -> int:
        """Audio is padded to a multiple of this (the coarsest scale's hop)."""
        return self.hop_lengths[0]

    def vocoder_config(self):
        """A :class:`~soundtok.codec.config.CodecConfig` carrying the fields the
        shared :class:`~soundtok.codec.vocoder.Vocoder` reads."""
        from ..codec.config import CodecConfig

        return CodecConfig(**{k: getattr(self, k) for k in VOCODER_FIELDS})
