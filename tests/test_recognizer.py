"""Recognizer end to end on a tiny ONNX CTC bundle: offline text equals decoding the
independently computed log-probs, streaming equals offline, batch and CLI behaviour, errors."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from conftest import noise, run_cli
from tiny_bundles import FEATURES, INTENTS, make_bundle

from edge_speech import Recognizer, audio, decoding, features
from edge_speech.bundle import Bundle, BundleError, write_bundle


def greedy_reference(log_probs: np.ndarray) -> str:
    best = log_probs.argmax(axis=1)
    out, previous = [], None
    for token in best:
        if token != previous and token != 0:
            out.append(tiny_models.TOKENS[token])
        previous = token
    return "".join(out)


def test_greedy_transcript_equals_argmax_collapse_of_the_reference_model(recognizer, speech):
    samples = speech(16000)
    result = recognizer.transcribe((samples, 16000), beam=1)
    ref = tiny_models.reference(features.compute(samples, 16000, FEATURES))
    expected = greedy_reference(ref)
    assert result.text.strip() == " ".join(expected.split())
    assert result.duration_s == pytest.approx(len(samples) / 16000)
    assert set(result.timings) == {"features", "model", "decoding"} and result.rtf > 0


def test_beam_transcript_equals_the_decoder_on_reference_log_probs(recognizer, speech_wav):
    path = speech_wav(16000)
    samples, _ = audio.read_wav(path)
    ref = tiny_models.reference(features.compute(samples, 16000, FEATURES)).astype(np.float32)
    expected = decoding.CTCDecoder(tiny_models.TOKENS, blank_id=0, beam_width=8, frame_shift_s=0.02).decode(ref)
    result = recognizer.transcribe(path)
    assert result.text == expected.text
    assert result.score == pytest.approx(expected.score, abs=1e-2)
    for word in result.words:
        assert 0 <= word.start <= word.end <= result.duration_s + 0.02 and 0 <= word.confidence <= 1


def test_other_sample_rates_are_resampled(recognizer, speech):
    at_16k = recognizer.transcribe((speech(16000), 16000), beam=1)
    at_44k = recognizer.transcribe((speech(44100), 44100), beam=1)
    assert abs(at_44k.duration_s - at_16k.duration_s) < 0.01


@pytest.mark.parametrize("chunk_samples", [160, 1337, 16000])
def test_streaming_equals_offline(recognizer, speech, chunk_samples):
    samples = speech(16000)
    offline = recognizer.transcribe((samples, 16000))
    stream = recognizer.create_stream()
    partials = []
    for start in range(0, len(samples), chunk_samples):
        stream.accept_waveform(samples[start : start + chunk_samples], 16000)
        partials.append(stream.partial.text)
    final = stream.finish()
    assert final.text == offline.text
    assert final.score == pytest.approx(offline.score, abs=1e-2)
    assert any(partials) or not offline.text


def test_streaming_at_another_rate_resamples_statefully(recognizer, speech):
    samples = speech(22050)
    offline = recognizer.transcribe((samples, 22050), beam=1)
    stream = recognizer.create_stream(beam=1)
    for start in range(0, len(samples), 999):
        stream.accept_waveform(samples[start : start + 999], 22050)
    final = stream.finish()
    assert abs(final.duration_s - offline.duration_s) < 0.005
    with pytest.raises(ValueError, match="finished"):
        stream.accept_waveform(samples[:100], 22050)
    other = recognizer.create_stream()
    other.accept_waveform(samples[:1000], 22050)
    with pytest.raises(ValueError, match="sample rate changed"):
        other.accept_waveform(samples[:1000], 16000)


def test_transcribe_many_reports_failures_in_place(recognizer, speech_wav, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    results = recognizer.transcribe_many([speech_wav(16000), bad, tmp_path / "missing.wav", speech_wav(8000)])
    assert isinstance(results[1], ValueError) and isinstance(results[2], FileNotFoundError)
    assert results[0].text == recognizer.transcribe(speech_wav(16000)).text
    assert not isinstance(results[3], Exception)


@pytest.mark.parametrize(
    "source, error, message",
    [
        ((np.zeros(0, dtype=np.float32), 16000), ValueError, "no samples"),
        ((np.array([0.0, np.inf] * 800, dtype=np.float32), 16000), ValueError, "NaN or Inf"),
    ],
)
def test_bad_audio_is_refused_clearly(recognizer, source, error, message):
    with pytest.raises(error, match=message):
        recognizer.transcribe(source)


def test_short_audio_gives_an_empty_transcript(recognizer):
    result = recognizer.transcribe((noise(16000, seconds=0.01), 16000))
    assert result.text == "" and result.words == ()


def test_cli_transcribe_json_lines_and_failures(bundle_dir, speech_wav, tmp_path, recognizer):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    good = speech_wav(16000)
    result = run_cli("transcribe", "--bundle", str(bundle_dir), "--json", str(good), str(bad))
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["file"] == str(good)
    assert set(lines[0]) >= {"file", "text", "words", "intent", "slots", "confidence", "rtf"}
    assert lines[0]["text"] == recognizer.transcribe(good).text
    assert result.stderr.strip().splitlines() == [f"edge-speech: {bad}: {bad}: not a RIFF/WAVE file"]


def test_cli_info_and_bench(bundle_dir):
    info = run_cli("info", str(bundle_dir), "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["tokens"] == len(tiny_models.TOKENS) and summary["kind"] == "ctc"
    bench = run_cli("bench", str(bundle_dir), "--seconds", "3", "--repeats", "1", "--json")
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert report["rtf"] > 0 and report["peak_rss_mb"] > 0
    missing = run_cli("info", "/nonexistent/bundle")
    assert missing.returncode == 2 and "no such bundle" in missing.stderr


def test_grammar_transcripts_equal_the_constrained_decoder_on_reference_log_probs(recognizer, speech, tmp_path):
    samples = speech(16000)
    ref = tiny_models.reference(features.compute(samples, 16000, FEATURES)).astype(np.float32)
    expected = decoding.CTCDecoder(
        tiny_models.TOKENS, grammar=INTENTS, grammar_threshold=0.0, frame_shift_s=0.02
    ).decode(ref)
    (tmp_path / "cmds.yaml").write_text(INTENTS)
    for grammar in (INTENTS, str(tmp_path / "cmds.yaml"), tmp_path / "cmds.yaml"):
        result = recognizer.transcribe((samples, 16000), grammar=grammar, grammar_threshold=0.0)
        assert (result.text, result.intent, result.slots) == (expected.text, expected.intent, expected.slots)
        assert result.intent in ("Take", "Eat") and 0 <= result.confidence <= 1
    strict = recognizer.transcribe((samples, 16000), grammar=INTENTS, grammar_threshold=1.0)
    assert strict.intent is None and strict.text == ""  # a random model is never that sure
    with pytest.raises(FileNotFoundError, match="no such grammar file"):
        recognizer.transcribe((samples, 16000), grammar=str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="line"):
        recognizer.transcribe((samples, 16000), grammar='intents:\n  X:\n    - "unclosed\n')


def test_cli_transcribe_with_a_grammar(bundle_dir, speech_wav, tmp_path):
    (tmp_path / "cmds.yaml").write_text(INTENTS)
    result = run_cli(
        "transcribe",
        "--bundle",
        str(bundle_dir),
        "--grammar",
        str(tmp_path / "cmds.yaml"),
        "--grammar-threshold",
        "0",
        "--json",
        str(speech_wav(16000)),
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["intent"] in ("Take", "Eat") and line["confidence"] is not None


def test_cli_progress_bar_only_on_a_terminal(bundle_dir, speech_wav):
    import os as _os
    import pty

    files = [str(speech_wav(16000))] * 3
    piped = run_cli("transcribe", "--bundle", str(bundle_dir), *files)
    assert "[" not in piped.stderr  # no bar when stderr is not a terminal
    leader, follower = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "transcribe", "--bundle", str(bundle_dir), *files],
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=tempfile.gettempdir(),
    )
    _os.close(follower)
    shown = _os.read(leader, 4096).decode()
    _os.close(leader)
    assert proc.returncode == 0 and "3/3" in shown


# A word LM spelled with the tiny model's letters; its words are the lexicon when asked.
TINY_ARPA = """\\data\\
ngram 1=6
ngram 2=2

