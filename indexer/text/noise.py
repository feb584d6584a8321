"""Text that is searchable but is not an answer: table rows, table placeholders, form templates, formula rows.

Compiled handbooks end in forms ("填写人（签名）： 年 月 日"), converted tables ("--- 表格47 ---", cells joined
by "|") and rows of numbers; their words match questions (入党, 审批, 时间) without answering them.
"""
from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"^\s*-{2,}\s*表格\s*\d+\s*-{2,}\s*$")
_FORM_FIELD = re.compile(r"(签名|签字|盖章)\s*[)）]?\s*[:：]|年\s+月\s+日|_{3,}|＿{2,}|□")
_CJK = re.compile(r"[\u3400-\u9fff]")
_DIGIT_OR_OP = re.compile(r"[0-9０-９.%％+\-×÷=/*（）()]")


def is_noise_line(line: str) -> bool:
    """True for a table row, a table placeholder, a form-template line or a bare row of numbers/formulae."""
    s = line.strip()
    if not s:
        return False
    if _PLACEHOLDER.match(s) or s.count("|") >= 2 or s.count("｜") >= 2:
        return True
    if _FORM_FIELD.search(s) and len(_CJK.findall(s)) < 40:
        return True
    cjk = len(_CJK.findall(s))
    return len(s) >= 6 and cjk <= len(s) * 0.2 and len(_DIGIT_OR_OP.findall(s)) >= len(s) * 0.4


def noise_share(text: str) -> float:
    """Share of a passage's characters that sit on noise lines (0 = prose, 1 = all table or form)."""
    total = noisy = 0
    for line in text.split("\n"):
        n = len(line.strip())
        total += n
        if n and is_noise_line(line):
            noisy += n
    return noisy / total if total else 0.0
