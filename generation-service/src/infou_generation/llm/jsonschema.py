"""Structured output against its JSON Schema: validation (the `jsonschema` library, draft
2020-12) and a minimal valid instance of the subset structured output uses (for the fake LLM
server and tests: type, properties, required, items, enum, const, anyOf/oneOf, local $ref and
the length, size and range bounds).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

Schema = dict[str, Any]


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def validate(instance: Any, schema: Schema) -> list[str]:
    """Every violation, each as 'path: message'; an empty list means the instance is valid."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{e.json_path}: {e.message}" for e in errors]


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen = 0
    while "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, got {ref!r}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
        seen += 1
        if seen > 32:
            raise ValueError(f"$ref cycle at {ref}")
    return schema


def minimal_instance(schema: Schema, root: Schema | None = None) -> Any:
    """A small value valid against the schema (for the fake LLM server and tests)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf"):
        if schema.get(keyword):
            return minimal_instance(schema[keyword][0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", properties))
        return {
            name: minimal_instance(sub, root)
            for name, sub in properties.items()
            if name in required
        }
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items", {"type": "string"})
        return [minimal_instance(items, root) for _ in range(count)]
    if kind == "string":
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", 10**6))
        return "예시 텍스트".ljust(low, "가")[: max(high, low, 1)]
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None
