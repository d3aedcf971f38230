"""Read the TOML configuration once, resolve ``${VAR}`` references, validate everything.

This module and the CLI entry point are the only readers of the process environment.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers

from bastion.core.catalog import (
    CATEGORY_ENDPOINTS,
    Catalog,
    Deployment,
    Endpoint,
    Model,
    Price,
    Tier,
)
from bastion.core.money import Picos, parse_price
from bastion.errors import ConfigError
from bastion.settings.model import (
    AdminSettings,
    AlertSettings,
    AuthSettings,
    BillingSettings,
    DashboardSettings,
    ListenerSettings,
    LogSettings,
    Secret,
    Settings,
    SmsSettings,
    SmtpSettings,
    StorageSettings,
    Timeouts,
    TwilioSettings,
    UpstreamSettings,
    WebhookSettings,
)
from bastion.settings.reader import Table

CONFIG_ENV = "BASTION_CONFIG"
DATA_DIR_ENV = "BASTION_DATA_DIR"
DEFAULT_CONFIG_NAME = "bastion.toml"


def config_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``BASTION_CONFIG``, then ``./bastion.toml``."""
    chosen = explicit or environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen)
    local = Path(DEFAULT_CONFIG_NAME)
    if local.exists():
        return local
    raise ConfigError(
        "no configuration file: pass --config FILE or set BASTION_CONFIG "
        "(examples/bastion.toml is a complete example)"
    )


def load_settings(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    data_dir: str | None = None,
) -> Settings:
    env: Mapping[str, str] = os.environ if environ is None else environ
    file = config_path(str(path) if path else None, env)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_settings(document, str(file), env, data_dir=data_dir)


def parse_settings(
    document: Mapping[str, Any],
    file: str,
    environ: Mapping[str, str],
    *,
    data_dir: str | None = None,
) -> Settings:
    root = Table(document, "", file, environ)
    storage_table = root.table("storage")
    resolved_dir = Path(
        data_dir or environ.get(DATA_DIR_ENV) or storage_table.text("data_dir", ".bastion")
    )
    storage = _storage(storage_table, resolved_dir)
    listener = _listener(root.table("listener"))
    billing = _billing(root.table("billing"))
    auth = _auth(root.table("auth"))
    log = _log(root.table("log"))
    upstreams = {name: _upstream(name, t) for name, t in root.tables("upstreams").items()}
    tiers = {name: _tier(name, t) for name, t in root.tables("tiers").items()}
    models = [_model(name, t, upstreams) for name, t in root.tables("models").items()]
    dashboard = _dashboard(root.table("dashboard"))
    sms = _sms(root.table("sms"))
    alerts = _alerts(root.table("alerts"))
    admin = _admin(root.table("admin"))
    root.done()

    if not tiers:
        raise root.error("tiers", "at least one tier is required")
    if billing.default_tier not in tiers:
        raise root.error(
            "billing.default_tier", f"names tier {billing.default_tier!r}, which is not defined"
        )
    try:
        catalog = Catalog(models)
    except ValueError as exc:
        raise root.error("models", str(exc)) from None
    for tier in tiers.values():
        for model_id in sorted(tier.models or ()):
            if catalog.get(model_id) is None:
                raise root.error(f"tiers.{tier.name}.models", f"unknown model {model_id!r}")
    if billing.hold_ttl_s <= max((u.timeouts.total_s for u in upstreams.values()), default=0.0):
        raise root.error(
            "billing.hold_ttl_s",
            "must be longer than every upstream's total timeout, or live requests would lose "
            "their holds",
        )
    return Settings(
        file=file,
        data_dir=resolved_dir,
        listener=listener,
        storage=storage,
        billing=billing,
        auth=auth,
        log=log,
        upstreams=upstreams,
        tiers=tiers,
        catalog=catalog,
        dashboard=dashboard,
        sms=sms,
        alerts=alerts,
        admin=admin,
    )


def _optional_path(table: Table, key: str) -> Path | None:
    text = table.text(key, "")
    return Path(text) if text else None


