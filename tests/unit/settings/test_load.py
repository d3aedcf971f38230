"""The TOML configuration: the shipped example, environment references, and errors that name
the file and the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bastion.core.catalog import Endpoint
from bastion.errors import ConfigError
from bastion.settings import config_path, load_settings, parse_settings
from tests.support.harness import EXAMPLE, example_document, merge

FILE = "/etc/bastion/bastion.toml"

CHAT = {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.RESPONSES}
SPEC_CATALOG: dict[str, set[Endpoint]] = {
    **dict.fromkeys(
        (
            "gpt-oss-120b",
            "gpt-oss-20b",
            "Llama-3.1-8B-Instruct",
            "Meta-Llama-3_3-70B-Instruct",
            "Qwen3-32B",
            "Mistral-Small-3.2-24B-Instruct-2506",
            "Mistral-Nemo-Instruct-2407",
            "Qwen3-Coder-30B-A3B-Instruct",
            "Qwen2.5-VL-72B-Instruct",
        ),
        CHAT,
    ),
    **{
        model: {Endpoint.CHAT, Endpoint.COMPLETIONS}
        for model in ("Mistral-7B-Instruct-v0.3", "Qwen3Guard-Gen-8B", "Qwen3Guard-Gen-0.6B")
    },
    **{
        model: {Endpoint.EMBEDDINGS}
        for model in ("Qwen3-Embedding-8B", "bge-m3", "bge-multilingual-gemma2")
    },
    "stable-diffusion-xl-base-v10": {Endpoint.IMAGES},
    "whisper-large-v3": {Endpoint.TRANSCRIPTIONS},
    "whisper-large-v3-turbo": {Endpoint.TRANSCRIPTIONS},
    **{f"tts-{lang}": {Endpoint.TTS} for lang in ("en-us", "de-de", "es-es", "it-it")},
}


def parse(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Any:
    document = merge(example_document(), overrides or {})
    return parse_settings(document, FILE, env or {}, data_dir="/tmp/bastion-test")


def test_the_example_carries_the_full_default_catalog() -> None:
    settings = load_settings(EXAMPLE, {})
    catalog = settings.catalog
    assert {m.id: set(m.endpoints) for m in catalog.models} == SPEC_CATALOG
    assert catalog.get("sd-xl") is catalog.get("stable-diffusion-xl-base-v10")
    assert catalog.languages == ("de-DE", "en-US", "es-ES", "it-IT")
    for openai_id in ("gpt-4o", "text-embedding-3-small", "whisper-1", "dall-e-3"):
        assert catalog.get(openai_id) is None  # never aliased by default
    assert set(settings.tiers) == {"free", "pro", "enterprise"}
    assert settings.billing.default_tier == "free"
    assert all(
        m.price.input_token or m.price.image or m.price.audio_second or m.price.character
        for m in catalog.models
    )


def test_the_example_takes_the_simulator_url_from_the_environment() -> None:
    default = load_settings(EXAMPLE, {})
    assert default.upstreams["simulator"].base_url == "http://127.0.0.1:8700"
    moved = load_settings(EXAMPLE, {"BASTION_SIMULATOR_URL": "http://10.1.2.3:9000/"})
    assert moved.upstreams["simulator"].base_url == "http://10.1.2.3:9000"
    listening = load_settings(EXAMPLE, {"BASTION_PORT": "9443", "BASTION_HOST": "::1"})
    assert listening.listener.port == 9443  # an interpolated value still becomes an integer
    assert listening.listener.host == "::1"


def test_secrets_from_the_environment_are_never_shown() -> None:
    settings = load_settings(EXAMPLE, {"BASTION_SIMULATOR_API_KEY": "sk-very-secret"})
    api_key = settings.upstreams["simulator"].api_key
    assert api_key is not None
    assert api_key.value == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings.upstreams["simulator"])
    assert "sk-very-secret" not in str(api_key)


def test_deployments_weights_and_upstream_model_ids() -> None:
    settings = parse(
        {
            "upstreams": {"second": {"base_url": "https://vllm.internal:8000"}},
            "models": {
                "gpt-oss-120b": {
                    "deployments": [
                        {"upstream": "simulator", "weight": 3},
                        {"upstream": "second", "model": "openai/gpt-oss-120b", "weight": 1},
                    ]
                }
            },
        }
    )
    model = settings.catalog.get("gpt-oss-120b")
    assert [(d.upstream, d.upstream_model, d.weight) for d in model.deployments] == [
        ("simulator", "gpt-oss-120b", 3),
        ("second", "openai/gpt-oss-120b", 1),
    ]


ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"listener": {"port": "abc"}}, "listener.port"),
    ({"listener": {"prot": 1}}, "listener.prot"),
    ({"bogus": {"x": 1}}, "bogus"),
    ({"listener": {"exposed_key_policy": "ignore"}}, "listener.exposed_key_policy"),
    ({"listener": {"trusted_proxies": ["not-an-ip"]}}, "listener.trusted_proxies"),
    (
        {"listener": {"tls_cert": "/no/such/cert.pem", "tls_key": "/no/such/key.pem"}},
        "listener.tls_cert",
    ),
    ({"listener": {"tls_cert": "/no/such/cert.pem"}}, "listener.tls_key"),
    ({"listener": {"max_json_body_bytes": 10}}, "listener.max_json_body_bytes"),
    ({"storage": {"database_url": "mysql://x"}}, "storage.database_url"),
    ({"storage": {"database_url": "postgresql://db/bastion"}}, "storage.redis_url"),
    ({"storage": {"store_timeout": 1}}, "storage.store_timeout"),
    ({"billing": {"default_tier": "gold"}}, "billing.default_tier"),
    ({"billing": {"hold_ttl_s": 10}}, "billing.hold_ttl_s"),
    ({"auth": {"revalidate_interval_s": 10}}, "auth.revalidate_interval_s"),
    ({"log": {"level": "LOUD"}}, "log.level"),
    ({"upstreams": {"simulator": {"base_url": "ftp://x"}}}, "upstreams.simulator.base_url"),
    ({"upstreams": {"simulator": {"base_url": "http://"}}}, "upstreams.simulator.base_url"),
    (
        {"upstreams": {"simulator": {"base_url": "${NO_SUCH_VARIABLE}"}}},
        "upstreams.simulator.base_url",
    ),
    (
        {"upstreams": {"simulator": {"timeouts": {"first_byte": 3}}}},
        "upstreams.simulator.timeouts.first_byte",
    ),
    (
        {"upstreams": {"simulator": {"timeouts": {"connect_s": -1}}}},
        "upstreams.simulator.timeouts.connect_s",
    ),
    ({"upstreams": {"simulator": {"circuit_failures": 0}}}, "upstreams.simulator.circuit_failures"),
    (
        {"upstreams": {"simulator": {"continuous_usage": "maybe"}}},
        "upstreams.simulator.continuous_usage",
    ),
    ({"tiers": {"free": {"requests_per_minute": 0}}}, "tiers.free.requests_per_minute"),
    ({"tiers": {"free": {"concurrent_requests": "many"}}}, "tiers.free.concurrent_requests"),
    ({"tiers": {"free": {"models": ["nope"]}}}, "tiers.free.models"),
    ({"tiers": {"free": {"rpm": 5}}}, "tiers.free.rpm"),
    ({"tiers": {"gold": {"requests_per_minute": 5}}}, "tiers.gold.concurrent_requests"),
    ({"models": {"bge-m3": {"category": "audio"}}}, "models.bge-m3.category"),
    ({"models": {"bge-m3": {"endpoints": ["chat"]}}}, "models.bge-m3.endpoints"),
    ({"models": {"bge-m3": {"endpoints": ["telepathy"]}}}, "models.bge-m3.endpoints"),
    (
        {"models": {"bge-m3": {"price": {"output_per_mtok": "1"}}}},
        "models.bge-m3.price.output_per_mtok",
    ),
    (
        {"models": {"bge-m3": {"price": {"input_per_mtok": "abc"}}}},
        "models.bge-m3.price.input_per_mtok",
    ),
    (
        {"models": {"bge-m3": {"deployments": [{"upstream": "nowhere"}]}}},
        "models.bge-m3.deployments[0].upstream",
    ),
    (
        {"models": {"bge-m3": {"deployments": [{"upstream": "simulator", "wieght": 2}]}}},
        "models.bge-m3.deployments[0].wieght",
    ),
    ({"models": {"bge-m3": {"deployments": []}}}, "models.bge-m3.deployments"),
    (
        {"models": {"bge-m3": {"deployments": [{"upstream": "simulator", "weight": 0}]}}},
        "models.bge-m3.deployments",
    ),
    ({"models": {"bge-m3": {"aliases": ["gpt-oss-120b"]}}}, "models"),
    ({"models": {"bge-m3": {"max_output_tokens": 0}}}, "models.bge-m3.max_output_tokens"),
    ({"models": {"bge-m3": {"colour": "blue"}}}, "models.bge-m3.colour"),
    (
        {"models": {"tts-en-us": {"deployments": [{"upstream": "simulator"}]}}},
        "models.tts-en-us.deployments[0].upstream",
    ),
    ({"models": {"bge-m3": {"language_code": "en-US"}}}, "models.bge-m3.language_code"),
]


@pytest.mark.parametrize(("overrides", "key"), ERRORS, ids=[key for _, key in ERRORS])
def test_every_error_names_the_file_and_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(overrides)
    message = str(caught.value)
    assert message.startswith(f"{FILE}: {key}: "), message
    assert len(message) > len(f"{FILE}: {key}: ") + 5  # and says what is wrong


def test_unknown_keys_are_rejected_not_ignored() -> None:
    with pytest.raises(ConfigError, match="is not a known setting"):
        parse({"listener": {"tls_crt": "x"}})


def test_no_tiers_at_all() -> None:
    document = example_document()
    document["tiers"] = {}
    with pytest.raises(ConfigError) as caught:
        parse_settings(document, FILE, {}, data_dir="/tmp/x")
    assert str(caught.value).startswith(f"{FILE}: tiers: ")


def test_a_missing_or_broken_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(missing, {})
    assert str(missing) in str(caught.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[listener\nport = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(broken, {})
    assert str(broken) in str(caught.value)
    assert "TOML" in str(caught.value)


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_path("a.toml", {"BASTION_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"BASTION_CONFIG": "b.toml"}) == Path("b.toml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="BASTION_CONFIG"):
        config_path(None, {})
    (tmp_path / "bastion.toml").write_text("")
    assert config_path(None, {}) == Path("bastion.toml")


def test_data_dir_precedence() -> None:
    document = example_document()
    explicit = parse_settings(document, FILE, {"BASTION_DATA_DIR": "/env"}, data_dir="/flag")
    assert explicit.data_dir == Path("/flag")
    from_env = parse_settings(document, FILE, {"BASTION_DATA_DIR": "/env"})
    assert from_env.data_dir == Path("/env")
    assert from_env.storage.database_url == "sqlite:////env/bastion.db"
    default = parse_settings(document, FILE, {})
    assert default.data_dir == Path(".bastion")


def test_the_environment_is_only_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_SIMULATOR_URL", "http://192.0.2.1:1")
    assert load_settings(EXAMPLE).upstreams["simulator"].base_url == "http://192.0.2.1:1"
    assert load_settings(EXAMPLE, {}).upstreams["simulator"].base_url == "http://127.0.0.1:8700"
    assert os.environ["BASTION_SIMULATOR_URL"] == "http://192.0.2.1:1"
