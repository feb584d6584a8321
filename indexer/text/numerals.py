"""Chinese numerals, in one place: the characters, their values, and conversion to and from integers."""
from __future__ import annotations

import unicodedata

# Digit values. 〇 (U+3007) and its look-alike ○ (U+25CB) are both written in years (二○一八); 两 counts like 二.
DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
          "八": 8, "九": 9}
UNITS = {"十": 10, "百": 100, "千": 1000}
CN_NUMERALS = "".join(DIGITS) + "".join(UNITS)
# A regex character-class body: a Chinese numeral or an ASCII / full-width Arabic digit (第２７条, 附件1, 第二十七条).
NUMERALS = CN_NUMERALS + "0-9０-９"
# The digits of a year written in Chinese, one character per digit (二〇一八年, 二○一八年): no 两, no units.
YEAR_DIGITS = "".join(c for c in DIGITS if c != "两")


def cn_to_int(s: str) -> int | None:
    """An integer from Arabic (``27``, ``２７``) or Chinese numerals (``二十七``, ``一百零一``, ``十``); None if not one."""
    s = unicodedata.normalize("NFKC", (s or "").strip())
    if not s:
        return None
    if s.isdigit():
        return int(s)
    if any(c not in DIGITS and c not in UNITS for c in s):
        return None
    if all(c in DIGITS for c in s) and len(s) > 1:
        return int("".join(str(DIGITS[c]) for c in s))  # 二〇一八 read digit by digit
    total, cur = 0, 0
    for c in s:
        if c in DIGITS:
            cur = DIGITS[c]
        else:
            total += (cur or 1) * UNITS[c]
            cur = 0
    return total + cur


def int_to_cn(n: int) -> str:
    """Chinese numerals as articles are numbered: 10 -> 十, 27 -> 二十七, 101 -> 一百零一, 110 -> 一百一十."""
    if n <= 0:
        return "零"
    digits = "零一二三四五六七八九"
    out: list[str] = []
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        q, n = divmod(n, value)
        if q:
            out.append(digits[q] + unit)
        elif out and n:
            if out[-1] != "零":
                out.append("零")
    if n:
        out.append(digits[n])
    s = "".join(out)
    return s[1:] if s.startswith("一十") else s
