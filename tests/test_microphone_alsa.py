"""The microphone path for real, without a microphone: PortAudio (pyaudio) captures from an ALSA
PCM of type `file` whose `infile` holds a recording; what arrives must be that recording, and
listen() over it must find its utterances."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from conftest import BURST_CHUNKS, FirstSeconds, composed

pytestmark = pytest.mark.alsa


def test_portaudio_capture_delivers_the_recording(file_microphone, speech):
    from edge_speech import listen

    samples = speech(16000)[:24000]
    device = file_microphone(samples)
    assert any(d["name"] == device for d in listen.list_devices())
    mic = listen.MicrophoneSource(device, sample_rate=16000, max_queued_chunks=BURST_CHUNKS)
    try:
        got = np.concatenate(list(FirstSeconds(mic, len(samples) / 16000)))
    finally:
        mic.close()
    expected = np.round(np.clip(samples, -1, 1) * 32767) / 32768
    np.testing.assert_allclose(got, expected, atol=1.5 / 32768)
    assert mic.overflows == 0
    mic.close()  # a second close of the real stream is harmless, and iteration is over
    assert list(mic) == []


def test_listen_over_portaudio_finds_both_utterances(file_microphone, recognizer, speech):
    from edge_speech import listen

    samples, bounds = composed(speech)
    device = file_microphone(samples)
    mic = listen.MicrophoneSource(device, sample_rate=16000, max_queued_chunks=BURST_CHUNKS)
    try:
        events = list(listen.listen(recognizer, FirstSeconds(mic, len(samples) / 16000)))
    finally:
        mic.close()
    finals = [e for e in events if e.type == "final"]
    assert len(finals) == 2
    for event, (start, end) in zip(finals, bounds):
        assert abs(event.start - start) < 0.45 and abs(event.end - end) < 0.45


def test_missing_device_and_unsupported_rate_are_named(file_microphone, speech):
    from edge_speech import listen

    file_microphone(speech(16000)[:1600])
    with pytest.raises(ValueError, match="capture device 'no-such-mic' not found; available: .*filemic"):
        listen.MicrophoneSource("no-such-mic")
    for rate in (1, 7_000_000):  # PortAudio refuses these
        with pytest.raises(
            ValueError, match=f"cannot open capture device 'filemic' at {rate} Hz: .*Invalid sample rate"
        ):
            listen.MicrophoneSource("filemic", sample_rate=rate)
    result = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "devices"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env=os.environ,
    )
    assert result.returncode == 0 and "filemic" in result.stdout
