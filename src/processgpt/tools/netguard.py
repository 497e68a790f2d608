"""Where a URL a tenant named may take a worker: the check against internal addresses.

A tenant's HTTP MCP server must be on a public address. Refused, unless the operator allows
them: loopback, private (RFC 1918, fc00::/7), shared (CGNAT 100.64/10), link-local
(169.254/16 with the cloud metadata service, fe80::/10), unspecified (0/8, ::), multicast,
reserved and other non-global ranges, and IPv6 forms that carry one of those IPv4 addresses
(IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64).

The operator allows (:class:`NetworkPolicy`): ``allow_private`` opens loopback, private,
shared and site-local ranges (never link-local, unspecified, multicast or reserved ones);
``networks`` (CIDRs) and ``hosts`` (names, whatever they resolve to) open exactly what they
name.

What tenants are told: the API's 422 about a URL the tenant typed says which kind of address
it names; a worker says only :data:`REFUSED_INTERNAL` (in the task's ``mcp_servers`` event),
because what a host name resolves to inside the worker's network is not the tenant's to learn;
the details (host, address, kind) go to the worker's log.

Two checks: :meth:`NetworkPolicy.check_url` refuses literal addresses and ``localhost`` names
at once (the API answers 422 before anything is stored); :func:`guarded_http_client` checks
at connect time, for every connection the client opens (redirects included): it resolves the
host, refuses if any of its addresses is refused, and connects to a checked address, so DNS
cannot change between the check and the connection. TLS still verifies the host name.
Proxies from the environment are not used by that client (a proxy would connect for us).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from processgpt.domain.errors import UrlNotAllowed

if TYPE_CHECKING:  # httpx2 comes with mcp (the ``llm`` extra)
    import httpx2

REFUSED_INTERNAL = "refused: an internal address"
"""All a tenant is told by a worker about a refused address."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
_PRIVATE_KINDS = frozenset({"loopback", "private", "shared (CGNAT)", "site-local"})
"""What ``allow_private`` opens."""


_KINDS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("unspecified", lambda a: a.is_unspecified or (a.version == 4 and a in _THIS_NETWORK)),
    ("loopback", lambda a: a.is_loopback),
    ("link-local", lambda a: a.is_link_local),
    ("multicast", lambda a: a.is_multicast),
    ("reserved", lambda a: a.is_reserved),
    ("shared (CGNAT)", lambda a: a.version == 4 and a in _SHARED),
    ("private", lambda a: a.is_private),
    ("site-local", lambda a: isinstance(a, ipaddress.IPv6Address) and a.is_site_local),
    ("non-global", lambda a: not a.is_global),
)
"""Internal kinds of address, the most telling first."""


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is internal (``"loopback"``, ``"link-local"``…), or None if public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_kind(embedded)
    return next((kind for kind, test in _KINDS if test(address)), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64) or (
        address in _IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an address if it is one, including the shorthand forms C resolvers accept
    (``127.1``, ``2130706433``, ``0x7f.0.0.1``)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class NetworkPolicy:
    """What tenants' URLs may reach (see the module docstring)."""

    allow_private: bool = False
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, allow_private: bool, allowed: str | Iterable[str] = "") -> NetworkPolicy:
        """``allowed``: comma-separated (or a list of) CIDRs, addresses and host names.
        Raises :class:`ValueError` naming an entry that is none of these."""
        items = allowed.split(",") if isinstance(allowed, str) else list(allowed)
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in items:
            item = raw.strip().lower().rstrip(".")
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", item):
                raise ValueError(f"{raw.strip()!r} is not a CIDR, an address or a host name")
            hosts.add(item)
        return cls(allow_private, tuple(networks), frozenset(hosts))

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused, or None when it is allowed."""
        candidates = [address]
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        if any(a in net for a in candidates for net in self.networks if a.version == net.version):
            return None
        kind = address_kind(address)
        if kind is None or (self.allow_private and kind in _PRIVATE_KINDS):
            return None
        return f"{address} is an internal address ({kind})"

    def host_allowed(self, host: str) -> bool:
        """Whether the operator allowed this host name whatever it resolves to."""
        return host.lower().rstrip(".") in self.hosts

    def check_url(self, url: str) -> None:
        """Refuse (:class:`UrlNotAllowed`) a URL that is not http(s) or whose host is a
        refused literal address or a ``localhost`` name. Host names are checked again, with
        their addresses, at connect time."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
        except ValueError:
            raise UrlNotAllowed("the url is not a valid URL", field="url") from None
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise UrlNotAllowed("the url must be an http(s) URL with a host", field="url")
        if self.host_allowed(host):
            return
        address = literal_address(host)
        if address is None:
            if host == "localhost" or host.endswith(".localhost"):
                address = ipaddress.IPv4Address("127.0.0.1")
            else:
                return
        reason = self.refusal(address)
        if reason is not None:
            raise InternalAddressRefused(
                f"the url's host is refused: {reason}; tenants' servers must be on public "
                "addresses unless the operator allows more (PROCESSGPT_MCP_ALLOW_PRIVATE_NETWORKS,"
                " PROCESSGPT_MCP_ALLOWED_NETWORKS)",
                field="url",
            )

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``: all of them checked. Raises
        :class:`ConnectionRefusedByPolicy` when any is refused (an answer that mixes public
        and internal addresses is refused whole) or :class:`OSError` when it does not
        resolve."""
        import anyio  # noqa: PLC0415 - the HTTP client's event loop library

        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} has no address")
        if self.host_allowed(host):
            return addresses
        for text in addresses:
            reason = self.refusal(ipaddress.ip_address(text.split("%", 1)[0]))
            if reason is not None:
                raise ConnectionRefusedByPolicy(host, reason)
        return addresses


class InternalAddressRefused(UrlNotAllowed):
    """A URL whose host is a refused address; the message says which kind (for the API's
    answer about a URL the tenant typed, and the worker's log)."""


class ConnectionRefusedByPolicy(OSError):
    """A connection the network policy refused. Its text is :data:`REFUSED_INTERNAL` only;
    ``host`` and ``reason`` (the address and its kind) are for the worker's log."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(REFUSED_INTERNAL)
        self.host = host
        self.reason = reason


def guarded_http_client(
    policy: NetworkPolicy,
    *,
    headers: dict[str, str],
    timeout: httpx2.Timeout,
    max_message_bytes: int | None = None,
) -> httpx2.AsyncClient:
    """An ``httpx2`` client whose every connection goes through ``policy`` (see the module
    docstring). Environment proxies are ignored; redirects are not followed by the client.
    ``max_message_bytes``: response bodies longer than this fail (event streams excepted)."""
    from processgpt.tools.guarded_http import guarded_client  # noqa: PLC0415 - needs httpx2

    return guarded_client(
        policy, headers=headers, timeout=timeout, max_message_bytes=max_message_bytes
    )
