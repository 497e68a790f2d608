"""Serving the API with uvicorn inside our own event loop and signal handling.

uvicorn's own lines carry request paths: the WebSocket handshake line (``"WebSocket
/v1/agent_ws/c/?api_key=…" [accepted]``, INFO) and, at DEBUG, the handshake request line and
headers logged by ``websockets`` through the same logger. :class:`ServerLogScrubber`, attached
to uvicorn's loggers, replaces query values and credential header values in those records
before any handler sees them (the handler :mod:`processgpt.logs` installs scrubs every line
again). uvicorn's access log is off (``access_log=False``); its logger gets the same filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "cookie", "set-cookie"}
)
UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access")


def path_without_query_values(path: str) -> str:
    """``/a/b?api_key=k&x=1`` → ``/a/b?api_key=***&x=***``: names kept, values gone."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    names = [item.partition("=")[0] for item in query.split("&") if item]
    return base + "?" + "&".join(f"{name}=***" for name in names)


class ServerLogScrubber(logging.Filter):
    """Removes query values and credential header values from uvicorn's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.args, tuple) or not record.args:
            return True
        args = [
            path_without_query_values(a) if isinstance(a, str) and a.startswith("/") else a
            for a in record.args
        ]
        if (
            record.msg in ("< %s: %s", "> %s: %s")
            and len(args) == 2
            and str(args[0]).lower() in _CREDENTIAL_HEADERS
        ):
            args[1] = "***"
        record.args = tuple(args)
        return True


_SCRUBBER = ServerLogScrubber()


def scrub_server_logs() -> None:
    """Attach the scrubber to uvicorn's loggers (once per process)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if _SCRUBBER not in logger.filters:
            logger.addFilter(_SCRUBBER)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals are the process's (see cli._signals_stop): the worker and the API stop
        # together, gracefully.
        yield

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # Chat clients hear GRACEFUL_DISCONNECT before uvicorn closes their sockets (the app's
        # lifespan shutdown runs only after that).
        services = getattr(getattr(self.config.app, "state", None), "services", None)
        if services is not None:
            await services.chat_sockets.shutdown()
        await super().shutdown(sockets)


class ApiServer:
    def __init__(self, app: Any, host: str, port: int, *, keep_alive: int = 75) -> None:
        scrub_server_logs()
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            # An idle connection is closed after keep_alive seconds. Clients and proxies must
            # close theirs first: a server that closes the connection as a client reuses it
            # makes that request fail (a POST is not retried). uvicorn's 5 s equals httpx's
            # own expiry, which makes that race likely, and is far below the 60 s of common
            # load balancers.
            timeout_keep_alive=keep_alive,
        )
        self._server = _Server(config)
        self._host = host

    async def serve(self) -> None:
        await self._server.serve()

    async def url(self) -> str:
        """The base URL, once the socket is bound (port 0 picks a free port)."""
        while not self._server.started:
            if self._server.should_exit:
                raise RuntimeError("the API server did not start")
            await asyncio.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        url = f"http://{self._host}:{port}"
        log.info("api listening url=%s", url)
        return url

    def stop(self) -> None:
        self._server.should_exit = True
