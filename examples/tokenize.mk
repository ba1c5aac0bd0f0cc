# Batch-tokenize a folder: one token stream per audio file, rebuilt only when the
# audio changes, in parallel with make -j. Then decode them all back.
#
#   make -f examples/tokenize.mk IN=recordings OUT=tokens -j2
#   make -f examples/tokenize.mk IN=recordings OUT=tokens decode
#
# Or one stream for the whole folder:  soundtok tokenize recordings/ -o all.tok.jsonl
IN ?= audio
OUT ?= tokens
SOUNDTOK ?= soundtok
CODEC ?= default

WAVS := $(shell find $(IN) -type f \( -name '*.wav' -o -name '*.flac' -o -name '*.ogg' -o -name '*.mp3' \) 2>/dev/null)
TOKS := $(patsubst $(IN)/%,$(OUT)/%.tok.jsonl,$(WAVS))
DECS := $(patsubst %.tok.jsonl,%.decoded.wav,$(TOKS))

.PHONY: all decode clean
all: $(TOKS)
decode: $(DECS)

$(OUT)/%.tok.jsonl: $(IN)/%
	@mkdir -p $(dir $@)
	$(SOUNDTOK) tokenize $< --codec $(CODEC) -o $@ --threads 1

%.decoded.wav: %.tok.jsonl
	$(SOUNDTOK) detokenize $< $@ --codec $(CODEC) --threads 1

clean:
	rm -rf $(OUT)
