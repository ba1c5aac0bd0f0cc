# soundtok developer targets. Long jobs (training, benchmarks) live here, not in the tests.
PY ?= python
DATA ?= ../shared/data
RUNS ?= runs
THREADS ?= 1
SOUNDTOK ?= $(PY) -m soundtok
# The training corpus (make corpus; docs/corpus.md), what the default codec trains on
CORPUS ?= $(if $(SOUNDTOK_CORPUS),$(SOUNDTOK_CORPUS),$(RUNS)/corpus)

.PHONY: test default-codec default-codec-vt default-codec-voc ship-default-codec bench completions manifests

test:
	$(PY) -m pytest -q

manifests: $(RUNS)/data/codec_train.jsonl
$(RUNS)/data/codec_train.jsonl:
	$(PY) scripts/shared_manifests.py --data $(DATA) --out $(RUNS)/data

# The default codec (soundtok-sem-16k, the CodecConfig() defaults: Whisper-base semantic
# teacher, 1024 codes at 25 Hz = 250 bit/s, flow decoder on the MSE prior, GAN vocoder).
# Two resumable runs that can go in parallel (make -j2 default-codec, one thread each):
#   vt:  vae -> tokenizer (semantic distillation; teacher features cached in vt/teacher/)
#        -> decoder (flow + MSE decoders on the frozen codes)
#   voc: vocoder (spectral + level losses, multi-period/multi-resolution discriminators)
# then float16 assembly into $(CODEC_RUN)/ship. Interrupt any time; rerunning resumes from
# the latest checkpoint. The shipped soundtok/codec/default is replaced only after
# evaluation: `make ship-default-codec`.
CODEC_TRAIN ?= $(CORPUS)/train.jsonl
CODEC_VAL ?= $(CORPUS)/val.jsonl
CODEC_RUN ?= $(RUNS)/default-codec
CODEC_DECODER ?= flow
CODEC_GUIDANCE ?= 1.0
VAE_STEPS ?= 4000
TOK_STEPS ?= 12000
DEC_STEPS ?= 4000
VOC_STEPS ?= 12000
TRAIN_CODEC = $(SOUNDTOK) train-codec $(CODEC_TRAIN) --val $(CODEC_VAL) --val-every 1000 \
	  --save-every 250 --threads $(THREADS) --device cpu --resume -v

# CODEC_TEACHER_CACHE: reuse another run's teacher features (same corpus, same teacher).
# CODEC_VOCODER: ship with an already trained vocoder run's final/ (skips default-codec-voc),
# e.g. after retraining only vae/tokenizer/decoder: make default-codec CODEC_RUN=runs/new \
#   CODEC_TEACHER_CACHE=runs/old/vt/teacher CODEC_VOCODER=runs/old/voc
CODEC_TEACHER_CACHE ?=
CODEC_VOCODER ?=
default-codec: default-codec-vt $(if $(CODEC_VOCODER),,default-codec-voc)
	$(PY) scripts/ship_codec.py $(CODEC_RUN)/vt/final \
	  --vocoder-from $(if $(CODEC_VOCODER),$(CODEC_VOCODER),$(CODEC_RUN)/voc)/final \
	  --decoder $(CODEC_DECODER) --guidance $(CODEC_GUIDANCE) --out $(CODEC_RUN)/ship

default-codec-vt:
	$(TRAIN_CODEC) -o $(CODEC_RUN)/vt --stage vae,tokenizer --vae-steps $(VAE_STEPS) \
	  --tokenizer-steps $(TOK_STEPS) $(if $(CODEC_TEACHER_CACHE),--teacher-cache $(CODEC_TEACHER_CACHE))
	$(TRAIN_CODEC) -o $(CODEC_RUN)/vt --stage decoder --decoder-steps $(DEC_STEPS)

default-codec-voc:
	$(TRAIN_CODEC) -o $(CODEC_RUN)/voc --stage vocoder --vocoder-steps $(VOC_STEPS)

ship-default-codec:
	cp $(CODEC_RUN)/ship/config.json $(CODEC_RUN)/ship/model.safetensors soundtok/codec/default/

