"""Serving: edge_speech over the network, for Home Assistant and other processes.

    edge-speech serve --wyoming tcp://0.0.0.0:10300 --grammar commands.yaml --wake "hey computer"
    edge-speech serve --http 127.0.0.1:8080 --bundle ./model --ab en-small=90,./model=10

:mod:`edge_speech.serving.engine` is the protocol-independent part (the served models with hot
reload, a bounded worker pool, audio conversion, grammar matching of text);
:mod:`edge_speech.serving.wyoming_server` adapts it to the Wyoming protocol with the ``wyoming``
package, :mod:`edge_speech.serving.http_server` to HTTP and WebSocket with aiohttp (both in the
``serve`` extra: ``pip install 'edge-speech[serve]'``), :mod:`edge_speech.serving.metrics` counts
what both serve for Prometheus, and :mod:`edge_speech.serving.run` runs one service behind
either or both. No recognition logic lives
here: transcripts come from :class:`edge_speech.Recognizer`, wake phrases from
:func:`edge_speech.listen.listen`, voice activity from :mod:`edge_speech.vad`.
"""

from edge_speech.serving.engine import ServeConfig, ServeError, ServeLimits, SpeechService, WorkerPool

__all__ = ["ServeConfig", "ServeError", "ServeLimits", "SpeechService", "WorkerPool"]
