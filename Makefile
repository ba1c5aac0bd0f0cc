# soundtok developer targets. Long jobs (training, benchmarks) live here, not in the tests.
PY ?= python
DATA ?= ../shared/data
RUNS ?= runs
THREADS ?= 1
SOUNDTOK ?= $(PY) -m soundtok

.PHONY: test default-codec default-codec-vt default-codec-voc ship-codec bench completions manifests

test:
	$(PY) -m pytest -q

manifests: $(RUNS)/data/codec_train.jsonl
$(RUNS)/data/codec_train.jsonl:
	$(PY) scripts/shared_manifests.py --data $(DATA) --out $(RUNS)/data

# The default codec: two runs that can go in parallel (make -j2 default-codec),
# then assembly into soundtok/codec/default. Both runs resume if interrupted.
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

completions:
	$(PY) scripts/make_completions.py

bench:
	$(PY) bench/bench_codec.py
