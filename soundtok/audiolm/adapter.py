"""Create, save and load soundtok LLM adapters.

An adapter directory holds:

* ``adapter_config.json`` + ``adapter_model.safetensors`` -- a standard peft
  LoRA adapter (loadable by ``peft.PeftModel.from_pretrained``);
* ``audio_embeddings.safetensors`` -- ``embed`` (audio-token input rows) and,
  for LLMs with untied output embeddings, ``head``;
* ``soundtok-adapter.json`` -- the mapping: codec (name, sha256, header), the
  audio token list, the LLM identity (see :func:`soundtok.llm.llm_identity`)
  and how to load it, the prompt wording and training information.

Loading refuses, with one line, an adapter made for another LLM; callers
check the codec of their token streams against :attr:`AudioVocab.codec_sha256`.
Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..thirdparty import quiet_libraries
from .prompts import PromptFormat
from .vocabulary import AudioVocab

META_FILE = "soundtok-adapter.json"
AUDIO_FILE = "audio_embeddings.safetensors"
META_VERSION = 1
DEFAULT_ADAPTER_DIR = Path(__file__).parent / "default_adapter"

#: Merged-model cache entries at least this big are announced on stderr when written.
ANNOUNCE_BYTES = 50_000_000

#: LoRA settings used when none are given (as in the paper soundtok follows).
LORA_DEFAULTS = {"r": 64, "alpha": 128, "dropout": 0.05, "targets": "all-linear"}


def default_adapter_dir() -> Path:
    return DEFAULT_ADAPTER_DIR


def resolve_adapter(adapter: str | os.PathLike | None) -> Path:
    """``None``/``"default"`` -> the shipped adapter; else a directory (ModelError if absent)."""
    if adapter in (None, "", "default"):
        path = DEFAULT_ADAPTER_DIR
        if not (path / META_FILE).is_file():
            raise ModelError("the default caption/generation adapter is not installed in this copy of "
                             "soundtok (build it with `make default-adapter` or pass --adapter DIR)")
        return path
    path = Path(adapter)
    if not path.is_dir():
        raise ModelError(f"no such adapter directory: {adapter}")
    if not (path / META_FILE).is_file():
        raise ModelError(f"{adapter} is not a soundtok adapter (no {META_FILE})")
    return path


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("soundtok_adapter") != META_VERSION:
        raise ModelError(f"{path} is not a version-{META_VERSION} soundtok adapter")
    return meta


# --------------------------------------------------------------------------- create


@contextlib.contextmanager
def _quiet():
    """Hide deprecation chatter that peft triggers inside transformers."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


@quiet_libraries()
def new_audio_lm(model, tokenizer, vocab: AudioVocab, *, llm_spec: str, lora: dict | None = None,
                 fmt: PromptFormat | None = None, seed: int = 0):
    """Wrap a loaded LLM with fresh LoRA adapters and audio rows (all trainable)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ..llm.identity import llm_identity
    from .model import AudioLM

    lora = {**LORA_DEFAULTS, **(lora or {})}
    targets = lora["targets"]
    if isinstance(targets, str) and targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    config = LoraConfig(r=int(lora["r"]), lora_alpha=float(lora["alpha"]), lora_dropout=float(lora["dropout"]),
                        target_modules=targets, task_type="CAUSAL_LM", bias="none")
    identity = llm_identity(model)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.random.fork_rng(devices=[]), _quiet():
        torch.manual_seed(seed)
        try:
            peft_model = get_peft_model(model, config)
        except ValueError as e:
            raise ModelError(f"cannot add LoRA adapters: {str(e).splitlines()[0]}") from None
    alm = AudioLM(peft_model, vocab, seed=seed)
    alm.meta = {
        "soundtok_adapter": META_VERSION,
        "llm": {**identity, "spec": llm_spec},
        "codec": vocab.to_dict(),
        "prompts": (fmt or PromptFormat()).to_dict(),
        "lora": {**lora, "targets": lora["targets"]},
        "tied_audio_head": alm.audio_head is None,
        "training": {},
    }
    return alm


# --------------------------------------------------------------------------- save


@quiet_libraries()
def save_adapter(alm, directory: str | os.PathLike, *, dtype=None, extra: dict | None = None) -> Path:
    """Write ``alm``'s adapter to ``directory`` atomically (temp dir + rename).

    ``dtype`` (e.g. ``torch.bfloat16``) stores the LoRA and audio tensors in
    that precision (they are loaded back as float32); default: as trained.
    """
    import torch
    from safetensors.torch import load_file, save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        peft_model = alm.lm
        if not hasattr(peft_model, "peft_config"):
            raise ModelError("this model's LoRA weights were merged; it cannot be saved as an adapter")
        cfg = peft_model.peft_config["default"]
        saved_name = cfg.base_model_name_or_path
        cfg.base_model_name_or_path = alm.meta["llm"]["spec"]
        try:
            peft_model.save_pretrained(str(tmp), safe_serialization=True)
        finally:
            cfg.base_model_name_or_path = saved_name
        (tmp / "README.md").unlink(missing_ok=True)  # peft's stub model card
        weights = tmp / "adapter_model.safetensors"
        if dtype is not None:
            save_file({k: v.to(dtype).contiguous() for k, v in load_file(str(weights)).items()}, str(weights))
        audio = {"embed": alm.audio_embed.detach()}
        if alm.audio_head is not None:
            audio["head"] = alm.audio_head.detach()
        audio = {k: v.to(dtype or torch.float32).cpu().contiguous() for k, v in audio.items()}
        save_file(audio, str(tmp / AUDIO_FILE))
        meta = {**alm.meta, **(extra or {})}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        mask = os.umask(0)
        os.umask(mask)
        for f in tmp.iterdir():  # safetensors writes owner-only files; adapters are meant to be shared
            os.chmod(f, 0o666 & ~mask)
        os.chmod(tmp, 0o777 & ~mask)
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{os.getpid()}"
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


@quiet_libraries()
def load_weights(alm, directory: str | os.PathLike) -> None:
    """Copy LoRA and audio weights saved in ``directory`` into ``alm`` (same shapes)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        lora = load_file(str(directory / "adapter_model.safetensors"))
    except Exception as e:
        raise ModelError(f"cannot read {directory / 'adapter_model.safetensors'}: "
                         f"{str(e).splitlines()[0]}") from None
    result = set_peft_model_state_dict(alm.lm, lora)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise ModelError(f"{directory}: LoRA weights do not fit this model ({missing[0]})")
    load_audio_weights(alm, directory)


