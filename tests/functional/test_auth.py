"""401 for every bad key on every endpoint; several keys per account; immediate revocation."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from bastion.core import keys
from tests.support.conformance import assert_error, call, transcription_form, wav_bytes
from tests.support.harness import Stack

ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": "gpt-oss-120b", "messages": []}),
    ("POST", "/v1/completions", {"model": "gpt-oss-120b", "prompt": "x"}),
    ("POST", "/v1/responses", {"model": "gpt-oss-120b", "input": "x"}),
    ("POST", "/v1/embeddings", {"model": "bge-m3", "input": "x"}),
    ("POST", "/v1/images/generations", {"model": "sd-xl", "prompt": "x"}),
    ("POST", "/v1/audio/transcriptions", None),
]


def _unknown_key() -> str:
    return keys.generate().secret  # well formed, checksum right, never stored


def _bad_checksum() -> str:
    good = keys.generate().secret
    last = "A" if good[-1] != "A" else "B"
    return good[:-1] + last


AUTH_HEADERS: dict[str, dict[str, str] | None] = {
    "missing": None,
    "empty": {"Authorization": ""},
    "bearer-without-token": {"Authorization": "Bearer "},
    "not-a-bastion-key": {"Authorization": "Bearer sk-proj-1234567890"},
    "bad-checksum": {"Authorization": f"Bearer {_bad_checksum()}"},
    "unknown": {"Authorization": f"Bearer {_unknown_key()}"},
    "basic-scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
}


@pytest.mark.parametrize("case", sorted(AUTH_HEADERS))
async def test_bad_keys_get_401_on_every_endpoint(stack: Stack, case: str) -> None:
    for method, path, body in ENDPOINTS:
        data = None
        if path == "/v1/audio/transcriptions":
            data = transcription_form(wav_bytes(0.1), model="whisper-large-v3")
        reply = await call(stack, method, path, json=body, data=data, headers=AUTH_HEADERS[case])
        error = assert_error(reply, 401, "invalid_api_key")
        assert error["message"] == "Invalid API key", path
    assert await stack.sim_journal() == []


async def test_a_valid_key_sent_with_the_basic_scheme_is_refused(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await call(stack, "GET", "/v1/models", headers={"Authorization": f"Basic {key}"})
    assert_error(reply, 401, "invalid_api_key")
    assert key not in reply.body.decode()


async def test_401_comes_before_body_validation(stack: Stack) -> None:
    reply = await call(stack, "POST", "/v1/chat/completions", data=b"{not json")
    assert_error(reply, 401, "invalid_api_key")


async def test_revoked_key_fails_at_once(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    client = stack.client(key)
    assert (await client.models.list()).data
    [record] = await stack.runtime.keys.list(account_id)
    await stack.runtime.keys.revoke(record.id, actor="test", reason="test")
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body == {
        "message": "Invalid API key",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }


async def test_rolling_rotation(stack: Stack) -> None:
    """Create new, deploy, revoke old: both keys work until the revocation."""
    account_id, old = await stack.account_and_key()
    new = await stack.key(account_id, label="prod-api-worker-2")
    for secret in (old, new):
        reply = await stack.client(secret).chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "x"}], max_tokens=1
        )
        assert reply.choices
    records = {r.label: r for r in await stack.runtime.keys.list(account_id)}
    await stack.runtime.keys.revoke(records["test"].id, actor="test")
    assert (await call(stack, "GET", "/v1/models", key=old)).status == 401
    assert (await call(stack, "GET", "/v1/models", key=new)).status == 200


async def test_suspended_account_keys_fail(stack: Stack) -> None:
    from bastion.admin.accounts import AccountAdmin

    account_id, key = await stack.account_and_key()
    assert (await call(stack, "GET", "/v1/models", key=key)).status == 200
    admin = AccountAdmin(stack.runtime.db, stack.runtime.settings)
    await admin.set_status(account_id, "suspended", actor="test")
    await stack.runtime.apply_changes()
    assert_error(await call(stack, "GET", "/v1/models", key=key), 401, "invalid_api_key")


async def test_the_key_is_never_echoed(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
    )
    assert reply.status == 400
    assert key not in reply.body.decode()
    assert all(key not in value for value in reply.headers.values())
