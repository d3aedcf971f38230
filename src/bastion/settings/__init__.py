"""Configuration: one TOML file, read once, validated, frozen."""

from bastion.settings.load import config_path, load_settings, parse_settings
from bastion.settings.model import (
    AuthSettings,
    BillingSettings,
    ListenerSettings,
    LogSettings,
    Secret,
    Settings,
    StorageSettings,
    Timeouts,
    UpstreamSettings,
)

__all__ = [
    "AuthSettings",
    "BillingSettings",
    "ListenerSettings",
    "LogSettings",
    "Secret",
    "Settings",
    "StorageSettings",
    "Timeouts",
    "UpstreamSettings",
    "config_path",
    "load_settings",
    "parse_settings",
]
