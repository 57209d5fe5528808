"""Korean text helpers: particles (조사) that agree with the word before them, template filling."""

from __future__ import annotations

import re
import string
from typing import Any, Final

# Particle pairs: (after a final consonant, after a vowel). 으로/로 also takes 로 after ㄹ.
_PARTICLES: Final = {
    "은": ("은", "는"),
    "는": ("은", "는"),
    "이": ("이", "가"),
    "가": ("이", "가"),
    "을": ("을", "를"),
    "를": ("을", "를"),
    "과": ("과", "와"),
    "와": ("과", "와"),
    "으로": ("으로", "로"),
    "로": ("으로", "로"),
    "이란": ("이란", "란"),
    "란": ("이란", "란"),
    "이라": ("이라", "라"),
    "라": ("이라", "라"),
    "이나": ("이나", "나"),
    "나": ("이나", "나"),
    "이며": ("이며", "며"),
    "며": ("이며", "며"),
    "이야": ("이야", "야"),
    "야": ("이야", "야"),
    "이라는": ("이라는", "라는"),
    "라는": ("이라는", "라는"),
}

# Korean readings of digits end in: 영(ㅇ) 일(ㄹ) 이 삼(ㅁ) 사 오 육(ㄱ) 칠(ㄹ) 팔(ㄹ) 구.
_DIGIT_FINAL: Final = {
    "0": "other",
    "1": "rieul",
    "2": "",
    "3": "other",
    "4": "",
    "5": "",
    "6": "other",
    "7": "rieul",
    "8": "rieul",
    "9": "",
}
# Letter names as read in Korean: 엘, 알 end in ㄹ; 엠, 엔 in another consonant; others in a vowel.
_ACRONYM_FINAL: Final = {"L": "rieul", "R": "rieul", "M": "other", "N": "other"}
_LAST_TOKEN = re.compile(r"[0-9A-Za-z\uac00-\ud7a3]+$")


def final_sound(word: str) -> str:
    """How `word` ends when read aloud: "" (vowel), "rieul" (ㄹ) or "other" (other consonant)."""
    core = word.rstrip(" )]}\"'’”.,·:;!?")
    if not core:
        return ""
    match = _LAST_TOKEN.search(core)
    if match is None:
        return ""
    token = match.group(0)
    last = token[-1]
    if "\uac00" <= last <= "\ud7a3":
        final = (ord(last) - 0xAC00) % 28
        return "" if final == 0 else ("rieul" if final == 8 else "other")
    if last.isdigit():
        return _DIGIT_FINAL[last]
    latin = re.search(r"[A-Za-z]+$", token)
    if latin is None:
        return ""
    letters = latin.group(0)
    if letters.isupper() and len(letters) <= 5:
        return _ACRONYM_FINAL.get(letters[-1], "")
    lower = letters.lower()
    # Loanwords: -ng, -m, -n keep a consonant (롱, 폼, 썬); -l/-le end in ㄹ (구글); stops and -r
    # are written with a vowel (리액트, 도커).
    if lower.endswith(("l", "le")):
        return "rieul"
    if lower.endswith(("ng", "m", "n")):
        return "other"
    return ""


def josa(word: str, particle: str) -> str:
    """`word` followed by the form of `particle` that agrees with its last sound."""
    with_final, without_final = _PARTICLES[particle]
    sound = final_sound(word)
    if particle in ("으로", "로"):
        return word + (with_final if sound == "other" else without_final)
    return word + (with_final if sound else without_final)


class _KoreanFormatter(string.Formatter):
    """`{name:을}` formats the value followed by the agreeing particle (를 or 을)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec in _PARTICLES:
            return josa(str(value), format_spec)
        return str(super().format_field(value, format_spec))


_FORMATTER: Final = _KoreanFormatter()


def fill(template: str, slots: dict[str, str]) -> str:
    """Fill a template whose slots may carry particles: fill("{x:은} 좋다", {"x": "API"})."""
    return _FORMATTER.vformat(template, (), slots)


def is_hangul(char: str) -> bool:
    """True for Hangul syllables and jamo."""
    return (
        "\uac00" <= char <= "\ud7a3" or "\u1100" <= char <= "\u11ff" or "\u3130" <= char <= "\u318f"
    )
