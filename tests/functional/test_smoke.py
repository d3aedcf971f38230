"""The first request a new user makes, through the real OpenAI SDK."""

from __future__ import annotations

from tests.support.harness import Stack
from tests.support.openapi import validate


async def test_chat_completion_with_the_sdk(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    client = stack.client(key)
    reply = await client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "Hello!"}], max_tokens=8
    )
    assert reply.model == "gpt-oss-120b"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 8
    validate(reply.model_dump(exclude_unset=True), "CreateChatCompletionResponse")
