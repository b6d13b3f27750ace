#!/usr/bin/env bash
# The README's first command: set up, then run the main job on example speech.
# Until the embedded default model lands, the main job is the native front end: it synthesises
# a spoken command with espeak-ng and prints a summary of its Kaldi fbank features.
set -euo pipefail
cd "$(dirname "$0")/.."
bash recipes/setup.sh
mkdir -p build/examples
example=build/examples/command.wav
espeak-ng -v en-us -w build/examples/raw.wav "turn on the kitchen light"
sox build/examples/raw.wav -r 16000 -b 16 -c 1 "$example"
.venv/bin/edge-speech features "$example" --preset kaldi-fbank