def _storage(t: Table, data_dir: Path) -> StorageSettings:
    url = t.text("database_url", "") or f"sqlite:///{data_dir / 'bastion.db'}"
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+asyncpg://", "postgres://")):
        raise t.error("database_url", "must be a sqlite:/// or postgresql:// URL")
    redis_url = t.text("redis_url", "") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise t.error("redis_url", "must be a redis://, rediss:// or unix:// URL")
    if settings_lease_too_short(t):
        raise t.error("heartbeat_s", "must be at most a third of lease_ttl_s")
    if not url.startswith("sqlite") and not redis_url:
        raise t.error(
            "redis_url",
            "is required with PostgreSQL: limits and holds must be shared by every replica",
        )
    settings = StorageSettings(
        database_url=url,
        redis_url=redis_url,
        redis_prefix=t.text("redis_prefix", "bastion:v1:"),
        store_timeout_s=t.number("store_timeout_s", 0.5, min=0.01),
        lease_ttl_s=t.number("lease_ttl_s", 15.0, min=0.5),
        heartbeat_s=t.number("heartbeat_s", 1.0, min=0.05),
        reserve_ahead=t.flag("reserve_ahead", True),
        auto_migrate=t.flag("auto_migrate", True),
        sqlite_synchronous=t.text("sqlite_synchronous", "NORMAL", choices=("FULL", "NORMAL")),
    )
    t.done()
    return settings


def settings_lease_too_short(t: Table) -> bool:
    lease = t.number("lease_ttl_s", 15.0, min=0.5)
    return bool(t.number("heartbeat_s", 1.0, min=0.05) * 3 > lease)


def _listener(t: Table) -> ListenerSettings:
    plain_port = t.integer("plain_http_port", 0, min=0)
    redirect_port = t.integer("https_redirect_port", 0, min=0)
    settings = ListenerSettings(
        host=t.text("host", "127.0.0.1"),
        port=t.integer("port", 8080, min=0),
        tls_cert=_optional_path(t, "tls_cert"),
        tls_key=_optional_path(t, "tls_key"),
        plain_http_port=plain_port or None,
        plain_http_host=t.text("plain_http_host", "") or None,
        https_redirect_port=redirect_port or None,
        exposed_key_policy=t.text("exposed_key_policy", "revoke", choices=("revoke", "warn")),
        trusted_proxies=t.networks("trusted_proxies"),
        max_json_body_bytes=t.integer("max_json_body_bytes", 16 * 1024 * 1024, min=1024),
        max_upload_bytes=t.integer("max_upload_bytes", 25 * 1024 * 1024, min=1024),
        max_tts_text_chars=t.integer("max_tts_text_chars", 5000, min=1),
        header_timeout_s=t.number("header_timeout_s", 10.0, min=0.05),
        body_timeout_s=t.number("body_timeout_s", 120.0, min=0.05),
        keepalive_timeout_s=t.number("keepalive_timeout_s", 75.0, min=0.05),
        shutdown_grace_s=t.number("shutdown_grace_s", 30.0, min=0.0),
    )
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise t.error("tls_key", "tls_cert and tls_key must be given together")
    for key in ("tls_cert", "tls_key"):
        path = getattr(settings, key)
        if path is not None and not path.is_file():
            raise t.error(key, f"file {str(path)!r} does not exist")
    t.done()
    return settings


def _billing(t: Table) -> BillingSettings:
    settings = BillingSettings(
        default_tier=t.text("default_tier", "free"),
        hold_ttl_s=t.number("hold_ttl_s", 900.0, min=1.0),
        settle_batch_max=t.integer("settle_batch_max", 512, min=1),
        input_bytes_per_token=t.integer("input_bytes_per_token", 1, min=1),
    )
    t.done()
    return settings


