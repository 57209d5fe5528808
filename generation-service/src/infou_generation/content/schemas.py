"""JSON Schemas of what each generation task returns, and a Python check of them.

The schemas are OpenAI strict-mode compatible: every object sets `additionalProperties: false`
and lists all of its properties in `required`, and only keywords strict mode accepts are used
(`type`, `properties`, `required`, `items`, `enum`, `description`). Bounds that strict mode
would reject (non-empty strings, minimum list lengths) are stated in the descriptions for the
model and enforced by `validate_output` here.
"""

from __future__ import annotations

from typing import Any, Final

from infou_libs.levels import LEVELS

JsonSchema = dict[str, Any]


def _obj(doc: str, /, **properties: JsonSchema) -> JsonSchema:
    return {
        "type": "object",
        "description": doc,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _str(description: str) -> JsonSchema:
    return {"type": "string", "description": description}


def _strs(description: str) -> JsonSchema:
    return {"type": "array", "description": description, "items": {"type": "string"}}


def _arr(description: str, items: JsonSchema) -> JsonSchema:
    return {"type": "array", "description": description, "items": items}


SUBTOPICS_SCHEMA: Final[JsonSchema] = _obj(
    "Personalised sub-topics for one main topic.",
    subtopics=_arr(
        "At least one and at most options.max_subtopics sub-topics, easiest first when "
        "options.difficulty_progression is true.",
        _obj(
            "One sub-topic. All text in Korean.",
            slug=_str(
                "Lowercase ASCII kebab-case id, unique in this list, e.g. 'chatgpt-api-automation'."
            ),
            name=_str("Korean name, non-empty, different from every curated sub-topic name."),
            description=_str("One or two Korean sentences: what the learner will do and why."),
            estimated_learning_time=_str("Korean duration such as '1-2주'."),
            prerequisites=_strs(
                "What to know first (Korean noun phrases); "
                "empty when prerequisites were not asked for."
            ),
            practical_projects=_strs("Two or three concrete project ideas (Korean)."),
            learning_outcomes=_strs("Three or four outcomes as Korean noun phrases."),
            difficulty_focus={
                "type": "string",
                "enum": list(LEVELS),
                "description": "The level this sub-topic is aimed at.",
            },
        ),
    ),
)

CURRICULUM_SCHEMA: Final[JsonSchema] = _obj(
    "An ordered curriculum of articles over the given sub-topics.",
    title=_str("Korean curriculum title, non-empty."),
    items=_arr(
        "Articles in reading order; for each sub-topic at least one and at most "
        "options.max_articles_per_subtopic.",
        _obj(
            "One planned article.",
            title=_str("Korean article title, non-empty, unique in the curriculum."),
            summary=_str("One Korean sentence saying what the article covers."),
            sub_topic_ref=_str(
                "The `ref` of the sub-topic this article belongs to, copied exactly."
            ),
            estimated_read_time=_str("Korean reading time such as '3-4분'."),
            key_concepts=_strs("Two to four key concepts the article teaches (non-empty)."),
            difficulty_indicators=_strs(
                "Short Korean labels such as '코드 예제 포함', '실습 위주'."
            ),
            prerequisite_titles=_strs(
                "Titles of earlier articles in this curriculum to read first."
            ),
        ),
    ),
)

_ARTICLE_PROPERTIES: Final[dict[str, JsonSchema]] = {
    "title": _str("Korean article title, non-empty."),
    "summary": _str("One or two Korean sentences summarising the article."),
    "sections": _arr(
        "The body, in reading order: several sections, none empty, no two alike.",
        _obj(
            "One section of the article.",
            heading=_str("Korean section heading, non-empty, unique in the article."),
            body=_str("Korean markdown paragraphs (no '#' headings inside), non-empty."),
        ),
    ),
    "key_terms": _arr(
        "Key terms of the article, each defined in plain Korean.",
        _obj(
            "A term and its definition.",
            term=_str("The term as it appears in the text."),
            definition=_str("A one- or two-sentence Korean definition."),
        ),
    ),
    "code_examples": _arr(
        "Code examples; empty when the topic or the options do not call for code.",
        _obj(
            "One code example.",
            language=_str("Language name for syntax highlighting, e.g. 'python'."),
            code=_str("The code only, no markdown fences."),
            explanation=_str("Korean explanation of what the code shows."),
        ),
    ),
    "practical_tips": _strs("Two to four practical Korean tips."),
    "related_concepts": _strs("Related concepts to study next (Korean noun phrases)."),
    "practice_problems": _arr(
        "Practice problems; empty unless options.include_practice_problems is true.",
        _obj(
            "One practice problem.",
            question=_str("The Korean question."),
            hint=_str("A Korean hint that does not give the answer away."),
        ),
    ),
}

ARTICLE_SCHEMA: Final[JsonSchema] = _obj("A learning article in Korean.", **_ARTICLE_PROPERTIES)
LEVEL_CONVERSION_SCHEMA: Final[JsonSchema] = _obj(
    "The source article rewritten for the target level, same topic and coverage, in Korean.",
    **_ARTICLE_PROPERTIES,
)

SCHEMAS: Final[dict[str, tuple[str, JsonSchema]]] = {
    "subtopics": ("infou_subtopics", SUBTOPICS_SCHEMA),
    "curriculum": ("infou_curriculum", CURRICULUM_SCHEMA),
    "article": ("infou_article", ARTICLE_SCHEMA),
    "level_conversion": ("infou_level_conversion", LEVEL_CONVERSION_SCHEMA),
}

TASKS: Final = tuple(SCHEMAS)

# Lists that must not be empty, by JSON path (`[]` marks "every element of").
_NON_EMPTY_LISTS: Final = {
    "subtopics": {"$.subtopics", "$.subtopics[].learning_outcomes"},
    "curriculum": {"$.items", "$.items[].key_concepts"},
    "article": {"$.sections"},
    "level_conversion": {"$.sections"},
}


class OutputError(ValueError):
    """A model's output does not match the task's schema; `path` names the offending value."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def validate_output(task: str, data: object) -> None:
    """Raise OutputError unless `data` matches the task's schema and its non-empty bounds."""
    if task not in SCHEMAS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    _check(data, SCHEMAS[task][1], "$", "$", _NON_EMPTY_LISTS[task])


def _check(value: object, schema: JsonSchema, path: str, shape: str, non_empty: set[str]) -> None:
    kind = schema["type"]
    if kind == "object":
        if not isinstance(value, dict):
            raise OutputError(path, "expected an object")
        extra = set(value) - set(schema["properties"])
        if extra:
            raise OutputError(path, f"unexpected keys {sorted(extra)}")
        for key, sub in schema["properties"].items():
            if key not in value:
                raise OutputError(f"{path}.{key}", "missing")
            _check(value[key], sub, f"{path}.{key}", f"{shape}.{key}", non_empty)
    elif kind == "array":
        if not isinstance(value, list):
            raise OutputError(path, "expected an array")
        if not value and shape in non_empty:
            raise OutputError(path, "must not be empty")
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", f"{shape}[]", non_empty)
    elif kind == "string":
        if not isinstance(value, str):
            raise OutputError(path, "expected a string")
        if not value.strip():
            raise OutputError(path, "must not be blank")
        if "enum" in schema and value not in schema["enum"]:
            raise OutputError(path, f"must be one of {', '.join(schema['enum'])}")
    else:  # pragma: no cover - the schemas above use no other types
        raise AssertionError(f"unsupported schema type {kind!r}")
