"""CER/WER of a bundle, run through the real runtime (``Recognizer.from_bundle``).

Sets:
  clean     the held-out synthetic voices (DATA/test.jsonl)
  noisyN    the same audio with coloured noise (white..brown, fixed seed) at N dB SNR, e.g. noisy10
  asterisk  Debian's asterisk-core-sounds-en-wav: one real speaker, 8 kHz telephone prompts,
            transcripts from asterisk-core-sounds-en's core-sounds-en.txt.gz. Never used in training.

    python -m recipes.default_model.evaluate --bundle recipes/default_model/bundle_fp32 \
        --data data/default_model --sets clean,noisy20,noisy10,asterisk

Error rates are edit distances (substitutions + deletions + insertions) summed over the set and
divided by the reference length: characters (spaces included, runs of spaces collapsed) for CER,
words for WER.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from edge_speech.text import edit_distance, error_rates  # noqa: F401  (the recipes' CER/WER)
from edge_speech.text import normalize_transcript as normalize
from recipes import DATA

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def _digits_to_words(text: str) -> str:
    from recipes.default_model.synthesize import number_words

    def spoken(match):
        number = match.group(0)
        if len(number) > 6:
            return " ".join(number_words(int(d)) for d in number)
        return " " + number_words(int(number)) + " "

    return re.sub(r"\d+", spoken, text)


def asterisk_set(skip: Sequence[str] = ("letters/", "silence/")) -> List[Tuple[str, str]]:
    """(wav path, normalised transcript) for every prompt with a spoken transcript. Entries in
    brackets or parentheses (tones, silence) and the spelled single letters are skipped."""
    items = []
    with gzip.open(ASTERISK_TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            name, text = name.strip(), text.strip()
            if not text or text.startswith(("[", "(")) or name.startswith(tuple(skip)):
                continue
            path = ASTERISK_DIR / f"{name}.wav"
            if not path.exists():
                continue
            text = normalize(_digits_to_words(text.replace("-", " ")))
            if text:
                items.append((str(path), text))
    return items


def synthetic_rows(data: Path) -> List[dict]:
    """The held-out set's manifest rows (path, text, voice, seconds)."""
    return [json.loads(line) for line in (Path(data) / "test.jsonl").read_text().splitlines()]


def synthetic_set(data: Path) -> List[Tuple[str, str]]:
    return [(r["path"], r["text"]) for r in synthetic_rows(data)]


def rates_by_voice(pairs: Sequence[Tuple[str, str]], voices: Sequence[str]) -> dict:
    """{voice: {"cer", "wer", ...}}: the held-out set's error rates per synthetic voice."""
    groups = {}
    for pair, voice in zip(pairs, voices):
        groups.setdefault(voice, []).append(pair)
    return {voice: error_rates(group) for voice, group in sorted(groups.items())}


def print_by_voice(by_voice: dict) -> None:
    for voice, rates in by_voice.items():
        print(
            f"    {voice:40s} CER {100 * rates['cer']:6.2f}%  WER {100 * rates['wer']:6.2f}%  ({rates['utterances']})",
            flush=True,
        )


def run_set(recognizer, items, snr_db=None, beam=1, seed=0):
    """Transcribes every item; with ``snr_db`` adds coloured noise (seeded per utterance)."""
    from edge_speech import audio
    from recipes.default_model.augment import add_at_snr, coloured_noise

    pairs, audio_s, start = [], 0.0, time.perf_counter()
    for k, (path, ref) in enumerate(items):
        samples, rate = audio.read_wav(path)  # float32 mono
        if snr_db is not None:
            rng = np.random.default_rng(seed + k)
            samples = add_at_snr(samples, coloured_noise(rng, len(samples)), snr_db).astype(np.float32)
        audio_s += len(samples) / rate
        pairs.append((ref, recognizer.transcribe((samples, rate), beam=beam).text))
    rates = error_rates(pairs)
    rates["audio_s"] = round(audio_s, 1)
    rates["rtf"] = (time.perf_counter() - start) / max(audio_s, 1e-9)
    return rates, pairs


def evaluate(
    bundle: str, data: str, sets: Sequence[str], beam: int = 1, threads: int = 1, show: int = 0, backend: str = "auto"
) -> dict:
    from edge_speech import Recognizer

    recognizer = Recognizer.from_bundle(bundle, threads=threads, backend=backend)
    results = {}
    for name in sets:
        if name == "asterisk":
            rates, pairs = run_set(recognizer, asterisk_set(), beam=beam)
        elif name == "clean":
            rates, pairs = run_set(recognizer, synthetic_set(data), beam=beam)
        elif name.startswith("noisy"):
            rates, pairs = run_set(recognizer, synthetic_set(data), snr_db=float(name[5:]), beam=beam)
        else:
            raise ValueError(f"unknown set {name!r}")
        results[name] = rates
        print(
            f"{name:10s} CER {100 * rates['cer']:6.2f}%  WER {100 * rates['wer']:6.2f}%  "
            f"({rates['utterances']} utterances, {rates['audio_s']:.0f} s audio, RTF {rates['rtf']:.4f})",
            flush=True,
        )
        if name != "asterisk":
            rates["by_voice"] = rates_by_voice(pairs, [r["voice"] for r in synthetic_rows(data)])
            print_by_voice(rates["by_voice"])
        for ref, hyp in pairs[:show]:
            print(f"    REF: {ref}\n    HYP: {hyp}")
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", default=str(DATA / "default_model"))
    p.add_argument("--sets", default="clean,noisy20,noisy10,asterisk")
    p.add_argument("--beam", type=int, default=1, help="1 = greedy")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "tflite"])
    p.add_argument("--show", type=int, default=0, help="print this many REF/HYP pairs per set")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    results = evaluate(args.bundle, args.data, args.sets.split(","), args.beam, args.threads, args.show, args.backend)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
