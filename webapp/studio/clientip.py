"""The client's address, as every limit counts it (login lockouts, API throttles).

`REMOTE_ADDR` unless the request came through a proxy listed in `TRUSTED_PROXIES` (addresses or
networks, empty by default): then the right-most `X-Forwarded-For` entry that is not itself a
trusted proxy. A client-sent `X-Forwarded-For` on a direct connection is ignored, so forging the
header cannot reset a limit.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request) -> str:
    meta = getattr(request, "META", {})
    remote = meta.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if not networks or not _trusted(remote, networks):
        return remote
    chain = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for address in reversed(chain):
        if not _trusted(address, networks):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return remote   # a malformed entry: count the proxy, never the client's text
    return remote
