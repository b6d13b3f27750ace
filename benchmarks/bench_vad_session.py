"""A synthesised microphone session through the real ``listen`` path, the way real microphones
misbehave: voice commands (espeak-ng, a small command grammar) between stretches of

- **gated**: digital silence (exact zeros) with the command and a -54 dBFS noise tail after it,
  as a microphone with a noise gate or a USB device's power saving delivers;
- **low** / **high**: steady pink noise at about -62 / -46 dBFS;
- **step**: the noise floor stepping up by about 18 dB (a fan turns on) and later back down;
- **agc**: automatic gain control ramping the background up and down by about 15 dB;
- **music**: music-like tones (harmonic notes, chords, percussive clicks) between commands;
- **pink burst**: a second of loud pink noise between commands.

Counted: commands found with the right intent (and with the right slots), merges (one utterance
spanning two commands), false accepts (an intent event that overlaps no command: noise, music or
a step turned into a command), and the noise-only / music-only segments that were rejected.

    cd /tmp && python /path/to/benchmarks/bench_vad_session.py --minutes 20
    cd /tmp && python /path/to/benchmarks/bench_vad_session.py --soak-hours 1   # + false accepts/h, RSS drift

The session builder (:func:`build_session`) and the scoring (:func:`score`) are what
``tests/test_vad_sessions.py`` runs on a short session.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

RATE = 16000
ROOT = Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "recipes" / "default_model" / "examples" / "commands.yaml"
# espeak-ng voices of the kind the default model trained on (bench_listen's ESPEAK_TRAINING_LIKE)
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f2", "en-gb-x-gbclan+m3")
SCENES = ("gated", "low", "high", "step", "agc", "music", "pink burst")


# -- the grammar's sentences --------------------------------------------------------------------


def grammar_sentences(path: Path = GRAMMAR) -> List[Tuple[str, str, Dict[str, str]]]:
    """Every (text, intent, slots) of a small intent YAML (optional words in both forms,
    ``(a | b)`` alternatives, ``{slot}`` values), read with a tiny parser of that file's shape."""
    intents: Dict[str, List[str]] = {}
    slots: Dict[str, List[str]] = {}
    section, current = None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        if not line.startswith(" "):
            section = stripped.rstrip(":")
        elif section == "intents" and stripped.strip().endswith(":"):
            current = stripped.strip()[:-1]
            intents[current] = []
        elif section == "intents" and stripped.strip().startswith("-"):
            intents[current].append(stripped.strip()[1:].strip().strip('"'))
        elif section == "slots":
            name, values = stripped.strip().split(":", 1)
            slots[name.strip()] = [v.strip() for v in values.strip().strip("[]").split(",")]
    out = []
    for intent, patterns in intents.items():
        for pattern in patterns:
            for text in _expand(pattern):
                names = re.findall(r"\{(\w+)\}", text)
                for values in itertools.product(*(slots[n] for n in names)):
                    filled = text
                    for n, v in zip(names, values):
                        filled = filled.replace("{" + n + "}", v, 1)
                    out.append((" ".join(filled.split()), intent, dict(zip(names, values))))
    return out


def _expand(pattern: str) -> List[str]:
    m = re.search(r"\[([^\[\]]*)\]|\(([^()]*)\)", pattern)
    if m is None:
        return [pattern]
    options = [m.group(1), ""] if m.group(1) is not None else [o.strip() for o in m.group(2).split("|")]
    return [t for o in options for t in _expand(pattern[: m.start()] + o + pattern[m.end() :])]


# -- audio ------------------------------------------------------------------------------------


def synthesize(items: List[Tuple[str, str, int, int]], out: Path) -> List[np.ndarray]:
    """espeak-ng audio of each (text, voice, words per minute, pitch), at 16 kHz, trimmed to
    the spoken part (50 ms kept each side), float32."""
    import soxr

    from edge_speech import audio

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is needed for the session's commands: apt-get install espeak-ng")
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for text, voice, speed, pitch in items:
        path = out / f"c{abs(hash((text, voice, speed, pitch))) % 10**10}.wav"
        if not path.exists():
            subprocess.run(
                [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text],
                check=True,
                capture_output=True,
            )
        samples, rate = audio.read_wav(path)
        samples = soxr.resample(samples, rate, RATE, quality="HQ").astype(np.float32)
        loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
        margin = int(0.05 * RATE)
        clips.append(samples[max(0, loud[0] - margin) : loud[-1] + margin])
    return clips