\\1-grams:
-99\t<s>\t-0.3
-0.5\t</s>
-0.6\ttake\t-0.2
-0.7\tkite
-0.8\tnote
-1.0\tlake

\\2-grams:
-0.1\t<s> take
-0.2\ttake kite

\\end\\
"""


def bundle_with_decoder(directory, decoder: dict, files: dict = None) -> "Path":
    """The tiny bundle with these decoder defaults (and extra files, e.g. its LM)."""
    base = Bundle.load(make_bundle(directory.parent / (directory.name + "-base")))
    return write_bundle(
        directory,
        dataclasses.replace(base.manifest, files={}, decoder=decoder),
        {"model.onnx": base.model_bytes["onnx"], **(files or {})},
    )


def lm_bundle(directory, lexicon: bool, compress: bool = True) -> "Path":
    name = "lm.arpa.gz" if compress else "lm.arpa"
    data = gzip.compress(TINY_ARPA.encode()) if compress else TINY_ARPA.encode()
    decoder = {"lm": name, "lm_weight": 0.8, "word_bonus": 1.0, "beam": 12, "lexicon": lexicon}
    return bundle_with_decoder(directory, decoder, {name: data})


def replace_file(directory, name: str, data: bytes) -> None:
    """Replaces a bundle file and its manifest checksum, so only the content is wrong."""
    (directory / name).write_bytes(data)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("lexicon", [False, True])
def test_a_bundled_lm_is_the_default_search_and_equals_the_decoder_given_that_lm(tmp_path, speech, lexicon):
    samples = speech(16000)
    rec = Recognizer.from_bundle(lm_bundle(tmp_path / "lm", lexicon), threads=1)
    ref = tiny_models.reference(features.compute(samples, 16000, FEATURES)).astype(np.float32)
    lm = decoding.ArpaLM(TINY_ARPA)
    expected = decoding.CTCDecoder(
        tiny_models.TOKENS,
        blank_id=0,
        beam_width=12,
        lm=lm,
        lm_weight=0.8,
        word_bonus=1.0,
        lexicon=True if lexicon else None,
        frame_shift_s=0.02,
    ).decode(ref)
    result = rec.transcribe((samples, 16000))
    assert rec.beam == 12
    assert result.text == expected.text and result.score == pytest.approx(expected.score, abs=1e-2)
    if lexicon:
        assert set(result.text.split()) <= {"take", "kite", "note", "lake"}
    # lm=False and beam=1 turn the bundled LM off
    plain = decoding.CTCDecoder(tiny_models.TOKENS, blank_id=0, beam_width=12, frame_shift_s=0.02).decode(ref)
    assert rec.transcribe((samples, 16000), lm=False).text == plain.text
    assert rec.transcribe((samples, 16000), beam=1).text == greedy_reference(ref).strip()
    stream = rec.create_stream()
    stream.accept_waveform(samples, 16000)
    assert stream.finish().text == expected.text


def test_bundled_lm_errors_name_the_file(tmp_path):
    directory = lm_bundle(tmp_path / "lm", lexicon=False, compress=False)
    (directory / "lm.arpa").write_text(TINY_ARPA.replace("-0.5\t</s>", "-0.5\t</s>\t0\t0"))
    with pytest.raises(BundleError, match="lm.arpa: size"):
        Bundle.load(directory)
    directory = lm_bundle(tmp_path / "bad", lexicon=False, compress=False)
    replace_file(directory, "lm.arpa", TINY_ARPA.replace("ngram 1=6", "ngram 1=7").encode())
    with pytest.raises(BundleError, match="lm.arpa: .*"):
        Recognizer.from_bundle(directory)
    gz = lm_bundle(tmp_path / "gz", lexicon=False)
    replace_file(gz, "lm.arpa.gz", b"not gzip at all")
    with pytest.raises(BundleError, match="lm.arpa.gz: not a valid gzip file"):
        Bundle.load(gz)


@pytest.mark.parametrize(
    "decoder, message",
    [
        ({"lm": "missing.arpa"}, "'missing.arpa' has no checksum"),
        ({"beam": 0}, "decoder beam"),
        ({"lm_weight": "high"}, "decoder lm_weight"),
        ({"temperature": 1.0}, "unknown key"),
        ({"lexicon": True, "lm": None}, "lexicon needs an lm"),
        ({"grammar_threshold": 1.5}, "grammar_threshold must be a number in"),
        ({"grammar_min_evidence": -0.1}, "grammar_min_evidence must be a number in"),
    ],
)
def test_bad_decoder_sections_say_what_is_wrong(tmp_path, decoder, message):
    directory = make_bundle(tmp_path / "b")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["decoder"] = {k: v for k, v in decoder.items() if v is not None}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        Bundle.load(directory)


def test_the_bundles_calibrated_grammar_settings_are_the_default(tmp_path, speech):
    samples = speech(16000)
    directory = bundle_with_decoder(
        tmp_path / "loose", {"grammar_threshold": 0.0, "grammar_token_bonus": 0.7, "grammar_min_evidence": 0.3}
    )
    rec = Recognizer.from_bundle(directory, threads=1)
    accepted = rec.transcribe((samples, 16000), grammar=INTENTS)
    assert accepted.intent in ("Take", "Eat")  # a threshold of 0 rejects nothing
    assert accepted.text == rec.transcribe((samples, 16000), grammar=INTENTS, grammar_threshold=0.0).text
    ref = tiny_models.reference(features.compute(samples, 16000, FEATURES)).astype(np.float32)
    expected = decoding.CTCDecoder(
        tiny_models.TOKENS,
        grammar=INTENTS,
        grammar_threshold=0.0,
        grammar_token_bonus=0.7,
        grammar_min_evidence=0.3,
        frame_shift_s=0.02,
    ).decode(ref)
    assert rec._decoder_for(None, None, None, None, None, INTENTS, None).grammar_min_evidence == 0.3
    assert (accepted.text, accepted.score) == (expected.text, pytest.approx(expected.score, abs=1e-2))
    # an explicit threshold still wins over the bundle's
    assert rec.transcribe((samples, 16000), grammar=INTENTS, grammar_threshold=1.0).intent is None
    stream = rec.create_stream(grammar=INTENTS)
    stream.accept_waveform(samples, 16000)
    assert stream.finish().intent == accepted.intent
