"""Live voice commands with the embedded default model, replayed as fast as possible:

- latency: from the moment the endpoint's last chunk is fed to the intent event (compute only;
  the configured trailing silence comes on top), and how long after speech onset the first
  partial appears (in stream time);
- idle cost: CPU seconds per hour of silence and of steady noise (VAD gating: the model never runs);
- false accepts: synthesised non-command sentences through a 10-command grammar with a wake phrase;
- detection rate: the commands spoken by voices (espeak-ng) with noise;
- soak: resident memory before and after a long replayed stream.

Run from outside the checkout (espeak-ng and sox needed):

    cd /tmp && python /path/to/edge_speech/benchmarks/bench_listen.py --minutes 10
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_speech import Recognizer, audio, listen

RATE = 16000
COMMANDS = """intents:
  LightOn:
    - "turn on the {room} light"
  LightOff:
    - "turn off the {room} light"
  Timer:
    - "set a timer for {minutes} minutes"
  Weather:
    - "what is the weather today"
  Music:
    - "play some music"
  Stop:
    - "stop the music"
  Volume:
    - "turn the volume (up | down)"
  Time:
    - "what time is it"
  Door:
    - "lock the front door"
  Call:
    - "call {person}"
slots:
  room: [kitchen, bedroom, garage]
  minutes: [two, five, ten]
  person: [mom, dad, alice]
"""
SAYINGS = [("turn on the kitchen light", "LightOn"), ("turn off the bedroom light", "LightOff"),
           ("set a timer for five minutes", "Timer"), ("what is the weather today", "Weather"),
           ("play some music", "Music"), ("stop the music", "Stop"), ("turn the volume up", "Volume"),
           ("what time is it", "Time"), ("lock the front door", "Door"), ("call mom", "Call")]
CHATTER = ["the meeting moved to thursday afternoon", "she bought fresh bread at the market",
           "our train was delayed by twenty minutes", "the garden needs water after the heat",
           "he read the whole book in one night", "please send me the report by friday",
           "the children played outside until dark", "we should paint the fence next spring",
           "the museum opens at nine in the morning", "my brother fixed the old bicycle",
           "rain is expected over the weekend", "they talked about the football game",
           "the coffee machine in the office is broken", "a cat slept on the warm windowsill"]
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f2", "en-gb-x-rp+m3"]


def synth(text: str, voice: str, tmp: Path) -> np.ndarray:
    raw, wav = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    subprocess.run(["sox", "-V1", str(raw), "-r", str(RATE), "-b", "16", "-c", "1", str(wav)], check=True)
    return audio.read_wav(wav)[0]


def quiet(seconds: float, rng, level: float = 0.0005) -> np.ndarray:
    return (level * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


class TimedSource:
    """Chunks of an array; remembers when each was handed out (wall clock)."""

    def __init__(self, samples: np.ndarray, chunk_s: float = 0.02):
        self.samples, self.sample_rate, self.step = samples, RATE, int(chunk_s * RATE)
        self.handed_out = 0.0

    def __iter__(self):
        for i in range(0, len(self.samples), self.step):
            self.handed_out = time.perf_counter()
            yield self.samples[i:i + self.step]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of non-command speech for false accepts")
    parser.add_argument("--wake", default="hey computer")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rec = Recognizer.default(threads=1)
    tmp = Path(tempfile.mkdtemp())

    # Detection rate and latency: each command by each voice, with noise at ~20 dB SNR.
    session, truth = [quiet(1.0, rng)], []
    for voice in VOICES:
        for text, intent in SAYINGS:
            speech = synth(text, voice, tmp)
            power = float(np.mean(speech ** 2))
            speech = speech + (np.sqrt(power / 100) * rng.standard_normal(len(speech))).astype(np.float32)
            session += [speech, quiet(1.2, rng)]
            truth.append(intent)
    samples = np.concatenate(session)
    source = TimedSource(samples)
    latencies, detected, first_partials, utterance_start = [], [], [], None
    for event in listen.listen(rec, source, grammar=COMMANDS):
        now = time.perf_counter()
        if event.type == "partial" and utterance_start != event.start:
            utterance_start = event.start
            first_partials.append(event.end - event.start)
        if event.type == "final":
            latencies.append(now - source.handed_out)
            detected.append(event.intent)
    correct = sum(d == t for d, t in zip(detected, truth)) if len(detected) == len(truth) else None
    print(f"commands: {len(truth)} spoken ({len(VOICES)} espeak voices, noise ~20 dB SNR), {len(detected)} utterances found")
    if correct is not None:
        print(f"  detection rate (right intent): {correct / len(truth):.1%}")
    else:
        print(f"  utterance count mismatch; intents found: {sum(d is not None for d in detected)}")
    print(f"  end-of-command -> final/intent event compute latency: median {1e3 * np.median(latencies):.1f} ms, "
          f"max {1e3 * max(latencies):.1f} ms (plus the 0.6 s trailing-silence endpoint)")
    if first_partials:
        print(f"  first partial after speech onset (stream time, pre-roll included): median {np.median(first_partials):.2f} s")

    # Idle cost: one hour of quiet room noise and of steady fan-like noise.
    for name, level in (("silence", 0.0005), ("steady noise", 0.02)):
        hour = quiet(3600, rng, level)
        t0 = time.process_time()
        events = [e for e in listen.listen(rec, TimedSource(hour, 0.1)) if e.type != "partial"]
        cpu = time.process_time() - t0
        print(f"idle, 1 h of {name}: {cpu:.1f} CPU s = {cpu / 36:.2f}% of one core, {len(events)} utterances")

    # False accepts: non-command speech through the command grammar behind a wake phrase.
    chatter, seconds = [quiet(1.0, rng)], 0.0
    while seconds < args.minutes * 60:
        speech = synth(random.Random(len(chatter)).choice(CHATTER), random.Random(seconds).choice(VOICES), tmp)
        chatter += [speech, quiet(0.8, rng)]
        seconds += len(speech) / RATE + 0.8
    chatter = np.concatenate(chatter)
    before = rss_mb()
    events = [e for e in listen.listen(rec, TimedSource(chatter), grammar=COMMANDS, wake=args.wake)
              if e.type in ("wake", "intent")]
    hours = len(chatter) / RATE / 3600
    wakes = sum(e.type == "wake" for e in events)
    intents = sum(e.type == "intent" for e in events)
    print(f"false accepts over {hours * 60:.1f} min of non-command speech: {wakes} wakes "
          f"({wakes / hours:.1f}/h), {intents} intents ({intents / hours:.1f}/h)")

    # Soak: the same chatter looped to an hour, memory before and after.
    loops = max(1, int(3600 / (len(chatter) / RATE)))
    looped = np.tile(chatter, loops)
    mid = rss_mb()
    count = sum(1 for e in listen.listen(rec, TimedSource(looped, 0.1)) if e.type == "final")
    after = rss_mb()
    print(f"soak: {len(looped) / RATE / 3600:.2f} h replayed, {count} utterances, RSS {before:.1f} -> {mid:.1f} -> "
          f"{after:.1f} MB (growth over the soak {after - mid:+.1f} MB)")


if __name__ == "__main__":
    main()
