"""Who the client is: an API key's id, else the client's address.

The address is the socket's peer, unless that peer is one of `INFOU_TRUSTED_PROXIES` (CIDRs);
then the right-most `X-Forwarded-For` hop that is not a trusted proxy is the client (hops left
of it were written by the client itself and prove nothing). IPv6 clients are grouped by /64,
the block one subscriber usually holds, so rotating addresses inside it changes nothing.

API keys (`X-API-Key`) identify trusted server-side clients with their own quotas and budget
share (apikeys.py); an unknown or revoked key is refused, never treated as anonymous.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers

from infou_gateway.apikeys import ApiKey

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_CLIENT_PREFIX = 64


@dataclass(frozen=True)
class Client:
    """One client as quotas count it."""

    id: str  # "key:<key id>" or "ip:<address or /64>"
    ip: str  # the address the request came from (for the connection registry)
    api_key: ApiKey | None = None

    @property
    def hashed_id(self) -> str:
        """The id as it may leave the gateway (logs, other services): no address in it."""
        if self.api_key is not None:
            return self.id
        return "ip:" + hashlib.sha256(self.id.encode()).hexdigest()[:24]

    @property
    def budget_share(self) -> float:
        """The client's share of the daily budget (0: the deployment's default)."""
        return self.api_key.budget_share if self.api_key is not None else 0.0

    def quota(self, default: int, field: str) -> int:
        """A per-client limit: the API key's own when it sets one, else the default."""
        own = int(getattr(self.api_key, field, 0) or 0) if self.api_key is not None else 0
        return own or default


def keyed_client(anonymous: Client, key: ApiKey) -> Client:
    return Client(id=f"key:{key.id}", ip=anonymous.ip, api_key=key)


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The trusted proxies' networks; a bare address is its own /32 or /128."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    raw = raw.strip()
    if raw.startswith("[") and "]" in raw:  # [v6]:port
        raw = raw[1 : raw.index("]")]
    elif raw.count(":") == 1:  # v4:port
        raw = raw.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[IPNetwork]
) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(peer: str, forwarded_for: str, proxies: Sequence[IPNetwork]) -> str:
    """The client's address: the peer, or behind trusted proxies the right-most untrusted hop."""
    address = _address(peer)
    if address is None:
        return peer or "unknown"
    if not proxies or not _trusted(address, proxies):
        return str(address)
    for hop in reversed([h for h in forwarded_for.split(",") if h.strip()]):
        hop_address = _address(hop)
        if hop_address is None:
            # A garbled hop: nothing left of it can be trusted, and it names no one.
            return str(address)
        if not _trusted(hop_address, proxies):
            return str(hop_address)
        address = hop_address
    return str(address)


def group(address: str) -> str:
    """The quota key of an address: itself for IPv4, its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(parsed)


def anonymous_client(peer: str, headers: Headers, proxies: Sequence[IPNetwork]) -> Client:
    address = client_address(peer, headers.get("x-forwarded-for", ""), proxies)
    return Client(id=f"ip:{group(address)}", ip=address)


def peer_is_trusted(peer: str, proxies: Sequence[IPNetwork]) -> bool:
    """Whether the socket's peer is a trusted proxy (its X-Forwarded-* headers count)."""
    address = _address(peer)
    return address is not None and bool(proxies) and _trusted(address, proxies)