def load_audio_weights(alm, directory: str | os.PathLike) -> None:
    """Copy the audio-token rows saved in ``directory`` into ``alm``."""
    import torch
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        audio = load_file(str(directory / AUDIO_FILE))
    except Exception as e:
        raise ModelError(f"cannot read {directory / AUDIO_FILE}: {str(e).splitlines()[0]}") from None
    with torch.no_grad():
        _copy(alm.audio_embed, audio.get("embed"), directory)
        if alm.audio_head is not None:
            _copy(alm.audio_head, audio.get("head"), directory)


def _copy(param, tensor, directory) -> None:
    if tensor is None or tuple(tensor.shape) != tuple(param.shape):
        got = None if tensor is None else tuple(tensor.shape)
        raise ModelError(f"{directory}: audio embeddings have shape {got}, expected {tuple(param.shape)}")
    param.copy_(tensor.to(param.dtype))


# --------------------------------------------------------------------------- load


def check_llm(meta: dict, model, adapter_name: str) -> None:
    """Raise ModelError unless ``model`` is the LLM the adapter was trained for."""
    from ..llm.identity import llm_identity

    want, have = meta.get("llm") or {}, llm_identity(model)
    if want.get("sha256") != have["sha256"]:
        raise ModelError(
            f"adapter {adapter_name} was trained for LLM {want.get('name')!r} "
            f"(sha256 {str(want.get('sha256'))[:12]}), not {have['name']!r} (sha256 {have['sha256'][:12]})")


@quiet_libraries()
def load_adapter(adapter: str | os.PathLike | None = None, *, llm: str | None = None, device="auto",
                 dtype=None, merge: bool = True, progress: Callable[[str], None] | None = None,
                 decode_only: bool = False):
    """Load ``(audio_lm, tokenizer, meta)`` for inference (``adapter`` None: the shipped one).

    ``llm`` overrides where the LLM is loaded from (default: what the adapter
    records); it must still be the same LLM.  ``device``: ``"auto"`` (CUDA when
    available, else CPU), ``cpu``, ``cuda``, ``cuda:N``.  ``merge`` folds the LoRA
    weights into the LLM (faster decoding; the result cannot be saved again); the
    LLM runs in ``dtype`` (default :func:`soundtok.llm.loader.inference_dtype`: float32
    on CPU, where results then do not depend on the batch); the
    merged LLM is cached on first use and loaded from there afterwards, without peft
    (:mod:`soundtok.audiolm.merged`).  ``progress`` receives one-line messages (see
    :func:`soundtok.llm.loader.load_llm`).  ``decode_only``: the caller only turns ids into
    text (captioning), so the tokenizer of a cached entry reads just its decoder file, and
    the rest only if something is encoded after all.
    The result can be passed as ``adapter=`` to :func:`soundtok.caption` and
    :func:`soundtok.generate` to load the model once for many calls.
    """
    directory = resolve_adapter(adapter)
    meta = read_meta(directory)
    vocab = AudioVocab.from_dict(meta.get("codec") or {})
    spec = llm or (meta.get("llm") or {}).get("spec")
    if not spec:
        raise ModelError(f"{directory}: adapter does not say which LLM it was trained for; pass --llm")
    if not merge:
        return _load_unmerged(directory, meta, vocab, spec, device, dtype, progress)
    from . import merged

    llm_spec, dev, torch_dtype, entry = _merged_plan(directory, meta, spec, device, dtype)
    entry_meta = merged.read_entry(entry)
    if entry_meta is not None:
        try:
            model, tokenizer = merged.load_entry(entry, entry_meta, torch_dtype, decode_only=decode_only)
        except ModelError as e:  # a damaged cache entry is rebuilt, not a reason to fail
            from ..llm.hf import stderr_notice

            (progress or stderr_notice)(f"the merged model cache {entry} is unreadable ({e}); rebuilding it")
            shutil.rmtree(entry, ignore_errors=True)
        else:
            check_llm(meta, model, str(directory))
            return _finish(model, vocab, meta, directory, dev), tokenizer, meta
    alm, tokenizer, meta = _load_unmerged(directory, meta, vocab, llm_spec, device, torch_dtype, progress)
    alm.lm = alm.lm.merge_and_unload()
    _write_merged(alm, tokenizer, entry, directory, meta, llm_spec, progress)
    return alm, tokenizer, meta


