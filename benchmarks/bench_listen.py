"""Live voice commands with the embedded default model, replayed as fast as possible:

- latency: from the moment the endpoint's last chunk is fed to the intent event (compute only;
  the configured trailing silence comes on top), and how long after speech onset the first
  partial appears (in stream time);
- idle cost: CPU seconds per hour of silence and of steady noise, per VAD (VAD gating: the model
  never runs);
- detection rate: 10 commands with random slot values spoken by several voices, renditions with
  random speed/pitch/level, white noise at each SNR; each spoken command is matched to the
  utterances that overlap it in time, and each miss is classified (endpointing, threshold, model);
- false accepts: ``--speech-hours`` of synthesised non-command sentences (some with command words
  in them) through the 10-command grammar behind a wake phrase, and through the grammar alone;
- soak: resident memory before and after an hour-long replayed stream.

``--held-out`` speaks with the voices the default model never trained on (espeak-ng
en-gb-x-rp+f3, flite slt, festival cmu_us_slt_arctic_hts: the recipe's own held-out split);
otherwise with espeak-ng voices of the kind it trained on. Synthesis goes through the recipe's
``synth_job`` (random rate, pitch and level per rendition).

``--realtime`` paces the command replay like a microphone, so latencies and first partials are
wall-clock times with the computation included.

Run from the repository root (espeak-ng and sox needed; flite and festival for --held-out):

    python -m benchmarks.bench_listen --held-out --speech-hours 1 --vads energy silero
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_speech import Recognizer, audio, listen
from recipes.default_model import synthesize  # the default model's recipe: its voices and its synthesis

RATE = 16000
INTENT_PHRASES = {
    "LightOn": "turn on the {room} light",
    "LightOff": "turn off the {room} light",
    "Timer": "set a timer for {minutes} minutes",
    "Weather": "what is the weather today",
    "Music": "play some music",
    "Stop": "stop the music",
    "Volume": "turn the volume {direction}",
    "Time": "what time is it",
    "Door": "lock the front door",
    "Call": "call {person}",
}
SLOTS = {
    "room": ["kitchen", "bedroom", "garage"],
    "minutes": ["two", "five", "ten"],
    "person": ["mom", "dad", "alice"],
    "direction": ["up", "down"],
}
COMMANDS = (
    "intents:\n"
    + "".join(f'  {name}:\n    - "{phrase}"\n' for name, phrase in INTENT_PHRASES.items())
    + "slots:\n"
    + "".join(f"  {slot}: [{', '.join(values)}]\n" for slot, values in SLOTS.items())
)
# Non-command sentences: ordinary talk, and some that use the commands' words ("hard" negatives).
SUBJECTS = [
    "my sister",
    "the old farmer",
    "our neighbour",
    "the teacher",
    "a young doctor",
    "the bus driver",
    "his cousin",
    "the manager",
    "everyone at the party",
    "the little boy",
    "my grandmother",
    "the pilot",
    "a tired student",
    "the baker",
    "her best friend",
    "the new engineer",
]
PREDICATES = [
    "painted the fence",
    "forgot the keys at home",
    "read a long letter",
    "cooked dinner for the family",
    "walked to the station",
    "talked about the football game",
    "bought fresh bread at the market",
    "fixed the old bicycle",
    "planted tomatoes in the garden",
    "watched a film about whales",
    "wrote a report about the budget",
    "missed the last train",
    "found a wallet on the street",
    "learned to play the piano",
    "visited the museum",
    "cleaned the windows",
    "sold the blue car",
    "ordered a large pizza",
    "answered every question",
    "carried the boxes upstairs",
]
TAILS = [
    "",
    "yesterday",
    "on sunday morning",
    "before the rain started",
    "after work",
    "last summer",
    "with a big smile",
    "for the second time",
    "in the middle of the night",
    "without saying a word",
]
NEAR_MISSES = [
    "the kitchen light was far too bright for the baby",
    "we talked about the weather all day long",
    "dad said he would call the plumber tomorrow",
    "turn the page and keep reading the story",
    "the music stopped when the power went out",
    "what a lovely time we had at the lake",
    "she locked her bike at the front of the school",
    "nobody knew what time the shop would open",
    "ten minutes later the garage door was still open",
    "mom played some old records in the bedroom",
    "the timer on the oven was broken again",
    "alice turned off the radio and went to sleep",
]
ESPEAK_TRAINING_LIKE = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f2", "en-gb-x-gbclan+m3"]


def voices(held_out: bool) -> list:
    """(engine, voice) pairs: the recipe's held-out voices, or espeak-ng voices it trained on."""
    if held_out:
        return (
            [("espeak", f"{synthesize.ESPEAK_TEST[0]}+{synthesize.ESPEAK_TEST[1]}")]
            + [("flite", v) for v in synthesize.FLITE_TEST]
            + [("festival", v) for v in synthesize.FESTIVAL_TEST]
        )
    return [("espeak", v) for v in ESPEAK_TRAINING_LIKE]


