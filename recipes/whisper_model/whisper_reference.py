"""Whisper base's own transcriptions (its decoder, via CTranslate2) on en-base's evaluation sets.

    python -m recipes.whisper_model.whisper_reference --whisper W/whisper-base --data W/dm_test \
        --sets clean,noisy10 --per-voice 40 --compare en-base --compare en-small

A reference for what en-base's pretrained encoder can read: en-base keeps Whisper's bottom five
encoder layers frozen, so a voice that Whisper itself transcribes badly is one whose speech the
encoder represents badly, and a CTC head trained on top can only do so much with it. Same audio,
same noise (``evaluate.run_set``), same scoring as ``recipes/default_model/evaluate.py``; greedy
decoding, English, no timestamps, each utterance zero-padded to Whisper's 30-s window.
``--compare`` runs bundles (embedded names or paths, beam 32 with their LM) on the same items.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from edge_speech import audio
from recipes.default_model.evaluate import asterisk_set, print_by_voice, rates_by_voice, run_set, synthetic_rows
from recipes.whisper_model.whisper_ctc import whisper_features

WINDOW_SAMPLES = 30 * 16000


@dataclasses.dataclass
class _Result:
    text: str


class WhisperReference:
    """``transcribe((samples, rate))`` like a Recognizer, by Whisper base's encoder and decoder."""

    def __init__(self, directory: "str | Path", threads: int = 1):
        import ctranslate2
        import tokenizers

        self.tokenizer = tokenizers.Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
        self.model = ctranslate2.models.Whisper(str(directory), device="cpu", intra_threads=threads)
        self.storage = ctranslate2.StorageView
        special = ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")
        self.prompt = [self.tokenizer.token_to_id(t) for t in special]

    def transcribe(self, source, beam: int = 1) -> _Result:
        samples, rate = source
        samples = audio.resample(np.asarray(samples, dtype=np.float32), rate, 16000)[:WINDOW_SAMPLES]
        padded = np.pad(samples, (0, WINDOW_SAMPLES - len(samples)))
        features = np.ascontiguousarray(whisper_features(padded, "utterance")[:3000].T[None])
        result = self.model.generate(self.storage.from_array(features), [self.prompt], beam_size=beam)
        return _Result(self.tokenizer.decode(result[0].sequences_ids[0]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", required=True, help="Whisper base in CTranslate2 format (prepare_whisper.py)")
    parser.add_argument("--data", type=Path, help="held-out synthetic set (synthesize.py --test)")
    parser.add_argument("--sets", default="clean,noisy10", help="clean, noisyN, asterisk")
    parser.add_argument("--per-voice", type=int, default=40, help="utterances per synthetic voice")
    parser.add_argument("--asterisk-count", type=int, default=100)
    parser.add_argument("--compare", action="append", default=[], help="a bundle to run on the same items")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from edge_speech.recognizer import Recognizer

    systems = {"whisper-base": (WhisperReference(args.whisper), 1)}
    for bundle in args.compare:
        recognizer = Recognizer.default(bundle) if not Path(bundle).exists() else Recognizer.from_bundle(bundle)
        systems[bundle] = (recognizer, 32)
    results: dict = {}
    for name in args.sets.split(","):
        voices = None
        if name == "asterisk":
            items = asterisk_set()
            items = items[:: max(1, len(items) // args.asterisk_count)][: args.asterisk_count]
        elif args.data is None:
            raise SystemExit(f"--sets {name} needs --data")
        else:
            picked, per_voice = [], {}
            for row in synthetic_rows(args.data):
                if per_voice.get(row["voice"], 0) < args.per_voice:
                    per_voice[row["voice"]] = per_voice.get(row["voice"], 0) + 1
                    picked.append(row)
            items, voices = [(r["path"], r["text"]) for r in picked], [r["voice"] for r in picked]
        snr = float(name[len("noisy") :]) if name.startswith("noisy") else None
        for system, (recognizer, beam) in systems.items():
            rates, pairs = run_set(recognizer, items, snr_db=snr, beam=beam)
            results.setdefault(name, {})[system] = {"all": rates}
            print(
                f"{name} {system}: CER {100 * rates['cer']:.2f}%  WER {100 * rates['wer']:.2f}%  ({rates['utterances']})"
            )
            if voices:
                results[name][system]["by_voice"] = rates_by_voice(pairs, voices)
                print_by_voice(results[name][system]["by_voice"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
