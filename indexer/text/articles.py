"""Article references: ``第X编/章/节/条/款/项`` labels, regulation names and version years.

Pure text rules (no index, no jieba): what a question or a passage says when it names an article
("纪律处分条例第二十七条", "2018年版党章第8条", "《中国共产党章程》第八条", "本条例第三十条第二款", "依照前款规定"),
and the name keys a regulation can be called by (full title, title without 中国共产党, a short name such as 党章 or
处分条例). :mod:`indexer.search.lookup` matches them against the indexed documents.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator

from indexer.text.numerals import NUMERALS, YEAR_DIGITS, cn_to_int, int_to_cn

__all__ = ["ArticleRef", "find_refs", "article_number", "chapter_number",
           "year_request", "YearRequest", "name_keys", "regulation_core", "mention_score", "normalise_name",
           "ALIASES", "RULE_ENDINGS", "CrossRef", "find_cross_refs"]

NUM = rf"[{NUMERALS}]+"
_KINDS = "编章节条款项"


_LABEL = re.compile(rf"第\s*({NUM})\s*([{_KINDS}])")
_ITEM_PAREN = re.compile(rf"第\s*[（(]\s*({NUM})\s*[)）]\s*项")


@dataclass
class ArticleRef:
    """One ``第X章第Y条第Z款第W项`` chain in a text (numbers as integers, None where not given)."""

    start: int
    end: int
    part: int | None = None  # 编
    chapter: int | None = None  # 章
    section: int | None = None  # 节
    article: int | None = None  # 条
    clause: int | None = None  # 款
    item: int | None = None  # 项
    heading: str | None = None  # a named part with no number: 总纲 (党章), 序言, 总则 / 分则 / 附则
    article_word: str = "条"  # what the text called the article: 条, or 点 / 部分 for a numbered rule or section

    @property
    def label(self) -> str:
        """``第二十七条第二款``-style label of the most specific parts given (the heading's name for a heading)."""
        if self.heading:
            return self.heading
        parts = []
        for n, kind in ((self.chapter, "章"), (self.section, "节")):
            if n and self.article is None:
                parts.append(f"第{int_to_cn(n)}{kind}")
        if self.article:
            parts.append(f"第{int_to_cn(self.article)}{self.article_word}")
        if self.clause:
            parts.append(f"第{int_to_cn(self.clause)}款")
        if self.item:
            parts.append(f"第{int_to_cn(self.item)}项")
        return "".join(parts)


_FIELD = {"编": "part", "章": "chapter", "节": "section", "条": "article", "款": "clause", "项": "item"}
_ORDER = "编章节条款项"


def _labels(text: str) -> Iterator[tuple[int, int, str, int]]:
    """(start, end, kind, number) of every 第X<kind> label, with 第（三）项 items too, in text order."""
    found = []
    for rx in (_LABEL, _ITEM_PAREN):
        for m in rx.finditer(text):
            n = cn_to_int(m.group(1))
            if n:
                found.append((m.start(), m.end(), m.group(2) if rx is _LABEL else "项", n))
    return iter(sorted(found))


def find_refs(text: str) -> list[ArticleRef]:
    """Every chain of article labels in ``text``: ``第五章第十九条`` is one ref, ``第七条和第八条`` two."""
    refs: list[ArticleRef] = []
    cur: ArticleRef | None = None
    last_kind = -1
    for s, e, kind, n in _labels(text):
        k = _ORDER.index(kind)
        joined = cur is not None and k > last_kind and not text[cur.end:s].strip(" 　、的中之")
        if not joined:
            cur = ArticleRef(s, e)
            refs.append(cur)
        assert cur is not None
        setattr(cur, _FIELD[kind], n)
        cur.end = e
        last_kind = k
    return refs


_ARTICLE_PART = re.compile(rf"^\**第\s*({NUM})\s*条\**$")
_CHAPTER_PART = re.compile(rf"^第\s*({NUM})\s*章")


def _part_number(rx: re.Pattern[str], section_part: str) -> int | None:
    m = rx.match(section_part.strip())
    return cn_to_int(m.group(1)) if m else None


def article_number(section_part: str) -> int | None:
    """The article number of a section-path part that is an article label (``第二十七条``), else None."""
    return _part_number(_ARTICLE_PART, section_part)


def chapter_number(section_part: str) -> int | None:
    """The chapter number of a section-path part that is a chapter heading (``第五章 组织生活``), else None."""
    return _part_number(_CHAPTER_PART, section_part)


# ------------------------------------------------------------------------------------------------ version years
_CONGRESS = {"十二大": 1982, "十三大": 1987, "十四大": 1992, "十五大": 1997, "十六大": 2002, "十七大": 2007,
             "十八大": 2012, "十九大": 2017, "二十大": 2022}
_YEAR_WORDS = re.compile(
    rf"[（(]?\s*((?:19|20)[0-9]{{2}}|[{YEAR_DIGITS}]{{4}})\s*(?:年)?\s*"
    r"(?:版本|版|修订版|修订|修正|新版|发布|施行|印发|制定)?\s*(?:的)?\s*[)）]?")
# 十九大党章 / 党的十九大修改的党章: a congress names a 党章 version only right before it ("十八大以来" names none)
_CONGRESS_RE = re.compile(r"(?:党的)?(十[二三四五六七八九]大|二十大)(?:通过|修改|修订|部分修改)?(?:的|版)?(?=《?(?:党章|中国共产党章程|党的章程))")
_NEWEST = re.compile(r"现行|最新|新版|当前|目前|现在")
_OLDER = re.compile(r"旧版|老版|修订前|原版|上一版|原来的|以前的")


@dataclass
class YearRequest:
    """Which version a question asks for: a year, the newest, the one before, or nothing said."""

    year: int | None = None
    newest: bool = False
    older: bool = False
    spans: list[tuple[int, int]] = field(default_factory=list)  # where the words stand (to cut them out)


def year_request(text: str) -> YearRequest:
    """The version a question names: ``2018年版`` ``2015年`` ``（2018年修订）`` ``十九大党章`` ``旧版``."""
    req = YearRequest()
    for m in _YEAR_WORDS.finditer(text):
        y = cn_to_int(m.group(1))
        if y and 1921 <= y <= 2100:
            req.year = req.year or y
            req.spans.append(m.span())
    for m in _CONGRESS_RE.finditer(text):
        req.year = req.year or _CONGRESS[m.group(1)]
        req.spans.append(m.span())
    for rx, attr in ((_NEWEST, "newest"), (_OLDER, "older")):
        for m in rx.finditer(text):
            setattr(req, attr, True)
            req.spans.append(m.span())
    return req


# ------------------------------------------------------------------------------------------------ names
# Short names people use, each mapped to the core (see regulation_core) of the regulation it means.
ALIASES: dict[str, str] = {
    "党章": "章程", "党的章程": "章程", "中共党章": "章程", "新党章": "章程",
    "处分条例": "纪律处分条例", "党纪处分条例": "纪律处分条例", "纪律条例": "纪律处分条例", "党纪条例": "纪律处分条例",
    "支部工作条例": "支部工作条例", "党支部工作条例": "支部工作条例", "支部条例": "支部工作条例",
    "问责条例": "问责条例", "党内问责条例": "问责条例",
    "巡视条例": "巡视工作条例",
    "准则": "廉洁自律准则", "廉洁准则": "廉洁自律准则",
    "若干准则": "新形势下党内政治生活的若干准则", "党内政治生活准则": "新形势下党内政治生活的若干准则",
    "党内政治生活若干准则": "新形势下党内政治生活的若干准则",  # (the core: regulation_core drops 关于)
    "发展党员细则": "发展党员工作细则", "党员发展工作细则": "发展党员工作细则", "党员发展细则": "发展党员工作细则", "发展党员工作细则": "发展党员工作细则",
    "党员教育管理条例": "党员教育管理工作条例", "党员教育条例": "党员教育管理工作条例",
    "高校基层组织工作条例": "普通高等学校基层组织工作条例", "高校党组织工作条例": "普通高等学校基层组织工作条例",
    "高校基层党组织工作条例": "普通高等学校基层组织工作条例",
    "纪委工作条例": "纪律检查委员会工作条例", "纪律检查委员会条例": "纪律检查委员会工作条例",
    "纪检委工作条例": "纪律检查委员会工作条例", "纪委条例": "纪律检查委员会工作条例",
    "监督执纪规则": "纪律检查机关监督执纪工作规则", "监督执纪工作规则": "纪律检查机关监督执纪工作规则",
    "八项规定实施细则": "中央八项规定实施细则", "中央八项规定实施细则": "中央八项规定实施细则",
    "主体责任规定": "党委（党组）落实全面从严治党主体责任规定",
    "案件检查条例": "纪律检查机关案件检查工作条例", "案件审理条例": "纪律检查机关案件审理工作条例",
    "案件审理工作条例": "纪律检查机关案件审理工作条例",
    "党费规定": "党费收缴、使用和管理的规定", "党费管理规定": "党费收缴、使用和管理的规定",
    "廉洁从业规定": "国有企业领导人员廉洁从业若干规定", "国企廉洁从业规定": "国有企业领导人员廉洁从业若干规定",
    "组织处理规定": "组织处理规定", "派驻机构工作规则": "纪检监察机关派驻机构工作规则",
    "检举控告工作规则": "纪检监察机关处理检举控告工作规则",
    "批准权限和程序规定": "处分违纪党员批准权限和程序规定",
}
_LEADS = ("关于", "中国共产党", "中共中央", "中共", "党的")
_NOTES = re.compile(r"[（(][^（）()]{0,16}[)）]")
_YEARISH = re.compile(r"(?:19|20)[0-9]{2}\s*(?:年)?\s*(?:版|修订|修正|修订版)?")
_PUNCT = re.compile(r"[《》〈〉<>“”\"'‘’「」\s·—\-_：:]")
# Words that, standing right before a partial name (处分条例 for 纪律处分条例), show the name starts there.
_BOUNDARY = set("的据照按依循反在与和及或对了看读查问把将用是说中里条款于从")
# How a regulation's name ends (the article look-up builds its name patterns from this too); a key may also be 党章.
RULE_ENDINGS = ("条例", "规定", "细则", "准则", "办法", "规则", "章程", "守则", "规程")
_RULE_END = (*RULE_ENDINGS, "党章")


def normalise_name(text: str) -> str:
    """A name or question as names are compared: NFKC, no quotes/brackets marks/spaces."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text or ""))


def regulation_core(name: str) -> str:
    """The name without years, edition notes and 中国共产党/中共 lead: ``中国共产党纪律处分条例2018`` -> ``纪律处分条例``."""
    s = normalise_name(name)
    s = _YEARISH.sub("", s)
    s = re.sub(r"[(][^()]{0,16}[)]", lambda m: "" if re.search(r"试行|修订|修正|暂行|草案|年|[0-9]", m.group()) else m.group(), s)
    for lead in _LEADS:
        if s.startswith(lead) and len(s) - len(lead) >= 2:
            s = s[len(lead):]
    return s


def name_keys(name: str) -> set[str]:
    """What a regulation called ``name`` may be called in a question: its full name, its core, the core's
    aliases (党章 for 中国共产党章程)."""
    full = normalise_name(_YEARISH.sub("", name))
    core = regulation_core(name)
    keys = {k for k in (full, re.sub(r"[(][^()]*[)]", "", full), core) if len(k) >= 3}
    keys.update(alias for alias, target in ALIASES.items() if normalise_name(target) == core)
    if core == "章程":
        keys.discard("章程")  # 章程 alone is any organisation's charter; 党章 and the full name stay
    return keys


def mention_score(mention: str, key: str) -> int:
    """How well the text right before an article label (``mention``) names ``key``: twice the key's length when
    the mention ends with it; for a shortened name (处分条例 for 纪律处分条例, 党政机关公务接待管理规定 for
    党政机关国内公务接待管理规定) the number of its characters found in order at the key's end, when they are at
    least 4 and half the key, at most 3 of the key's characters are skipped, and a word boundary precedes; else 0."""
    if mention.endswith(key):
        return 2 * len(key)
    if not key.endswith(_RULE_END) or mention[-2:] != key[-2:]:
        return 0
    i, j, skipped = len(mention) - 1, len(key) - 1, 0
    while i >= 0 and j >= 0:
        if mention[i] == key[j]:
            i -= 1
        elif skipped < _MAX_SKIP:
            skipped += 1
        else:
            break
        j -= 1
    n = len(mention) - 1 - i
    if n < 4 or n * 2 < len(key):
        return 0
    before = mention[i] if i >= 0 else ""
    if before and "\u4e00" <= before <= "\u9fff" and before not in _BOUNDARY:
        return 0
    return n


_MAX_SKIP = 3


# ------------------------------------------------------------------------------------------------ cross-references
@dataclass
class CrossRef:
    """A reference in a passage to an article: what it says and what it points at."""

    start: int
    end: int
    text: str
    kind: str  # "same" (本条例第X条 / bare 第X条), "named" (《…》第X条), "clause" (前款 / 本条第N款)
    ref: ArticleRef
    name: str = ""  # the named regulation for kind "named"
    back: int = 0  # 前款 = 1, 前两款 = 2 (kind "clause")


_SELF = r"本(?:条例|规定|细则|准则|办法|规则|章程|决定|守则|规程)"
_NAMED = re.compile(r"《([^《》]{2,60})》\s*(?:[（(][^（）()]{0,16}[)）])?\s*(?=第)")
_SELF_RE = re.compile(_SELF + r"\s*(?=第)")
_LIST_GAP = re.compile(r"\s*(?:、|，|,|和|及|以及|与|或者|或|至|到)\s*")
_BACK = re.compile(r"前([一二两三四五]?)款")
_THIS_CLAUSE = re.compile(rf"本条\s*第\s*({NUM})\s*款")


def find_cross_refs(text: str) -> list[CrossRef]:
    """Article references in a passage: ``本条例第二十七条``, ``《中国共产党章程》第八条``, ``依照前款规定``,
    ``本条第二款``, and a bare ``第三十条`` inside an article (same regulation); in text order."""
    out: list[CrossRef] = []
    prev: CrossRef | None = None
    for ref in find_refs(text):
        if ref.article is None:
            continue
        head = text[max(0, ref.start - 70):ref.start] + "第"
        named = [m for m in _NAMED.finditer(head) if m.end() == len(head) - 1]
        own = [m for m in _SELF_RE.finditer(head) if m.end() == len(head) - 1]
        if named or own:
            m = (named or own)[-1]
            s = ref.start - (len(head) - 1) + m.start()
            prev = CrossRef(s, ref.end, text[s:ref.end], "named" if named else "same", ref,
                            name=m.group(1) if named else "")
            out.append(prev)
            continue
        if prev is not None and _LIST_GAP.fullmatch(text[prev.end:ref.start]):
            prev = CrossRef(ref.start, ref.end, text[ref.start:ref.end], prev.kind, ref, name=prev.name)
            out.append(prev)  # 《党章》第八条和第九条: the second is the same regulation's
            continue
        if ref.start > 0 and text[ref.start - 1] == "》":
            prev = None
            continue  # 《条例》第X条 after an unknown abbreviation: not resolvable
        if ref.start == 0 or text[ref.start - 1] == "\n":
            prev = None
            continue  # the article's own label at the start of its paragraph
        prev = CrossRef(ref.start, ref.end, text[ref.start:ref.end], "bare", ref)
        out.append(prev)
    for m in _BACK.finditer(text):
        back = cn_to_int(m.group(1)) if m.group(1) else 1
        out.append(CrossRef(m.start(), m.end(), m.group(), "clause", ArticleRef(m.start(), m.end()), back=back or 1))
    for m in _THIS_CLAUSE.finditer(text):
        if any(c.start <= m.start() < c.end for c in out):
            continue
        out.append(CrossRef(m.start(), m.end(), m.group(), "clause",
                            ArticleRef(m.start(), m.end(), clause=cn_to_int(m.group(1)))))
    return sorted(out, key=lambda c: c.start)
