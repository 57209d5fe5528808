"""The offline composer's code examples: a small runnable program per language, chosen by
the sub-topic."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any, Final

from infou_generation.content.levels import level_index
from infou_generation.content.offline.phrasing import phrasebook


def code_language(main: dict[str, Any], sub_topic: dict[str, Any]) -> str:  # noqa: ARG001 — exported signature
    """The language an example for this sub-topic is written in."""
    text = " ".join(
        [
            sub_topic.get("name", ""),
            sub_topic.get("description", ""),
            " ".join(sub_topic.get("learning_outcomes") or []),
        ]
    ).lower()
    if "sql" in text:
        return "sql"
    if "flutter" in text or "dart" in text:
        return "dart"
    if any(
        k in text
        for k in ("javascript", "자바스크립트", "react", "typescript", "html", "css", "dom ")
    ):
        return "javascript"
    if any(
        k in text
        for k in ("리눅스", "셸", "bash", "linux", " git", "git과", "docker", "kubernetes")
    ):
        return "bash"
    return "python"


def code_examples(
    rng: random.Random,
    level: str,
    length: str,
    main: dict[str, Any],
    sub_topic: dict[str, Any],
    concepts: Sequence[str],
) -> list[dict[str, str]]:
    language = code_language(main, sub_topic)
    scores = {c: round(rng.randint(6, 19) * 0.05, 2) for c in concepts}
    explanation = phrasebook()["article"]["code_explanation"][level][0]
    writer = _CODE_WRITERS[language]
    examples = [
        {
            "language": language,
            "code": writer(level, sub_topic["name"], scores),
            "explanation": explanation,
        }
    ]
    if length == "long" and language != "python":
        examples.append(
            {
                "language": "python",
                "code": _python_code(level, sub_topic["name"], scores),
                "explanation": explanation,
            }
        )
    return examples


def _py(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _python_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    names = list(scores)
    index = level_index(level)
    if index <= 1:
        rows = "\n".join(f'    {_py(n)}: "한 문장 설명을 적어 보세요",' for n in names)
        return (
            f"# {_comment(sub_name)} 핵심 개념 복습 노트\n"
            f"concepts = {{\n{rows}\n}}\n\n"
            "for name, note in concepts.items():\n"
            '    print(f"{name}: {note}")\n'
        )
    if index == 2:
        rows = "\n".join(f"    {_py(n)}: {s}," for n, s in scores.items())
        return (
            f"# {_comment(sub_name)}: 이해도가 낮은 개념만 골라 복습 목록 만들기\n"
            f"understanding = {{\n{rows}\n}}\n\n\n"
            "def review_list(scores: dict[str, float], threshold: float = 0.7) -> list[str]:\n"
            '    """이해도가 기준보다 낮은 개념을 낮은 순서대로 돌려줍니다."""\n'
            "    low = [name for name, score in scores.items() if score < threshold]\n"
            "    return sorted(low, key=lambda name: scores[name])\n\n\n"
            "print(review_list(understanding))\n"
        )
    requires = {n: names[max(0, i - 2) : i] for i, n in enumerate(names)}
    if index == 3:
        rows = "\n".join(
            f"    {_py(n)}: Concept({_py(n)}, {scores[n]}, requires={_py_list(requires[n])}),"
            for n in names
        )
        return (
            f"# {_comment(sub_name)}: 선행 개념을 먼저 보도록 학습 순서 정하기\n"
            "from dataclasses import dataclass, field\n\n\n"
            "@dataclass\n"
            "class Concept:\n"
            "    name: str\n"
            "    understanding: float\n"
            "    requires: list[str] = field(default_factory=list)\n\n\n"
            "def study_order(concepts: dict[str, Concept]) -> list[str]:\n"
            '    """선행 개념이 먼저 오는 순서를 돌려줍니다. 순환 의존이면 ValueError."""\n'
            "    order: list[str] = []\n"
            "    visiting: set[str] = set()\n\n"
            "    def visit(name: str) -> None:\n"
            "        if name in order:\n"
            "            return\n"
            "        if name in visiting:\n"
            '            raise ValueError(f"순환 의존: {name}")\n'
            "        visiting.add(name)\n"
            "        for required in concepts[name].requires:\n"
            "            visit(required)\n"
            "        visiting.discard(name)\n"
            "        order.append(name)\n\n"
            "    for name in concepts:\n"
            "        visit(name)\n"
            "    return order\n\n\n"
            f"concepts = {{\n{rows}\n}}\n"
            "print(study_order(concepts))\n"
        )
    rows = "\n".join(f"    {_py(n)}: {_py_set(requires[n])}," for n in names)
    return (
        f"# {_comment(sub_name)}: 개념 사이의 선후 관계를 위상 정렬로 검증하기\n"
        "from collections import deque\n\n\n"
        "def study_order(requires: dict[str, set[str]]) -> list[str]:\n"
        '    """Kahn 알고리즘으로 학습 순서를 정합니다. 순환이 있으면 막힌 개념을 알려 줍니다."""\n'
        "    indegree = {name: len(deps) for name, deps in requires.items()}\n"
        "    dependents: dict[str, list[str]] = {name: [] for name in requires}\n"
        "    for name, deps in requires.items():\n"
        "        for dep in deps:\n"
        "            dependents.setdefault(dep, []).append(name)\n"
        "            indegree.setdefault(dep, 0)\n"
        "    queue = deque(sorted(name for name, degree in indegree.items() if degree == 0))\n"
        "    order: list[str] = []\n"
        "    while queue:\n"
        "        name = queue.popleft()\n"
        "        order.append(name)\n"
        "        for nxt in dependents.get(name, []):\n"
        "            indegree[nxt] -= 1\n"
        "            if indegree[nxt] == 0:\n"
        "                queue.append(nxt)\n"
        "    if len(order) < len(indegree):\n"
        "        blocked = sorted(set(indegree) - set(order))\n"
        '        raise ValueError(f"순환 의존(엣지 케이스): {blocked}")\n'
        "    return order\n\n\n"
        f"requires = {{\n{rows}\n}}\n"
        "print(study_order(requires))\n"
    )


def _py_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_py(i) for i in items) + "]"


def _py_set(items: Sequence[str]) -> str:
    return "{" + ", ".join(_py(i) for i in items) + "}" if items else "set()"


def _comment(text: str) -> str:
    return " ".join(text.split())


def _sql_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    if level_index(level) <= 1:
        rows = ",\n".join(f"    ({lit(n)}, '한 문장 설명을 적어 보세요')" for n in scores)
        return (
            f"-- {_comment(sub_name)} 핵심 개념 복습 노트\n"
            "CREATE TABLE concepts (\n"
            "    name TEXT PRIMARY KEY,\n"
            "    note TEXT NOT NULL\n"
            ");\n\n"
            f"INSERT INTO concepts (name, note) VALUES\n{rows};\n\n"
            "SELECT name, note FROM concepts ORDER BY name;\n"
        )
    rows = ",\n".join(f"    ({lit(n)}, {s})" for n, s in scores.items())
    return (
        f"-- {_comment(sub_name)}: 이해도가 낮은 개념부터 복습하기\n"
        "CREATE TABLE concepts (\n"
        "    name TEXT PRIMARY KEY,\n"
        "    understanding REAL NOT NULL CHECK (understanding BETWEEN 0 AND 1)\n"
        ");\n\n"
        f"INSERT INTO concepts (name, understanding) VALUES\n{rows};\n\n"
        "SELECT name, understanding\n"
        "FROM concepts\n"
        "WHERE understanding < 0.7\n"
        "ORDER BY understanding ASC, name;\n"
    )


def _javascript_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    if level_index(level) <= 1:
        rows = "\n".join(f"  {_py(n)}," for n in scores)
        return (
            f"// {_comment(sub_name)} 핵심 개념 복습 노트\n"
            f"const concepts = [\n{rows}\n];\n\n"
            "concepts.forEach((name) => {\n"
            "  console.log(`${name}: 한 문장 설명을 적어 보세요`);\n"
            "});\n"
        )
    rows = "\n".join(f"  {{ name: {_py(n)}, understanding: {s} }}," for n, s in scores.items())
    return (
        f"// {_comment(sub_name)}: 이해도가 낮은 개념만 골라 복습 목록 만들기\n"
        f"const concepts = [\n{rows}\n];\n\n"
        "const reviewList = (items, threshold = 0.7) =>\n"
        "  items\n"
        "    .filter((item) => item.understanding < threshold)\n"
        "    .sort((a, b) => a.understanding - b.understanding)\n"
        "    .map((item) => item.name);\n\n"
        "console.log(reviewList(concepts));\n"
    )


def _bash_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    def lit(text: str) -> str:
        return "'" + text.replace("'", "'\\''") + "'"

    names = " ".join(lit(n) for n in scores)
    if level_index(level) <= 1:
        return (
            "#!/usr/bin/env bash\n"
            f"# {_comment(sub_name)} 핵심 개념 복습 노트\n"
            f"concepts=({names})\n\n"
            'for concept in "${concepts[@]}"; do\n'
            '  echo "- ${concept}: 한 문장 설명을 적어 보세요"\n'
            "done\n"
        )
    rows = "\n".join(f"  [{lit(n)}]={round(s * 100)}" for n, s in scores.items())
    return (
        "#!/usr/bin/env bash\n"
        f"# {_comment(sub_name)}: 이해도(0-100)가 70 미만인 개념만 낮은 순서로 보기\n"
        "set -euo pipefail\n\n"
        f"declare -A understanding=(\n{rows}\n)\n\n"
        'for name in "${!understanding[@]}"; do\n'
        "  score=${understanding[$name]}\n"
        "  if (( score < 70 )); then\n"
        '    printf \'%s\\t%s\\n\' "$score" "$name"\n'
        "  fi\n"
        "done | sort -n\n"
    )


def _dart_code(level: str, sub_name: str, scores: dict[str, float]) -> str:
    def lit(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("$", "\\$") + "'"

    rows = "\n".join(f"    {lit(n)}: {s}," for n, s in scores.items())
    threshold = "1.1" if level_index(level) <= 1 else "0.7"
    return (
        f"// {_comment(sub_name)} 핵심 개념 복습 노트\n"
        "void main() {\n"
        f"  final understanding = <String, double>{{\n{rows}\n  }};\n"
        f"  const threshold = {threshold};\n"
        "  understanding.forEach((name, score) {\n"
        "    if (score < threshold) {\n"
        "      print('복습할 개념: $name ($score)');\n"
        "    }\n"
        "  });\n"
        "}\n"
    )


_CODE_WRITERS: Final[dict[str, Callable[[str, str, dict[str, float]], str]]] = {
    "python": _python_code,
    "sql": _sql_code,
    "javascript": _javascript_code,
    "bash": _bash_code,
    "dart": _dart_code,
}
