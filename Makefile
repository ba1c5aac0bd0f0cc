# soundtok developer targets. Long jobs (training, benchmarks) live here, not in the tests.
PY ?= python
DATA ?= ../shared/data
RUNS ?= runs
THREADS ?= 1
SOUNDTOK ?= $(PY) -m soundtok

.PHONY: test default-codec default-codec-vt default-codec-voc default-codec-merged default-codec-vocft bench completions manifests

test:
	$(PY) -m pytest -q

manifests: $(RUNS)/data/codec_train.jsonl
$(RUNS)/data/codec_train.jsonl:
	$(PY) scripts/shared_manifests.py --data $(DATA) --out $(RUNS)/data

# The default codec: two runs that can go in parallel (make -j2 default-codec),
# assembly, a short vocoder fine-tune on VAE-reconstructed mels, then float16
# weights into soundtok/codec/default. Every run resumes if interrupted.
default-codec: default-codec-vocft
	$(PY) scripts/ship_codec.py $(RUNS)/default-codec/vocft/final --out soundtok/codec/default

default-codec-merged: default-codec-vt default-codec-voc
	$(PY) scripts/ship_codec.py $(RUNS)/default-codec/vt/final --dtype float32 \
	  --vocoder-from $(RUNS)/default-codec/voc/final --out $(RUNS)/default-codec/merged

default-codec-vocft: default-codec-merged
	$(SOUNDTOK) train-codec $(RUNS)/data/codec_train.jsonl --val $(RUNS)/data/codec_val.jsonl \
	  -o $(RUNS)/default-codec/vocft --init-from $(RUNS)/default-codec/merged --stage vocoder \
	  --vocoder-input vae --vocoder-steps 1500 --lr 3e-4 --threads 2 --device cpu --resume -v

default-codec-vt: manifests
	$(SOUNDTOK) train-codec $(RUNS)/data/codec_train.jsonl --val $(RUNS)/data/codec_val.jsonl \
	  -o $(RUNS)/default-codec/vt --stage vae,tokenizer --vae-steps 3000 --tokenizer-steps 5000 \
	  --threads $(THREADS) --device cpu --resume -v

default-codec-voc: manifests
	$(SOUNDTOK) train-codec $(RUNS)/data/codec_train.jsonl --val $(RUNS)/data/codec_val.jsonl \
	  -o $(RUNS)/default-codec/voc --stage vocoder --vocoder-steps 5000 \
	  --threads $(THREADS) --device cpu --resume -v

completions:
	$(PY) scripts/make_completions.py

bench:
	$(PY) bench/bench_codec.py

# LLM adapter
# The default caption/generation adapter (soundtok/llm/default_adapter): FSDD train + ESC-10
# folds 1-3, validated on FSDD test + ESC-10 fold 4; resumes if interrupted.
.PHONY: default-adapter eval-adapter
default-adapter:
	$(PY) scripts/train_default_adapter.py --data $(DATA) --runs $(RUNS) --threads $(THREADS)

eval-adapter:
	$(PY) scripts/eval_adapter.py --runs $(RUNS) --threads 2
