"""Structured-output validation names each violation with its path; minimal instances validate."""

from typing import Any

import pytest

from infou_generation.llm.jsonschema import minimal_instance, validate

ARTICLE = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 2},
        "level": {"type": "string", "enum": ["beginner", "expert"]},
        "sections": {
            "type": "array",
            "minItems": 2,
            "items": {"$ref": "#/$defs/section"},
        },
        "minutes": {"type": ["integer", "null"], "minimum": 1},
    },
    "required": ["title", "level", "sections", "minutes"],
    "additionalProperties": False,
    "$defs": {
        "section": {
            "type": "object",
            "properties": {"heading": {"type": "string"}, "body": {"type": "string"}},
            "required": ["heading", "body"],
            "additionalProperties": False,
        }
    },
}


def test_a_valid_object_has_no_errors() -> None:
    article = {
        "title": "소개",
        "level": "beginner",
        "sections": [{"heading": "a", "body": "b"}, {"heading": "c", "body": "d"}],
        "minutes": None,
    }
    assert validate(article, ARTICLE) == []


@pytest.mark.parametrize(
    ("article", "expected"),
    [
        ({"level": "beginner", "sections": [], "minutes": 1}, "$: 'title' is a required property"),
        (
            {"title": "소개", "level": "guru", "sections": [], "minutes": 1},
            "$.level: 'guru' is not one of",
        ),
        (
            {"title": "x", "level": "expert", "sections": [], "minutes": 1},
            "$.title: 'x' is too short",
        ),
        (
            {"title": "소개", "level": "expert", "sections": [], "minutes": 0},
            "$.minutes: 0 is less than the minimum of 1",
        ),
        (
            {"title": "소개", "level": "expert", "sections": [], "minutes": "3"},
            "$.minutes: '3' is not of type 'integer'",
        ),
        (
            {"title": "소개", "level": "expert", "sections": [{}], "minutes": 1},
            "$.sections: [{}] is too short",
        ),
        (
            {"title": "소개", "level": "expert", "sections": [{"heading": 1}], "minutes": 1},
            "$.sections[0].heading: 1 is not of type 'string'",
        ),
        (
            {"title": "소개", "level": "expert", "sections": [], "minutes": 1, "x": 1},
            "$: Additional properties are not allowed ('x' was unexpected)",
        ),
    ],
)
def test_violations_are_named_with_their_path(article: dict[str, Any], expected: str) -> None:
    errors = validate(article, ARTICLE)
    assert any(expected in e for e in errors), errors


def test_booleans_are_not_numbers() -> None:
    assert validate(True, {"type": "integer"}) != []
    assert validate(3, {"type": "number"}) == []


def test_minimal_instances_are_valid() -> None:
    instance = minimal_instance(ARTICLE)
    assert validate(instance, ARTICLE) == []
    assert len(instance["sections"]) == 2


def test_minimal_instances_of_the_content_schemas_are_valid() -> None:
    schemas = pytest.importorskip("infou_generation.content.schemas")
    found = [v for k, v in vars(schemas).items() if k.endswith("_SCHEMA") and isinstance(v, dict)]
    assert found
    for schema in found:
        assert validate(minimal_instance(schema), schema) == []
