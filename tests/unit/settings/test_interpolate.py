"""``${VAR}`` and ``${VAR:-default}`` in configuration values."""

from __future__ import annotations

import pytest

from bastion.settings.interpolate import MissingVariableError, interpolate

ENV = {"HOST": "10.0.0.1", "PORT": "9000", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("${HOST}", "10.0.0.1"),
        ("http://${HOST}:${PORT}/v1", "http://10.0.0.1:9000/v1"),
        ("${MISSING:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${HOST:-fallback}", "10.0.0.1"),
        ("${EMPTY:-fallback}", "fallback"),  # :- also replaces an empty value
        ("${EMPTY}", ""),  # set but empty counts as set
        ("${MISSING:-http://127.0.0.1:8700}", "http://127.0.0.1:8700"),
        ("cost $$5", "cost $5"),
        ("$${HOST}", "${HOST}"),
        ("$HOST", "$HOST"),  # only the braced form is a reference
        ("${HOST}${PORT}", "10.0.0.19000"),
    ],
)
def test_interpolate(text: str, result: str) -> None:
    assert interpolate(text, ENV) == result


def test_an_unset_variable_without_default_is_an_error() -> None:
    with pytest.raises(MissingVariableError) as caught:
        interpolate("x ${NOT_SET} y", ENV)
    assert caught.value.name == "NOT_SET"