# The default LLM-Codec (soundtok/llmcodec/default): Gemma 3 270M's frozen embeddings as
# codebooks, the Whisper-base teacher on the word scale, trained on the corpus (which holds
# FSDD train and ESC-10 folds 1-3) with the built-in codec's vocoder frozen by reference.
# Resumes if interrupted; the float16 codec goes to $(LLMC_RUN)/ship, and
# `make ship-default-llm-codec` copies it into the package after evaluation.
#   make default-llm-codec LLMC_STEPS=8000 LLMC_TEACHER_CACHE=runs/codec-sem/vt/teacher
LLMC_RUN ?= $(RUNS)/llmcodec-sem
LLMC_STEPS ?= 8000
LLMC_BATCH ?= 16
LLMC_ESC_WEIGHT ?= 4
LLMC_TEACHER_CACHE ?=
LLMC_CONFIG ?=
.PHONY: default-llm-codec ship-default-llm-codec eval-fewshot
default-llm-codec:
	$(PY) scripts/train_default_llm_codec.py --corpus $(CORPUS) --out $(LLMC_RUN) --steps $(LLMC_STEPS) \
	  --batch $(LLMC_BATCH) --esc-weight $(LLMC_ESC_WEIGHT) --threads $(THREADS) \
	  $(if $(LLMC_TEACHER_CACHE),--teacher-cache $(LLMC_TEACHER_CACHE)) \
	  $(if $(LLMC_CONFIG),--config '$(LLMC_CONFIG)')

ship-default-llm-codec:
	cp $(LLMC_RUN)/ship/config.json $(LLMC_RUN)/ship/model.safetensors soundtok/llmcodec/default/

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
# The default caption/generation adapter (Gemma 3 270M + LoRA): the corpus's train split (FSDD test
# and ESC-10 fold 4 never), tokenized once with ADAPTER_CODEC (the shipped codec) into
# $(ADAPTER_RUN)/tokens/, balanced per kind, then finetune-llm and the calibration of its "unsure"
# flag; recipe and timings in docs/llm.md. Interrupt any time: the same command resumes.
#   make default-adapter-estimate      # time a few real steps first: prints s/step and the wall time
#   make default-adapter ADAPTER_EPOCHS=2 ADAPTER_STEPS=600
#   make eval-adapter [EVAL_LIMIT=40]  # held-out results -> $(ADAPTER_RUN)/eval/<name>/results.{json,md}
#   make ship-default-adapter          # copy the trained adapter into soundtok/audiolm/default_adapter
ADAPTER_RUN ?= $(RUNS)/adapter
ADAPTER_CODEC ?= default
ADAPTER_EPOCHS ?= 4
ADAPTER_STEPS ?=
ADAPTER_THREADS ?= 1
ADAPTER ?= $(if $(wildcard $(ADAPTER_RUN)/train/final/soundtok-adapter.json),$(ADAPTER_RUN)/train/final,default)
EVAL_LIMIT ?=
ADAPTER_RECIPE = $(PY) scripts/train_default_adapter.py --corpus $(CORPUS) --data $(DATA) --run $(ADAPTER_RUN) \
	  --codec $(ADAPTER_CODEC) --epochs $(ADAPTER_EPOCHS) $(if $(ADAPTER_STEPS),--steps $(ADAPTER_STEPS)) \
	  --threads $(ADAPTER_THREADS)
.PHONY: default-adapter default-adapter-estimate eval-adapter ship-default-adapter
default-adapter:
	$(ADAPTER_RECIPE)

default-adapter-estimate:
	$(ADAPTER_RECIPE) --estimate 6

eval-adapter:
	$(PY) scripts/eval_adapter.py --adapter $(ADAPTER) --run $(ADAPTER_RUN) --corpus $(CORPUS) --data $(DATA) \
	  --codec $(ADAPTER_CODEC) --threads $(ADAPTER_THREADS) $(if $(EVAL_LIMIT),--limit $(EVAL_LIMIT))

ship-default-adapter:
	$(PY) scripts/train_default_adapter.py --install $(ADAPTER_RUN)/train/final

# The offline training corpus (docs/corpus.md): TTS voices with text, FSDD, klettres, ESC-10,
# sonic-pi, music21 renderings -> $(CORPUS)/{train,val,test}.jsonl. Resumes where it stopped.
CORPUS_WORKERS ?= 2
.PHONY: corpus examples
corpus:
	nice -n 5 $(PY) scripts/build_corpus.py --out $(CORPUS) --data $(DATA) --workers $(CORPUS_WORKERS) \
	  --resume --log $(CORPUS)/build.log

# examples/speech.wav (Piper joe) and examples/sound.wav (a CC0 sonic-pi sample); see examples/README.md
examples:
	$(PY) scripts/make_examples.py
