"""Validate JSON against a schema of OpenAI's published OpenAPI document (vendored)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).resolve().parents[1] / "fixtures" / "openai-openapi.yaml"
BASE = "urn:openai-openapi"


def _without_nullable(node: Any) -> Any:
    """Rewrite ``nullable: true`` (OpenAPI 3.0, still used by some components) into JSON
    Schema 2020-12 terms: null becomes a valid value."""
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
    return {"anyOf": [node, {"type": "null"}]}


@functools.cache
def _document() -> dict[str, Any]:
    with DOCUMENT.open("rb") as handle:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded: dict[str, Any] = _without_nullable(yaml.load(handle, Loader=loader))
    return loaded


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(_document(), default_specification=DRAFT202012)
    return Registry().with_resource(BASE, resource)


def validate(instance: Any, schema_name: str) -> None:
    """Raise jsonschema.ValidationError unless ``instance`` fits ``components.schemas.<name>``."""
    if schema_name not in _document()["components"]["schemas"]:
        raise KeyError(schema_name)
    schema = {"$ref": f"{BASE}#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    validator.validate(instance)
