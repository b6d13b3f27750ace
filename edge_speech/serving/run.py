"""``edge-speech serve``: one :class:`SpeechService` (models, grammar, worker pool, hot reload,
metrics) behind a Wyoming server, an HTTP/WebSocket server, or both at once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, List, Optional
from urllib.parse import urlparse

from edge_speech.serving.engine import ServeConfig, SpeechService

__all__ = ["serve"]

LOG = logging.getLogger("edge_speech.serve")


def _wyoming_module():
    try:
        from edge_speech.serving import wyoming_server
    except ImportError as err:
        raise ImportError(
            f"serve --wyoming needs the wyoming package ({err}): pip install 'edge-speech[serve]'"
        ) from None
    return wyoming_server


def _http_module():
    try:
        from edge_speech.serving import http_server
    except ImportError as err:
        raise ImportError(f"serve --http needs aiohttp ({err}): pip install 'edge-speech[serve]'") from None
    return http_server


def serve(
    config: ServeConfig, wyoming: Optional[str] = None, http: Optional[str] = None, zeroconf: Optional[str] = None
) -> None:
    """Runs the servers in the foreground until interrupted. Addresses and packages are checked
    before the models load."""
    if not wyoming and not http:
        raise ValueError("serve needs --wyoming URI, --http ADDRESS, or both")
    if zeroconf and not wyoming:
        raise ValueError("--zeroconf announces the Wyoming server: give --wyoming tcp://HOST:PORT")
    wyoming_server = _wyoming_module() if wyoming else None
    http_server = _http_module() if http else None
    if wyoming_server is not None and wyoming:
        wyoming_server.check_uri(wyoming)
        parsed = urlparse(wyoming)
        if zeroconf and (parsed.scheme != "tcp" or parsed.port is None):
            raise ValueError("--zeroconf needs a tcp://HOST:PORT server URI")
    if http_server is not None and http:
        http_server.parse_address(http)
    service = SpeechService(config)

    async def main() -> None:
        servers: List[Any] = []
        try:
            if wyoming_server is not None and wyoming:
                server = wyoming_server.WyomingServer(service, wyoming)
                await server.start()
                servers.append(server)
                LOG.info("serving Wyoming at %s: models %s", wyoming, ", ".join(service.models))
                if zeroconf:
                    parsed = urlparse(wyoming)
                    host = parsed.hostname if parsed.hostname not in ("0.0.0.0", "", None) else None
                    await wyoming_server.register_zeroconf(zeroconf, int(parsed.port or 0), host)
            if http_server is not None and http:
                web = http_server.HttpServer(service, http)
                await web.start()
                servers.append(web)
            if service.grammar is not None:
                LOG.info("grammar: %s", service.grammar_source)
            if service.ab_split():
                LOG.info("A/B split of new sessions: %s", service.ab_split())
            await asyncio.Event().wait()  # until interrupted
        finally:
            for server in reversed(servers):
                await server.stop()
            service.close()

    asyncio.run(main())
