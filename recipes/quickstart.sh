#!/usr/bin/env bash
# The README's first command: set up, then run the main job with the embedded models on the
# shipped example audio: open-vocabulary transcription (en-base, the Whisper-encoder model), then
# voice-command recognition with a grammar (en-small; intent, slots, confidence; speech outside
# the grammar is rejected).
set -euo pipefail
cd "$(dirname "$0")/.."
bash recipes/setup.sh
examples=recipes/default_model/examples
echo
echo "== Transcription (embedded en-base model, beam search with its bundled word LM)"
.venv/bin/edge-speech transcribe --model en-base "$examples"/*.wav
echo
echo "== Voice commands ($examples/commands.yaml)"
.venv/bin/edge-speech transcribe --grammar "$examples/commands.yaml" --json "$examples"/*.wav
