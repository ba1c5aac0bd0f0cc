#!/usr/bin/env bash
# Round trip one file through the built-in codec, with both decoders.
#   examples/roundtrip.sh input.wav [outdir]
set -euo pipefail
in=${1:?usage: roundtrip.sh input.wav [outdir]}
out=${2:-roundtrip}
mkdir -p "$out"
name=$(basename "${in%.*}")
soundtok tokenize "$in" -o "$out/$name.tok.jsonl"
jq -c 'select(.type=="item") | {id, duration, tokens: (.codes[0] | length)}' "$out/$name.tok.jsonl"
soundtok detokenize "$out/$name.tok.jsonl" "$out/$name.flow.wav" --steps 6 --seed 0
soundtok detokenize "$out/$name.tok.jsonl" "$out/$name.mse.wav" --decoder mse
echo "wrote $out/$name.flow.wav and $out/$name.mse.wav" >&2
