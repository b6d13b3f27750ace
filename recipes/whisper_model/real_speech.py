"""Real, transcribed English speech from installed Debian packages, as training and dev data.

Turns the voice files of four Debian main packages into 16 kHz mono int16 WAVs and two JSONL
manifests, OUT/train.jsonl and OUT/dev.jsonl, with rows shaped like
``recipes/default_model/synthesize.py``'s plus a ``source``:
``{"id", "path", "text", "voice", "seconds", "source"}``. Text is normalised the way
``recipes/default_model/evaluate.py`` scores it: lowercase letters, apostrophes and single
spaces, digits written as words (its ``normalize`` and ``_digits_to_words``).

Sources (install the missing ones with
``DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends PACKAGE``):

  drascula                 The voice-acted adventure game (~46 min). usr/share/scummvm/drascula/en/
                           holds raw 8-bit unsigned 11025 Hz mono ``*.ALS`` files, named PREFIX +
                           NUMBER; the English subtitles sit in drascula.dat. Each prefix is one
                           text group (and one talker function of the game): no prefix = John
                           Hacker, the player (group "text"), D = Drascula's group "textd" (also the
                           blind man and a few one-off lines), B = the drunk, BJ = B.J., E = the
                           musician, I = Igor, L = the werewolf, P = the pianist, T = the bartender,
                           VB = Von Braun. File PREFIX<n>.ALS speaks line n of its group (line 0 is
                           empty). S*.ALS (sound effects) and F1-F3 (Spanish) have no English line
                           and are not used. The mapping was checked with Whisper base
                           (``--verify-mapping``): in every group the transcripts of the sampled
                           files are closest to line n, not n-1 or n+1.
  ktuberling-data          sounds/en/*.ogg: one word per file, the word in the file name (a theme
                           prefix such as "moon_" removed). "ufo" (spoken as letters or a word?) and
                           "sphynx" (not what is said) are left out.
  klettres-data            en/ and en_GB/ (two speakers): letter names (written as the single
                           letter, as spelled letters are in transcribed corpora) and the whole
                           words of the syllable lists; the phonics sounds (aw, ch, th) are left out.
  tuxpaint-stamps-default  *_desc.ogg: the animal's name as spoken (it is the bare name from the file
                           name, not the longer description in the .txt); *_en_GB.ogg of the
                           alphabet and digit stamps: letter names and digits. "nandou" is left
                           out (its spoken form has no settled English spelling).

Identical audio files (tuxpaint keeps the same recording for a/A filled/outlined) are kept once.

Split, by speaker: dev holds out the drascula groups VB (Von Braun) and P (the pianist) and the
klettres en_GB speaker; everything else is train.

Drascula's subtitles only roughly follow the speech, so two filters drop lines:
  * rate: a line is dropped when its normalised text, spoken over the voiced part of the file
    (leading/trailing silence trimmed), is faster than MAX_CHARS_PER_SECOND, or when the voiced
    part lasts longer than the text at MIN_CHARS_PER_SECOND plus RATE_SLACK_SECONDS (the file
    holds more than the subtitle: a laugh, a scream, other words);
  * numbers: lines with prices, decimals or numbers of three or more digits are dropped (whether
    "501" is "five oh one" or "five hundred and one" cannot be told from the text); shorter
    numbers are written as words.
Each dropped line, with its reason, is listed in OUT/dropped.jsonl, and the counts are printed.

Run (single process, offline, re-runnable: OUT/wav is rewritten, the manifests replaced):

    python -m recipes.whisper_model.real_speech --out data/real
    python -m recipes.whisper_model.real_speech --verify-mapping 2     # Whisper spot-check, then exit

Writes OUT/wav/SOURCE/*.wav, OUT/train.jsonl, OUT/dev.jsonl, OUT/dropped.jsonl and
OUT/summary.json (utterances and hours per source and split). A file that fails to convert is
reported and skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import struct
import subprocess
import sys
import tempfile
import unicodedata
import wave
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_speech.text import edit_distance
from edge_speech.text import normalize_transcript as normalize
from recipes import DATA
from recipes.default_model.evaluate import _digits_to_words

SAMPLE_RATE = 16000

# -- drascula -----------------------------------------------------------------------------------

DRASCULA_DIR = Path("/usr/share/scummvm/drascula/en")
DRASCULA_RAW_RATE = 11025
# The English block of the first text group starts just before this line (line 1 of "text").
ENGLISH_ANCHOR = b"THAT'S THE SECOND BIGGEST"
# The text groups in drascula.dat's order; the first ten are the spoken ones, named by the prefix
# of their voice files ("N" stands for no prefix).
DRASCULA_GROUP_PREFIXES = ("N", "D", "B", "BJ", "E", "I", "L", "P", "T", "VB")
DRASCULA_CHARACTERS = {
    "N": "john hacker",
    "D": "drascula and others",
    "B": "drunk",
    "BJ": "b.j.",
    "E": "musician",
    "I": "igor",
    "L": "werewolf",
    "P": "pianist",
    "T": "bartender",
    "VB": "von braun",
}
DRASCULA_DEV_GROUPS = ("VB", "P")
# Entries of a language block are 4-byte aligned; each ends with the 16-bit big-endian length of
# the next entry, and the first entry is read from the block's start.
DRASCULA_ENTRY_ALIGNMENT = 4

MAX_CHARS_PER_SECOND = 26.0
MIN_CHARS_PER_SECOND = 6.0
RATE_SLACK_SECONDS = 1.0
# Voiced frames: 20 ms frames whose RMS is within this many dB of the loudest frame.
VOICED_DB_BELOW_PEAK = 35.0
AMBIGUOUS_NUMBER = re.compile(r"\d[.,:]\d|\d{3,}")
STRETCHED_LETTER = re.compile(r"([a-z])\1{2,}")

# -- isolated words ------------------------------------------------------------------------------

KTUBERLING_DIR = Path("/usr/share/ktuberling/sounds/en")
KTUBERLING_THEME_PREFIXES = ("egypt_", "moon_", "pizzeria_", "tv_")
KTUBERLING_SPOKEN = {"fallingstar": "falling star", "palmtree": "palm tree", "broccolli": "broccoli"}
KTUBERLING_LEFT_OUT = {"ufo", "sphynx"}

KLETTRES_DIR = Path("/usr/share/klettres")
KLETTRES_SPEAKERS = ("en", "en_GB")
KLETTRES_DEV_SPEAKERS = ("en_GB",)
KLETTRES_PHONICS = {"aw", "ch", "th"}

TUXPAINT_DIR = Path("/usr/share/tuxpaint/stamps")
TUXPAINT_SPOKEN = {"tucan": "toucan", "mountaingoat": "mountain goat", "wildboar": "wild boar"}
TUXPAINT_LEFT_OUT = {"nandou"}

DIGIT_WORDS = "zero one two three four five six seven eight nine".split()


@dataclasses.dataclass
class Candidate:
    """One source recording and its transcript, before conversion and filtering."""

    uid: str
    source_path: Path
    text: str
    voice: str
    source: str
    split: str
    raw_als: bool = False  # raw 8-bit 11025 Hz (drascula) rather than a file sox can read
    check_rate: bool = False  # apply the subtitle-rate filter (sentences, not single words)
    drop_reason: str = ""  # set before conversion when the transcript is unusable
    subtitle: str = ""  # the line as the game shows it (drascula), for dropped.jsonl


# -- drascula.dat ---------------------------------------------------------------------------------


def split_language_block(block: bytes, count: int) -> List[bytes]:
    """The ``count`` NUL-terminated strings of one language block of drascula.dat."""
    starts, position = [0], DRASCULA_ENTRY_ALIGNMENT
    for _ in range(1, count):
        if position > len(block):
            raise ValueError(f"language block of {len(block)} bytes ends before entry {len(starts)}")
        (length,) = struct.unpack_from(">H", block, position - 2)
        position += length
        starts.append(position)
    if starts[-1] > len(block):
        raise ValueError(f"entry {count - 1} starts at {starts[-1]}, past the block's {len(block)} bytes")
    return [block[start:].split(b"\0", 1)[0] for start in starts]


def parse_text_groups_at(data: bytes, offset: int) -> List[List[bytes]]:
    """Every text group from ``offset`` (the 16-bit language count) to the end of the file: one
    list of strings per group, English (language 0) only. Raises ValueError unless the groups end
    exactly at the end of ``data``."""
    (languages,) = struct.unpack_from(">H", data, offset)
    if not 1 <= languages <= 16:
        raise ValueError(f"implausible language count {languages}")
    position, groups = offset + 2, []
    while position < len(data):
        (count,) = struct.unpack_from(">H", data, position)
        position += 2
        english = None
        for language in range(languages):
            (size,) = struct.unpack_from(">H", data, position)
            block = data[position + 2 : position + 2 + size]
            if len(block) != size:
                raise ValueError(f"group {len(groups)} language {language}: block runs past the end")
            if language == 0:
                english = split_language_block(block, count)
            position += 2 + size
        groups.append(english)
    if position != len(data):
        raise ValueError("the text groups do not end at the end of the file")
    return groups


def read_text_groups(data: bytes, anchor: bytes = ENGLISH_ANCHOR, search_back: int = 64) -> List[List[str]]:
    """English lines of drascula.dat's text groups, decoded (code page 437, accents dropped:
    "TOUPE\\x90" becomes "TOUPEE").

    The groups are the file's tail: a 16-bit language count, then per group a 16-bit line count
    and per language a 16-bit byte size and a block. The header is found by trying the offsets
    just before ``anchor`` (line 1 of the first group) and keeping the one whose groups parse to
    the end of the file with ``anchor`` as the first group's line 1."""
    anchor_at = data.find(anchor)
    if anchor_at < 0:
        raise ValueError(f"{anchor!r} not found: not an English drascula.dat")
    for offset in range(anchor_at - 8, max(0, anchor_at - search_back), -1):
        try:
            groups = parse_text_groups_at(data, offset)
        except (ValueError, struct.error):
            continue
        if groups and len(groups[0]) > 1 and groups[0][1].startswith(anchor):
            return [[decode_game_text(line) for line in group] for group in groups]
    raise ValueError("no text-group header found before the English lines")


