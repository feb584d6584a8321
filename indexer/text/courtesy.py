"""Courtesy around a question: greetings, "请问", thanks and pleas for a reply, which carry nothing to search for.

People write to a search box as they write to a 留言板: "老师您好，请问入党积极分子要培养多久？谢谢！". The
greeting and the thanks are words of the question to both halves: they dilute the e5 vector of a short question
and add terms to the keyword half and to the answer-sentence choice. Measured on the tuning corpus
(``python -m bench.courtesy``; bench/NOTES.md "Courtesy around a question"): wrapping the dev paraphrases in
greetings and thanks cost hybrid 4.9 points of R@1.

Only courtesy is removed, never what the person says about themselves ("我是预备党员，…" is part of the question),
and only at the start (greeting, then the asking formula) and at the end (thanks, pleas). A question that would be
left without two searchable characters is kept whole.
"""
from __future__ import annotations

import re

_PUNCT = r"\s，,。.、！!~～…:：;；"
_STOP = rf"[{_PUNCT}]*"
# a greeting ends at a stop or at the asking words ("你好我好" is an idiom, not a greeting)
_AFTER = rf"(?:[{_PUNCT}]+|(?=请问|请教|想|我(?!好)|麻烦|打扰|问一下))"
# "您好" / "老师您好" / "各位领导好" / "大家好": a greeting, with up to 12 characters naming whom it greets
_GREETING = re.compile(rf"^(?:[^，,。.！!？?\s]{{0,12}}?(?:您|你|大家|各位)好(?!好)(?:啊|呀|哈)?"
                       rf"|(?:尊敬的)?(?:各位)?(?:老师|领导|专家|同志|前辈)们?好){_AFTER}")
# "请问" / "想咨询一下" / "麻烦问一下" / "打扰一下": the formula that announces a question ("咨询" and "请教" alone
# only before a stop or whom they address: "咨询委员会…" is a question about a committee)
# ("下" only where it cannot begin a word: "问下级党组织…" asks about 下级; "想问题…" is not "想问")
_DOWN = r"下(?![级属面达发列一次半午班乡岗放沉滑降载])"
_ASKING = re.compile(rf"^(?:打扰(?:您|你)?(?:了|一下)?{_STOP})?"
                     rf"(?:(?:请问|问一下|问{_DOWN}|(?:我)?想(?:请教|咨询|问(?!题)|了解|请问)|麻烦(?:您|你)?(?:问|咨询|请教)"
                     rf"|冒昧(?:地)?问)(?:一下|{_DOWN})?(?:各位|您|你|老师|领导)?(?:一下)?{_STOP}"
                     rf"|(?:咨询|请教)(?:一下|{_DOWN}|各位|您|你|老师|领导)+{_STOP}|(?:咨询|请教)[{_PUNCT}]+"
                     # "打扰一下，" / "问个问题，" / "我有个问题想请教，" / "求助：", each before a stop; several in
                     # a row are taken one at a time (strip_courtesy repeats the pattern)
                     rf"|打扰(?:您|你)?(?:了|一下)?[{_PUNCT}]+|(?:问|请教)(?:个|一个)问题[{_PUNCT}]+"
                     rf"|(?:我)?有(?:个|一个)问题(?:想)?(?:问|请教|咨询)?(?:一下|{_DOWN})?[{_PUNCT}]+"
                     rf"|求(?:助|问|教)[{_PUNCT}]+)")
# "谢谢！" / "麻烦解答一下，谢谢。" / "求解答" / "在线等，急": thanks and pleas for a reply, at the end ("感谢",
# "麻烦", "辛苦" and "急" only after a stop: "怎么表示感谢", "手续麻烦", "工作很急" are questions)
_AFTER_STOP = r"(?<=[\s，,。.！!？?~～…])"
_CLOSING = re.compile(r"(?:[\s，,。.！!~～…]*(?:(?:谢谢|多谢|" + _AFTER_STOP + r"感谢)"
                      r"(?:您|你|你们|各位|老师|领导|大家)?(?:的)?(?:解答|回复|回答|答复|指导|帮助|关注)?(?:了|啦)?"
                      r"|" + _AFTER_STOP + r"(?:麻烦|辛苦)(?:您|你|你们|各位|老师|领导)?"
                      r"(?:了|啦|解答(?:一下)?|回复(?:一下)?)"
                      r"|求(?:解答|回复|指导|助)|在线等|" + _AFTER_STOP + r"急+|盼复|望(?:回复|解答|答复)"
                      r"|期待(?:您的)?(?:回复|解答)))+[\s，,。.！!~～…]*$")
ASKING_REPEATS = 3
_SEARCHABLE = re.compile(r"[0-9A-Za-z\u4e00-\u9fff]")


def strip_courtesy(question: str) -> str:
    """The question without a leading greeting and asking formula and without closing thanks or pleas."""
    text = question.strip()
    text = _GREETING.sub("", text, count=1)
    for _ in range(ASKING_REPEATS):  # "打扰一下，问个问题，请问…": one formula after another
        shorter = _ASKING.sub("", text, count=1)
        if shorter == text:
            break
        text = shorter
    text = _CLOSING.sub("", text, count=1).strip()
    if len(_SEARCHABLE.findall(text)) < 2:
        return question
    return text
