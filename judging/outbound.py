"""Where the judges' HTTP requests may go (issue 7).

A lead types a judge's base URL and the workers then fetch it, so without a guard the server would connect to any
address it can reach: cloud metadata (169.254.169.254), databases and admin services on the private network.
Every connection, each redirect hop included, resolves the host, checks every address it got, and connects to the
checked address itself (the name is kept for the Host header and TLS SNI), so DNS cannot answer differently between
the check and the connect. Policy, from settings:
- ``OUTBOUND_ALLOW_PRIVATE`` (on except in production): loopback and private addresses (RFC 1918, fc00::/7) are
  allowed: a model server on the same machine or network is the usual development setup;
- ``OUTBOUND_ALLOWED_NETWORKS``: addresses or CIDRs allowed whatever the above says (say, the team's vLLM at
  10.0.5.7 or 10.0.5.0/24 in production);
- link-local (169.254.0.0/16, fe80::/10: cloud metadata lives there), multicast, unspecified and reserved addresses
  are refused unless listed.
A refusal is final for the run (judging.client classifies it as fatal), and its message names the address.
"""

from __future__ import annotations

import ipaddress
import socket

import httpx2 as httpx  # the HTTP library the openai client is built on
from django.conf import settings


class OutboundRefused(httpx.ConnectError):
    """The address is not one the server may connect to."""


def _allowed_networks() -> list:
    return [ipaddress.ip_network(n.strip(), strict=False) for n in settings.OUTBOUND_ALLOWED_NETWORKS if n.strip()]


def check_address(ip: str) -> None:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in _allowed_networks()):
        return
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        raise OutboundRefused(f"refused to connect to {address}: a link-local, multicast or unspecified address")
    if address.is_loopback or address.is_private:
        if not settings.OUTBOUND_ALLOW_PRIVATE:
            raise OutboundRefused(
                f"refused to connect to {address}: a private or loopback address (allow it with "
                "OUTBOUND_ALLOWED_NETWORKS)"
            )
        return
    if address.is_reserved:
        raise OutboundRefused(f"refused to connect to {address}: a reserved address")


def resolve(host: str, port: int) -> str:
    """The first address of ``host`` after every address it resolves to has passed the check."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for ip in addresses:
        check_address(ip)
    return addresses[0]


class GuardedTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        ip = resolve(host, request.url.port or (443 if request.url.scheme == "https" else 80))
        if ip != host:
            request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=ip)  # the Host header still names the server
        return super().handle_request(request)


def guarded_http_client(**kwargs) -> httpx.Client:
    import openai

    return openai.DefaultHttpx2Client(transport=GuardedTransport(), **kwargs)