def decode_game_text(raw: bytes) -> str:
    """drascula.dat's strings are DOS code page 437 ("TOUPE\\x90" is TOUPÉ); accents are dropped."""
    text = unicodedata.normalize("NFKD", raw.decode("cp437"))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def spoken_text(line: str) -> Tuple[str, str]:
    """(normalised transcript, reason it is unusable or "")."""
    if AMBIGUOUS_NUMBER.search(line):
        return "", "ambiguous number"
    text = normalize(_digits_to_words(line.replace("-", " ")))
    text = STRETCHED_LETTER.sub(r"\1", text)  # "nooo" -> "no": no English word triples a letter
    return text, "" if text else "empty line"


def drascula_file_key(name: str) -> Optional[Tuple[str, int]]:
    """("BJ", 12) for BJ12.ALS, ("N", 7) for 7.ALS; None for files outside the text groups."""
    match = re.fullmatch(r"([A-Z]*)(\d+)\.ALS", name, flags=re.IGNORECASE)
    if not match:
        return None
    prefix = match.group(1).upper() or "N"
    return (prefix, int(match.group(2))) if prefix in DRASCULA_GROUP_PREFIXES else None


def drascula_candidates(directory: Path = DRASCULA_DIR) -> List[Candidate]:
    dat = directory / "drascula.dat"
    if not dat.exists():
        print(f"drascula: {dat} missing (apt-get install drascula); skipped", flush=True)
        return []
    groups = read_text_groups(dat.read_bytes())
    lines_by_prefix = dict(zip(DRASCULA_GROUP_PREFIXES, groups))
    candidates, unused = [], []
    for path in sorted(directory.iterdir()):
        key = drascula_file_key(path.name)
        if key is None:
            if path.suffix.upper() == ".ALS":
                unused.append(path.name)
            continue
        prefix, number = key
        group, line_index = key
        lines = lines_by_prefix[group]
        line = lines[line_index] if line_index < len(lines) else ""
        text, reason = spoken_text(line)
        if line_index >= len(lines):
            reason = f"no such line in its group ({group}[{line_index}])"
        candidates.append(
            Candidate(
                uid=f"drascula_{prefix}{number:03d}",
                source_path=path,
                text=text,
                voice=f"drascula:{prefix}",
                source="drascula",
                split="dev" if prefix in DRASCULA_DEV_GROUPS else "train",
                raw_als=True,
                check_rate=True,
                drop_reason=reason,
                subtitle=line,
            )
        )
    print(
        f"drascula: {len(candidates)} voice files in the text groups; {len(unused)} other .ALS files "
        f"without an English line ({', '.join(unused)})",
        flush=True,
    )
    return candidates


