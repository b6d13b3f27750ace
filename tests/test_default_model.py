"""The embedded default model: it ships in the package, loads without a bundle path, transcribes
the shipped examples, recognises their commands through a grammar, and works live through
PortAudio, with either VAD."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_pcm16_wav
from edge_speech import Recognizer, audio, listen
from edge_speech.converters.verification import error_rate
from test_microphone_alsa import FirstSeconds, file_microphone  # noqa: F401  (fixture)
from test_recognizer import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "recipes" / "default_model" / "examples"


@pytest.fixture(scope="module")
def default():
    return Recognizer.default(threads=1)


def test_the_default_model_is_an_int8_bundle_in_the_package(default):
    m = default.manifest
    assert m.quantization["scheme"] == "int8" and m.sample_rate == 16000
    assert m.verification["steps"][-1]["vs_fp32"]["cosine"] >= 0.99
    assert len(default.bundle.model_bytes["onnx"]) < 2_000_000


def test_transcribes_the_timer_example(default):
    result = default.transcribe(EXAMPLES / "set_a_timer_for_ten_minutes.wav")
    assert error_rate(["set a timer for ten minutes"], [result.text]) <= 0.35, result.text
    assert result.rtf < 0.1


def test_recognises_commands_through_a_grammar(default):
    grammar = EXAMPLES / "commands.yaml"
    timer = default.transcribe(EXAMPLES / "set_a_timer_for_ten_minutes.wav", grammar=grammar)
    assert (timer.intent, timer.slots) == ("Timer", {"minutes": "ten"}) and timer.confidence >= 0.5
    light = default.transcribe(EXAMPLES / "turn_on_the_kitchen_light.wav", grammar=grammar, grammar_threshold=0.0)
    assert (light.intent, light.slots) == ("LightOn", {"room": "kitchen"})


def test_speech_outside_the_grammar_is_rejected(default, speech):
    samples = speech(16000)  # "Turn on the kitchen light, then set a timer for five minutes." is not one command
    grammar = 'intents:\n  Weather:\n    - "what is the weather today"\n'
    result = default.transcribe((samples, 16000), grammar=grammar)
    assert result.intent is None and result.text == ""


def test_live_commands_through_portaudio(file_microphone, default):
    timer, rate = audio.read_wav(EXAMPLES / "set_a_timer_for_ten_minutes.wav")
    quiet = (0.0005 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)
    session = np.concatenate([quiet, timer, quiet, timer, quiet])
    device = file_microphone(session)
    mic = listen.MicrophoneSource(device, sample_rate=16000, max_queued_chunks=5000)
    try:
        events = list(listen.listen(default, FirstSeconds(mic, len(session) / rate),
                                    grammar=EXAMPLES / "commands.yaml"))
    finally:
        mic.close()
    intents = [(e.intent, e.slots) for e in events if e.type == "intent"]
    assert intents == [("Timer", {"minutes": "ten"})] * 2


def test_streaming_uses_the_manifest_context_and_equals_offline(default):
    assert default.manifest.input.stream_context_frames == 264  # the model's receptive field, ±2.6 s
    for name in ("set_a_timer_for_ten_minutes.wav", "turn_on_the_kitchen_light.wav"):
        samples, rate = audio.read_wav(EXAMPLES / name)
        stream = default.create_stream()
        for start in range(0, len(samples), 1600):
            stream.accept_waveform(samples[start:start + 1600], rate)
        assert stream.finish().text == default.transcribe((samples, rate)).text


def test_silero_and_energy_vad_find_the_same_commands(default, tmp_path):
    timer, rate = audio.read_wav(EXAMPLES / "set_a_timer_for_ten_minutes.wav")
    light, _ = audio.read_wav(EXAMPLES / "turn_on_the_kitchen_light.wav")
    quiet = (0.0005 * np.random.default_rng(0).standard_normal(rate)).astype(np.float32)
    session = np.concatenate([quiet, timer, quiet, light, quiet, timer, quiet])
    expected = [("Timer", {"minutes": "ten"}), ("LightOn", {"room": "kitchen"}), ("Timer", {"minutes": "ten"})]
    chunks = [session[i:i + 320] for i in range(0, len(session), 320)]
    for vad in ("energy", "silero"):
        events = listen.listen(default, listen.ArraySource(chunks, rate), grammar=EXAMPLES / "commands.yaml",
                               grammar_threshold=0.0, vad=vad)
        assert [(e.intent, e.slots) for e in events if e.type == "intent"] == expected, vad
    path = write_pcm16_wav(tmp_path / "session.wav", session, rate)
    result = run_cli("listen", "--wav", str(path), "--vad", "silero", "--grammar", str(EXAMPLES / "commands.yaml"),
                     "--grammar-threshold", "0", "--json")
    assert result.returncode == 0, result.stderr
    intents = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["intent"], e["slots"]) for e in intents if e["type"] == "intent"] == expected


def test_provisional_text_comes_early_and_ends_as_greedy_offline(default):
    samples, rate = audio.read_wav(EXAMPLES / "set_a_timer_for_ten_minutes.wav")
    samples = audio.load_audio((samples, rate), 16000)
    stream = default.create_stream()
    stream.accept_waveform(samples[:8000], 16000)  # half a second of the command
    assert stream.partial.text == ""  # the exact decoder still waits for 2.6 s of right context
    assert stream.provisional() != ""
    stream.accept_waveform(samples[8000:], 16000)
    # with all the audio in, the missing context is only past the end, as offline
    assert stream.provisional() == default.transcribe((samples, 16000), beam=1).text
