"""Serving: edge_speech over the network, for Home Assistant and other processes.

    edge-speech serve --wyoming tcp://0.0.0.0:10300 --grammar commands.yaml --wake "hey computer"

:mod:`edge_speech.serving.engine` is the protocol-independent part (the served models with hot
reload, a bounded worker pool, audio conversion, grammar matching of text);
:mod:`edge_speech.serving.wyoming_server` adapts it to the Wyoming protocol with the ``wyoming``
package (the ``serve`` extra: ``pip install 'edge-speech[serve]'``). No recognition logic lives
here: transcripts come from :class:`edge_speech.Recognizer`, wake phrases from
:func:`edge_speech.listen.listen`, voice activity from :mod:`edge_speech.vad`.
"""

from edge_speech.serving.engine import ServeConfig, ServeError, ServeLimits, SpeechService, WorkerPool

__all__ = ["ServeConfig", "ServeError", "ServeLimits", "SpeechService", "WorkerPool"]
