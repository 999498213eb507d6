"""Where webhooks may go: public addresses only, unless the operator allows private ones.

A webhook is a request the server makes to a URL a tenant chose, and its delivery log shows
the answer's status: without a limit it would probe the server's own network. So, unless
`AFEP_WEBHOOK_PRIVATE_TARGETS` is set, a URL whose host is a loopback, private, link-local or
otherwise non-global address (or `localhost`) is refused when subscribing, and every address
a host name resolves to is checked again right before each attempt. The request then resolves
the name once more, so a DNS server that answers differently within that instant (rebinding)
is not stopped; put the API behind an egress proxy where that matters.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


def _internal(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _literal(host: str) -> Address | None:
    """The address a host literal names, in any spelling a resolver accepts (`127.1`, `0x7f000001`,
    `2130706433` are 127.0.0.1 to inet_aton); None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def check_url_host(url: str, *, allow_private: bool) -> None:
    """At subscription time: refuse `localhost` and non-global address literals (names are checked when sent)."""
    if allow_private:
        return
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    address = _literal(host)
    if host == "localhost" or host.endswith(".localhost") or (address is not None and _internal(address)):
        raise TargetRefused(
            f"webhook URLs may not point at {host!r}, a loopback, private or link-local address; use the "
            "receiver's public address (an operator can allow private targets with AFEP_WEBHOOK_PRIVATE_TARGETS)"
        )


def check_resolved(url: str, *, allow_private: bool) -> None:
    """Right before an attempt: every address the host resolves to must be global."""
    if allow_private:
        return
    check_url_host(url, allow_private=False)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise TargetRefused(f"the receiver's host {host!r} does not resolve: {error}") from None
    for info in infos:
        address = _literal(str(info[4][0]).split("%", 1)[0])
        if address is not None and _internal(address):
            raise TargetRefused(
                f"the receiver's host {host!r} resolves to {address}, a loopback, private or link-local address; "
                "webhooks go to public addresses only (AFEP_WEBHOOK_PRIVATE_TARGETS allows private ones)"
            )
