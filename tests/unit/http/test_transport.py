"""HTTPS-only rules: loopback, trusted proxies, and when the public listener needs a guard."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from bastion.http.transport import https_guard, is_loopback, is_trusted
from bastion.settings import ListenerSettings

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        ("10.1.2.3", True),
        ("fd00::1", True),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        (None, False),
        ("", False),
        ("not-an-ip", False),
    ],
)
def test_is_trusted(peer: str | None, trusted: bool) -> None:
    assert is_trusted(peer, PROXIES) is trusted


def test_which_listeners_need_the_guard() -> None:
    assert https_guard(ListenerSettings(host="127.0.0.1")) is None  # local development
    assert (
        https_guard(ListenerSettings(host="0.0.0.0", tls_cert=Path("c"), tls_key=Path("k"))) is None
    )
    assert https_guard(ListenerSettings(host="0.0.0.0", trusted_proxies=PROXIES)) is not None
    # a loopback listener behind a proxy on the same host is guarded too
    assert https_guard(ListenerSettings(host="127.0.0.1", trusted_proxies=PROXIES)) is not None
