"""Our default model vs PocketSphinx on Debian's asterisk prompts (one real speaker, 8 kHz).

    pip install pocketsphinx          # the peer, with its bundled en-us model; not our dependency
    python -m benchmarks.bench_asterisk [--bundle DIR] [--limit N]     # from the repository root

Both systems get the same audio: the prompts of asterisk-core-sounds-en-wav with a spoken
transcript, read and normalised by recipes/default_model/evaluate.py (tones, silence and the
spelled single letters skipped; digits written as words), each WAV loaded once into memory.
Ours is fed the 8 kHz samples (the Recognizer resamples to its bundle's rate itself);
PocketSphinx's en-us model is 16 kHz, so its input is resampled with
``edge_speech.audio.resample`` (soxr HQ) inside its timed call, the same work ours does.

Two tasks:

grammar    Command recognition. The commands are the distinct texts of the command-length
           prompts (at most COMMAND_MAX_WORDS words; the longer ones are menus and
           announcements, not commands). Prompts with a word missing from PocketSphinx's
           dictionary are dropped from both sides (listed in the output). Every
           HOLD_OUT_EVERY-th command (sorted order) is left out of the grammar: its prompts are
           out-of-grammar speech that should be rejected. One JSGF file, one public rule with
           the remaining commands as alternatives, is given as it is to both systems: ours
           through ``Recognizer.transcribe(grammar=FILE)`` with the default threshold, PocketSphinx
           through ``Decoder(jsgf=FILE)`` (FSG search, no rejection of its own: an empty
           hypothesis counts as a rejection). A prompt counts as correct when the accepted text
           equals its transcript exactly.
open       Open vocabulary on every prompt: ours greedy with no LM, PocketSphinx with its
           default en-us trigram LM. CER/WER as evaluate.py computes them.

RTF is recognition time over audio duration, single thread, summed over the set (file reading
excluded, resampling included, grammar compilation done once before timing). Our threshold
sweep needs no second run: every grammar result carries its confidence and closest in-grammar
sentence whether accepted or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks.bench_features import cpu_model, load_average, version  # also pins BLAS/OpenMP pools to 1 thread
from edge_speech import Recognizer, audio, decoding
from recipes.default_model.evaluate import asterisk_set, error_rates  # the one reader of the asterisk set

COMMAND_MAX_WORDS = 8
HOLD_OUT_EVERY = 5
SPHINX_RATE = 16000  # PocketSphinx's bundled en-us acoustic model
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclasses.dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    samples: np.ndarray  # float32 mono at `rate`
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


@dataclasses.dataclass(frozen=True)
class GrammarOutcome:
    prompt: Prompt
    best_text: str  # the closest in-grammar sentence ("" when none)
    accepted: bool
    confidence: Optional[float]  # ours only


# -- the two systems ---------------------------------------------------------------------------


class Ours:
    def __init__(self, bundle: Optional[str]):
        self.name = "edge_speech"
        self.recognizer = Recognizer.default(threads=1) if bundle is None else Recognizer.from_bundle(bundle, threads=1)

    def command(self, prompt: Prompt, grammar_file: str) -> GrammarOutcome:
        result = self.recognizer.transcribe((prompt.samples, prompt.rate), grammar=grammar_file)
        best = result.nbest[0].text if result.nbest else ""  # kept by the decoder even when rejected
        return GrammarOutcome(prompt, best, result.intent is not None, result.confidence)

    def transcribe(self, prompt: Prompt) -> str:
        return self.recognizer.transcribe((prompt.samples, prompt.rate), beam=1).text  # greedy: no LM


class Sphinx:
    def __init__(self, grammar_file: Optional[str] = None):
        import pocketsphinx

        self.name = "PocketSphinx"
        # Without jsgf= the decoder uses the bundled en-us LM; with it, the LM is left out.
        options = {"jsgf": grammar_file} if grammar_file else {}
        self.decoder = pocketsphinx.Decoder(loglevel="ERROR", **options)

    def _decode(self, prompt: Prompt) -> str:
        samples = audio.resample(prompt.samples, prompt.rate, SPHINX_RATE)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def command(self, prompt: Prompt, grammar_file: str) -> GrammarOutcome:
        text = self._decode(prompt)
        return GrammarOutcome(prompt, text, bool(text), None)

    def transcribe(self, prompt: Prompt) -> str:
        return self._decode(prompt)

    def missing_words(self, words: Sequence[str]) -> List[str]:
        return sorted(w for w in set(words) if self.decoder.lookup_word(w) is None)


def timed(fn: Callable, prompts: Sequence[Prompt]) -> Tuple[list, float]:
    """fn over every prompt; returns the outputs and the RTF (time / audio)."""
    outputs, spent = [], 0.0
    for prompt in prompts:
        start = time.perf_counter()
        outputs.append(fn(prompt))
        spent += time.perf_counter() - start
    return outputs, spent / sum(p.seconds for p in prompts)


# -- data and grammar --------------------------------------------------------------------------


def load_prompts() -> List[Prompt]:
    prompts = []
    for path, text in asterisk_set():
        samples, rate = audio.read_wav(path)  # float32 mono
        prompts.append(Prompt(Path(path).stem, text, samples, rate))
    return prompts


def spread(items: Sequence, limit: Optional[int]) -> list:
    """``limit`` items evenly spaced over the list (all of them without a limit)."""
    if not limit or limit >= len(items):
        return list(items)
    return [items[int(k * len(items) / limit)] for k in range(limit)]


def split_commands(prompts: Sequence[Prompt], missing: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(in-grammar commands, held-out commands), from the command-length prompts whose words
    PocketSphinx's dictionary has."""
    missing = set(missing)
    commands = sorted(
        {p.text for p in prompts if len(p.text.split()) <= COMMAND_MAX_WORDS and not missing & set(p.text.split())}
    )
    held_out = commands[HOLD_OUT_EVERY - 1 :: HOLD_OUT_EVERY]
    return [c for c in commands if c not in set(held_out)], held_out