# -- isolated words -----------------------------------------------------------------------------


def ktuberling_candidates(directory: Path = KTUBERLING_DIR) -> List[Candidate]:
    if not directory.is_dir():
        print(f"ktuberling: {directory} missing (apt-get install ktuberling-data); skipped", flush=True)
        return []
    candidates = []
    for path in sorted(directory.glob("*.ogg")):
        word = path.stem
        for prefix in KTUBERLING_THEME_PREFIXES:
            if word.startswith(prefix):
                word = word[len(prefix) :]
        if word in KTUBERLING_LEFT_OUT:
            continue
        candidates.append(
            Candidate(
                uid=f"ktuberling_{path.stem}",
                source_path=path,
                text=normalize(KTUBERLING_SPOKEN.get(word, word)),
                voice="ktuberling:en",
                source="ktuberling",
                split="train",
            )
        )
    return candidates


def klettres_candidates(directory: Path = KLETTRES_DIR) -> List[Candidate]:
    if not directory.is_dir():
        print(f"klettres: {directory} missing (apt-get install klettres-data); skipped", flush=True)
        return []
    candidates = []
    for speaker in KLETTRES_SPEAKERS:
        for kind in ("alpha", "syllab"):
            for path in sorted((directory / speaker / kind).glob("*.ogg")):
                word = path.stem.lower()
                if kind == "alpha" and not re.fullmatch(r"[a-z]", word):
                    continue
                if kind == "syllab" and word in KLETTRES_PHONICS:
                    continue
                candidates.append(
                    Candidate(
                        uid=f"klettres_{speaker}_{kind}_{word}",
                        source_path=path,
                        text=word,
                        voice=f"klettres:{speaker}",
                        source="klettres",
                        split="dev" if speaker in KLETTRES_DEV_SPEAKERS else "train",
                    )
                )
    return candidates


