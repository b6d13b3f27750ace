"""Backends shared between threads: one Recognizer (ONNX Runtime or LiteRT) used by many threads
at once gives every call the transcript a serial run gives, streams included; the LiteRT pool
stays within its bound; a batch with bad inputs finishes and reports each failure in its slot,
and the CLI does the same without a traceback."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_pcm16_wav

from edge_speech import Recognizer, audio, cli
from edge_speech.backends import InterpreterPool, create_backend
from edge_speech.bundle import Bundle
from edge_speech.recognizer import EMBEDDED_MODELS

DEFAULT_BUNDLE = EMBEDDED_MODELS["en-small"]
EXAMPLES = Path(__file__).resolve().parent.parent / "recipes" / "default_model" / "examples"
TIMER, LIGHT = EXAMPLES / "set_a_timer_for_ten_minutes.wav", EXAMPLES / "turn_on_the_kitchen_light.wav"
THREADS, CALLS = 8, 6


@pytest.fixture(scope="module")
def bundle():
    return Bundle.load(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def clips():
    """Four inputs with four different transcripts, so a result handed to the wrong thread shows."""
    out = []
    for path in (TIMER, LIGHT):
        samples, rate = audio.read_wav(path)
        out += [(samples, rate), (samples[: len(samples) * 2 // 3], rate)]
    return out


def _key(transcript):
    return transcript.text, transcript.score


def _hammer(work, threads=THREADS):
    """``work(thread_index)`` in ``threads`` threads released together."""
    start = threading.Barrier(threads)

    def run(i):
        start.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_one_recognizer_shared_by_eight_threads_equals_serial(bundle, clips, fmt):
    backend = create_backend(bundle, fmt, threads=1, max_interpreters=3)
    rec = Recognizer(bundle, backend)
    serial = [_key(rec.transcribe(clip, beam=1)) for clip in clips]
    assert len(set(serial)) == len(clips)

    def work(i):
        picks = [(i + k) % len(clips) for k in range(CALLS)]
        return [(pick, _key(rec.transcribe(clips[pick], beam=1))) for pick in picks]

    for results in _hammer(work):
        for pick, got in results:
            assert got == serial[pick]
    if fmt == "tflite":
        assert 1 <= backend.pool.size <= 3


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_one_stream_per_thread_equals_serial(bundle, clips, fmt):
    rec = Recognizer(bundle, create_backend(bundle, fmt, threads=1))

    def stream_text(clip):
        samples, rate = clip
        stream = rec.create_stream(beam=1)
        for start in range(0, len(samples), 1777):
            stream.accept_waveform(samples[start : start + 1777], rate)
        return _key(stream.finish())

    serial = [stream_text(clip) for clip in clips]
    results = _hammer(lambda i: [stream_text(clips[(i + k) % len(clips)]) for k in range(2)], threads=4)
    for i, got in enumerate(results):
        assert got == [serial[(i + k) % len(clips)] for k in range(2)]


def test_the_interpreter_pool_grows_to_its_limit_and_then_makes_callers_wait():
    made = []
    pool = InterpreterPool(lambda: made.append(object()) or made[-1], limit=2)
    held, release, third_got_one = threading.Event(), threading.Event(), threading.Event()

    def holder():
        with pool.borrow():
            held.set()
            release.wait(10)

    with pool.borrow() as first:  # the one made at construction, lent first
        assert first is pool.first
        thread = threading.Thread(target=holder)
        thread.start()
        assert held.wait(10) and pool.size == 2  # none idle: a second one was made

        def third():
            with pool.borrow():
                third_got_one.set()

        waiter = threading.Thread(target=third)
        waiter.start()
        assert not third_got_one.wait(0.3)  # at the limit: it waits rather than making a third
        release.set()
        assert third_got_one.wait(10)
        thread.join()
        waiter.join()
    assert pool.size == len(made) == 2


def test_an_interpreter_that_cannot_be_made_gives_its_slot_back():
    calls = []

    def create():
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no room for another arena")
        return object()

    pool = InterpreterPool(create, limit=2)
    with pool.borrow():
        with pytest.raises(MemoryError), pool.borrow():
            pass
        assert pool.size == 1
        with pool.borrow():  # the failed reservation was released: the next caller makes one
            assert pool.size == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, 10**6])
def test_max_interpreters_is_checked(bundle, bad):
    with pytest.raises(ValueError, match="max_interpreters"):
        create_backend(bundle, "tflite", threads=1, max_interpreters=bad)


class _FailingOn:
    """A backend that raises ``error`` for inputs of ``frames`` frames and runs ``inner`` otherwise."""

    def __init__(self, inner, frames, error):
        self.inner, self.frames, self.error = inner, frames, error
        self.name, self.providers, self.fixed_window = inner.name, inner.providers, inner.fixed_window

    def run(self, features):
        if len(features) == self.frames:
            raise self.error
        return self.inner.run(features)


@pytest.fixture(scope="module")
def tflite_recognizer(bundle):
    return Recognizer(bundle, create_backend(bundle, "tflite", threads=1))


def test_a_batch_reports_each_failure_in_its_slot_and_finishes(bundle, tflite_recognizer, clips, tmp_path):
    samples, rate = clips[0]
    odd = (samples[:12345], rate)  # the input the backend fails on
    frames = len(tflite_recognizer._front_end(audio.load_audio(odd, 16000)))
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not a wav file at all")
    for error in (RuntimeError("There is at least 1 reference to internal data"), MemoryError()):
        rec = Recognizer(bundle, _FailingOn(tflite_recognizer.backend, frames, error))
        sources = [TIMER, garbage, odd, tmp_path / "missing.wav", LIGHT]
        progress: list = []
        results = rec.transcribe_many(
            sources, workers=3, beam=1, progress=lambda d, t, seen=progress: seen.append((d, t))
        )
        assert results[0].text == tflite_recognizer.transcribe(TIMER, beam=1).text
        assert results[4].text == tflite_recognizer.transcribe(LIGHT, beam=1).text
        assert isinstance(results[1], ValueError) and "RIFF" in str(results[1])
        assert results[2] is error
        assert isinstance(results[3], OSError)
        assert sorted(progress) == [(d, 5) for d in range(1, 6)]


def test_a_batch_stops_on_keyboard_interrupt(bundle, tflite_recognizer, clips):
    samples, rate = clips[0]
    frames = len(tflite_recognizer._front_end(samples))
    rec = Recognizer(bundle, _FailingOn(tflite_recognizer.backend, frames, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        rec.transcribe_many([clips[1], clips[0], clips[2]], workers=1, beam=1)


def test_cli_transcribes_the_same_files_many_times_over_with_tflite():
    result = run_cli("transcribe", "--backend", "tflite", "--jobs", "4", "--beam", "1", *[str(TIMER), str(LIGHT)] * 2)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[0] == lines[2] and lines[1] == lines[3] and lines[0] != lines[1]
    assert "Traceback" not in result.stderr


def test_cli_reports_each_failed_file_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    silence = write_pcm16_wav(tmp_path / "silence.wav", np.zeros(8000, dtype=np.float32), 16000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF")
    transcribe = Recognizer.transcribe

    def flaky(self, source, **options):
        if Path(source) == silence:
            raise RuntimeError("the interpreter is busy")
        return transcribe(self, source, **options)

    monkeypatch.setattr(Recognizer, "transcribe", flaky)
    code = cli.main(["transcribe", "--backend", "tflite", "--beam", "1", str(TIMER), str(garbage), str(silence)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith(f"{TIMER}\t") and len(out.splitlines()) == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"edge-speech: {garbage}: ") and "RIFF" in lines[0]
    assert lines[1] == f"edge-speech: {silence}: RuntimeError: the interpreter is busy"
    assert "Traceback" not in err