def _auth(t: Table) -> AuthSettings:
    settings = AuthSettings(
        cache_ttl_s=t.number("cache_ttl_s", 5.0, min=0.0),
        negative_cache_ttl_s=t.number("negative_cache_ttl_s", 1.0, min=0.0),
        revalidate_interval_s=t.number("revalidate_interval_s", 2.0, min=0.05),
        change_poll_interval_s=t.number("change_poll_interval_s", 0.25, min=0.01),
    )
    if settings.revalidate_interval_s > settings.cache_ttl_s > 0:
        raise t.error("revalidate_interval_s", "must not be longer than cache_ttl_s")
    t.done()
    return settings


def _log(t: Table) -> LogSettings:
    settings = LogSettings(
        level=t.text("level", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
        format=t.text("format", "json", choices=("json", "text")),
        access_log=t.flag("access_log", True),
    )
    t.done()
    return settings


def _upstream(name: str, t: Table) -> UpstreamSettings:
    base_url = t.text("base_url")
    scheme = urlsplit(base_url).scheme
    kind: Literal["openai", "riva"]
    if scheme in ("http", "https"):
        kind = "openai"
    elif scheme in ("grpc", "grpcs"):
        kind = "riva"
    else:
        raise t.error("base_url", "must start with http://, https://, grpc:// or grpcs://")
    if not urlsplit(base_url).hostname:
        raise t.error("base_url", "has no host")
    api_key = t.text("api_key", "")
    timeouts_table = t.table("timeouts")
    timeouts = Timeouts(
        connect_s=timeouts_table.number("connect_s", 3.0, min=0.001),
        first_byte_s=timeouts_table.number("first_byte_s", 60.0, min=0.001),
        between_chunks_s=timeouts_table.number("between_chunks_s", 60.0, min=0.001),
        total_s=timeouts_table.number("total_s", 600.0, min=0.001),
    )
    timeouts_table.done()
    metadata_table = t.table("metadata")
    settings = UpstreamSettings(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key=Secret(api_key) if api_key else None,
        headers=t.string_map("headers"),
        metadata={k: Secret(metadata_table.text(k)) for k in metadata_table.names()},
        tls_ca_file=_optional_path(t, "tls_ca_file"),
        timeouts=timeouts,
        max_connections=t.integer("max_connections", 512, min=1),
        continuous_usage=t.flag("continuous_usage", False),
        circuit_failures=t.integer("circuit_failures", 5, min=1),
        circuit_open_s=t.number("circuit_open_s", 10.0, min=0.1),
    )
    metadata_table.done()
    t.done()
    return settings


def _tier(name: str, t: Table) -> Tier:
    models = t.str_list("models", [])
    tier = Tier(
        name=name,
        requests_per_minute=t.integer("requests_per_minute", min=1),
        concurrent_requests=t.integer("concurrent_requests", min=1),
        models=None if not models or models == ["*"] else frozenset(models),
    )
    t.done()
    return tier


_PRICE_KEYS: Mapping[str, tuple[str, ...]] = {
    "chat": ("input_per_mtok", "output_per_mtok"),
    "embeddings": ("input_per_mtok",),
    "images": ("per_image", "per_image_variant"),
    "transcriptions": ("per_audio_second", "min_audio_seconds"),
    "tts": ("per_mchar",),
}


def _price(category: str, t: Table) -> Price:
    allowed = _PRICE_KEYS[category]
    for key in t.names():
        if key not in allowed:
            raise t.error(key, f"is not a price of a {category} model (use {', '.join(allowed)})")

    def price(key: str, per_units: int = 1) -> Picos:
        return t.converted(key, lambda v: parse_price(v, per_units=per_units), Picos(0))

    variants_table = t.table("per_image_variant")
    variants = {
        k: variants_table.converted(k, lambda v: parse_price(v)) for k in variants_table.names()
    }
    result = Price(
        input_token=price("input_per_mtok", 1_000_000),
        output_token=price("output_per_mtok", 1_000_000),
        image=price("per_image"),
        image_variants=variants,
        audio_second=price("per_audio_second"),
        min_audio_seconds=t.integer("min_audio_seconds", 0, min=0),
        character=price("per_mchar", 1_000_000),
    )
    t.done()
    return result


def _model(model_id: str, t: Table, upstreams: Mapping[str, UpstreamSettings]) -> Model:
    category = t.text("category", choices=tuple(CATEGORY_ENDPOINTS))
    possible = CATEGORY_ENDPOINTS[category]
    endpoint_names = t.str_list("endpoints", sorted(possible))
    endpoints = set()
    for name in endpoint_names:
        try:
            endpoint = Endpoint(name)
        except ValueError:
            raise t.error("endpoints", f"unknown endpoint {name!r}") from None
        if endpoint not in possible:
            raise t.error("endpoints", f"a {category} model cannot serve {name!r}")
        endpoints.add(endpoint)
    if not endpoints:
        raise t.error("endpoints", "must list at least one endpoint")
    expected_kind = "riva" if category == "tts" else "openai"
    deployments = []
    for d in t.table_list("deployments"):
        upstream = d.text("upstream")
        if upstream not in upstreams:
            raise d.error("upstream", f"names upstream {upstream!r}, which is not defined")
        if upstreams[upstream].kind != expected_kind:
            raise d.error("upstream", f"a {category} model needs a {expected_kind} upstream")
        deployments.append(
            Deployment(
                upstream=upstream,
                upstream_model=d.text("model", model_id),
                weight=d.integer("weight", 1, min=0),
            )
        )
        d.done()
    if not deployments:
        raise t.error("deployments", "at least one deployment is required")
    if not any(d.weight for d in deployments):
        raise t.error("deployments", "at least one deployment needs a weight above 0")
    language = t.text("language_code", "") or None
    if category == "tts" and language is None:
        raise t.error("language_code", "is required for a tts model")
    if category != "tts" and language is not None:
        raise t.error("language_code", "only tts models have a language_code")
    model = Model(
        id=model_id,
        category=category,
        endpoints=frozenset(endpoints),
        price=_price(category, t.table("price")),
        deployments=tuple(deployments),
        aliases=tuple(t.str_list("aliases", [])),
        max_output_tokens=t.integer("max_output_tokens", 4096, min=1),
        language_code=language,
        owned_by=t.text("owned_by", "bastion"),
    )
    t.done()
    return model


# -- the dashboard, phone verification and alerts ------------------------------------------


def _local_or_https(t: Table, key: str, url: str) -> str:
    """Credentials and alerts travel over HTTPS; plain HTTP only to a loopback test server."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise t.error(key, "must be an http(s):// URL with a host")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise t.error(key, "must be https:// (plain http is only allowed to a loopback address)")
    return url.rstrip("/")


def _optional_secret(t: Table, key: str) -> Secret | None:
    text = t.text(key, "")
    return Secret(text) if text else None


def _dashboard(t: Table) -> DashboardSettings:
    origin = t.text("public_origin", "") or None
    if origin is not None:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            raise t.error(
                "public_origin", "must be scheme://host[:port], e.g. https://api.example.com"
            )
        origin = origin.rstrip("/")
    secret = _optional_secret(t, "secret")
    if secret is not None and len(secret.value) < 32:
        raise t.error("secret", "must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    settings = DashboardSettings(
        enabled=t.flag("enabled", True),
        signup=t.flag("signup", True),
        secret=secret,
        public_origin=origin,
        session_idle_minutes=t.integer("session_idle_minutes", 30, min=1),
        session_absolute_hours=t.integer("session_absolute_hours", 12, min=1),
        min_password_length=t.integer("min_password_length", 12, min=8),
        signin_attempts_per_account=t.integer("signin_attempts_per_account", 10, min=1),
        signin_attempts_per_ip=t.integer("signin_attempts_per_ip", 50, min=1),
        signups_per_ip=t.integer("signups_per_ip", 10, min=1),
    )
    if settings.session_idle_minutes > settings.session_absolute_hours * 60:
        raise t.error("session_idle_minutes", "must not be longer than session_absolute_hours")
    t.done()
    return settings


def _countries(t: Table) -> frozenset[str]:
    out = set()
    for code in t.str_list("allowed_countries", []):
        region = code.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise t.error("allowed_countries", f"{code!r} is not an ISO 3166 region code (e.g. US)")
        out.add(region)
    return frozenset(out)


def _sms(t: Table) -> SmsSettings:
    provider = t.text("provider", "console", choices=("console", "twilio_verify"))
    twilio_table = t.table("twilio")
    twilio = None
    if provider == "twilio_verify" or twilio_table.names():
        twilio = TwilioSettings(
            account_sid=twilio_table.text("account_sid"),
            auth_token=Secret(twilio_table.text("auth_token")),
            service_sid=twilio_table.text("service_sid"),
            base_url=_local_or_https(
                twilio_table,
                "base_url",
                twilio_table.text("base_url", "https://verify.twilio.com"),
            ),
            timeout_s=twilio_table.number("timeout_s", 10.0, min=0.1),
        )
        for key in ("account_sid", "service_sid"):
            if not getattr(twilio, key):
                raise twilio_table.error(key, "must not be empty")
        if not twilio.auth_token.value:
            raise twilio_table.error("auth_token", "must not be empty")
        twilio_table.done()
    settings = SmsSettings(
        provider=provider,
        allowed_countries=_countries(t),
        sends_per_number=t.integer("sends_per_number", 3, min=1),
        sends_per_ip=t.integer("sends_per_ip", 10, min=1),
        daily_sends_per_country=t.integer("daily_sends_per_country", 1000, min=1),
        checks_per_ip=t.integer("checks_per_ip", 30, min=1),
        max_accounts_per_phone=t.integer("max_accounts_per_phone", 1, min=1),
        twilio=twilio,
    )
    t.done()
    return settings


def _alerts(t: Table) -> AlertSettings:
    email_table = t.table("email")
    email = None
    if email_table.names():
        host = email_table.text("smtp_host")
        security = email_table.text("security", "starttls", choices=("starttls", "tls", "none"))
        if security == "none" and host not in ("127.0.0.1", "::1", "localhost"):
            raise email_table.error("security", "none is only allowed to a loopback SMTP server")
        from_address = email_table.text("from_address")
        if "@" not in from_address:
            raise email_table.error("from_address", "must be an email address")
        email = SmtpSettings(
            host=host,
            from_address=from_address,
            port=email_table.integer("smtp_port", 465 if security == "tls" else 587, min=1),
            security=security,
            username=email_table.text("username", "") or None,
            password=_optional_secret(email_table, "password"),
            timeout_s=email_table.number("timeout_s", 10.0, min=0.1),
        )
        email_table.done()
    webhook_table = t.table("webhook")
    webhook = None
    if webhook_table.names():
        secret = webhook_table.text("secret")
        if len(secret) < 16:
            raise webhook_table.error("secret", "must be at least 16 characters")
        webhook = WebhookSettings(
            url=_local_or_https(webhook_table, "url", webhook_table.text("url")),
            secret=Secret(secret),
            timeout_s=webhook_table.number("timeout_s", 10.0, min=0.1),
        )
        webhook_table.done()
    settings = AlertSettings(
        enabled=t.flag("enabled", False),
        interval_s=t.number("interval_s", 60.0, min=0.05),
        email=email,
        webhook=webhook,
    )
    if settings.enabled and email is None and webhook is None:
        raise t.error("enabled", "needs a channel: [alerts.email] and/or [alerts.webhook]")
    t.done()
    return settings


def _admin(t: Table) -> AdminSettings:
    token = _optional_secret(t, "token")
    settings = AdminSettings(
        enabled=t.flag("enabled", False),
        host=t.text("host", "127.0.0.1"),
        port=t.integer("port", 9090, min=0),
        token=token,
    )
    if token is not None and len(token.value) < 16:
        raise t.error("token", "must be at least 16 characters (e.g. `openssl rand -hex 32`)")
    if settings.enabled and token is None and not _is_loopback(settings.host):
        raise t.error(
            "token",
            f"is required when the admin listener is not on a loopback address "
            f"(host is {settings.host!r}): metrics must not be open to the network",
        )
    t.done()
    return settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
