"""Output JSON schemas: OpenAI strict-mode shape and the Python-side check."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from infou_generation.content.schemas import SCHEMAS, OutputError, validate_output

# Keywords OpenAI strict mode accepts in the subset we use; anything else may be rejected.
ALLOWED_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "description",
}


def _walk(schema: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{key}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


ARTICLE: dict[str, Any] = {
    "title": "트랜스포머 아키텍처 핵심 개념",
    "summary": "어텐션의 역할을 정리합니다.",
    "sections": [{"heading": "들어가며", "body": "트랜스포머는 어텐션을 중심으로 한 구조입니다."}],
    "key_terms": [
        {"term": "어텐션", "definition": "입력의 어느 부분에 집중할지 정하는 방법입니다."}
    ],
    "code_examples": [],
    "practical_tips": ["작은 예제부터 시작하세요."],
    "related_concepts": ["임베딩"],
    "practice_problems": [],
}
VALID: dict[str, dict[str, Any]] = {
    "subtopics": {
        "subtopics": [
            {
                "slug": "chatgpt-api-automation",
                "name": "ChatGPT API 업무 자동화",
                "description": "API로 반복 업무를 자동화합니다.",
                "estimated_learning_time": "1-2주",
                "prerequisites": ["Python 기초"],
                "practical_projects": ["이메일 자동 분류기"],
                "learning_outcomes": ["API 호출 구현"],
                "difficulty_focus": "intermediate",
            }
        ]
    },
    "curriculum": {
        "title": "인공지능 실무 활용 중급",
        "items": [
            {
                "title": "ChatGPT API 기본 설정",
                "summary": "API 키 발급부터 첫 호출까지",
                "sub_topic_ref": "curated_12",
                "estimated_read_time": "3-4분",
                "key_concepts": ["API 인증"],
                "difficulty_indicators": ["코드 예제 포함"],
                "prerequisite_titles": [],
            }
        ],
    },
    "article": ARTICLE,
    "level_conversion": ARTICLE,
}


def test_tasks_and_schema_names_are_the_contract() -> None:
    assert {task: name for task, (name, _) in SCHEMAS.items()} == {
        "subtopics": "infou_subtopics",
        "curriculum": "infou_curriculum",
        "article": "infou_article",
        "level_conversion": "infou_level_conversion",
    }


@pytest.mark.parametrize("task", list(SCHEMAS))
def test_schema_is_strict_mode_compatible(task: str) -> None:
    _, schema = SCHEMAS[task]
    jsonschema.Draft202012Validator.check_schema(schema)
    for path, node in _walk(schema):
        assert set(node) <= ALLOWED_KEYWORDS, f"{path} uses {set(node) - ALLOWED_KEYWORDS}"
        if node["type"] == "object":
            assert node["additionalProperties"] is False, path
            assert node["required"] == list(node["properties"]), path


@pytest.mark.parametrize("task", list(SCHEMAS))
def test_valid_sample_passes_both_checks(task: str) -> None:
    jsonschema.validate(VALID[task], SCHEMAS[task][1])
    validate_output(task, VALID[task])


def _broken(task: str, mutate: str) -> tuple[dict[str, Any], str]:
    data = copy.deepcopy(VALID[task])
    if task == "subtopics":
        item = data["subtopics"][0]
    elif task == "curriculum":
        item = data["items"][0]
    else:
        item = data
    if mutate == "extra":
        item["surprise"] = "x"
        return data, "unexpected keys"
    if mutate == "missing":
        item.pop(next(iter(item)))
        return data, "missing"
    if mutate == "blank":
        item[next(k for k, v in item.items() if isinstance(v, str))] = "   "
        return data, "blank"
    item[next(k for k, v in item.items() if isinstance(v, list))] = "not a list"
    return data, "expected an array"


@pytest.mark.parametrize("task", list(SCHEMAS))
@pytest.mark.parametrize("mutate", ["extra", "missing", "blank", "wrong_type"])
def test_invalid_output_is_rejected_with_its_path(task: str, mutate: str) -> None:
    data, message = _broken(task, mutate)
    with pytest.raises(OutputError, match=message) as caught:
        validate_output(task, data)
    assert caught.value.path.startswith("$")


def test_bounds_strict_mode_cannot_express_are_checked_in_python() -> None:
    no_sections = {**ARTICLE, "sections": []}
    jsonschema.validate(no_sections, SCHEMAS["article"][1])  # the schema alone lets it through
    with pytest.raises(OutputError, match=r"\$\.sections: must not be empty"):
        validate_output("article", no_sections)
    bad_level = copy.deepcopy(VALID["subtopics"])
    bad_level["subtopics"][0]["difficulty_focus"] = "guru"
    with pytest.raises(OutputError, match="difficulty_focus"):
        validate_output("subtopics", bad_level)
    with pytest.raises(ValueError, match="unknown task"):
        validate_output("poem", {})
