"""The OpenAPI document: shipped in the package, served without a key, a valid OpenAPI 3.1
document, in step with the error table and with the routes the gateway really has."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bastion import errors
from bastion.http.routes.openapi import for_gateway, shipped
from tests.ops.conftest import call
from tests.support.harness import Stack
from tests.unit.test_errors import documented_rows

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "post", "put", "patch", "delete")
# where each path-independent error is documented (it belongs to no listed operation)
PATH_LEVEL = {404: "NotFound", 405: "MethodNotAllowed", 408: "RequestTimeout"}
MESSAGES = {"invalid_api_key": "Invalid API key"}  # the one fixed message of the contract


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _accepts(document: dict[str, Any], response: dict[str, Any], instance: Any) -> bool:
    schema = response["content"]["application/json"]["schema"]
    registry = Registry().with_resource(
        "urn:bastion", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(_rebase(schema), registry=registry).is_valid(instance)


def _rebase(node: Any) -> Any:
    """Point the document's local references at the registered resource."""
    if isinstance(node, dict):
        return {
            key: (f"urn:bastion{value}" if key == "$ref" else _rebase(value))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebase(item) for item in node]
    return node


def _envelope(code: str, kind: str, message: str = "something") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


def test_the_document_ships_in_the_package() -> None:
    text = resources.files("bastion.http").joinpath("openapi.yaml").read_text()
    assert yaml.safe_load(text) == shipped()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["bastion"]
    assert "**/*.yaml" in package_data


def test_the_document_is_valid_openapi() -> None:
    document = shipped()
    assert document["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(document)
    assert len(list(schema.get_all_operations())) == len(_operations(document))


@pytest.mark.parametrize("cls", errors.all_client_visible(), ids=lambda c: c.code)
def test_every_error_of_the_table_is_a_documented_response(
    cls: type[errors.BastionError],
) -> None:
    document = shipped()
    instance = cls().envelope()
    if cls.status in PATH_LEVEL:
        candidates = [document["components"]["responses"][PATH_LEVEL[cls.status]]]
    else:
        candidates = [
            _resolve(document, operation["responses"][str(cls.status)])
            for _, _, operation in _operations(document)
            if str(cls.status) in operation["responses"]
        ]
    assert candidates, f"no response documents status {cls.status}"
    assert any(_accepts(document, response, instance) for response in candidates)
    # and the envelope's schema refuses this code under a wrong type
    wrong = _envelope(cls.code, "api_error" if cls.type != "api_error" else "rate_limit_error")
    assert not any(_accepts(document, response, wrong) for response in candidates)


def test_the_documented_codes_are_the_error_table() -> None:
    document = shipped()
    codes = set(
        document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"][
            "enum"
        ]
    )
    table = documented_rows()
    assert codes == {code for code in table if code != "https_required"}
    assert {cls.code for cls in errors.all_client_visible()} <= codes
    for code, (status, kind) in table.items():
        if code == "https_required":
            continue  # the plain-HTTP listener's answer, not part of this API
        responses = [
            _resolve(document, r)
            for _, _, op in _operations(document)
            for s, r in op["responses"].items()
            if s == str(status)
        ] + [r for r in document["components"]["responses"].values() if r is not None]
        assert any(
            "application/json" in r.get("content", {})
            and _accepts(document, r, _envelope(code, kind, MESSAGES.get(code, "A message.")))
            for r in responses
        ), code


def test_every_error_response_is_the_envelope_with_a_request_id() -> None:
    document = shipped()
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            response = _resolve(document, response)
            if int(status) < 400:
                continue
            assert list(response["content"]) == ["application/json"], (path, method, status)
            assert not _accepts(document, response, {"detail": "not an envelope"})
            if int(status) != 408:
                assert "x-request-id" in response["headers"], (path, method, status)
        if operation.get("security") != []:
            assert {"401", "500"} <= set(operation["responses"]), (path, method)
        if "429" in operation["responses"]:
            headers = _resolve(document, operation["responses"]["429"])["headers"]
            assert "Retry-After" in headers


async def test_served_unauthenticated_with_the_catalog(stack: Stack) -> None:
    status, served, headers = await call(stack, "GET", "/openapi.json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert isinstance(served, dict)
    async with stack.http.get(stack.url + "/openapi.yaml") as response:
        assert response.status == 200
        assert response.content_type == "application/yaml"
        assert yaml.safe_load(await response.text()) == served
    schemas = served["components"]["schemas"]
    responses_models = schemas["ResponseRequest"]["properties"]["model"]["enum"]
    assert "gpt-oss-120b" in responses_models
    assert "Mistral-7B-Instruct-v0.3" not in responses_models  # chat and completions only
    assert "sd-xl" in schemas["ImageRequest"]["properties"]["model"]["enum"]  # an alias
    language = schemas["SpeechRequest"]["properties"]["language_code"]["pattern"]
    assert re.match(language, "en-US")
    assert re.match(language, "EN-us")  # BCP 47 tags ignore case, and so does Bastion
    assert not re.match(language, "fr-FR")
    assert served == for_gateway(
        stack.runtime.settings.catalog, stack.runtime.settings.listener.max_tts_text_chars
    )


async def test_the_document_lists_exactly_the_public_routes(stack: Stack) -> None:
    document = shipped()
    documented = {(path, method.upper()) for path, method, _ in _operations(document)}
    app = stack.server._runners[0].app  # the public listener's application
    routed = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.method not in ("HEAD", "*")
        and not route.resource.canonical.startswith("/dashboard")
        and route.resource.canonical != "/"  # the dashboard's redirect to /dashboard/
    }
    assert routed == documented
