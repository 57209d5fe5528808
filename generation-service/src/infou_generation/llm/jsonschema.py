"""The JSON Schema subset that structured output uses: validation and a minimal valid instance.

Covers what OpenAI strict mode and Anthropic tool schemas accept: type (one or a list), properties,
required, additionalProperties, items, enum, const, anyOf/oneOf/allOf, local $ref into $defs or
definitions, and the length, size and range bounds. Unknown keywords are ignored, as JSON Schema
says they should be.
"""

from __future__ import annotations

import re
from typing import Any

Schema = dict[str, Any]

_TYPE_CHECKS: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(instance: Any, schema: Schema) -> list[str]:
    """Every violation, each as 'path: message'; an empty list means the instance is valid."""
    errors: list[str] = []
    _validate(instance, schema, schema, "$", errors)
    return errors


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


def _validate(
    value: Any, schema: Schema | bool, root: Schema, path: str, errors: list[str]
) -> None:
    if schema is True:
        return
    if schema is False:
        errors.append(f"{path}: no value is allowed here")
        return
    schema = _resolve(schema, root)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPE_CHECKS[t](value) for t in types if t in _TYPE_CHECKS):
            errors.append(f"{path}: expected {' or '.join(types)}, got {_type_name(value)}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: must be one of {schema['enum']!r}")
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            matches = sum(1 for sub in schema[keyword] if not _validate_sub(value, sub, root, path))
            if matches == 0 or (keyword == "oneOf" and matches > 1):
                errors.append(f"{path}: matches {matches} of the {keyword} alternatives")
    for sub in schema.get("allOf", []):
        _validate(value, sub, root, path, errors)
    if isinstance(value, dict):
        _validate_object(value, schema, root, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, root, path, errors)
    elif isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)


def _validate_sub(value: Any, schema: Schema | bool, root: Schema, path: str) -> list[str]:
    errors: list[str] = []
    _validate(value, schema, root, path, errors)
    return errors


def _validate_object(
    value: dict[str, Any], schema: Schema, root: Schema, path: str, errors: list[str]
) -> None:
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            _validate(item, properties[name], root, f"{path}.{name}", errors)
        elif extra is False:
            errors.append(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, dict):
            _validate(item, extra, root, f"{path}.{name}", errors)
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errors.append(f"{path}: fewer than {schema['minProperties']} properties")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(f"{path}: more than {schema['maxProperties']} properties")


def _validate_array(
    value: list[Any], schema: Schema, root: Schema, path: str, errors: list[str]
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: more than {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, dict | bool):
        for i, item in enumerate(value):
            _validate(item, items, root, f"{path}[{i}]", errors)


def _validate_string(value: str, schema: Schema, path: str, errors: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match {schema['pattern']!r}")


def _validate_number(value: float, schema: Schema, path: str, errors: list[str]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above {schema['maximum']}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        errors.append(f"{path}: not above {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        errors.append(f"{path}: not below {schema['exclusiveMaximum']}")


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPE_CHECKS[name](value):
            return name
    return type(value).__name__


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
