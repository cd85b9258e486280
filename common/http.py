"""Request helpers shared by pages and APIs."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """The client's address. X-Forwarded-For is trusted only for the configured number of proxies in front of us,
    counted from the right (the entries a client can forge are on the left)."""
    candidates = []
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            candidates.append(forwarded[-hops])
    candidates.append(request.META.get("REMOTE_ADDR", ""))
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:400]
