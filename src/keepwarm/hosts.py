"""What a host name says about where traffic goes (shared by config checks and connectors)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (maybe in brackets), where plain text and
    bearer tokens never leave the machine."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        return name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
