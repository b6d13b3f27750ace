"""Choose the bundle's LM search settings (beam, LM weight, word bonus, lexicon) on a dev set.

The model runs once per utterance; every setting in the grid then decodes the same
log-probabilities through the runtime's own decoder (``edge_speech.decoding.CTCDecoder`` with the
bundle's LM), so a sweep costs decoding time only. Use a dev set, not the test set: e.g. the
held-out voices with other texts (``synthesize.py --out DEV --train 0 --test 600 --seed 2``)
and/or the first asterisk prompts.

    python -m recipes.default_model.tune_decoder --bundle edge_speech/models/default --data data/dm_dev \\
        --lm-weights 0.3 0.4 0.5 0.6 --word-bonuses 1 2 3 --beams 32

Prints one row per setting, best CER first; ``--json`` keeps them all.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from recipes.default_model import evaluate


def log_probs_for(recognizer, items) -> list:
    """(reference, log-probs [frames, vocab]) per (wav path, reference) item."""
    from edge_speech import audio

    return [(ref, recognizer.log_probs(audio.read_wav(path)[0])) for path, ref in items]


def sweep(recognizer, scored, lm, beams, lm_weights, word_bonuses, lexicons) -> list:
    """One row per setting: its CER/WER over ``scored`` and the decoding time."""
    from edge_speech import decoding

    manifest, rows = recognizer.manifest, []
    for beam, weight, bonus, lexicon in itertools.product(beams, lm_weights, word_bonuses, lexicons):
        decoder = decoding.CTCDecoder(
            list(manifest.tokens),
            blank_id=manifest.blank_id,
            beam_width=beam,
            lm=lm,
            lm_weight=weight,
            word_bonus=bonus,
            lexicon=True if lexicon else None,
            frame_shift_s=manifest.frame_shift_s,
        )
        start = time.perf_counter()
        pairs = [(ref, decoder.decode(lp).text) for ref, lp in scored]
        rates = evaluate.error_rates(pairs)
        rows.append(
            {
                "beam": beam,
                "lm_weight": weight,
                "word_bonus": bonus,
                "lexicon": bool(lexicon),
                "cer": rates["cer"],
                "wer": rates["wer"],
                "decode_s": time.perf_counter() - start,
            }
        )
    return sorted(rows, key=lambda r: (r["cer"], r["wer"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", help="a directory with test.jsonl (e.g. held-out voices, other texts)")
    p.add_argument("--asterisk", type=int, default=0, help="also score the first N asterisk prompts")
    p.add_argument("--beams", type=int, nargs="+", default=[32])
    p.add_argument("--lm-weights", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5, 0.6, 0.8])
    p.add_argument("--word-bonuses", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    p.add_argument(
        "--lexicon",
        choices=["on", "off", "both"],
        default="on",
        help="keep words to the LM's vocabulary (the bundle's default) or not",
    )
    p.add_argument("--json")
    args = p.parse_args(argv)
    if not args.data and not args.asterisk:
        p.error("give --data and/or --asterisk N")

    from edge_speech import Recognizer, decoding

    recognizer = Recognizer.from_bundle(args.bundle, threads=1)
    lm_name = recognizer.manifest.decoder.get("lm")
    if not lm_name:
        p.error(f"{args.bundle} ships no LM to tune")
    lm = decoding.ArpaLM.from_file(Path(args.bundle) / lm_name)
    items = evaluate.synthetic_set(Path(args.data)) if args.data else []
    items += evaluate.asterisk_set()[: args.asterisk]
    scored = log_probs_for(recognizer, items)
    lexicons = {"on": [True], "off": [False], "both": [True, False]}[args.lexicon]
    rows = sweep(recognizer, scored, lm, args.beams, args.lm_weights, args.word_bonuses, lexicons)
    current = recognizer.manifest.decoder
    print(
        f"{len(scored)} utterances; the bundle's setting: beam {current.get('beam')}, LM weight "
        f"{current.get('lm_weight')}, word bonus {current.get('word_bonus')}, lexicon {current.get('lexicon')}"
    )
    print("| beam | LM weight | word bonus | lexicon | CER | WER | decode s |\n|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['beam']} | {r['lm_weight']:g} | {r['word_bonus']:g} | {'on' if r['lexicon'] else 'off'} | "
            f"{100 * r['cer']:.2f}% | {100 * r['wer']:.2f}% | {r['decode_s']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
