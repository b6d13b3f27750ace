"""Independent streams run in parallel threads with results identical to a serial run; one
stream shared by two threads at once gets an error instead of a data race."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from conftest import noise

from edge_speech import _native, features


def test_parallel_compute_equals_serial():
    signals = [noise(16000, seconds=3.0, seed=s) for s in range(8)]
    config = features.FeatureConfig.preset("kaldi-mfcc")
    serial = [features.compute(x, 16000, config) for x in signals]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda x: features.compute(x, 16000, config), signals))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_parallel_streams_equal_serial():
    config = features.FeatureConfig.preset("librosa-mel")
    signals = [noise(16000, seconds=2.0, seed=10 + s) for s in range(4)]

    def run(x):
        stream = features.FeatureStream(config, 16000)
        for start in range(0, len(x), 333):
            stream.accept(x[start : start + 333])
        stream.finish()
        return stream.read()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, signals))
    for x, got in zip(signals, results):
        np.testing.assert_array_equal(got, features.compute(x, 16000, config))


def test_one_frontend_shared_by_two_threads_raises_instead_of_racing():
    config = features.FeatureConfig.preset("kaldi-fbank")
    frontend = _native.FrontEnd(config._native(16000))
    big = noise(16000, seconds=120.0)
    errors, started = [], threading.Event()

    def hammer():
        started.set()
        for _ in range(3):
            try:
                frontend.reset()
                frontend.accept(big)
            except RuntimeError as err:
                errors.append(str(err))

    thread = threading.Thread(target=hammer)
    thread.start()
    started.wait()
    for _ in range(200):
        try:
            frontend.reset()
            frontend.accept(big[:16000])
        except RuntimeError as err:
            errors.append(str(err))
    thread.join()
    assert errors and all("another thread" in e for e in errors)
