"""Serving the API with uvicorn inside our own event loop and signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


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
