"""The operator CLI against a temporary data directory and the shipped example configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.cli.main import cli
from bastion.core import keys
from tests.support.harness import EXAMPLE

FULL_CATALOG = 22  # 9 + 3 chat, 3 embeddings, 1 images, 2 transcriptions, 4 tts models


@pytest.fixture
def runner(tmp_path: Path) -> CliRunner:
    # a clean environment: nothing of the developer's BASTION_* leaks into these tests
    env = {name: None for name in os.environ if name.startswith("BASTION_")}
    return CliRunner(env=env)  # type: ignore[arg-type]


def bastion(runner: CliRunner, data_dir: Path, *args: str, config: Path = EXAMPLE) -> Result:
    return runner.invoke(cli, ["--config", str(config), "--data-dir", str(data_dir), *args])


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return orjson.loads(result.stdout)


def test_accounts_credits_and_keys(runner: CliRunner, tmp_path: Path) -> None:
    account = as_json(
        bastion(
            runner,
            tmp_path,
            "accounts",
            "create",
            "--email",
            "ops@example.com",
            "--phone",
            "+14155550123",
            "--tier",
            "pro",
            "--json",
        )
    )
    account_id = account["id"]
    assert account_id.startswith("acct_")
    assert account["tier"] == "pro"
    assert account["phone_verified"] is True  # operator-created accounts are trusted

    granted = as_json(bastion(runner, tmp_path, "credits", "grant", account_id, "25", "--json"))
    assert granted["granted_micros"] == 25_000_000
    assert granted["balance_micros"] == 25_000_000

    created = as_json(
        bastion(
            runner, tmp_path, "keys", "create", account_id, "--label", "prod-api-worker", "--json"
        )
    )
    assert set(created) >= {"id", "key"}
    assert created["key"].startswith("qbt_")
    assert keys.is_well_formed(created["key"])
    second = as_json(
        bastion(runner, tmp_path, "keys", "create", account_id, "--label", "rotation", "--json")
    )

    listed = bastion(runner, tmp_path, "keys", "list", account_id, "--json")
    found = as_json(listed)
    assert {k["id"] for k in found} == {created["id"], second["id"]}
    assert created["key"] not in listed.output  # the secret was shown once, at creation
    labels = {k["id"]: k["label"] for k in found}
    assert labels[created["id"]] == "prod-api-worker"

    revoked = as_json(bastion(runner, tmp_path, "keys", "revoke", created["id"], "--json"))
    assert revoked["id"] == created["id"]
    after = {
        k["id"]: k for k in as_json(bastion(runner, tmp_path, "keys", "list", account_id, "--json"))
    }
    assert after[created["id"]]["status"] == "revoked"
    assert after[created["id"]]["revoked_ms"] is not None
    assert after[second["id"]]["status"] == "active"

    text = bastion(runner, tmp_path, "keys", "list", account_id)
    assert text.exit_code == 0
    assert "revoked" in text.output
    assert "active" in text.output
    assert (tmp_path / "bastion.db").is_file()


def test_json_before_the_command(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "--config",
            str(EXAMPLE),
            "--data-dir",
            str(tmp_path),
            "--json",
            "accounts",
            "create",
            "--email",
            "a@example.com",
            "--phone",
            "+14155550123",
        ],
    )
    assert as_json(result)["tier"] == "free"  # billing.default_tier


def test_catalog_validate_the_shipped_example(runner: CliRunner, tmp_path: Path) -> None:
    data = as_json(bastion(runner, tmp_path, "catalog", "validate", "--json"))
    assert data["ok"] is True
    assert data["models"] == FULL_CATALOG
    text = bastion(runner, tmp_path, "catalog", "validate")
    assert text.exit_code == 0
    assert "valid" in text.output


def test_operator_errors_exit_non_zero(runner: CliRunner, tmp_path: Path) -> None:
    result = bastion(runner, tmp_path, "credits", "grant", "acct_nope", "5")
    assert result.exit_code != 0
    assert "acct_nope" in result.stderr
    result = bastion(runner, tmp_path, "credits", "grant", "acct_nope", "1.0000001")
    assert result.exit_code != 0
    result = bastion(runner, tmp_path, "keys", "revoke", "key_nope", "--json")
    assert result.exit_code != 0
    assert "error" in orjson.loads(result.stderr)


BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("listener.port", '[listener]\nport = "eighty"\n', "listener.port"),
    ("unknown key", "[listener]\nprot = 8080\n", "listener.prot"),
    ("unknown table", "[listenr]\nport = 8080\n", "listenr"),
    ("missing env", '[upstreams.x]\nbase_url = "${NO_SUCH_BASTION_VAR}"\n', "upstreams.x.base_url"),
    ("not toml", "[listener\n", "not valid TOML"),
]


@pytest.mark.parametrize(
    ("case", "extra", "named"), BAD_CONFIGS, ids=[c for c, _, _ in BAD_CONFIGS]
)
@pytest.mark.parametrize("command", [["catalog", "validate"], ["keys", "list", "acct_x"]])
def test_config_errors_name_the_file_and_key(
    runner: CliRunner, tmp_path: Path, case: str, extra: str, named: str, command: list[str]
) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(_example_with(extra))
    result = bastion(runner, tmp_path / "data", *command, config=config)
    assert result.exit_code == 1
    assert str(config) in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.output


def _example_with(extra: str) -> str:
    """The example config with one table replaced or added (TOML forbids redefining)."""
    text = EXAMPLE.read_text()
    if extra.startswith("[listener]"):
        start = text.index("[listener]")
        end = text.index("[storage]")
        return text[:start] + extra + text[end:]
    return text + "\n" + extra


def test_environment_selects_config_and_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text(
        EXAMPLE.read_text() + "\n[tiers.gold]\nrequests_per_minute = 5\nconcurrent_requests = 1\n"
    )
    data_dir = tmp_path / "state"
    env = {name: None for name in os.environ if name.startswith("BASTION_")}
    env.update({"BASTION_CONFIG": str(config), "BASTION_DATA_DIR": str(data_dir)})
    runner = CliRunner(env=env)  # type: ignore[arg-type]
    result = runner.invoke(
        cli,
        [
            "accounts",
            "create",
            "--email",
            "g@example.com",
            "--phone",
            "+14155550123",
            "--tier",
            "gold",
            "--json",
        ],
    )
    assert as_json(result)["tier"] == "gold"  # only custom.toml has this tier
    assert (data_dir / "bastion.db").is_file()
    validated = as_json(runner.invoke(cli, ["catalog", "validate", "--json"]))
    assert validated["file"] == str(config)


def test_no_config_at_all_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {name: None for name in os.environ if name.startswith("BASTION_")}
    runner = CliRunner(env=env)  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)  # no ./bastion.toml here
    result = runner.invoke(cli, ["catalog", "validate"])
    assert result.exit_code == 1
    assert "BASTION_CONFIG" in result.stderr


def test_the_installed_command(tmp_path: Path) -> None:
    """The real entry point: exit status and message, no traceback, on a bad config."""
    executable = shutil.which("bastion", path=str(Path(sys.executable).parent))
    assert executable is not None
    config = tmp_path / "broken.toml"
    config.write_text(_example_with('[listener]\nport = "eighty"\n'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env["BASTION_CONFIG"] = str(config)
    done = subprocess.run(
        [executable, "catalog", "validate"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1
    assert f"{config}: listener.port" in done.stderr
    assert "Traceback" not in done.stderr
