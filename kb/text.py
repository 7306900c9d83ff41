"""Text primitives shared by every stage: NFKC normalisation, Chinese numerals, years.

One definition each: `nfkc` (how gold strings and phrases are compared), `fold` (NFKC + lower case,
what segmentation and matching use), `compact` (folded, no whitespace), `chinese_number`, `YEAR`
(a year of 1900-2099 as a regular expression) and `leading_year` (the year a date string starts with).
"""

from __future__ import annotations

import re
import unicodedata

YEAR = r"(?:19|20)[0-9]{2}"
_LEADING_YEAR_RE = re.compile(rf"\s*({YEAR})")

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000}


def nfkc(text: str) -> str:
    """Return NFKC-normalised text (full-width digits and letters become half-width)."""
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """Return NFKC-normalised, lower-cased text."""
    return unicodedata.normalize("NFKC", text).lower()


def compact(text: str) -> str:
    """Return folded text without any whitespace (for exact phrase and heading comparison)."""
    return "".join(fold(text).split())


def chinese_number(text: str) -> int | None:
    """Return the value of a Chinese or Arabic numeral ("二十四", "24", "２４", "一百零五", "二〇二三"), or None."""
    text = nfkc(text.strip())
    if text.isdigit():
        return int(text)
    if not text or any(ch not in CN_DIGITS and ch not in CN_UNITS for ch in text):
        return None
    if not any(ch in CN_UNITS for ch in text):  # positional: 二〇二三
        return int("".join(str(CN_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in CN_DIGITS:
            current = CN_DIGITS[ch]
        else:
            total += (current or 1) * CN_UNITS[ch]
            current = 0
    return total + current


def leading_year(text: str) -> int | None:
    """Return the year (1900-2099) a date string such as "2023-05-01" starts with, or None."""
    m = _LEADING_YEAR_RE.match(text or "")
    return int(m.group(1)) if m else None
