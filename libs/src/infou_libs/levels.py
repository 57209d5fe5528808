"""The PRD's five difficulty levels (§3.1), easiest first: the codes every service validates.

catalog-service owns their descriptions; the codes and their order are shared vocabulary.
"""

from __future__ import annotations

from typing import Final, Literal

LevelCode = Literal["absolute_beginner", "beginner", "intermediate", "advanced", "expert"]
LEVELS: Final[tuple[LevelCode, ...]] = (
    "absolute_beginner",
    "beginner",
    "intermediate",
    "advanced",
    "expert",
)
