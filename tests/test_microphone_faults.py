"""Capture devices misbehaving, through a stand-in for pyaudio: a device that goes away
mid-stream, a stream closed twice or while full, no or unknown devices and unsupported rates all
end in a clear error naming the device, or a clean stop; nothing hangs."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from edge_speech import cli, listen

RATE = 16000


class FakeStream:
    """Calls the callback from a thread like PortAudio, `chunks` times, then fails as `failure` says:
    'host-error' (PortAudio calls raise OSError), 'stopped' (the stream turns inactive), 'stalled'
    (active, but no more audio) or None (keeps going with silence until stopped)."""

    def __init__(self, callback, frames: int, chunks: int, failure):
        self.callback, self.frames, self.chunks, self.failure = callback, frames, chunks, failure
        self.gone = threading.Event()
        self.stopped = threading.Event()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        tone = (3000 * np.sin(np.arange(self.frames) * 0.05)).astype("<i2").tobytes()
        delivered = 0
        while not self.stopped.is_set():
            if self.failure is None or delivered < self.chunks:
                self.callback(tone, self.frames, {}, 0)
                delivered += 1
            elif self.failure != "stalled":
                self.gone.set()
                return
            time.sleep(0.001)

    def is_active(self):
        if self.closed:
            raise OSError(-9988, "Stream closed")
        if self.gone.is_set() and self.failure == "host-error":
            raise OSError(-9999, "Unanticipated host error")
        return not self.gone.is_set() and not self.stopped.is_set()

    def stop_stream(self):
        if self.closed:
            raise OSError(-9988, "Stream closed")
        self.stopped.set()
        if self.gone.is_set() and self.failure == "host-error":
            raise OSError(-9999, "Unanticipated host error")

    def close(self):
        self.stopped.set()
        self.closed = True


def fake_pyaudio(
    devices=({"name": "USB Mic", "maxInputChannels": 1, "defaultSampleRate": 48000.0},),
    rates=(16000, 48000),
    chunks=25,
    failure=None,
):
    """A pyaudio module with the given input devices; returns (module, record of what happened)."""
    record = {"streams": [], "created": 0, "terminated": 0}
    infos = [dict(d, index=i) for i, d in enumerate(devices)]

    class PyAudio:
        def __init__(self):
            record["created"] += 1

        def get_device_count(self):
            return len(infos)

        def get_device_info_by_index(self, i):
            return infos[i]

        def get_default_input_device_info(self):
            if not infos:
                raise OSError(-9996, "Invalid input device (no default output device)")
            return infos[0]

        def open(self, format, channels, rate, input, input_device_index, frames_per_buffer, stream_callback):
            if rate not in rates:
                raise ValueError("[Errno -9997] Invalid sample rate")
            stream = FakeStream(stream_callback, frames_per_buffer, chunks, failure)
            record["streams"].append(stream)
            return stream

        def terminate(self):
            record["terminated"] += 1

    module = types.ModuleType("pyaudio")
    module.PyAudio, module.paInt16, module.paContinue = PyAudio, 8, 0
    return module, record


def install(monkeypatch, **kwargs):
    module, record = fake_pyaudio(**kwargs)
    monkeypatch.setitem(sys.modules, "pyaudio", module)
    return record


@pytest.mark.parametrize(
    "failure, why",
    [
        ("host-error", r"PortAudio: \[Errno -9999\] Unanticipated host error"),
        ("stopped", "the stream stopped"),
        ("stalled", "no audio for"),
    ],
)
def test_a_device_that_goes_away_mid_stream_raises_naming_it(monkeypatch, failure, why):
    record = install(monkeypatch, failure=failure, chunks=25)
    mic = listen.MicrophoneSource("usb", sample_rate=RATE, stall_timeout_s=0.4, max_queued_chunks=1000)
    got, started = [], time.monotonic()
    with pytest.raises(
        listen.DeviceLost,
        match=f"capture device 'USB Mic' stopped delivering audio after 0.50 s \\({why}.*was it unplugged",
    ):
        for chunk in mic:
            got.append(chunk)
    assert time.monotonic() - started < 3.0  # no hang
    assert sum(map(len, got)) == 25 * 320
    mic.close()
    mic.close()  # twice, after the device is gone: no error
    assert record["terminated"] == record["created"] == 2  # list_devices' PyAudio and the stream's, once each
    assert list(mic) == []


def test_listen_and_the_cli_report_the_lost_device(monkeypatch, capsys):
    install(monkeypatch, failure="host-error", chunks=10)
    assert cli.main(["listen", "--device", "USB"]) == 2
    err = capsys.readouterr().err
    assert "edge-speech: error: capture device 'USB Mic' stopped delivering audio" in err, err


def test_closing_twice_or_with_a_full_queue_is_clean(monkeypatch):
    record = install(monkeypatch, failure=None)
    mic = listen.MicrophoneSource(sample_rate=RATE, max_queued_chunks=5)
    time.sleep(0.3)  # nobody reads: the queue fills and the oldest chunks are dropped
    assert mic.overflows > 0
    started = time.monotonic()
    mic.close()
    mic.close()
    assert time.monotonic() - started < 1.0
    assert record["streams"][0].closed and record["terminated"] == record["created"] == 2
    assert list(mic) == []


def test_close_from_another_thread_ends_iteration_promptly(monkeypatch):
    install(monkeypatch, failure="stalled", chunks=3)
    mic = listen.MicrophoneSource(sample_rate=RATE, stall_timeout_s=30.0)
    threading.Timer(0.3, mic.close).start()
    started = time.monotonic()
    assert sum(map(len, mic)) == 3 * 320  # ends without DeviceLost: closing is not a failure
    assert time.monotonic() - started < 2.0


def test_missing_devices_and_unsupported_rates_are_named(monkeypatch):
    install(monkeypatch, devices=())
    with pytest.raises(ValueError, match="no capture device found"):
        listen.MicrophoneSource()
    record = install(monkeypatch)
    with pytest.raises(ValueError, match=r"capture device 3 not found; available: 0: USB Mic"):
        listen.MicrophoneSource(3)
    with pytest.raises(ValueError, match=r"cannot open capture device 'USB Mic' at 12345 Hz: .*Invalid sample rate"):
        listen.MicrophoneSource("usb", sample_rate=12345)
    assert record["streams"] == [] and record["terminated"] == record["created"]  # nothing left open
    for bad in (0, -16000, 16000.5, True):
        with pytest.raises(ValueError, match="sample_rate must be a positive int"):
            listen.MicrophoneSource("usb", sample_rate=bad)
    mic = listen.MicrophoneSource("usb")
    assert mic.sample_rate == 48000  # the device's own rate by default
    mic.close()
