"""The HTTP client of tenants' MCP servers: every connection checked by a
:class:`~processgpt.tools.netguard.NetworkPolicy` at connect time (imported only where
``httpx2``, which comes with ``mcp``, is installed)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from processgpt.tools.netguard import ConnectionRefusedByPolicy, NetworkPolicy

log = logging.getLogger(__name__)


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """Resolves the host itself, refuses when the policy refuses any of its addresses, and
    connects to a checked address (TLS still verifies the host name the client asked for)."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._policy.resolve(host, port)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        except ConnectionRefusedByPolicy as refused:
            # What the name resolves to stays here: the tenant is told only that it was refused.
            log.warning(
                "connection refused by the network policy host=%s reason=%s", host, refused.reason
            )
            raise httpcore2.ConnectError(str(refused)) from None
        except OSError as exc:  # the name does not resolve
            raise httpcore2.ConnectError(str(exc)) from None
        failure: httpcore2.ConnectError | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore2.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class MessageTooLarge(httpx2.ReadError):
    """A response body went past the byte limit (the connection is given up)."""


class _LimitedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int, request: httpx2.Request):
        self._inner = inner
        self._max_bytes = max_bytes
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._max_bytes:
                raise MessageTooLarge(
                    f"the response is longer than {self._max_bytes} bytes", request=self._request
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class LimitedTransport(httpx2.AsyncBaseTransport):
    """Cuts off a response body longer than ``max_bytes``, except event streams (their
    events are bounded one by one by the MCP client, and the stream lives as long as the
    session)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        content_type = response.headers.get("content-type", "").lower()
        if not content_type.startswith("text/event-stream"):
            stream = response.stream
            assert isinstance(stream, httpx2.AsyncByteStream)
            response.stream = _LimitedStream(stream, self._max_bytes, request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def limited_client(
    *, headers: dict[str, str], timeout: httpx2.Timeout, max_bytes: int
) -> httpx2.AsyncClient:
    """An ordinary client (for the operator's servers) whose response bodies are bounded."""
    return httpx2.AsyncClient(
        transport=LimitedTransport(httpx2.AsyncHTTPTransport(), max_bytes),
        headers=headers,
        timeout=timeout,
    )


def guarded_client(
    policy: NetworkPolicy,
    *,
    headers: dict[str, str],
    timeout: httpx2.Timeout,
    max_message_bytes: int | None = None,
) -> httpx2.AsyncClient:
    """See :func:`processgpt.tools.netguard.guarded_http_client`."""
    limits = httpx2.Limits()
    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    # httpx2's transport takes no network backend: its pool is built again the way httpx2
    # builds it (same TLS context and limits), with the guarded backend.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return httpx2.AsyncClient(
        transport=(
            LimitedTransport(transport, max_message_bytes) if max_message_bytes else transport
        ),
        headers=headers,
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
    )
