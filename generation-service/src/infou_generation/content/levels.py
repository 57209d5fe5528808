"""The five difficulty levels (PRD §3.1), in learning order."""

from __future__ import annotations

from typing import Final

from infou_libs.levels import LEVELS

LEVEL_NAMES: Final = {
    "absolute_beginner": "완전 초심자",
    "beginner": "초급자",
    "intermediate": "중급자",
    "advanced": "고급자",
    "expert": "전문가",
}

ARTICLE_LENGTHS: Final = ("short", "medium", "long")


def level_index(level: str) -> int:
    """0 for absolute_beginner … 4 for expert; ValueError for an unknown code."""
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}") from None


def shift_level(level: str, steps: int) -> str:
    """The level `steps` away from `level`, clamped to the ends of the scale."""
    return LEVELS[min(max(level_index(level) + steps, 0), len(LEVELS) - 1)]
