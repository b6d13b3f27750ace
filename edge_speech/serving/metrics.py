"""Prometheus metrics of a server: requests, audio seconds, real-time factor, latency, grammar
rejections, refusals, queue depth and hot reloads, labelled by protocol and by the model and
bundle that served (so an A/B split shows per bundle). One registry per service, rendered by
the HTTP server's ``GET /metrics`` with prometheus_client's own exposition format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from edge_speech.recognizer import Transcript

__all__ = ["ServeMetrics"]

# seconds from the end of a request's audio to its result: tens of ms (commands) to seconds (long audio)
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
RTF_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def _prometheus():
    try:
        import prometheus_client
    except ImportError:
        raise ImportError(
            "edge-speech serve needs prometheus-client for its metrics: pip install 'edge-speech[serve]'"
        ) from None
    return prometheus_client


class ServeMetrics:
    """The server's counters. ``queue_depth``, ``busy_workers``, ``sessions`` and
    ``connections`` are read when scraped, from the callables given."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(
        self,
        queue_depth: Callable[[], float],
        busy_workers: Callable[[], float],
        sessions: Callable[[], float],
    ):
        prom = _prometheus()
        self.registry = prom.CollectorRegistry(auto_describe=True)
        served = ["protocol", "model", "bundle"]
        self.requests = prom.Counter(
            "edge_speech_requests",
            "Recognition requests answered, by outcome (ok, rejected: outside the grammar, or a refusal code)",
            served + ["outcome"],
            registry=self.registry,
        )
        self.audio_seconds = prom.Counter(
            "edge_speech_audio_seconds", "Seconds of audio recognised", served, registry=self.registry
        )
        self.rtf = prom.Histogram(
            "edge_speech_rtf",
            "Real-time factor of each recognition (processing time / audio time)",
            served,
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "edge_speech_latency_seconds",
            "Seconds from the end of a request's audio to its result",
            served,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejections = prom.Counter(
            "edge_speech_grammar_rejections",
            "Utterances rejected as outside the grammar",
            served,
            registry=self.registry,
        )
        self.refusals = prom.Counter(
            "edge_speech_refusals",
            "Requests refused before a result (server-busy, bad-format, too-large, ...)",
            ["protocol", "code"],
            registry=self.registry,
        )
        self.reloads = prom.Counter(
            "edge_speech_reloads", "Hot reloads of a served bundle", ["model", "outcome"], registry=self.registry
        )
        self.connections = prom.Gauge(
            "edge_speech_connections", "Open client connections", ["protocol"], registry=self.registry
        )
        prom.Gauge("edge_speech_queue_depth", "Jobs waiting for a worker", registry=self.registry).set_function(
            queue_depth
        )
        prom.Gauge("edge_speech_busy_workers", "Workers running a job", registry=self.registry).set_function(
            busy_workers
        )
        prom.Gauge("edge_speech_sessions", "Audio streams open", registry=self.registry).set_function(sessions)
        self._render = prom.generate_latest

    def result(
        self, protocol: str, model: str, bundle: str, result: "Transcript | None", latency_s: float, grammar: bool
    ) -> None:
        """One answered request (``result`` None: no audio came)."""
        labels = (protocol, model, bundle)
        rejected = grammar and result is not None and result.intent is None
        self.requests.labels(*labels, "rejected" if rejected else "ok").inc()
        if rejected:
            self.rejections.labels(*labels).inc()
        if result is not None:
            self.audio_seconds.labels(*labels).inc(result.duration_s)
            self.rtf.labels(*labels).observe(result.rtf)
        self.latency.labels(*labels).observe(latency_s)

    def utterance(self, protocol: str, model: str, bundle: str, rejected: bool) -> None:
        """One final result of a live stream (its audio is counted when the stream ends)."""
        self.requests.labels(protocol, model, bundle, "rejected" if rejected else "ok").inc()
        if rejected:
            self.rejections.labels(protocol, model, bundle).inc()

    def refusal(self, protocol: str, code: str) -> None:
        self.refusals.labels(protocol, code).inc()

    def reload(self, record: dict) -> None:
        self.reloads.labels(record["model"], "ok" if record["ok"] else "refused").inc()

    def render(self) -> bytes:
        return self._render(self.registry)
