"""Durations as the PRD writes them for learners ("2분 15초", "3-4분", "3-4주")."""

from __future__ import annotations

import math


def korean_duration(seconds: float) -> str:
    """Whole seconds, rounded up: '30초', '1분 30초', '2분', '1시간 5분'."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}시간 {minutes}분" if minutes else f"{hours}시간"
    if not minutes:
        return f"{secs}초"
    return f"{minutes}분 {secs}초" if secs else f"{minutes}분"


def korean_minutes(seconds: float) -> str:
    """Time spent, in whole minutes: '0분', '45분', '2시간 5분'."""
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}시간 {minutes}분" if minutes else f"{hours}시간"
    return f"{minutes}분"
