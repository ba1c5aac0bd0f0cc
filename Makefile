# soundtok developer targets. Long jobs (training, benchmarks) live here, not in the tests.
PY ?= python
DATA ?= ../shared/data
RUNS ?= runs
THREADS ?= 1
SOUNDTOK ?= $(PY) -m soundtok

.PHONY: test default-codec default-codec-vt default-codec-voc bench completions manifests

test:
	$(PY) -m pytest -q

manifests: $(RUNS)/data/codec_train.jsonl
$(RUNS)/data/codec_train.jsonl:
	$(PY) scripts/shared_manifests.py --data $(DATA) --out $(RUNS)/data

# The default codec: two runs that can go in parallel (make -j2 default-codec),
# then assembly into soundtok/codec/default (float16). Both runs resume if
# interrupted. (A vocoder fine-tune on VAE-reconstructed mels,
# `train-codec --stage vocoder --vocoder-input vae`, was tried and lowered STOI;
# see the model card.)
default-codec: default-codec-vt default-codec-voc
	$(PY) scripts/ship_codec.py $(RUNS)/default-codec/vt/final \
	  --vocoder-from $(RUNS)/default-codec/voc/final --out soundtok/codec/default

default-codec-vt: manifests
	$(SOUNDTOK) train-codec $(RUNS)/data/codec_train.jsonl --val $(RUNS)/data/codec_val.jsonl \
	  -o $(RUNS)/default-codec/vt --stage vae,tokenizer --vae-steps 3000 --tokenizer-steps 5000 \
	  --threads $(THREADS) --device cpu --resume -v

default-codec-voc: manifests
	$(SOUNDTOK) train-codec $(RUNS)/data/codec_train.jsonl --val $(RUNS)/data/codec_val.jsonl \
	  -o $(RUNS)/default-codec/voc --stage vocoder --vocoder-steps 5000 \
	  --threads $(THREADS) --device cpu --resume -v

# The default LLM-Codec (soundtok/llmcodec/default): Gemma 3 270M's frozen embeddings as
# codebooks, trained on FSDD train + ESC-10 folds 1-3; resumes if interrupted.
.PHONY: default-llm-codec eval-fewshot
default-llm-codec: manifests
	$(PY) scripts/train_default_llm_codec.py --data $(DATA) --runs $(RUNS) --threads $(THREADS)

# Few-shot accuracy of the shipped LLM-Codec + Gemma 3 270M (ESC-10 fold 4, FSDD test).
eval-fewshot:
	$(PY) scripts/eval_fewshot.py --runs $(RUNS) --threads $(THREADS)

# Model-card results of a codec: FSDD digit strings, held-out corpus voices and real speech,
# ESC-10 fold 4, held-out music; side by side with codec2-450, codec2-700C and opus-6k
# (WER/CER, STOI, PESQ, speaker similarity, DNSMOS, mel distances; spectrograms).
#   make eval-codec CODEC=runs/new/final DECODERS=flow,mse PREVIOUS=soundtok/codec/default LIMIT=20
.PHONY: eval-codec
CODEC ?= default
DECODERS ?= flow
PREVIOUS ?=
LIMIT ?=
EVAL_SETS ?= fsdd,voices,speech,esc10,music
eval-codec:
	$(PY) scripts/eval_codec.py --codec $(CODEC) --decoders $(DECODERS) --sets $(EVAL_SETS) \
	  --data $(DATA) --corpus $(RUNS)/corpus --out $(RUNS)/eval-codec --threads 2 \
	  $(if $(PREVIOUS),--previous $(PREVIOUS)) $(if $(LIMIT),--limit $(LIMIT))

completions:
	$(PY) scripts/make_completions.py

bench:
	$(PY) bench/bench_codec.py

# LLM adapter
# The default caption/generation adapter (soundtok/audiolm/default_adapter): FSDD train + ESC-10
# folds 1-3, validated on FSDD test + ESC-10 fold 4; resumes if interrupted.
.PHONY: default-adapter eval-adapter
default-adapter:
	$(PY) scripts/train_default_adapter.py --data $(DATA) --runs $(RUNS) --threads $(THREADS)

eval-adapter:
	$(PY) scripts/eval_adapter.py --runs $(RUNS) --threads 2

# The offline training corpus (docs/corpus.md): TTS voices with text, FSDD, klettres, ESC-10,
# sonic-pi, music21 renderings -> $(CORPUS)/{train,val,test}.jsonl. Resumes where it stopped.
CORPUS ?= $(if $(SOUNDTOK_CORPUS),$(SOUNDTOK_CORPUS),$(RUNS)/corpus)
CORPUS_WORKERS ?= 2
.PHONY: corpus examples
corpus:
	nice -n 5 $(PY) scripts/build_corpus.py --out $(CORPUS) --data $(DATA) --workers $(CORPUS_WORKERS) \
	  --resume --log $(CORPUS)/build.log

# examples/speech.wav (Piper joe) and examples/sound.wav (a CC0 sonic-pi sample); see examples/README.md
examples:
	$(PY) scripts/make_examples.py
