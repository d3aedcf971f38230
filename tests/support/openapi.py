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


@functools.cache
def _document() -> dict[str, Any]:
    with DOCUMENT.open("rb") as handle:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded: dict[str, Any] = yaml.load(handle, Loader=loader)
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