def require_engines(pairs: list) -> None:
    """Fails with what to install when a TTS engine or voice is missing."""
    engines = {engine for engine, _ in pairs}
    tools = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}
    for tool in ["sox"] + [tools[e] for e in sorted(engines)]:
        if shutil.which(tool) is None:
            sys.exit(f"bench_listen: {tool} is needed for these voices: apt-get install {tool}")
    for engine, voice in pairs:
        if engine == "flite" and voice not in subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout:
            sys.exit(f"bench_listen: flite has no voice {voice!r} (flite -lv lists its voices)")
        if engine == "festival":
            with tempfile.NamedTemporaryFile("w", suffix=".scm") as script:
                script.write(f"({voice})\n")
                script.flush()
                if subprocess.run(["festival", "-b", script.name], capture_output=True).returncode != 0:
                    sys.exit(
                        f"bench_listen: festival has no voice {voice} "
                        "(apt-get install festvox-us-slt-hts for voice_cmu_us_slt_arctic_hts)"
                    )


def synth_all(items: list, out: Path, processes: int = 2) -> list:
    """Audio of each (engine, voice, text, seed), through the recipe's synthesis, in order."""
    (out / "wav" / "bench").mkdir(parents=True, exist_ok=True)
    planned = [(f"u{i:06d}", engine, voice, text, seed) for i, (engine, voice, text, seed) in enumerate(items)]
    by_engine = {}
    for item in planned:
        by_engine.setdefault(item[1], []).append(item)
    jobs = [
        ("bench", group[i : i + 40], str(out), False) for group in by_engine.values() for i in range(0, len(group), 40)
    ]
    with multiprocessing.Pool(processes) as pool:
        rows = {row["id"]: row["path"] for part in pool.imap_unordered(synthesize.synth_job, jobs) for row in part}
    missing = [uid for uid, *_ in planned if uid not in rows]
    if missing:
        sys.exit(f"bench_listen: {len(missing)} utterances were not synthesised (first: {missing[0]})")
    return [audio.read_wav(rows[uid])[0] for uid, *_ in planned]