def jsgf(commands: Sequence[str]) -> str:
    alternatives = "\n    | ".join(commands)
    return f"#JSGF V1.0;\ngrammar asterisk_prompts;\n\npublic <prompt> =\n      {alternatives}\n    ;\n"


# -- scoring -----------------------------------------------------------------------------------


def grammar_counts(outcomes: Sequence[GrammarOutcome], in_grammar: set, threshold: Optional[float] = None) -> Dict:
    """Counts for in-grammar prompts (correct / wrong command / rejected) and out-of-grammar
    prompts (rejected / false accept). With ``threshold``, our acceptance is recomputed from the
    confidence instead of the decoder's default."""
    counts = dict(correct=0, wrong=0, rejected=0, oog_rejected=0, oog_accepted=0)
    for o in outcomes:
        accepted = o.accepted if threshold is None else bool(o.best_text) and o.confidence >= threshold
        if o.prompt.text in in_grammar:
            key = "rejected" if not accepted else "correct" if o.best_text == o.prompt.text else "wrong"
        else:
            key = "oog_accepted" if accepted else "oog_rejected"
        counts[key] += 1
    return counts


def rerank_by_confidence(recognizer: Recognizer, commands: Sequence[str], prompts: Sequence[Prompt]) -> List[str]:
    """Analysis only: for each prompt, the command with the highest confidence (the per-token,
    length-normalised score) instead of the highest total score, which the decoder picks. Each
    command is aligned on its own with a one-sentence grammar."""
    tokens, blank = list(recognizer.manifest.tokens), recognizer.manifest.blank_id
    aligners = [decoding.CTCDecoder(tokens, blank_id=blank, grammar=jsgf([c]), grammar_threshold=0.0) for c in commands]
    picks = []
    for prompt in prompts:
        log_probs = recognizer.log_probs(audio.resample(prompt.samples, prompt.rate, recognizer.manifest.sample_rate))
        confidences = [a.decode(log_probs).confidence for a in aligners]
        picks.append(commands[int(np.argmax(confidences))])
    return picks


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


