"""Path parameters: ids and slugs are short and plain (letters, digits, `_ . ~ -`), else 422."""

from __future__ import annotations

import re

PATH_PARAM_PATTERN = r"^[A-Za-z0-9_.~-]+$"
_PLAIN = re.compile(PATH_PARAM_PATTERN)


def is_plain(value: str, max_length: int) -> bool:
    return 0 < len(value) <= max_length and _PLAIN.match(value) is not None