def quiet(seconds: float, rng, level: float = 0.0005) -> np.ndarray:
    return (level * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def with_noise(speech: np.ndarray, snr_db: float, rng) -> np.ndarray:
    power = float(np.mean(speech**2))
    return speech + (np.sqrt(power / 10 ** (snr_db / 10)) * rng.standard_normal(len(speech))).astype(np.float32)


class TimedSource:
    """Chunks of an array; remembers when each was handed out (wall clock). With ``realtime``
    each chunk is handed out when its last sample would have been captured, as a microphone does."""

    def __init__(self, samples: np.ndarray, chunk_s: float = 0.02, realtime: bool = False):
        self.samples, self.sample_rate, self.step = samples, RATE, int(chunk_s * RATE)
        self.realtime, self.handed_out, self.started = realtime, 0.0, 0.0

    def __iter__(self):
        self.started = time.perf_counter()
        for i in range(0, len(self.samples), self.step):
            chunk = self.samples[i : i + self.step]
            if self.realtime:
                time.sleep(max(0.0, self.started + (i + len(chunk)) / RATE - time.perf_counter()))
            self.handed_out = time.perf_counter()
            yield chunk


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spoken_commands(pairs: list, renditions: int, rng: random.Random) -> list:
    """(engine, voice, text, seed, intent, slots): each command ``renditions`` times per voice,
    with random slot values."""
    out = []
    for engine, voice in pairs:
        for intent, phrase in INTENT_PHRASES.items():
            for _ in range(renditions):
                slots = {name: rng.choice(SLOTS[name]) for name in SLOTS if "{" + name + "}" in phrase}
                out.append((engine, voice, phrase.format(**slots), rng.randrange(2**31), intent, slots))
    return out


def chatter_text(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(NEAR_MISSES)
    return " ".join(filter(None, [rng.choice(SUBJECTS), rng.choice(PREDICATES), rng.choice(TAILS)]))


def non_command_speech(pairs: list, seconds: float, rng: random.Random, out: Path, pause_s: float = 0.8):
    """Sentences (and their texts) whose audio plus pauses lasts at least ``seconds``."""
    speech, texts, estimate = [], [], 3.0  # seconds per sentence, refined after each batch
    while sum(len(x) / RATE + pause_s for x in speech) < seconds:
        missing = seconds - sum(len(x) / RATE + pause_s for x in speech)
        batch = [
            (*rng.choice(pairs), chatter_text(rng), rng.randrange(2**31))
            for _ in range(int(np.ceil(missing / (estimate + pause_s))))
        ]
        audio_batch = synth_all(batch, out / f"batch{len(speech)}")
        estimate = float(np.mean([len(x) / RATE for x in audio_batch]))
        speech += audio_batch
        texts += [b[2] for b in batch]
    return speech, texts


def speech_onset(clip: np.ndarray, frame_s: float = 0.01) -> float:
    """Seconds before the first 10 ms frame within 30 dB of the clip's loudest frame."""
    n = int(RATE * frame_s)
    frames = clip[: len(clip) // n * n].reshape(-1, n)
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)
    return float(np.argmax(energy >= energy.max() * 1e-3)) * frame_s


def measure_detection(
    rec, clips: list, commands: list, snr_db: float, vad: str, threshold: float, rng, realtime: bool = False
) -> dict:
    """Replays the noisy commands with pauses; returns per-command outcomes and latencies."""
    session, spans, t = [quiet(1.0, rng)], [], 1.0
    noisy = [with_noise(clip, snr_db, rng) for clip in clips]
    for clip in noisy:
        spans.append((t, t + len(clip) / RATE))
        session += [clip, quiet(1.2, rng)]
        t += len(clip) / RATE + 1.2
    source = TimedSource(np.concatenate(session), realtime=realtime)
    finals, latencies, first_partials, utterance_start = [], [], [], None
    for event in listen.listen(rec, source, grammar=COMMANDS, grammar_threshold=threshold, vad=vad):
        now = time.perf_counter()
        if event.type == "partial" and utterance_start != event.start:
            utterance_start = event.start
            # in real time, when it was shown (compute included), on the stream's clock
            first_partials.append(now - source.started if realtime else event.end)
        if event.type == "final":
            latencies.append(now - source.handed_out)
            finals.append(event)
    outcomes = []
    for (start, end), clip, (engine, voice, text, _, intent, slots) in zip(spans, noisy, commands):
        overlapping = [e for e in finals if e.start < end and e.end > start]
        if len(overlapping) == 1 and (overlapping[0].intent, overlapping[0].slots or {}) == (intent, slots):
            outcome = "right"
        elif len(overlapping) == 1 and overlapping[0].intent == intent:
            outcome = "wrong slots"
        elif len(overlapping) != 1:
            outcome = f"endpointing ({len(overlapping)} utterances)"
        else:  # one utterance, not this command: would the grammar have found it without a threshold?
            best = rec.transcribe((clip, RATE), grammar=COMMANDS, grammar_threshold=0.0)
            if best.intent == intent and (best.slots or {}) == slots:
                outcome = f"threshold (confidence {best.confidence:.2f})"
            else:
                outcome = "model (best grammar path: " + (best.text or "none") + ")"
        confidence = overlapping[0].confidence if outcome == "right" else None
        outcomes.append((f"{engine}:{voice}", text, outcome, [e.text for e in overlapping], confidence))
    spurious = sum(1 for e in finals if not any(e.start < b and e.end > a for a, b in spans))
    # first partial of each command, from the speech onset in its clean clip
    firsts = [min((p for p in first_partials if a < p <= b), default=None) for a, b in spans]
    first_partials = [p - a - speech_onset(clip) for p, (a, _), clip in zip(firsts, spans, clips) if p is not None]
    return {
        "outcomes": outcomes,
        "latencies": latencies,
        "first_partials": first_partials,
        "spurious": spurious,
        "without_partial": sum(p is None for p in firsts),
    }


def report_detection(result: dict, snr_db: float, vad: str, verbose: bool) -> None:
    outcomes = result["outcomes"]
    right = sum(o[2] == "right" for o in outcomes)
    intent_right = sum(o[2] in ("right", "wrong slots") for o in outcomes)
    noise = "no noise" if np.isinf(snr_db) else f"white noise {snr_db:g} dB SNR"
    print(
        f"detection, {len(outcomes)} commands, {noise}, {vad} VAD: "
        f"intent and slots right {right}/{len(outcomes)} ({right / len(outcomes):.1%}), "
        f"intent right {intent_right / len(outcomes):.1%}, {result['spurious']} utterances outside commands"
    )
    for voice in sorted({o[0] for o in outcomes}):
        mine = [o for o in outcomes if o[0] == voice]
        print(f"  {voice}: {sum(o[2] == 'right' for o in mine)}/{len(mine)}")
    kinds = {}
    for o in outcomes:
        if o[2] != "right":
            kind = o[2].split(" (")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        print(
            "  misses by cause: "
            + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
            + f"; right if no threshold rejected anything: {(right + kinds.get('threshold', 0)) / len(outcomes):.1%}"
        )
    for voice, text, outcome, heard, _ in outcomes:
        if outcome != "right" and verbose:
            print(f"    {voice} {text!r}: {outcome}; heard {heard}")
    lat = result["latencies"]
    print(
        f"  end-of-command -> final/intent event compute latency: median {1e3 * np.median(lat):.1f} ms, "
        f"max {1e3 * max(lat):.1f} ms (plus the 0.6 s trailing-silence endpoint)"
    )
    if result["first_partials"]:
        fp = result["first_partials"]
        print(
            f"  first partial after speech onset (stream time, or wall clock in real time): median {np.median(fp):.2f} s, "
            f"90th percentile {np.percentile(fp, 90):.2f} s; {result['without_partial']} commands had none"
        )


def threshold_sweep(rec, clips, commands, pairs, args, rng, text_rng, tmp) -> None:
    """Detection per SNR and false accepts per hour (grammar alone) at each threshold in args.sweep."""
    rows = {}
    for snr_db in args.snr:
        result = measure_detection(rec, clips, commands, snr_db, args.vads[0], 0.0, rng)
        rows[snr_db] = [o[4] for o in result["outcomes"]]  # confidence of right detections, else None
    speech, _ = non_command_speech(pairs, args.speech_hours * 3600, text_rng, tmp / "chatter")
    chatter = np.concatenate([quiet(1.0, rng)] + [part for x in speech for part in (x, quiet(0.8, rng))])
    hours = len(chatter) / RATE / 3600
    accepted = [
        e.confidence
        for e in listen.listen(rec, TimedSource(chatter), grammar=COMMANDS, vad=args.vads[0], grammar_threshold=0.0)
        if e.type == "intent"
    ]
    snrs = ["no noise" if np.isinf(x) else f"{x:g} dB" for x in args.snr]
    print(
        f"threshold sweep, {len(clips)} commands per noise level, {hours:.2f} h of non-command speech, "
        f"{args.vads[0]} VAD"
    )
    print("| threshold | " + " | ".join(f"right, {s}" for s in snrs) + " | false accepts / h (grammar alone) |")
    print("|---" * (len(snrs) + 2) + "|")
    for t in args.sweep:
        cells = [f"{np.mean([c is not None and c >= t for c in rows[x]]):.1%}" for x in args.snr]
        print(f"| {t:g} | " + " | ".join(cells) + f" | {sum(c >= t for c in accepted) / hours:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", action="store_true", help="voices the default model never trained on")
    parser.add_argument("--speech-hours", type=float, default=1.0, help="hours of non-command speech for false accepts")
    parser.add_argument("--idle-hours", type=float, default=1.0, help="hours of silence and of noise for idle cost")
    parser.add_argument("--renditions", type=int, default=3, help="renditions of each command per voice")
    parser.add_argument(
        "--snr", type=float, nargs="+", default=[float("inf"), 20.0, 10.0], help="noise levels (dB SNR; inf for none)"
    )
    parser.add_argument("--vads", nargs="+", default=["energy"], choices=["energy", "silero"])
    parser.add_argument("--wake", default="hey computer")
    parser.add_argument(
        "--grammar-threshold", type=float, help="command rejection threshold (default: the bundle's calibrated one)"
    )
    parser.add_argument("--verbose", action="store_true", help="list every missed command")
    parser.add_argument(
        "--realtime", action="store_true", help="replay the commands at the pace of a microphone (detection rows only)"
    )
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="+",
        help="only the threshold sweep: detection and grammar-alone false accepts per threshold, "
        "from one run with no threshold (a command counts if its confidence reaches it)",
    )
    args = parser.parse_args()
    pairs = voices(args.held_out)
    require_engines(pairs)
    rng, text_rng = np.random.default_rng(0), random.Random(0)
    rec = Recognizer.default(threads=1)
    tmp = Path(tempfile.mkdtemp())
    print(f"voices: {', '.join(f'{e}:{v}' for e, v in pairs)} ({'held out' if args.held_out else 'training-like'})")

    commands = spoken_commands(pairs, args.renditions, text_rng)
    clips = synth_all([c[:4] for c in commands], tmp / "commands")
    if args.sweep:
        threshold_sweep(rec, clips, commands, pairs, args, rng, text_rng, tmp)
        return
    for vad in args.vads:
        for snr_db in args.snr:
            result = measure_detection(rec, clips, commands, snr_db, vad, args.grammar_threshold, rng, args.realtime)
            report_detection(result, snr_db, vad, args.verbose)

    # Idle cost: quiet room noise and steady fan-like noise.
    for vad in args.vads:
        for name, level in (("silence", 0.0005), ("steady noise", 0.02)):
            idle = quiet(3600 * args.idle_hours, rng, level)
            t0 = time.process_time()
            events = [e for e in listen.listen(rec, TimedSource(idle, 0.1), vad=vad) if e.type != "partial"]
            cpu = time.process_time() - t0
            print(
                f"idle, {args.idle_hours:g} h of {name}, {vad} VAD: {cpu:.1f} CPU s = "
                f"{100 * cpu / (3600 * args.idle_hours):.2f}% of one core, {len(events)} utterances"
            )

    # False accepts: non-command speech through the command grammar, behind a wake phrase and alone.
    speech, texts = non_command_speech(pairs, args.speech_hours * 3600, text_rng, tmp / "chatter")
    chatter = np.concatenate([quiet(1.0, rng)] + [part for x in speech for part in (x, quiet(0.8, rng))])
    hours = len(chatter) / RATE / 3600
    print(f"non-command speech: {len(speech)} sentences ({len(set(texts))} distinct), {hours:.2f} h with pauses")
    before = rss_mb()
    for vad in args.vads:
        events = [
            e
            for e in listen.listen(
                rec,
                TimedSource(chatter),
                grammar=COMMANDS,
                wake=args.wake,
                vad=vad,
                grammar_threshold=args.grammar_threshold,
            )
            if e.type in ("wake", "intent")
        ]
        wakes = [e for e in events if e.type == "wake"]
        intents = [e for e in events if e.type == "intent"]
        print(
            f"false accepts, wake phrase {args.wake!r} + grammar, {vad} VAD: {len(wakes)} wakes "
            f"({len(wakes) / hours:.2f}/h), {len(intents)} intents ({len(intents) / hours:.2f}/h)"
        )
        alone = [
            e
            for e in listen.listen(
                rec, TimedSource(chatter), grammar=COMMANDS, vad=vad, grammar_threshold=args.grammar_threshold
            )
            if e.type == "intent"
        ]
        print(
            f"false accepts, grammar alone (no wake phrase), {vad} VAD: {len(alone)} intents "
            f"({len(alone) / hours:.2f}/h)" + ("".join(f"\n    {e.text!r} -> {e.intent}" for e in alone[:10]))
        )

    # Soak: the chatter looped to at least an hour, memory before and after.
    looped = np.tile(chatter, max(1, int(np.ceil(3600 / (len(chatter) / RATE)))))
    mid = rss_mb()
    count = sum(1 for e in listen.listen(rec, TimedSource(looped, 0.1)) if e.type == "final")
    after = rss_mb()
    print(
        f"soak: {len(looped) / RATE / 3600:.2f} h replayed, {count} utterances, RSS {before:.1f} -> {mid:.1f} -> "
        f"{after:.1f} MB (growth over the soak {after - mid:+.1f} MB)"
    )


if __name__ == "__main__":
    main()
