"""The grammar decoder's beam on a large grammar: Home Assistant's English intents.

    pip install home-assistant-intents        # HA's sentence templates; not our dependency
    python -m benchmarks.bench_grammar_beam [--beams inf 160 80 40 20] [--repeat 5]   # repo root

Home Assistant's English intents (wildcard templates skipped, the entity lists ``name``,
``area`` and ``floor`` filled with three dummy values each, as Home Assistant fills them from its
entities) compile through ``edge_speech.ha_sentences.from_dict`` into one grammar; the example
commands (``recipes/default_model/examples/*.wav``) go through en-small once, and their
log-probabilities through the native grammar search at each beam (``inf``: the exhaustive search).
Time is the search alone (median of ``--repeat`` runs); "same" means the same best path (arcs and
frames) and score as the exhaustive search. Also: the same check under the example command
grammar for espeak-ng renditions of every command of it at 10 dB SNR, to show the beam keeps
in-grammar results.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_speech import Recognizer, _native, audio, decoding, ha_sentences
from edge_speech.decoding import Grammar

EXAMPLES = Path(__file__).resolve().parents[1] / "recipes" / "default_model" / "examples"
STEP = np.dtype([("arc", "<i4"), ("token", "<i4"), ("label", "<i4"), ("frame", "<i8")], align=True)


def search(graph, vocab, lp: np.ndarray, beam: float):
    """(path as (arc, frame) pairs, score, seconds) of one native grammar search."""
    decoder = _native.GrammarDecoder(
        graph.arcs.tobytes(), graph.num_states, 0, graph.finals.tobytes(), len(vocab), vocab.blank_id, beam=beam
    )
    start = time.perf_counter()
    decoder.accept(lp)
    steps, score, _ = decoder.result()
    seconds = time.perf_counter() - start
    path = np.frombuffer(bytes(steps), STEP)
    return [(int(s["arc"]), int(s["frame"])) for s in path], score, seconds


def home_assistant_grammar() -> Grammar:
    try:
        import home_assistant_intents
    except ImportError:
        raise SystemExit("needs Home Assistant's intents: pip install home-assistant-intents") from None
    lists = {name: ["kitchen", "living room", "bedroom"] for name in ("name", "area", "floor")}
    return ha_sentences.from_dict(
        home_assistant_intents.get_intents("en"), what="home-assistant-intents en", wildcards="skip", lists=lists
    )


def in_grammar_renditions(grammar: Grammar, snr_db: float, seed: int = 0):
    """(text, samples) of every sentence of a small grammar spoken by espeak-ng, with white noise."""
    rng = np.random.default_rng(seed)
    voices = ("en-us", "en+f3", "en-gb-x-rp+m3", "en+m5")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (_, text) in enumerate(sorted(set(grammar.sentences(10)))):
            wav = os.path.join(tmp, f"{i}.wav")
            subprocess.run(["espeak-ng", "-v", voices[i % len(voices)], "-w", wav, text], check=True)
            x = audio.load_audio(wav, 16000)
            noise = rng.standard_normal(len(x)).astype(np.float32) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
            yield text, x + noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beams", type=float, nargs="+", default=[float("inf"), 160.0, 80.0, 40.0, 20.0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--snr", type=float, default=10.0, help="SNR of the in-grammar renditions (dB)")
    args = parser.parse_args()
    beams = [float("inf")] + [b for b in args.beams if b != float("inf")]
    recognizer = Recognizer.default(threads=1)
    vocab = decoding.Vocabulary(recognizer.manifest.tokens)
    started = time.perf_counter()
    grammar = home_assistant_grammar()
    compile_s = time.perf_counter() - started
    graph = grammar.compile_tokens(vocab, 3.0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"{datetime.date.today()}, commit {commit}, load average {os.getloadavg()[0]:.1f}")
    print(
        f"Home Assistant English intents: {graph.num_states} token states, {len(graph.arcs)} token arcs, "
        f"compiled in {compile_s:.1f} s\n"
    )
    print("| command | audio | " + " | ".join(f"beam {b:g}" for b in beams) + " |")
    print("|---|---:|" + "---:|" * len(beams))
    for wav in sorted(EXAMPLES.glob("*.wav")):
        lp = recognizer.log_probs(audio.load_audio(wav, recognizer.manifest.sample_rate))
        exact = None
        cells = []
        for beam in beams:
            runs = [search(graph, vocab, lp, beam) for _ in range(args.repeat)]
            path, score, _ = runs[0]
            seconds = statistics.median(r[2] for r in runs)
            exact = exact or (path, score)
            same = "same" if (path, score) == exact else "differs"
            cells.append(f"{1000 * seconds:.1f} ms ({same})")
        duration = len(audio.load_audio(wav, 16000)) / 16000
        print(f"| {wav.stem.replace('_', ' ')} | {duration:.2f} s | " + " | ".join(cells) + " |")

    commands = Grammar.from_yaml((EXAMPLES / "commands.yaml").read_text())
    small = commands.compile_tokens(vocab, 3.0)
    differ = {b: 0 for b in beams[1:]}
    count = 0
    for _, samples in in_grammar_renditions(commands, args.snr):
        lp = recognizer.log_probs(samples)
        path, score, _ = search(small, vocab, lp, float("inf"))
        for beam in beams[1:]:
            differ[beam] += search(small, vocab, lp, beam)[:2] != (path, score)
        count += 1
    print(
        f"\nEvery command of commands.yaml by espeak-ng at {args.snr:g} dB SNR ({count}): results that differ from "
        "the exhaustive search: " + ", ".join(f"beam {b:g}: {n}" for b, n in differ.items())
    )


if __name__ == "__main__":
    main()
