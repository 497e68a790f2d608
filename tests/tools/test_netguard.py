"""The network guard of tenants' URLs: the address rules, the fast URL check, and the HTTP
client that checks every connection (real sockets on 127.0.0.1, real DNS via /etc/hosts)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import httpx2
import pytest

from processgpt.domain.errors import UrlNotAllowed
from processgpt.tools.netguard import NetworkPolicy, address_kind, guarded_http_client

TIMEOUT = httpx2.Timeout(5.0)

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "link-local",
    "100.64.0.1": "shared (CGNAT)",
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "::ffff:169.254.169.254": "link-local",
    "::127.0.0.1": "loopback",  # IPv4-compatible
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
    "64:ff9b::a9fe:a9fe": "link-local",  # NAT64 of 169.254.169.254
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"]


def test_internal_addresses_are_refused_and_public_ones_allowed() -> None:
    policy = NetworkPolicy()
    for text, kind in REFUSED.items():
        address = ipaddress.ip_address(text)
        assert address_kind(address) == kind, text
        refusal = policy.refusal(address)
        assert refusal is not None and kind in refusal, text
    for text in PUBLIC:
        assert policy.refusal(ipaddress.ip_address(text)) is None, text


def test_the_operator_opens_private_ranges_or_named_networks() -> None:
    private = NetworkPolicy.parse(True)
    for text in ("127.0.0.1", "10.0.0.1", "100.64.0.1", "fc00::1", "::ffff:192.168.0.1"):
        assert private.refusal(ipaddress.ip_address(text)) is None, text
    # link-local (cloud metadata), unspecified, multicast stay refused
    for text in ("169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1"):
        assert private.refusal(ipaddress.ip_address(text)) is not None, text

    listed = NetworkPolicy.parse(False, "10.1.0.0/16, 169.254.169.254 ,mcp.internal.")
    assert listed.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert listed.refusal(ipaddress.ip_address("::ffff:10.1.2.3")) is None
    assert listed.refusal(ipaddress.ip_address("169.254.169.254")) is None
    assert listed.refusal(ipaddress.ip_address("10.2.0.1")) is not None
    assert listed.host_allowed("MCP.internal") and not listed.host_allowed("other.internal")
    with pytest.raises(ValueError, match="not a CIDR"):
        NetworkPolicy.parse(False, "10.0.0.0/8, not a host!")


def test_urls_with_literal_internal_hosts_are_refused_at_once() -> None:
    policy = NetworkPolicy()
    for url in [
        "http://127.0.0.1:8000/mcp",
        "http://127.1/mcp",  # shorthand forms C resolvers accept
        "http://2130706433/mcp",
        "http://0x7f.0.0.1/mcp",
        "http://[::1]/mcp",
        "http://[::ffff:127.0.0.1]/mcp",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8000/mcp",
        "http://LOCALHOST./mcp",
        "http://metadata.localhost/",
        "http://user:pw@10.0.0.5/mcp",
        "ftp://example.com/mcp",
        "http:///mcp",
    ]:
        with pytest.raises(UrlNotAllowed):
            policy.check_url(url)
    for url in ["https://example.com/mcp", "http://mcp.example:8080/x?token=1"]:
        policy.check_url(url)  # names are checked again at connect time
    NetworkPolicy.parse(True).check_url("http://127.0.0.1:8000/mcp")
    NetworkPolicy.parse(False, "localhost").check_url("http://localhost:8000/mcp")


# -- the client: every connection checked --------------------------------------------------


class _Server:
    """A tiny HTTP server on 127.0.0.1 that counts requests; ``redirect`` answers 307."""

    def __init__(self, redirect: str | None = None) -> None:
        self.redirect = redirect
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> _Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.requests += 1
        if self.redirect:
            head = f"HTTP/1.1 307 Temporary Redirect\r\nlocation: {self.redirect}\r\n"
        else:
            head = "HTTP/1.1 200 OK\r\n"
        writer.write(f"{head}content-length: 2\r\nconnection: close\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def target() -> AsyncIterator[_Server]:
    server = await _Server().start()
    yield server
    await server.stop()


async def test_the_client_refuses_internal_addresses_when_it_connects(
    target: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    # "localhost" is a name: the URL check lets it pass, the connection is refused.
    for url in (f"http://localhost:{target.port}/", f"http://127.0.0.1:{target.port}/"):
        async with guarded_http_client(NetworkPolicy(), headers={}, timeout=TIMEOUT) as http:
            # the error (what a tenant may see) does not say what the name resolved to
            with pytest.raises(httpx2.ConnectError, match=r"^refused: an internal address$"):
                await http.get(url)
    assert target.requests == 0
    assert "host=localhost reason=127.0.0.1 is an internal address (loopback)" in caplog.text

    allowed = NetworkPolicy.parse(False, "127.0.0.1/32")
    async with guarded_http_client(allowed, headers={}, timeout=TIMEOUT) as http:
        assert (await http.get(f"http://localhost:{target.port}/")).text == "ok"
    assert target.requests == 1


async def test_each_redirect_hop_is_checked(target: _Server) -> None:
    hop = await _Server(redirect=f"http://127.0.0.1:{target.port}/").start()
    try:
        # the operator allows the host name "localhost", not the address 127.0.0.1
        policy = NetworkPolicy.parse(False, "localhost")
        async with guarded_http_client(policy, headers={}, timeout=TIMEOUT) as http:
            first = await http.get(f"http://localhost:{hop.port}/")
            assert first.status_code == 307  # the client does not follow by itself
            with pytest.raises(httpx2.ConnectError, match="refused: an internal address"):
                await http.get(f"http://localhost:{hop.port}/", follow_redirects=True)
        assert hop.requests == 2 and target.requests == 0
    finally:
        await hop.stop()


async def test_environment_proxies_are_not_used(
    target: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect for us, past the check: the guarded client ignores them."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{target.port}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{target.port}")
    async with guarded_http_client(NetworkPolicy(), headers={}, timeout=TIMEOUT) as http:
        with pytest.raises(httpx2.ConnectError):
            await http.get("http://169.254.169.254/latest/meta-data/")
    assert target.requests == 0
