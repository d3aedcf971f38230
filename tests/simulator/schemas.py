"""Validate JSON instances against the component schemas of OpenAI's OpenAPI document.

The document (3 MB of YAML) is loaded once per test session. OpenAPI 3.1 schemas are JSON
Schema 2020-12, except for the OpenAPI 3.0 keyword `nullable`, which some components still
use; it is rewritten into 2020-12 terms before validation.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

_URI = "urn:openai-openapi"
# Vendored beside the tests so a clean clone has it (see tests/fixtures/README.md).
_CANDIDATES = (Path(__file__).resolve().parents[1] / "fixtures" / "openai-openapi.yaml",)


def _spec_path() -> Path:
    for path in _CANDIDATES:
        if path.is_file():
            return path
    raise FileNotFoundError(f"OpenAI OpenAPI document not found (looked in {_CANDIDATES})")


def _without_nullable(node: Any) -> Any:
    """Rewrite `nullable: true` (OpenAPI 3.0) into JSON Schema: null becomes valid."""
    if isinstance(node, list):
        return [_without_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _without_nullable(value) for key, value in node.items()}
    if node.pop("nullable", False) is not True:
        return node
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        return node
    return {"anyOf": [node, {"type": "null"}]}  # a $ref or a combinator: null as an option


@functools.cache
def _registry() -> Registry[Any]:
    with _spec_path().open("rb") as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    resource = DRAFT202012.create_resource(_without_nullable(document))
    return Registry().with_resource(_URI, resource)


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"{_URI}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def validate(instance: Any, name: str) -> None:
    """Raise jsonschema.ValidationError unless `instance` fits component schema `name`."""
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(instance))
    if error is not None:
        raise error