# -- main --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", help="our bundle (default: the embedded default model)")
    p.add_argument("--limit", type=int, help="decode only N prompts per task, evenly spread (a quick run)")
    p.add_argument("--tasks", default="grammar,open")
    p.add_argument("--write-grammar", help="also write the JSGF grammar here")
    p.add_argument("--json", help="write the numbers here")
    p.add_argument(
        "--rerank",
        action="store_true",
        help="analysis: also pick our command by confidence instead of total score (slow)",
    )
    p.add_argument("--show", type=int, default=0, help="print this many mistakes per system and task")
    args = p.parse_args(argv)
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        print("this benchmark compares with PocketSphinx: pip install pocketsphinx", file=sys.stderr)
        return 2
    tasks = args.tasks.split(",")
    load_before = load_average()
    prompts = load_prompts()
    ours = Ours(args.bundle)
    report: Dict = {"bundle": args.bundle or "embedded default", "limit": args.limit}
    print(
        f"{len(prompts)} prompts, {sum(q.seconds for q in prompts):.0f} s of 8 kHz audio; "
        f"our bundle: {report['bundle']}"
    )

    if "grammar" in tasks:
        missing = Sphinx().missing_words([w for q in prompts for w in q.text.split()])
        commands, held_out = split_commands(prompts, missing)
        in_grammar = set(commands)
        tested = spread([q for q in prompts if q.text in in_grammar or q.text in set(held_out)], args.limit)
        dropped = [
            q.name for q in prompts if len(q.text.split()) <= COMMAND_MAX_WORDS and set(missing) & set(q.text.split())
        ]
        print(
            f"\nWords of the transcripts missing from PocketSphinx's dictionary ({len(missing)}): {' '.join(missing)}"
        )
        print(f"Command-length prompts dropped from both sides for them: {len(dropped)} ({' '.join(dropped)})")
        n_in = sum(q.text in in_grammar for q in tested)
        print(
            f"Grammar: {len(commands)} commands (prompts of <= {COMMAND_MAX_WORDS} words), "
            f"{len(held_out)} more held out; {n_in} in-grammar and {len(tested) - n_in} out-of-grammar prompts decoded"
        )
        with tempfile.TemporaryDirectory() as tmp:
            grammar_file = str(Path(tmp) / "asterisk_prompts.gram")
            Path(grammar_file).write_text(jsgf(commands), encoding="utf-8")
            if args.write_grammar:
                Path(args.write_grammar).write_text(jsgf(commands), encoding="utf-8")
            sphinx = Sphinx(grammar_file)
            ours.command(tested[0], grammar_file)  # compiles and caches the grammar outside the timing
            results = {}
            for system in (ours, sphinx):
                outcomes, rtf = timed(lambda q, system=system: system.command(q, grammar_file), tested)
                results[system.name] = (outcomes, rtf)
        print("\n| grammar task | correct | wrong command | rejected | out-of-grammar false accepts | RTF |")
        print("|---|---:|---:|---:|---:|---:|")
        n_oog = len(tested) - n_in
        for name, (outcomes, rtf) in results.items():
            c = grammar_counts(outcomes, in_grammar)
            report[f"grammar/{name}"] = dict(c, rtf=rtf, in_grammar=n_in, out_of_grammar=n_oog)
            print(
                f"| {name} | {c['correct']}/{n_in} ({pct(c['correct'], n_in)}) | {c['wrong']} | {c['rejected']} "
                f"| {c['oog_accepted']}/{n_oog} ({pct(c['oog_accepted'], n_oog)}) | {rtf:.4f} |"
            )
        ours_rtf, sphinx_rtf = results["edge_speech"][1], results["PocketSphinx"][1]
        print(f"RTF ratio PocketSphinx / ours: {sphinx_rtf / ours_rtf:.1f}x")

        ours_outcomes = results["edge_speech"][0]
        print("\nOur rejection threshold, recomputed from the same results (the table above used the bundle's):\n")
        print("| threshold | correct | wrong command | rejected | out-of-grammar false accepts |")
        print("|---:|---:|---:|---:|---:|")
        for t in THRESHOLDS:
            c = grammar_counts(ours_outcomes, in_grammar, threshold=t)
            report[f"grammar/edge_speech/threshold={t}"] = c
            print(
                f"| {t:.1f} | {c['correct']} ({pct(c['correct'], n_in)}) | {c['wrong']} | {c['rejected']} | "
                f"{c['oog_accepted']} |"
            )
        groups = {"in-grammar, right sentence": [], "in-grammar, wrong sentence": [], "out-of-grammar": []}
        for o in ours_outcomes:
            key = (
                "out-of-grammar"
                if o.prompt.text not in in_grammar
                else "in-grammar, right sentence"
                if o.best_text == o.prompt.text
                else "in-grammar, wrong sentence"
            )
            groups[key].append(o.confidence)
        print("\nOur confidence (median, quartiles) by what the best in-grammar sentence was:")
        for key, values in groups.items():
            if values:
                q1, q2, q3 = np.percentile(values, [25, 50, 75])
                print(f"  {key:28s} n={len(values):3d}  median {q2:.2f}  quartiles {q1:.2f}-{q3:.2f}")
        short = {"correct": [], "wrong": []}
        for o in ours_outcomes:
            if o.prompt.text in in_grammar:
                short["correct" if o.best_text == o.prompt.text else "wrong"].append(len(o.best_text.split()))
        print(
            "Words in our best in-grammar sentence: right picks "
            f"{statistics.mean(short['correct'] or [0]):.1f} on average, wrong picks {statistics.mean(short['wrong'] or [0]):.1f} "
            f"(references: {statistics.mean([len(o.prompt.text.split()) for o in ours_outcomes if o.prompt.text in in_grammar]):.1f})"
        )
        if args.rerank:
            in_tested = [o.prompt for o in ours_outcomes if o.prompt.text in in_grammar]
            picks = rerank_by_confidence(ours.recognizer, commands, in_tested)
            right = sum(pick == q.text for pick, q in zip(picks, in_tested))
            report["grammar/edge_speech/rerank_by_confidence"] = right
            print(
                f"Analysis: picking our command by confidence instead of total score: "
                f"{right}/{n_in} ({pct(right, n_in)}) right (no rejection)"
            )
        for name, (outcomes, _) in results.items():
            mistakes = [o for o in outcomes if o.prompt.text in in_grammar and o.best_text != o.prompt.text]
            for o in mistakes[: args.show]:
                conf = "" if o.confidence is None else f" (confidence {o.confidence:.2f})"
                print(f"  {name} {o.prompt.name}: REF {o.prompt.text!r}  BEST {o.best_text!r}{conf}")

    if "open" in tasks:
        tested = spread(prompts, args.limit)
        sphinx = Sphinx()
        sphinx.transcribe(tested[0])  # first-call set-up outside the timing, as for ours
        ours.transcribe(tested[0])
        print(f"\nOpen vocabulary, {len(tested)} prompts ({sum(q.seconds for q in tested):.0f} s):\n")
        print("| system | CER | WER | RTF |")
        print("|---|---:|---:|---:|")
        rtfs = {}
        for system, how in ((ours, "greedy, no LM"), (sphinx, "en-us LM")):
            texts, rtf = timed(system.transcribe, tested)
            rates = error_rates((q.text, t) for q, t in zip(tested, texts))
            rtfs[system.name] = rtf
            report[f"open/{system.name}"] = dict(rates, rtf=rtf)
            print(f"| {system.name} ({how}) | {100 * rates['cer']:.2f}% | {100 * rates['wer']:.2f}% | {rtf:.4f} |")
            for q, t in list(zip(tested, texts))[: args.show]:
                print(f"  {q.name}: REF {q.text!r}  HYP {t!r}")
        print(f"RTF ratio PocketSphinx / ours: {rtfs['PocketSphinx'] / rtfs['edge_speech']:.1f}x")

    machine = {
        "cpu": f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores",
        "python": platform.python_version(),
        "versions": {d: version(d) for d in ("edge-speech", "pocketsphinx", "onnxruntime", "numpy", "soxr")},
        "load average": f"{load_before} before, {load_average()} after",
    }
    report["machine"] = machine
    print("\n" + "\n".join(f"- {k}: {v}" for k, v in machine.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