def tuxpaint_candidates(directory: Path = TUXPAINT_DIR) -> List[Candidate]:
    if not directory.is_dir():
        print(f"tuxpaint: {directory} missing (apt-get install tuxpaint-stamps-default); skipped", flush=True)
        return []
    candidates = []
    for path in sorted(directory.rglob("*_desc.ogg")):
        name = path.name[: -len("_desc.ogg")]
        if name in TUXPAINT_LEFT_OUT or not re.fullmatch(r"[a-z]+", name):
            continue
        candidates.append(
            Candidate(
                uid=f"tuxpaint_desc_{name}",
                source_path=path,
                text=normalize(TUXPAINT_SPOKEN.get(name, name)),
                voice="tuxpaint:desc",
                source="tuxpaint",
                split="train",
            )
        )
    for path in sorted((directory / "symbols").rglob("*_en_GB.ogg")):
        symbol = path.name.split("_", 1)[0]
        if re.fullmatch(r"[A-Za-z]", symbol):
            text = symbol.lower()
        elif re.fullmatch(r"\d", symbol):
            text = DIGIT_WORDS[int(symbol)]
        else:
            continue
        candidates.append(
            Candidate(
                uid=f"tuxpaint_en_GB_{path.stem[: -len('_en_GB')]}",
                source_path=path,
                text=text,
                voice="tuxpaint:en_GB",
                source="tuxpaint",
                split="train",
            )
        )
    return candidates


# -- audio -------------------------------------------------------------------------------------


