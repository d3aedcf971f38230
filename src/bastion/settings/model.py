"""The resolved, frozen settings every part of Bastion receives from the composition root."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bastion.core.catalog import Catalog, Tier

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential: its ``repr`` and ``str`` never show the value."""

    value: str

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 3.0
    first_byte_s: float = 60.0
    between_chunks_s: float = 60.0
    total_s: float = 600.0


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """One model server (or a pool behind one address) that deployments point at."""

    name: str
    kind: Literal["openai", "riva"]
    base_url: str
    """``http(s)://host[:port][/prefix]`` for OpenAI-compatible servers (``/v1/...`` is
    appended), ``grpc://host:port`` or ``grpcs://host:port`` for Riva."""
    api_key: Secret | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Secret] = field(default_factory=dict)
    """gRPC metadata sent to Riva (e.g. ``authorization`` for hosted NIM endpoints)."""
    tls_ca_file: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_connections: int = 512
    continuous_usage: bool = False
    """Ask for vLLM/SGLang ``continuous_usage_stats`` so a cut stream is billed exactly."""
    circuit_failures: int = 5
    circuit_open_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    plain_http_port: int | None = None
    """A second listener that only redirects to HTTPS (and revokes keys sent in clear)."""
    plain_http_host: str | None = None
    https_redirect_port: int | None = None
    """Port written into redirect URLs (default: ``port``; 443 behind a load balancer)."""
    exposed_key_policy: Literal["revoke", "warn"] = "revoke"
    trusted_proxies: tuple[Network, ...] = ()
    max_json_body_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 25 * 1024 * 1024
    max_tts_text_chars: int = 5000
    header_timeout_s: float = 10.0
    """A request's headers must arrive within this (slowloris): from the connection's first
    byte, or from the first byte of the next request on a kept-alive connection."""
    body_timeout_s: float = 120.0
    """A request's whole body must arrive within this once its headers are in."""
    keepalive_timeout_s: float = 75.0
    """An idle kept-alive connection is closed after this."""
    shutdown_grace_s: float = 30.0
    """On SIGTERM, open requests (streams included) may finish for this long; then they are
    cut (and billed by the client-gone rule)."""

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """The admin listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``; never on the
    public listener."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9090
    token: Secret | None = None
    """Bearer token the admin listener requires (mandatory off loopback)."""


@dataclass(frozen=True, slots=True)
class StorageSettings:
    database_url: str
    redis_url: str | None = None
    redis_prefix: str = "bastion:v1:"
    store_timeout_s: float = 0.5
    lease_ttl_s: float = 15.0
    """Redis: a live request's slot and hold lapse this long after its replica stops
    refreshing them (killed, partitioned)."""
    heartbeat_s: float = 1.0
    """Redis: how often each replica refreshes its live leases and checks Redis's epoch."""
    reserve_ahead: bool = True
    """Redis: when a request ends, reserve the key's next request on this replica (no round
    trip on its way in), where the key and account have ample room (docs/operations.md)."""
    auto_migrate: bool = True
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "NORMAL"
    """WAL with NORMAL: a commit survives a crash of the process (kill -9, OOM), and costs no
    fsync; FULL also survives power loss, at one fsync per group commit."""

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@dataclass(frozen=True, slots=True)
class BillingSettings:
    default_tier: str = "free"
    hold_ttl_s: float = 900.0
    """An open hold older than this belongs to a dead request and is swept."""
    settle_batch_max: int = 512
    input_bytes_per_token: int = 1
    """Holds assume at most one input token per this many body bytes (1 is a hard bound for
    byte-level BPE tokenizers; larger values hold less but may under-hold)."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    cache_ttl_s: float = 5.0
    """No cached key outlives this without being re-read from the store."""
    negative_cache_ttl_s: float = 1.0
    revalidate_interval_s: float = 2.0
    change_poll_interval_s: float = 0.25
    """How often the process polls the store's change feed (revocations by other processes)."""


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: Literal["json", "text"] = "json"
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """The web dashboard on the public listener (``/dashboard/``)."""

    enabled: bool = True
    signup: bool = True
    """Open self-service sign-up (phone-verified); off: only operators create accounts."""
    secret: Secret | None = None
    """HMAC key for CSRF tokens and one-time-code digests.  When unset, one is generated
    and kept in the database (shared by every replica); set it so that a database dump
    alone cannot check guesses of a pending code."""
    public_origin: str | None = None
    """``https://host[:port]`` the dashboard is reached at; unset: the request's own origin."""
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    min_password_length: int = 12
    signin_attempts_per_account: int = 10
    """Sign-in attempts per email address per 15 minutes."""
    signin_attempts_per_ip: int = 50
    """Sign-in attempts per client address per 15 minutes."""
    signups_per_ip: int = 10
    """Sign-ups per client address per hour."""


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    account_sid: str
    auth_token: Secret
    service_sid: str
    base_url: str = "https://verify.twilio.com"
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """Phone verification: who sends the codes and how much anyone may ask for."""

    provider: Literal["console", "twilio_verify"] = "console"
    allowed_countries: frozenset[str] = frozenset()
    """ISO 3166 regions whose numbers may sign up (empty: self-service sign-up is closed)."""
    sends_per_number: int = 3
    """Codes sent to one number per 10 minutes."""
    sends_per_ip: int = 10
    """Codes requested from one client address per hour."""
    daily_sends_per_country: int = 1000
    """Codes sent to one country per UTC day (SMS-pumping brake)."""
    checks_per_ip: int = 30
    """Code checks from one client address per hour (each code also allows only 5)."""
    max_accounts_per_phone: int = 1
    """Accounts whose phone may be verified with the same number."""
    twilio: TwilioSettings | None = None


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    from_address: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str
    secret: Secret
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Low-balance alerts, found and sent by a background task of every gateway process."""

    enabled: bool = False
    interval_s: float = 60.0
    email: SmtpSettings | None = None
    webhook: WebhookSettings | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    file: str
    data_dir: Path
    listener: ListenerSettings
    storage: StorageSettings
    billing: BillingSettings
    auth: AuthSettings
    log: LogSettings
    upstreams: Mapping[str, UpstreamSettings]
    tiers: Mapping[str, Tier]
    catalog: Catalog
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)

    @property
    def default_tier(self) -> Tier:
        return self.tiers[self.billing.default_tier]
