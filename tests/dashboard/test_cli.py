"""``bastion accounts set-password``: an operator's first password, from stdin, never argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.support.harness import EXAMPLE


def _run(tmp_path: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["--config", str(EXAMPLE), "--data-dir", str(tmp_path), *args],
        input=stdin,
        env={"BASTION_DASHBOARD_SECRET": ""},
    )
    return result.exit_code, result.output


def test_operator_password_from_stdin(tmp_path: Path) -> None:
    code, out = _run(
        tmp_path,
        "accounts",
        "create",
        "--email",
        "ops@example.com",
        "--phone",
        "+14155550100",
        "--operator",
        "--json",
    )
    assert code == 0, out
    account_id = json.loads(out)["id"]
    code, out = _run(tmp_path, "accounts", "set-password", account_id, stdin="short\n")
    assert code == 1
    assert "at least 12" in out
    code, out = _run(
        tmp_path, "accounts", "set-password", account_id, stdin="a long operator passphrase\n"
    )
    assert code == 0, out
    assert "password set for ops@example.com" in out
    assert "passphrase" not in out
    code, out = _run(
        tmp_path, "accounts", "set-password", "acct_nobody", stdin="whatever else 123\n"
    )
    assert code == 1
    assert "no account" in out


def test_the_password_is_never_an_argument(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "accounts", "set-password", "acct_x", "the-password-here")
    assert code == 2
    assert "unexpected extra argument" in out.lower()


@pytest.mark.parametrize("option", ["--password", "-p"])
def test_no_password_option(tmp_path: Path, option: str) -> None:
    code, _ = _run(tmp_path, "accounts", "set-password", "acct_x", option, "x")
    assert code == 2