def convert_to_wav(candidate: Candidate, destination: Path) -> None:
    """16 kHz mono int16 WAV with sox (-R: the dither is the same on every run)."""
    if candidate.raw_als:
        source = [
            "-t",
            "raw",
            "-r",
            str(DRASCULA_RAW_RATE),
            "-e",
            "unsigned",
            "-b",
            "8",
            "-c",
            "1",
            str(candidate.source_path),
        ]
    else:
        source = [str(candidate.source_path)]
    command = [
        "sox",
        "-R",
        "-q",
        *source,
        "-r",
        str(SAMPLE_RATE),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed",
        str(destination),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sox failed ({result.returncode}): {result.stderr.strip()}")


def read_wav_int16(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def voiced_seconds(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Seconds from the first to the last 20 ms frame within VOICED_DB_BELOW_PEAK of the loudest."""
    frame = rate // 50
    frames = len(samples) // frame
    if frames == 0:
        return 0.0
    power = (samples[: frames * frame].astype(np.float64).reshape(frames, frame) ** 2).mean(axis=1)
    level_db = 10 * np.log10(power + 1e-9)
    voiced = np.flatnonzero(level_db > level_db.max() - VOICED_DB_BELOW_PEAK)
    return (voiced[-1] - voiced[0] + 1) * frame / rate


def rate_problem(text: str, speech_seconds: float) -> str:
    """Why ``text`` cannot be what is said in ``speech_seconds`` of voiced audio, or ""."""
    chars = len(text)
    if speech_seconds <= 0:
        return "no voiced audio"
    if chars / speech_seconds > MAX_CHARS_PER_SECOND:
        return f"subtitle too long for the audio ({chars / speech_seconds:.1f} chars/s)"
    if speech_seconds > chars / MIN_CHARS_PER_SECOND + RATE_SLACK_SECONDS:
        return f"audio too long for the subtitle ({chars / speech_seconds:.1f} chars/s)"
    return ""


def file_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


# -- building ----------------------------------------------------------------------------------


def all_candidates() -> List[Candidate]:
    return drascula_candidates() + ktuberling_candidates() + klettres_candidates() + tuxpaint_candidates()


def build(out: Path, candidates: Sequence[Candidate]) -> Dict[str, list]:
    """Converts, measures and filters ``candidates``; writes the manifests. Returns the rows by
    split and the dropped entries."""
    rows: Dict[str, list] = {"train": [], "dev": [], "dropped": []}
    seen_digests: Dict[str, str] = {}

    def drop(candidate: Candidate, reason: str, **extra) -> None:
        rows["dropped"].append(
            {
                "id": candidate.uid,
                "source_path": str(candidate.source_path),
                "text": candidate.text,
                "subtitle": candidate.subtitle,
                "voice": candidate.voice,
                "reason": reason,
                **extra,
            }
        )

    for candidate in candidates:
        if candidate.drop_reason:
            drop(candidate, candidate.drop_reason)
            continue
        try:
            digest = file_digest(candidate.source_path)
        except OSError as error:
            print(f"skipped {candidate.source_path}: cannot read it ({error})", flush=True)
            continue
        if digest in seen_digests:  # the same recording under another name: keep the first
            continue
        seen_digests[digest] = candidate.uid
        destination = out / "wav" / candidate.source / f"{candidate.uid}.wav"
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            convert_to_wav(candidate, destination)
            samples = read_wav_int16(destination)
        except (RuntimeError, OSError, wave.Error, EOFError) as error:
            print(f"skipped {candidate.source_path}: {error}", flush=True)
            destination.unlink(missing_ok=True)
            continue
        seconds = len(samples) / SAMPLE_RATE
        if candidate.check_rate:
            speech = voiced_seconds(samples)
            problem = rate_problem(candidate.text, speech)
            if problem:
                drop(candidate, problem, seconds=round(seconds, 3), voiced_seconds=round(speech, 3))
                destination.unlink(missing_ok=True)
                continue
        rows[candidate.split].append(
            {
                "id": candidate.uid,
                "path": str(destination),
                "text": candidate.text,
                "voice": candidate.voice,
                "seconds": round(seconds, 3),
                "source": candidate.source,
            }
        )
    for name in ("train", "dev", "dropped"):
        temporary = out / f"{name}.jsonl.tmp"
        temporary.write_text("".join(json.dumps(row) + "\n" for row in rows[name]))
        temporary.replace(out / f"{name}.jsonl")
    return rows


def summarise(rows: Dict[str, list]) -> dict:
    """{split: {source: {"utterances", "hours"}}} plus the dropped counts by source and reason."""
    summary: dict = {}
    for split in ("train", "dev"):
        table = summary.setdefault(split, {})
        for row in rows[split]:
            entry = table.setdefault(row["source"], {"utterances": 0, "hours": 0.0})
            entry["utterances"] += 1
            entry["hours"] += row["seconds"] / 3600
        table["all"] = {"utterances": len(rows[split]), "hours": sum(row["seconds"] for row in rows[split]) / 3600}
        for entry in table.values():
            entry["hours"] = round(entry["hours"], 4)
    dropped: Dict[str, int] = {}
    for row in rows["dropped"]:
        reason = re.sub(r" \(.*\)$", "", row["reason"])
        key = f"{row['voice'].split(':')[0]}: {reason}"
        dropped[key] = dropped.get(key, 0) + 1
    summary["dropped"] = dropped
    return summary


def print_summary(summary: dict) -> None:
    for split in ("train", "dev"):
        for source, entry in summary[split].items():
            print(
                f"{split:5s} {source:12s} {entry['utterances']:5d} utterances {entry['hours'] * 60:7.2f} min",
                flush=True,
            )
    for reason, count in sorted(summary["dropped"].items()):
        print(f"dropped {count:4d}  {reason}", flush=True)


# -- Whisper spot-check of the drascula line mapping ---------------------------------------------


def character_error_rate(reference: str, hypothesis: str) -> float:
    return edit_distance(reference, hypothesis) / max(1, len(reference))


def verify_mapping(files_per_group: int, model_dir: Path) -> int:
    """Transcribes ``files_per_group`` evenly spaced files of every drascula group with Whisper
    (CTranslate2, CPU, one thread) and prints, per file, the CER of the transcript against lines
    n-1, n and n+1 of the group. Returns 0 when line n is the closest in every group's majority."""
    import ctranslate2
    import tokenizers

    from edge_speech import features

    model = ctranslate2.models.Whisper(
        str(model_dir), device="cpu", compute_type="int8", intra_threads=1, inter_threads=1
    )
    tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    prompt = [
        tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")
    ]
    config = features.FeatureConfig.preset("whisper")
    window = 30 * SAMPLE_RATE

    def transcribe(samples: np.ndarray) -> str:
        padded = np.zeros(window, np.float32)
        padded[: min(window, len(samples))] = samples[:window].astype(np.float32) / 32768
        mel = np.ascontiguousarray(features.compute(padded, SAMPLE_RATE, config)[:3000].T[None])
        result = model.generate(ctranslate2.StorageView.from_array(mel), [prompt], beam_size=1)
        return tokenizer.decode(result[0].sequences_ids[0])

    groups = dict(zip(DRASCULA_GROUP_PREFIXES, read_text_groups((DRASCULA_DIR / "drascula.dat").read_bytes())))
    by_group: Dict[str, List[Candidate]] = {}
    for candidate in drascula_candidates():
        if not candidate.drop_reason:
            by_group.setdefault(candidate.voice.split(":")[1], []).append(candidate)
    all_agree = True
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in DRASCULA_GROUP_PREFIXES:
            files = sorted(by_group.get(prefix, []), key=lambda c: drascula_file_key(c.source_path.name)[1])
            picks = [
                files[round(k * (len(files) - 1) / max(1, files_per_group - 1))]
                for k in range(min(files_per_group, len(files)))
            ]
            votes = {-1: 0, 0: 0, 1: 0}
            for candidate in picks:
                group, number = drascula_file_key(candidate.source_path.name)
                wav = Path(tmp) / f"{candidate.uid}.wav"
                convert_to_wav(candidate, wav)
                heard = normalize(_digits_to_words(transcribe(read_wav_int16(wav))))
                rates = {}
                for shift in (-1, 0, 1):
                    if 0 <= number + shift < len(groups[group]):
                        rates[shift] = character_error_rate(normalize(groups[group][number + shift]), heard)
                best = min(rates, key=rates.get)
                votes[best] += 1
                print(
                    f"{candidate.source_path.name:9s} -> {group}[{number}]  whisper: {heard!r}  "
                    + "  ".join(f"CER vs line {number + s}: {r:.2f}" for s, r in rates.items()),
                    flush=True,
                )
            agrees = votes[0] > votes[-1] + votes[1]
            all_agree &= agrees
            print(
                f"group {prefix}: closest line n {votes[0]}x, n-1 {votes[-1]}x, n+1 {votes[1]}x"
                f"{'' if agrees else '  <-- mapping doubtful'}",
                flush=True,
            )
    return 0 if all_agree else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DATA / "real")
    parser.add_argument(
        "--verify-mapping",
        type=int,
        metavar="N",
        default=0,
        help="only spot-check the drascula line mapping on N files per group with Whisper",
    )
    parser.add_argument(
        "--whisper-model",
        type=Path,
        default=DATA / "whisper-base",
        help="CTranslate2 Whisper model directory for --verify-mapping",
    )
    args = parser.parse_args(argv)
    if args.verify_mapping:
        return verify_mapping(args.verify_mapping, args.whisper_model)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build(args.out, all_candidates())
    summary = summarise(rows)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
