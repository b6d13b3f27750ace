"""Live recognition over replayed audio: the model runs only during speech, utterances are cut
where the speech is, events carry the recogniser's results, and the CLI prints JSON lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import composed, noise, run_cli, write_pcm16_wav
from tiny_bundles import INTENTS

from edge_speech import _native, listen


class CountingBackend:
    def __init__(self, inner):
        self.inner, self.calls, self.name, self.providers = inner, 0, inner.name, inner.providers

    def run(self, features):
        self.calls += 1
        return self.inner.run(features)


@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_utterances_are_cut_where_the_speech_is(recognizer, speech, vad):
    samples, bounds = composed(speech)
    source = listen.ArraySource([samples[i : i + 320] for i in range(0, len(samples), 320)], 16000)
    events = list(listen.listen(recognizer, source, vad=vad))
    finals = [e for e in events if e.type == "final"]
    assert len(finals) == 2
    for event, (start, end) in zip(finals, bounds):
        assert abs(event.start - start) < 0.45 and abs(event.end - end) < 0.45, (event, start, end)
    assert all(e.start <= e.end for e in events)


@pytest.mark.parametrize("vad", ["energy", "silero"])
def test_the_model_does_not_run_while_nothing_is_said(recognizer, vad):
    backend = recognizer.backend
    counting = CountingBackend(backend)
    recognizer.backend = counting
    try:
        quiet = (0.0005 * np.random.default_rng(1).standard_normal(16000 * 5)).astype(np.float32)
        steady_noise = noise(16000, seconds=5.0) * 0 + 0.05 * np.random.default_rng(2).standard_normal(80000).astype(
            np.float32
        )
        for signal in (quiet, steady_noise):
            source = listen.ArraySource([signal[i : i + 480] for i in range(0, len(signal), 480)], 16000)
            assert [e for e in listen.listen(recognizer, source, vad=vad) if e.type != "partial"] == []
        assert counting.calls == 0
    finally:
        recognizer.backend = backend


def test_grammar_events_carry_intents(recognizer, speech):
    samples, _ = composed(speech)
    source = listen.ArraySource([samples[i : i + 320] for i in range(0, len(samples), 320)], 16000)
    events = list(listen.listen(recognizer, source, grammar=INTENTS, grammar_threshold=0.0))
    finals = [e for e in events if e.type == "final"]
    intents = [e for e in events if e.type == "intent"]
    assert len(finals) == 2 and len(intents) == 2
    assert all(e.intent in ("Take", "Eat") and isinstance(e.slots, dict) for e in intents)
    rejected = list(
        listen.listen(recognizer, listen.ArraySource([samples], 16000), grammar=INTENTS, grammar_threshold=1.0)
    )
    assert [e.type for e in rejected if e.type != "partial"] == ["final", "final"]
    assert all(e.intent is None for e in rejected)


def test_wake_phrase_gates_commands(recognizer, speech):
    samples, _ = composed(speech)
    chunks = [samples[i : i + 320] for i in range(0, len(samples), 320)]
    never = list(
        listen.listen(
            recognizer, listen.ArraySource(chunks, 16000), grammar=INTENTS, wake="take a kite", wake_threshold=1.0
        )
    )
    assert [e for e in never if e.type in ("final", "intent", "wake")] == []  # never woken, nothing else runs
    woken = list(
        listen.listen(
            recognizer,
            listen.ArraySource(chunks, 16000),
            grammar=INTENTS,
            wake="take a kite",
            wake_threshold=0.0,
            wake_window_s=5.0,
            grammar_threshold=0.0,
        )
    )
    kinds = [e.type for e in woken if e.type != "partial"]
    assert kinds[0] == "wake" and "intent" in kinds[1:]


def test_cli_listen_replays_a_wav_as_json_lines(bundle_dir, speech, tmp_path):
    samples, _ = composed(speech)
    path = write_pcm16_wav(tmp_path / "session.wav", samples, 16000)
    result = run_cli("listen", "--bundle", str(bundle_dir), "--wav", str(path), "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["type"] for e in events if e["type"] != "partial"] == ["final", "final"]
    assert set(events[0]) == {"type", "text", "intent", "slots", "confidence", "start", "end"}


def test_endpoint_config_and_vad_errors():
    with pytest.raises(ValueError, match="trailing_silence_s"):
        listen.EndpointConfig(trailing_silence_s=0)
    with pytest.raises(ValueError, match="onset"):
        _native.EnergyVad(onset_frames=0)
    vad = _native.EnergyVad()
    with pytest.raises(ValueError, match="NaN"):
        vad.accept(np.array([0.0, np.nan] * 100, dtype=np.float32))
    assert len(vad.accept(np.zeros(1600, dtype=np.float32))) == 10