def db(level_db: float) -> float:
    return float(10 ** (level_db / 20))


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n + 1))
    f = np.arange(len(spectrum))
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n + 1)[:n]
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def music(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Music-like audio of unit-ish RMS: notes of a pentatonic scale with harmonics and decay,
    sometimes chords, and percussive clicks on the beat."""
    n = int(seconds * RATE)
    out = np.zeros(n, dtype=np.float64)
    beat = rng.uniform(0.2, 0.45)
    t = 0.0
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 7, 9, 12, 14, 16]) / 12)
    while t < seconds:
        length = beat * rng.choice([1, 1, 2])
        start, stop = int(t * RATE), min(n, int((t + length) * RATE))
        tt = np.arange(stop - start) / RATE
        envelope = np.exp(-tt * rng.uniform(2, 6)) * np.minimum(1.0, tt / 0.01)
        for root in rng.choice(scale, size=rng.choice([1, 1, 3]), replace=False):
            for h in range(1, 5):
                out[start:stop] += envelope * np.sin(2 * np.pi * root * h * tt + rng.uniform(0, 6.3)) / h
        click = min(stop - start, int(0.03 * RATE))
        out[start : start + click] += 0.8 * rng.standard_normal(click) * np.exp(-np.arange(click) / (0.005 * RATE))
        t += length
    return (out / (np.sqrt(np.mean(out**2)) + 1e-12)).astype(np.float32)


@dataclasses.dataclass
class Session:
    samples: np.ndarray
    commands: List[Tuple[float, float, str, dict, str]]  # start, end, intent, slots, text
    segments: List[Tuple[float, float, str]]  # noise-only / music-only stretches: start, end, kind
    scenes: List[Tuple[float, float, str]]  # which scene each stretch belongs to


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.parts, self.t = rng, [], 0.0
        self.commands, self.segments, self.scenes = [], [], []

    def add(self, x: np.ndarray) -> float:
        start = self.t
        self.parts.append(np.asarray(x, dtype=np.float32))
        self.t += len(x) / RATE
        return start

    def noise(self, seconds: float, level_db: float, end_db: Optional[float] = None) -> np.ndarray:
        n = int(seconds * RATE)
        gain = db(level_db) if end_db is None else np.float32(10 ** (np.linspace(level_db, end_db, n) / 20))
        return pink(n, self.rng) * gain

    def command(self, clip: np.ndarray, meta, noise_db: Optional[float]) -> None:
        text, intent, slots = meta
        speech = clip / (np.sqrt(np.mean(clip**2)) + 1e-12) * db(self.rng.uniform(-28, -20))
        if noise_db is not None:
            speech = speech + pink(len(clip), self.rng) * db(noise_db)
        start = self.add(speech)
        self.commands.append((start, self.t, intent, slots, text))

    def nonspeech(self, x: np.ndarray, kind: str) -> None:
        start = self.add(x)
        self.segments.append((start, self.t, kind))


def build_session(clips: List[np.ndarray], metas: List[Tuple[str, str, dict]], seed: int = 0) -> Session:
    """The commands (audio and (text, intent, slots)) in order, two per scene, scenes cycling
    through :data:`SCENES`."""
    b = _Builder(np.random.default_rng(seed))
    u = b.rng.uniform
    pairs = list(zip(clips, metas))
    scenes = itertools.cycle(SCENES)
    for k in range(0, len(pairs), 2):
        scene, begin = next(scenes), b.t
        group = pairs[k : k + 2]
        if scene == "gated":  # digital silence and a -54 dBFS noise tail alternating around the commands
            for clip, meta in group:
                for _ in range(b.rng.integers(1, 4)):
                    b.add(np.zeros(int(u(0.1, 0.6) * RATE), np.float32))
                    b.add(b.noise(u(0.3, 1.2), -54))
                b.command(clip, meta, -54)
                b.add(b.noise(u(0.5, 1.5), -54))
            b.add(np.zeros(int(u(0.5, 1.5) * RATE), np.float32))
        elif scene in ("low", "high"):
            level = -62 if scene == "low" else -46
            for clip, meta in group:
                b.add(b.noise(u(1.0, 2.5), level + u(-2, 2)))
                b.command(clip, meta, level)
            b.add(b.noise(u(1.0, 2.0), level))
        elif scene == "step":  # quiet, step up (a noise-only stretch), command, step down, command
            low, high = -62 + u(-2, 2), -44 + u(-2, 2)
            b.add(b.noise(u(1.0, 2.0), low))
            b.nonspeech(b.noise(u(2.5, 3.5), high), "noise step up")
            b.command(group[0][0], group[0][1], high)
            b.add(b.noise(u(1.0, 2.0), high))
            b.nonspeech(b.noise(u(1.5, 2.5), low), "noise step down")
            for clip, meta in group[1:]:
                b.command(clip, meta, low)
            b.add(b.noise(u(1.0, 2.0), low))
        elif scene == "agc":  # the gain ramps the background up and down around the commands
            low, high = -64 + u(-2, 2), -49 + u(-2, 2)
            b.add(b.noise(u(2.0, 3.0), low, high))
            b.command(group[0][0], group[0][1], high)
            b.add(b.noise(u(2.0, 3.0), high, low))
            for clip, meta in group[1:]:
                b.command(clip, meta, low)
            b.add(b.noise(u(1.0, 2.0), low))
        elif scene == "music":
            background = -62
            b.add(b.noise(u(0.8, 1.5), background))
            b.command(group[0][0], group[0][1], background)
            b.add(b.noise(u(1.0, 1.5), background))
            seconds = u(2.0, 4.0)
            b.nonspeech(
                music(seconds, b.rng) * db(u(-34, -26)) + b.noise(seconds, background)[: int(seconds * RATE)], "music"
            )
            b.add(b.noise(u(1.0, 1.5), background))
            for clip, meta in group[1:]:
                b.command(clip, meta, background)
            b.add(b.noise(u(1.0, 1.5), background))
        else:  # pink burst: a second of loud pink noise between the commands
            background = -62
            b.add(b.noise(u(0.8, 1.5), background))
            b.command(group[0][0], group[0][1], background)
            b.add(b.noise(u(1.0, 1.5), background))
            b.nonspeech(b.noise(u(0.8, 1.2), u(-36, -28)), "pink burst")
            b.add(b.noise(u(1.0, 1.5), background))
            for clip, meta in group[1:]:
                b.command(clip, meta, background)
            b.add(b.noise(u(1.0, 1.5), background))
        b.scenes.append((begin, b.t, scene))
    samples = np.concatenate(b.parts)
    # a 16-bit microphone: the gated stretches stay exact zeros
    samples = np.round(np.clip(samples, -1, 1) * 32767).astype(np.float32) / 32768
    return Session(samples, b.commands, b.segments, b.scenes)


def session_commands(count: int, seed: int = 0, voices=VOICES) -> List[Tuple[Tuple[str, str, int, int], Tuple]]:
    """``count`` random (espeak item, (text, intent, slots)) from the command grammar."""
    rng = random.Random(seed)
    sentences = grammar_sentences()
    out = []
    for i in range(count):
        text, intent, slots = rng.choice(sentences)
        out.append(((text, voices[i % len(voices)], rng.randint(140, 190), rng.randint(35, 65)), (text, intent, slots)))
    return out


def make_session(count: int, seed: int = 0, cache: Optional[Path] = None) -> Session:
    chosen = session_commands(count, seed)
    clips = synthesize([c[0] for c in chosen], cache or Path(tempfile.mkdtemp()))
    return build_session(clips, [c[1] for c in chosen], seed)


# -- running and scoring ----------------------------------------------------------------------


def chunks(samples: np.ndarray, chunk_s: float = 0.02) -> Iterator[np.ndarray]:
    step = int(chunk_s * RATE)
    for i in range(0, len(samples), step):
        yield samples[i : i + step]


def run_session(rec, session: Session, vad: str = "energy", grammar=GRAMMAR, **options) -> list:
    """The final and intent events of ``listen`` over the session."""
    from edge_speech import listen

    source = listen.ArraySource(chunks(session.samples), RATE)
    return [e for e in listen.listen(rec, source, grammar=grammar, vad=vad, **options) if e.type in ("final", "intent")]


@dataclasses.dataclass
class Score:
    commands: int
    intent_right: int
    slots_right: int
    merges: int
    false_accepts: List[object]
    segments: int
    segments_rejected: int
    utterances: int
    spurious: int  # utterances overlapping no command (rejected or not)
    glued: int  # command utterances that began or ended more than a second away from the command
    misses: List[str]
    by_scene: Dict[str, Tuple[int, int]]

    def line(self) -> str:
        return (
            f"{self.intent_right}/{self.commands} commands with the right intent "
            f"({self.intent_right / max(1, self.commands):.1%}), {self.slots_right} with the right slots too, "
            f"{self.merges} merges, {len(self.false_accepts)} false accepts, "
            f"{self.segments_rejected}/{self.segments} noise/music segments rejected, {self.utterances} utterances "
            f"({self.spurious} outside commands, {self.glued} with more than 1 s of non-speech glued on)"
        )


def score(session: Session, events: list) -> Score:
    finals = [e for e in events if e.type == "final"]
    intents = [e for e in events if e.type == "intent"]

    def overlaps(e, a, b):
        return e.start < b and e.end > a

    merges = sum(1 for e in finals if sum(overlaps(e, a, b) for a, b, *_ in session.commands) >= 2)
    right = slots_right = 0
    misses, by_scene = [], {}
    for a, b, intent, slots, text in session.commands:
        scene = next((s for x, y, s in session.scenes if x <= a < y), "?")
        mine = [e for e in finals if overlaps(e, a, b)]
        hit = (
            len(mine) == 1
            and mine[0].intent == intent
            and sum(overlaps(mine[0], x, y) for x, y, *_ in session.commands) == 1
        )
        right += hit
        slots_right += hit and (mine[0].slots or {}) == slots
        done, total = by_scene.get(scene, (0, 0))
        by_scene[scene] = (done + hit, total + 1)
        if not hit:
            heard = "; ".join(f"{e.text!r}->{e.intent} ({e.confidence:.2f}) {e.start:.2f}-{e.end:.2f}" for e in mine)
            misses.append(f"{scene} {a:.2f}-{b:.2f} {text!r}: {len(mine)} utterances: {heard or 'nothing'}")
    false_accepts = [e for e in intents if not any(overlaps(e, a, b) for a, b, *_ in session.commands)]
    rejected = sum(
        1
        for a, b, _ in session.segments
        if not any(overlaps(e, a, b) and not any(overlaps(e, x, y) for x, y, *_ in session.commands) for e in intents)
    )
    spurious = sum(1 for e in finals if not any(overlaps(e, a, b) for a, b, *_ in session.commands))
    glued = sum(
        1
        for e in finals
        for a, b, *_ in session.commands
        if overlaps(e, a, b) and (e.start < a - 1.0 or e.end > b + 1.0)
    )
    return Score(
        len(session.commands),
        right,
        slots_right,
        merges,
        false_accepts,
        len(session.segments),
        rejected,
        len(finals),
        spurious,
        glued,
        misses,
        by_scene,
    )


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the scored session")
    parser.add_argument(
        "--soak-hours",
        type=float,
        default=0.0,
        help="then replay the session (fresh noise each pass) for this long: false accepts per "
        "hour, commands found and RSS drift",
    )
    parser.add_argument("--vad", default="energy", choices=["energy", "silero"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="list every missed command and false accept")
    args = parser.parse_args()
    from edge_speech import Recognizer, __version__

    rec = Recognizer.default(threads=1)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
        f"edge_speech {__version__}, model {rec.manifest.name if hasattr(rec.manifest, 'name') else 'default'}, "
        f"grammar {GRAMMAR.name}, {args.vad} VAD"
    )
    cache = Path(tempfile.mkdtemp())
    per_minute = 12.0  # commands per minute of this session mix, measured (310 in 25.7 min)
    count = max(2, int(args.minutes * per_minute) // 2 * 2)
    t0 = time.perf_counter()
    session = make_session(count, args.seed, cache)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    events = run_session(rec, session, args.vad)
    ran = time.perf_counter() - t0
    s = score(session, events)
    minutes = len(session.samples) / RATE / 60
    print(
        f"session: {minutes:.1f} min, {s.commands} commands, {s.segments} noise/music segments "
        f"(built in {built:.0f} s, listened in {ran:.0f} s)"
    )
    print("  " + s.line())
    print("  per scene: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(s.by_scene.items())))
    if args.verbose:
        for m in s.misses:
            print("    miss: " + m)
        for e in s.false_accepts:
            print(f"    false accept: {e.text!r} -> {e.intent} ({e.confidence:.2f}) at {e.start:.2f}-{e.end:.2f}")
    if args.soak_hours > 0:
        before = rss_mb()
        hours, found, total, false, merges, passes = 0.0, 0, 0, 0, 0, 0
        mid = None
        while hours < args.soak_hours:
            passes += 1
            again = build_session(*_clips_and_metas(session, count, args.seed, cache), seed=args.seed + passes)
            r = score(again, run_session(rec, again, args.vad))
            hours += len(again.samples) / RATE / 3600
            found, total, false, merges = (
                found + r.intent_right,
                total + r.commands,
                false + len(r.false_accepts),
                merges + r.merges,
            )
            if mid is None:
                mid = rss_mb()  # after the first pass: caches and arenas warmed up
        after = rss_mb()
        print(
            f"soak: {hours:.2f} h in {passes} passes, {found}/{total} commands ({found / total:.1%}), "
            f"{merges} merges, {false} false accepts ({false / hours:.2f}/h), RSS {before:.1f} -> {mid:.1f} -> "
            f"{after:.1f} MB (drift after the first pass {after - mid:+.1f} MB)"
        )


def _clips_and_metas(session: Session, count: int, seed: int, cache: Path):
    chosen = session_commands(count, seed)
    return synthesize([c[0] for c in chosen], cache), [c[1] for c in chosen]


if __name__ == "__main__":
    sys.exit(main())
