import pytest

from infou_libs.durations import korean_duration, korean_minutes


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0초"),
        (0.2, "1초"),
        (30, "30초"),
        (60, "1분"),
        (90, "1분 30초"),
        (135, "2분 15초"),
        (3600, "1시간"),
        (3900, "1시간 5분"),
    ],
)
def test_korean_duration(seconds: float, text: str) -> None:
    assert korean_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0분"), (59, "0분"), (180, "3분"), (7500, "2시간 5분")]
)
def test_korean_minutes(seconds: float, text: str) -> None:
    assert korean_minutes(seconds) == text