def _merged_plan(directory: Path, meta: dict, spec: str, device, dtype):
    """``(llm spec, torch device, dtype, merged cache entry)`` of a merged load."""
    from ..llm.loader import _parse_dtype, _torch_device, inference_dtype, resolve_llm
    from . import merged

    llm_spec = resolve_llm(spec)
    dev = _torch_device(device)
    torch_dtype = _parse_dtype(dtype) or inference_dtype(dev)
    return llm_spec, dev, torch_dtype, merged.entry_dir(directory, meta, llm_spec, torch_dtype)


def merged_cached(adapter: str | os.PathLike | None = None, *, llm: str | None = None, device="auto",
                  dtype=None) -> bool:
    """Whether :func:`load_adapter` (merged, the default) would load from the merged-model
    cache -- seconds at most -- rather than build the entry first; cheap (no model is read)."""
    from . import merged

    directory = resolve_adapter(adapter)
    meta = read_meta(directory)
    spec = llm or (meta.get("llm") or {}).get("spec")
    if not spec:
        return False
    return merged.read_entry(_merged_plan(directory, meta, spec, device, dtype)[3]) is not None


def _finish(lm, vocab: AudioVocab, meta: dict, directory: Path, device):
    """The inference :class:`~.model.AudioLM` around ``lm``: audio rows loaded, frozen, eval mode."""
    from .model import AudioLM

    alm = AudioLM(lm, vocab, init_rows=False)  # the rows are loaded next
    alm.meta = meta
    alm.to(device)
    load_audio_weights(alm, directory)
    alm.eval()
    for p in alm.parameters():
        p.requires_grad_(False)
    return alm


def _write_merged(alm, tokenizer, entry: Path, directory: Path, meta: dict, llm_spec, progress) -> None:
    """Write the merged entry for next time; a cache that cannot be written costs only speed."""
    from ..llm.hf import stderr_notice
    from ..llm.identity import llm_identity
    from . import merged
    from .prompts import PromptFormat

    fmt = PromptFormat.from_dict(meta.get("prompts"))
    texts = [fmt.caption_prefix, fmt.caption_suffix, fmt.generate_prefix, fmt.generate_suffix]
    size = sum(p.numel() * p.element_size() for p in alm.lm.parameters())
    if size >= ANNOUNCE_BYTES:  # what a user should know before it lands on their disk
        (progress or stderr_notice)(f"caching the LLM with this adapter merged in ({size / 1e9:.1f} GB, "
                                    f"once per adapter and dtype) in {entry}")
    try:
        merged.write_entry(entry, alm.lm.to("cpu"), tokenizer, adapter_dir=directory,
                           llm_meta=llm_identity(alm.lm), from_gguf=llm_spec.kind == "gguf", texts=texts)
    except OSError as e:
        (progress or stderr_notice)(f"could not write the merged model cache {entry} "
                                    f"({e.strerror or e}); the next load is slow again")
    finally:
        alm.lm.to(alm.device)


def _load_unmerged(directory: Path, meta: dict, vocab: AudioVocab, spec, device, dtype, progress):
    """LLM + peft LoRA adapter (not merged) + audio rows: ``(audio_lm, tokenizer, meta)``."""
    from peft import PeftModel

    from ..errors import SoundtokError
    from ..llm.loader import load_llm

    model, tokenizer = load_llm(spec, device=device, dtype=dtype, progress=progress)
    check_llm(meta, model, str(directory))
    if model.get_input_embeddings().num_embeddings != vocab.base_size:
        raise ModelError(f"adapter {directory} expects {vocab.base_size} LLM vocabulary rows, "
                         f"the LLM has {model.get_input_embeddings().num_embeddings}")
    if not (Path(directory) / "adapter_model.safetensors").is_file():  # never let peft fall back to a pickle
        raise ModelError(f"{directory} has no adapter_model.safetensors (only safetensors adapters are loaded)")
    try:
        with _quiet():
            peft_model = PeftModel.from_pretrained(model, str(directory), is_trainable=False)
    except SoundtokError:
        raise
    except Exception as e:  # peft raises assorted errors for corrupt or mismatched files
        raise ModelError(f"cannot load LoRA adapter from {directory}: {str(e).splitlines()[0]}") from None
    return _finish(peft_model, vocab, meta, directory, model.device), tokenizer, meta
