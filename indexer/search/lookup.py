"""Article look-up: a question naming a regulation and an article gets that article first, in every mode.

"纪律处分条例第二十七条", "2018年版党章第8条", "发展党员工作细则第十条" (a sub-regulation of a compiled handbook),
"党章第四条规定了党员哪些权利": the regulation is matched against the names of the indexed regulations (document
titles and the sub-regulations citations name, see :mod:`indexer.text.cite`, plus short names from
:data:`indexer.text.articles.ALIASES`), the version by a year or 版本 word (else the current one), and the article's
passages are put before the ranked hits. An article past the regulation's last one gives no hits and a message
("该条例共一百五十八条"). A question that names no known regulation, or no article, is left as ranked.

The same catalog resolves the cross-references inside passages ("本条例第二十七条", "《中国共产党章程》第八条",
"依照前款规定") into ``references`` on hits.
"""
from __future__ import annotations

import bisect
import logging
import re
import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Collection, Mapping, Sequence

from indexer.search.rank import Results
from indexer.text.articles import (RULE_ENDINGS, ArticleRef, YearRequest, article_number, chapter_number,
                                   find_cross_refs, find_refs, mention_score, name_keys, normalise_name, regulation_core,
                                   year_request)
from indexer.text.cite import citation, cited_document, is_document_name
from indexer.text.numerals import cn_to_int, int_to_cn
from indexer.text.versions import VersionInfo, document_year

logger = logging.getLogger(__name__)

__all__ = ["Unit", "Catalog", "Found", "build_catalog", "lookup", "find", "pin", "references", "LookupResults",
           "ArticleLookup"]

PIN_MAX = 3  # at most this many passages of one article go before the ranked hits
LOOKUP_CONFIDENCE = 0.95  # an exact article look-up answers the question
_RULE_WORDS = "|".join(RULE_ENDINGS)  # how a regulation's name ends
_RULE_NAME = re.compile(rf"({_RULE_WORDS})$")
_TRAIL = "的中里之内"
# Named parts a question can ask for by name alone ("党章总纲", "处分条例的附则"): the preamble of 党章 (总纲) or of a
# law (序言), and the 编 / 章 every regulation calls 总则, 分则 or 附则. Only these: a chapter's own topic ("党章中关于
# 党员的规定") is a question for ranking, not a look-up.
HEADINGS = ("总纲", "序言", "总则", "分则", "附则")
_HEADING = re.compile("|".join(HEADINGS))
_HEADING_PART = re.compile(rf"^(?:第\s*[零〇一二两三四五六七八九十百千0-9]+\s*[编章节]\s*)?({_HEADING.pattern})$")


@dataclass
class Unit:
    """One regulation inside one document: a whole document, or a sub-regulation of a compiled handbook."""

    doc_id: str
    name: str  # as citations name it, e.g. 中国共产党支部工作条例（试行）
    standalone: bool  # the regulation is the whole document
    year: int | None
    family: str  # regulation_core(name): equal families are versions (or copies) of one regulation
    keys: frozenset[str]
    articles: dict[int, list[str]] = field(default_factory=dict)  # article number -> its passages, in order
    chapters: dict[int, list[str]] = field(default_factory=dict)
    headings: dict[str, list[str]] = field(default_factory=dict)  # HEADINGS word -> its passages, in order
    item_at: dict[int, int] = field(default_factory=dict)  # numbered items as articles: where item n starts
    part_word: str = "条"  # what its numbered units are called: 条, or 部分 for numbered sections (若干准则's 一、… 十二、)

    @property
    def last_article(self) -> int:
        """The highest article number (0 when the regulation has no articles)."""
        return max(self.articles, default=0)

    def label_of(self, n: int, word: str = "") -> str:
        """``第七条``, or ``第三部分`` for a regulation whose numbered units are sections; ``word`` instead of its own
        word when given (八项规定's rules asked as 第三点)."""
        return f"第{int_to_cn(n)}{word or self.part_word}"

    @property
    def numbered(self) -> bool:
        """True when its units are numbered rules or sections rather than 第X条 (第三点 / 第三部分 name them too)."""
        return bool(self.item_at) or self.part_word != "条"

    @property
    def label(self) -> str:
        """``2023年版`` (or empty when the year is unknown)."""
        return f"{self.year}年版" if self.year else ""


@dataclass
class Catalog:
    """The regulations of one index generation with their articles, and where each passage belongs."""

    units: list[Unit]
    unit_of: dict[str, Unit]  # pid -> the unit whose article it is (or inside whose chapter it is)
    article_of: dict[str, int]  # pid -> its article number
    # the names of indexed regulations that have no articles (若干准则): see names_other (若干准则第三条 is not
    # 廉洁自律准则第三条, whose short name 准则 it ends with)
    others: list[frozenset[str]] = field(default_factory=list)

    def names_other(self, mention: str, units: Sequence[Unit]) -> bool:
        """True when ``units`` are named only by a bare two-character alias (准则) that ends a longer name of an
        indexed regulation without articles (若干准则). Only then: a list page titled 八项规定 must not stop
        八项规定第二条, which names the 八项规定's rules by a shortened name."""
        best, key = max(((mention_score(mention, k), k) for u in units for k in u.keys), default=(0, ""))
        if not best or len(key) > 2:
            return False
        return any(mention_score(mention, k) > best for keys in self.others for k in keys)

    def named(self, mention: str, exact: bool = False) -> list[Unit]:
        """The units the end of ``mention`` (normalised text right before an article label) names best
        (``exact``: only a whole name or alias counts, not a partial one)."""
        def score(u: Unit) -> int:
            if exact and not any(mention.endswith(k) for k in u.keys):
                return 0
            return max((mention_score(mention, k) for k in u.keys), default=0)

        return self._best(score)

    def anywhere(self, text: str) -> list[Unit]:
        """The units whose longest name or alias stands anywhere in ``text`` (normalised)."""
        return self._best(lambda u: max((len(k) for k in u.keys if k in text), default=0))

    def _best(self, score: Callable[[Unit], int]) -> list[Unit]:
        """The units with the highest positive score (all of them on a tie)."""
        best, out = 0, []
        for u in self.units:
            s = score(u)
            if s > best:
                best, out = s, [u]
            elif s == best and s:
                out.append(u)
        return out

    def family(self, unit: Unit) -> list[Unit]:
        """Every version and copy of ``unit``'s regulation, newest first, whole documents before handbook parts."""
        return sorted((u for u in self.units if u.family == unit.family),
                      key=lambda u: (-(u.year or 0), not u.standalone, u.doc_id))


@lru_cache(maxsize=65536)
def _cited(title: str, section: str) -> tuple[str, tuple[str, ...]]:
    name, parts = cited_document({"title": title, "section": section})
    return name, tuple(parts)


def build_catalog(passages: Mapping[str, Any], by_doc: Mapping[str, Sequence[str]], texts: Mapping[str, str],
                  docs: Mapping[str, Mapping[str, Any]], versions: Mapping[str, VersionInfo] | None = None,
                  cache: dict[str, tuple[Any, "_DocPart"]] | None = None) -> Catalog:
    """The regulations with numbered articles or chapters among the indexed documents.

    ``cache`` (doc_id -> (key, part)) keeps each document's part between generations: a generation that only
    added vectors, or changed a few documents, re-reads only those (``versions`` is accepted for symmetry; a
    unit's year comes from the document itself, as :mod:`indexer.versions` takes it)."""
    units: list[Unit] = []
    unit_of: dict[str, Unit] = {}
    article_of: dict[str, int] = {}
    others: list[frozenset[str]] = []
    fresh: dict[str, tuple[Any, _DocPart]] = {}
    for doc_id, pids in by_doc.items():
        meta = docs.get(doc_id) or {}
        key = (meta.get("title"), meta.get("updated_at"), meta.get("passages"), meta.get("chars"), len(pids))
        known = cache.get(doc_id) if cache is not None else None
        part = known[1] if known is not None and known[0] == key else _doc_part(
            doc_id, pids, passages, texts.get(doc_id, ""), meta)
        fresh[doc_id] = (key, part)
        if not part.units and meta.get("title"):
            name = _cited(str(meta["title"]), "")[0]
            if _RULE_NAME.search(regulation_core(name)):
                others.append(frozenset(name_keys(name)))
        units.extend(part.units)
        unit_of.update(part.unit_of)
        article_of.update(part.article_of)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    logger.debug("article catalog: %d regulations, %d article passages", len(units), len(article_of))
    return Catalog(units, unit_of, article_of, others)


@dataclass
class _DocPart:
    """One document's share of the catalog."""

    units: list[Unit]
    unit_of: dict[str, Unit]
    article_of: dict[str, int]


def _doc_part(doc_id: str, pids: Sequence[str], passages: Mapping[str, Any], text: str,
              meta: Mapping[str, Any]) -> _DocPart:
    """The regulations inside one document (the whole document, or each sub-regulation of a handbook);
    ``meta["title"]``: the document's title, a person's correction where there is one (:func:`_catalog_docs`)."""
    title = str(meta.get("title") or "")
    units: list[Unit] = []
    unit_of: dict[str, Unit] = {}
    article_of: dict[str, int] = {}
    mine: dict[str, Unit] = {}
    last: dict[str, tuple[int | None, int | None]] = {}
    heads: dict[str, dict[str, list[str]]] = {}  # regulation name -> HEADINGS word -> passages
    front: dict[str, list[str]] = {}  # regulation name -> passages before its first chapter or article
    for pid in sorted(pids, key=lambda x: passages[x].ordinal):
        p = passages[pid]
        name, parts = _cited(p.title, p.section)
        old_keys: frozenset[str] = frozenset()
        if title and p.title != title and name == _cited(p.title, "")[0]:
            # a person corrected the document's title: the regulation is named by it (the file's still works)
            old_keys, name = frozenset(name_keys(name)), _cited(title, "")[0]
        art = next((n for n in map(article_number, reversed(parts)) if n), None)
        chap = next((n for n in map(chapter_number, parts) if n), None)
        for part in parts:
            m = _HEADING_PART.match(part.strip())
            if m:
                heads.setdefault(name, {}).setdefault(m.group(1), []).append(pid)
        if art is None and chap is None:
            if last.get(name, (None, None)) == (None, None) and not parts:
                front.setdefault(name, []).append(pid)  # before the first chapter or article, no heading found
            continue
        unit = mine.get(name)
        if unit is None:
            if not (_RULE_NAME.search(regulation_core(name)) or is_document_name(name)):
                continue
            standalone = normalise_name(name) == normalise_name(title)
            if standalone:
                year = document_year(title, text, meta.get("meta"))
            else:
                year = document_year(name, text[p.start - 1:p.start + 600] if p.start else text[:600])
                year = year or _year_in_name(name)
            unit = mine[name] = Unit(doc_id, name, standalone, year, regulation_core(name),
                                     frozenset(name_keys(name)) | old_keys)
            units.append(unit)
        prev_art, prev_chap = last.get(name, (None, None))
        if art is not None and (art not in unit.articles or art == prev_art):
            unit.articles.setdefault(art, []).append(pid)
            unit_of[pid], article_of[pid] = unit, art
        if chap is not None and (chap not in unit.chapters or chap == prev_chap):
            unit.chapters.setdefault(chap, []).append(pid)
            unit_of.setdefault(pid, unit)
        last[name] = (art if art is not None else prev_art, chap if chap is not None else prev_chap)
    for name, unit in mine.items():
        unit.headings = heads.get(name, {})
        first = min((passages[p].start for ps in (*unit.articles.values(), *unit.chapters.values()) for p in ps),
                    default=0)
        for word in ("总纲", "序言"):
            # a scraped copy whose "总纲" line the splitter did not take for a heading: the passages before the
            # first chapter are that part when the text names it on a line of its own there
            if word not in unit.headings and front.get(name) and re.search(rf"(?m)^[ \t\u3000#*]*{word}[ \t\u3000*]*$",
                                                                          text[:first]):
                unit.headings[word] = front[name]
        for pids_ in unit.headings.values():
            for pid in pids_:
                unit_of.setdefault(pid, unit)
    kept = [u for u in units if u.articles or u.chapters]
    if not kept and title:
        return _item_part(doc_id, pids, passages, text, meta, title)
    return _DocPart(kept, unit_of, article_of)


# Numbered rules of a regulation written without 第X条 (中央八项规定's 一、… 八、, its 实施细则's 1. … 30.): each at the
# start of a line, numbered from one without a gap. People cite them as articles ("八项规定第三条").
_ARABIC_MARK, _HAN_MARK = r"([0-9]{1,3})[.．、](?![0-9])", r"([一二三四五六七八九十]{1,3})、"
_ITEM_ARABIC = re.compile(rf"^[ \t\u3000]*{_ARABIC_MARK}", re.M)
_ITEM_HAN = re.compile(rf"^[ \t\u3000]*{_HAN_MARK}", re.M)
_ITEM_MARK = re.compile(f"{_ARABIC_MARK}|{_HAN_MARK}")  # the marker at an item's recorded start


def _item_part(doc_id: str, pids: Sequence[str], passages: Mapping[str, Any], text: str, meta: Mapping[str, Any],
               title: str) -> _DocPart:
    """A regulation with no 第X条 whose rules are numbered items: its items as articles (item n -> the passage
    that starts it; :data:`Unit.item_at` where in that passage). Arabic numbering when it runs 1, 2, 3 … through the
    document (the 实施细则's 30 items under its 一、… headings), else the 一、二、 items; none when neither runs."""
    name = _cited(title, "")[0]
    if "《" in name or not (_RULE_NAME.search(regulation_core(name)) or is_document_name(name)):
        return _DocPart([], {}, {})  # (a title quoting 《…》 is an article or notice about another document)
    ordered = sorted(pids, key=lambda x: passages[x].ordinal)
    for rx in (_ITEM_ARABIC, _ITEM_HAN):
        items: dict[int, tuple[str, int]] = {}
        for pid in ordered:
            for m in rx.finditer(passages[pid].text):
                n = cn_to_int(m.group(1))
                if n == len(items) + 1:
                    items[n] = (pid, m.start(1))
                elif n and n <= len(items):
                    items = {}  # numbering restarts (a list inside a section): not the document's rules
                    break
            else:
                continue
            break
        if len(items) >= 3:
            year = document_year(title, text, meta.get("meta"))
            unit = Unit(doc_id, name, True, year, regulation_core(name), frozenset(name_keys(name)))
            unit.articles = {n: [pid] for n, (pid, _) in items.items()}
            unit.item_at = {n: at for n, (_, at) in items.items()}
            unit_of = {pid: unit for pid, _ in items.values()}
            return _DocPart([unit], unit_of, {})
    return _section_part(doc_id, ordered, passages, text, meta, name, title)


_SECTION_MARK = re.compile(rf"^\s*{_HAN_MARK}")  # a section heading numbered as the 一、 rules are
# Sections a document needs before they count as its parts: the 若干准则 has twelve; party-docs' 八项规定 link page
# (一、常用网站 二、基础法规 三、…) has three, and it must not answer 八项规定第二条 for the 八项规定 itself.
SECTION_PARTS_MIN = 5


def _section_part(doc_id: str, ordered: Sequence[str], passages: Mapping[str, Any], text: str,
                  meta: Mapping[str, Any], name: str, title: str) -> _DocPart:
    """A regulation whose text is numbered sections (若干准则's 一、坚定理想信念 … 十二、): each section as a part,
    called 第三部分 (and, as people write, 第三条 / 第三点); none unless the sections run 一、二、三 … without a gap."""
    parts: dict[int, list[str]] = {}
    for pid in ordered:
        section = passages[pid].section or ""
        m = _SECTION_MARK.match(section.split(" > ")[0])
        if not m:
            continue
        n = cn_to_int(m.group(1))
        if n == len(parts) + 1:
            parts[n] = [pid]
        elif n == len(parts) and n:
            parts[n].append(pid)
        else:
            return _DocPart([], {}, {})
    if len(parts) < SECTION_PARTS_MIN:
        return _DocPart([], {}, {})
    year = document_year(title, text, meta.get("meta"))
    unit = Unit(doc_id, name, True, year, regulation_core(name), frozenset(name_keys(name)), part_word="部分")
    unit.articles = parts
    return _DocPart([unit], {pid: unit for pids in parts.values() for pid in pids}, {})


def _year_in_name(name: str) -> int | None:
    m = re.search(r"(19|20)[0-9]{2}", name)
    return int(m.group()) if m else None


@dataclass
class Found:
    """What a question's article reference resolved to."""

    unit: Unit
    ref: ArticleRef
    pids: list[str]  # passages to put first (empty when the article does not exist)
    message_zh: str = ""
    message_en: str = ""
    articles: list[int] = field(default_factory=list)  # several articles asked at once (第七条和第八条), in order
    cited: str = ""  # the article the question wrote when the text it quotes stands in another one (第三十二条)

    @property
    def labels(self) -> list[str]:
        """The asked articles' labels in order (第七条, 第八条 …), or the one reference's (第七条第二款, 总纲); a
        numbered section by the regulation's own word (若干准则第三部分)."""
        if self.articles:
            return [self.label_of(n) for n in self.articles]
        if self.ref.article and self.unit.numbered:
            return [self.label_of(self.ref.article)]
        return [self.ref.label]

    def label_of(self, n: int) -> str:
        """Unit ``n``'s label by the regulation's word, or by the question's for numbered rules: 八项规定 asked as
        第三点 is answered as 第三点 (its rules are 一、二、三、, not 第X条)."""
        return self.unit.label_of(n, _unit_word(self.unit, self.ref))

    def describe(self) -> dict[str, Any]:
        """The look-up facts the JSON envelope carries."""
        out = {"regulation": self.unit.name, "doc_id": self.unit.doc_id, "version": self.unit.label or None,
               "year": self.unit.year, "article": "、".join(self.labels), "found": bool(self.pids)}
        if self.cited:
            out["cited_article"] = self.cited
        return out


def _mention(masked: str, end: int) -> str:
    m = normalise_name(masked[:end].replace("\x00", ""))
    while m and m[-1] in _TRAIL:
        m = m[:-1]
    return m


def _choose(catalog: Catalog, units: list[Unit], req: YearRequest) -> tuple[list[Unit], str, str]:
    """The units of the requested version first (then the rest of the family), with a note when the requested
    year is not indexed."""
    family = catalog.family(units[0])
    named = {id(u) for u in units}
    family = [u for u in family if id(u) in named] + [u for u in family if id(u) not in named]
    years = sorted({u.year for u in family if u.year}, reverse=True)
    want: int | None = None
    note_zh = note_en = ""
    if req.year and years:
        if req.year in years:
            want = req.year
        else:
            older = [y for y in years if y <= req.year]
            want = older[0] if older else years[-1]
            note_zh = f"未收录{req.year}年版，以下为{want}年版。"
            note_en = f"The {req.year} version is not indexed; showing the {want} version. "
    elif req.older and len(years) > 1:
        want = years[1]
    if want is None:
        return family, note_zh, note_en
    first = [u for u in family if u.year == want]
    return first + [u for u in family if u.year != want], note_zh, note_en


def _clause_first(pids: list[str], ref: ArticleRef, passages: Mapping[str, Any], text: str) -> list[str]:
    """The article's passages with the one holding the asked 款 / 项 first."""
    if not (ref.clause or ref.item) or not text:
        return pids
    ps = [passages[p] for p in pids]
    start, end = ps[0].start, ps[-1].end
    lines, pos = [], start
    for line in text[start:end].split("\n"):
        if line.strip():
            lines.append((pos, line.strip()))
        pos += len(line) + 1
    at = None
    if ref.clause and ref.clause <= len(lines):
        at = lines[ref.clause - 1][0]
    if ref.item:
        lo = at if at is not None else start
        mark = f"（{int_to_cn(ref.item)}）"
        for off, line in lines:
            if off >= lo and line.startswith(mark):
                at = off
                break
    if at is None:
        return pids
    lead = next((pid for pid, p in zip(pids, ps) if p.start <= at < p.end + 1), None)
    return pids if lead is None else [lead] + [p for p in pids if p != lead]


def lookup(question: str, catalog: Catalog, passages: Mapping[str, Any], texts: Mapping[str, str],
           allowed: Collection[str] | None = None) -> Found | None:
    """The article a question names, or None when it names no article of a known regulation."""
    if ("条" not in question and "章" not in question and not _HEADING.search(question)
            and not _PART_REF.search(question)) or not catalog.units:
        return None
    refs = [r for r in find_refs(question) if r.article or r.chapter]
    parts_asked = False
    if not refs:
        refs = _part_refs(question)  # 若干准则第三部分, 八项规定第三点
        parts_asked = bool(refs)
    if not refs:
        refs = _heading_refs(question, catalog)
    loose = not refs
    if loose:
        refs = _loose_refs(question)
        if not refs:
            return None
    req = year_request(question)
    masked = list(question)
    for s, e in req.spans:
        masked[s:e] = ["\x00"] * (e - s)
    masked_s = "".join(masked)
    units = [u for u in catalog.units if allowed is None or u.doc_id in allowed]
    if not units:
        return None
    cat = catalog if allowed is None else Catalog(units, catalog.unit_of, catalog.article_of, catalog.others)
    for i, ref in enumerate(refs):
        mention = _mention(masked_s, ref.start)
        named = cat.named(mention, exact=loose)
        if parts_asked:  # 第三部分 / 第三点 name a numbered section or rule, never an article
            named = [u for u in named if u.numbered]
        if named and cat.names_other(mention, named):
            return None  # 若干准则第三条: a regulation without articles, not 廉洁自律准则 (ranking answers)
        if named:
            found = _by_quote(_resolve(cat, named, ref, req, passages, texts), question, cat, passages)
            return _more_articles(found, refs[i + 1:], question, cat, masked_s)
    if loose:
        return None
    # A regulation named elsewhere in the question ("第五十条在纪律处分条例里…", "纪律处分条例中关于…的第五十条")
    named = cat.anywhere(normalise_name(masked_s.replace("\x00", "")))
    if parts_asked:
        named = [u for u in named if u.numbered]
    if not named and allowed is not None and not parts_asked and len({u.family for u in units}) == 1:
        named = units  # 第十九条 asked of one regulation picked by the document filter
    if named:
        found = _by_quote(_resolve(cat, named, refs[0], req, passages, texts), question, cat, passages)
        return _more_articles(found, refs[1:], question, cat, masked_s)
    return None


# "第三十二条规定，党员犯罪情节轻微，……": the text a question quotes from the article it names
_QUOTE_LEAD = re.compile(r"^\s*(?:中|里)?(?:的)?(?:规定|明确|指出|写道|写明|载明|要求|提出)(?:了)?\s*[，,：:]?\s*[“\"「『]?"
                         r"|^\s*[：:]?\s*[“\"「『]")
_QUOTE_END = re.compile(r"[。？！?!；;”\"」』]")
QUOTE_MIN_CHARS = 8  # Han characters a quote needs before it is checked (a shorter one is a phrase, not a quote)
# Shares of a quote's character pairs that an article holds. A quote copied from an article holds 0.9-1.0 of it (a
# word left out, another version's wording); another article of the same regulation, sharing its 处分 phrases, up to
# 0.64 (纪律处分条例第十一条 for a quote of 第十条, bench/lookup_questions.jsonl); a paraphrase of the named article
# 0.55-0.8 (tests/test_lookup.py). So the named article stands when it holds QUOTE_VERBATIM of the quote; another
# article takes its place when it holds QUOTE_HOLDS and QUOTE_MARGIN more than the named one.
QUOTE_VERBATIM = 0.9
QUOTE_HOLDS = 0.75
QUOTE_MARGIN = 0.2
# Below this share the named article does not speak of what the question quotes at all (the 2019 监督执纪工作规则第二十八条,
# on 谈话, holds 0.0 of the 试行 version's "审查时间不得超过90日"). When no other article holds the quote either, the
# question is left to ranking rather than answered with that article.
QUOTE_ABSENT = 0.3


def _quote_after(question: str, end: int) -> str:
    """The text the question quotes right after the article label ending at ``end`` ("规定，……。"), or ""."""
    m = _QUOTE_LEAD.match(question[end:])
    if not m:
        return ""
    rest = question[end + m.end():]
    stop = _QUOTE_END.search(rest)
    quote = rest[:stop.start()] if stop else rest
    return quote if _han(quote) >= QUOTE_MIN_CHARS else ""


def _han(text: str) -> int:
    """How many Han characters ``text`` holds."""
    return len(_HAN_CHAR.findall(text))


_HAN_CHAR = re.compile(r"[\u4e00-\u9fff]")


def _bigrams(text: str) -> set[str]:
    han = "".join(re.findall(r"[\u4e00-\u9fff0-9]", text))
    return {han[i:i + 2] for i in range(len(han) - 1)}


_CLAUSE_END = re.compile(r"[，,、：:]")


def _quote_parts(quote: str) -> list[set[str]]:
    """The character pairs of each leading part of a quote that ends at a comma and holds at least half of it (and of
    the whole): a question often goes on after the quoted words in the same sentence ("……健身活动的要受处分，自己
    掏钱的算不算"), while a short first part ("违反有关规定组织") is wording that many articles share."""
    least = max(QUOTE_MIN_CHARS, _han(quote) / 2)
    ends = [m.start() for m in _CLAUSE_END.finditer(quote)] + [len(quote)]
    return [_bigrams(quote[:e]) for e in ends if _han(quote[:e]) >= least]


def _holds(parts: Sequence[set[str]], pids: Sequence[str], passages: Mapping[str, Any]) -> float:
    """The best share of a leading part of the quote that the article's text holds."""
    text = _bigrams("".join(passages[p].text for p in pids))
    return max((len(q & text) / len(q) for q in parts if q), default=0.0)


def _by_quote(found: Found | None, question: str, cat: Catalog, passages: Mapping[str, Any]) -> Found | None:
    """``found``, unless the question quotes the article it names ("第三十二条规定，……") and that text stands in
    another article of the regulation (an older numbering, another version): then that article, newest version first,
    with a note saying where the quote is. Unchanged when the named article holds the quote, or no article does and
    the named one at least speaks of it; None (ranking answers) when neither."""
    if found is None or not found.pids or not found.ref.article:
        return found
    quote = _quote_parts(_quote_after(question, found.ref.end))
    named = _holds(quote, found.unit.articles.get(found.ref.article, found.pids), passages) if quote else 1.0
    if named >= QUOTE_VERBATIM:
        return found
    best, where = max(QUOTE_HOLDS, named + QUOTE_MARGIN), None
    for unit in [found.unit] + [u for u in cat.family(found.unit) if u is not found.unit]:
        for n, pids in unit.articles.items():
            share = _holds(quote, pids, passages)
            if share > best + 0.05 or (where is None and share >= best):  # ties: the named version, then newest
                best, where = share, (unit, n)
    if where is None:
        return found if named >= QUOTE_ABSENT else None
    unit, n = where
    ref = ArticleRef(found.ref.start, found.ref.end, article=n)
    label, asked = unit.label_of(n), found.ref.label
    version = f"（{unit.label}）" if unit.label and str(unit.year) not in unit.name else ""
    same = unit is found.unit  # a note on the version the question named ("未收录2015年版…") still holds
    return Found(unit, ref, unit.articles[n][:PIN_MAX],
                 f"{found.message_zh if same else ''}问题所引的内容在《{unit.name}》{version}{label}，不在{asked}。",
                 f"{found.message_en if same else ''}The text the question quotes is article {n} of {unit.name}"
                 f"{' (' + unit.label + ')' if unit.label else ''}, not article {found.ref.article}.", cited=asked)


MORE_MAX = 6  # articles of one question pinned at most ("第七条至第十五条" shows the first six)
_RANGE = re.compile(r"^\s*(?:至|到|~|～|-|—|－)\s*$")
_AND = re.compile(r"^\s*(?:和|与|及|以及|、|，|,|跟|或|还有)\s*$")


def _more_articles(found: Found | None, rest: Sequence[ArticleRef], question: str, cat: Catalog,
                   masked: str) -> Found | None:
    """``党章第七条和第八条``, ``第七条至第九条``: the further articles of the same regulation that follow the first,
    joined by 和 / 、 / 至 …, pinned after it (each article's first passages, in the order asked; a range filled in;
    at most :data:`MORE_MAX` articles); an article the regulation lacks is left out. Unchanged for one article,
    for a chapter, or when the next reference names another regulation."""
    if found is None or not found.pids or not found.ref.article or found.ref.clause or found.ref.item:
        return found
    unit, numbers, prev = found.unit, [found.ref.article], found.ref
    for ref in rest:
        gap = question[prev.end:ref.start]
        named = cat.named(_mention(masked, ref.start))
        if not ref.article or ref.chapter or not (_AND.match(gap) or _RANGE.match(gap)) \
                or (named and unit.family not in {u.family for u in named}):
            break
        if _RANGE.match(gap) and ref.article > numbers[-1]:
            numbers += list(range(numbers[-1] + 1, ref.article))
        numbers.append(ref.article)
        prev = ref
    numbers = [n for n in dict.fromkeys(numbers) if n in unit.articles][:MORE_MAX]
    if len(numbers) < 2:
        return found
    pids = list(found.pids)
    for n in numbers[1:]:
        pids += [p for p in unit.articles[n][:PIN_MAX] if p not in pids]
    found.pids, found.articles = pids, numbers
    return found


# What may stand beside the regulation's name and the heading in a question that asks for the heading itself.
_HEADING_ASK = re.compile(r"[《》〈〉“”\"'（）()\s，。？?！!：:、]|(?:2018|2023|[0-9]{4})年?版?|的|之|中|里|是什么|是啥|讲了?什么|说了?什么|"
                          r"写了?什么|有哪些内容|有什么内容|主要内容|内容|原文|全文|规定了?什么|讲的是什么|部分|请问|查一下|查看|看看")


def _heading_refs(question: str, catalog: Catalog) -> list[ArticleRef]:
    """``党章总纲``, ``纪律处分条例的附则讲了什么``: a :data:`HEADINGS` word, as a reference to that named part, when the
    question asks for the part itself (nothing beside a regulation's name and the heading but words like 的 / 是什么);
    ``党章总纲对党的建设提出了哪些要求`` asks something inside it, which ranking answers."""
    m = _HEADING.search(question)
    if not m:
        return []
    rest = normalise_name(question.replace(m.group(0), " ", 1))
    keys = sorted({k for u in catalog.units for k in u.keys if k and k in rest}, key=len, reverse=True)
    for key in keys:
        rest = rest.replace(key, " ")
    return [ArticleRef(m.start(), m.end(), heading=m.group(0))] if keys and not _HEADING_ASK.sub("", rest) else []


_PART_REF = re.compile(r"第\s*([一二两三四五六七八九十]{1,3}|[0-9]{1,2})\s*(部分|点)")


def _unit_word(unit: Unit, ref: ArticleRef) -> str:
    """What to call the regulation's numbered units: its own word (条, 部分), or 点 for numbered rules asked as 点."""
    return "点" if unit.item_at and unit.part_word == "条" and ref.article_word == "点" else unit.part_word



def _part_refs(question: str) -> list[ArticleRef]:
    """``若干准则第三部分``, ``八项规定第三点``: a numbered section or rule, as an article reference (the caller keeps
    it only for a regulation whose units are numbered sections or rules)."""
    return _numbered_refs(_PART_REF, question)


def _loose_refs(question: str) -> list[ArticleRef]:
    """``纪律处分条例二十七条`` (no 第): article labels right after something, kept only when a name precedes."""
    return _numbered_refs(_LOOSE, question)


def _numbered_refs(pattern: re.Pattern[str], question: str) -> list[ArticleRef]:
    """Each match of ``pattern`` whose first group is a number, as a reference to that article."""
    matches = ((m, cn_to_int(m.group(1))) for m in pattern.finditer(question))
    return [ArticleRef(m.start(), m.end(), article=n, article_word=_word_of(m)) for m, n in matches if n]


def _word_of(m: re.Match[str]) -> str:
    """The unit word a numbered reference used (点 / 部分), 条 when the pattern has none."""
    return m.group(2) if (m.re.groups or 0) >= 2 and m.group(2) else "条"


_LOOSE = re.compile(r"(?<![第0-9零〇一二两三四五六七八九十百千])([零〇一二两三四五六七八九十百千0-9]+)\s*条(?!例)")


def _resolve(cat: Catalog, named: list[Unit], ref: ArticleRef, req: YearRequest, passages: Mapping[str, Any],
             texts: Mapping[str, str]) -> Found | None:
    """The passages of ``ref`` in the right version of the named regulation, or a message that it has none."""
    ordered, note_zh, note_en = _choose(cat, named, req)
    unit = ordered[0]
    if ref.heading:
        pids = unit.headings.get(ref.heading)
        return Found(unit, ref, pids[:PIN_MAX], note_zh, note_en) if pids else None  # none: let ranking answer
    if ref.article:
        pids = unit.articles.get(ref.article)
        if pids:
            pids = _clause_first(pids, ref, passages, texts.get(unit.doc_id, ""))
            return Found(unit, ref, pids[:PIN_MAX], note_zh, note_en)
        last = unit.last_article
        if last and ref.article > last:
            where = f"《{unit.name}》" + (f"（{unit.label}）" if unit.label and str(unit.year) not in unit.name else "")
            others = [u.label for u in ordered[1:] if u.family == unit.family and ref.article in u.articles
                      and u.label]
            also_zh = f"（{'、'.join(dict.fromkeys(others))}有此条）" if others else ""
            also_en = f" ({', '.join(dict.fromkeys(others))} has it)" if others else ""
            word = _unit_word(unit, ref)
            noun = "article" if word == "条" else "part"
            return Found(unit, ref, [],
                         f"{note_zh}未找到该{word}：{where}共{int_to_cn(last)}{word}，没有{unit.label_of(ref.article, word)}"
                         f"{also_zh}。",
                         f"{note_en}No such {noun}: {unit.name}{' (' + unit.label + ')' if unit.label else ''} "
                         f"has {last} {noun}s, there is no {noun} {ref.article}{also_en}.")
        return None  # a gap in the numbering as split: let ranking answer
    pids = unit.chapters.get(ref.chapter or 0)
    if pids:
        return Found(unit, ref, pids[:PIN_MAX], note_zh, note_en)
    last_ch = max(unit.chapters, default=0)
    if last_ch and (ref.chapter or 0) > last_ch:
        return Found(unit, ref, [], f"{note_zh}未找到该章：《{unit.name}》共{int_to_cn(last_ch)}章。",
                     f"{note_en}No such chapter: {unit.name} has {last_ch} chapters.")
    return None


class LookupResults(Results):
    """Ranked results with the article look-up applied: the ranking's Results (every attribute kept) with the
    article's passages first, plus ``found`` (what the reference resolved to) and ``message`` (why there are no
    hits); the JSON envelope gains ``lookup`` and, when there is one, ``message``."""

    def __init__(self, base: Any, hits: Sequence[dict[str, Any]], found: Found):
        super().__init__(hits)
        self.__dict__.update(getattr(base, "__dict__", {}))
        self.found = found
        if hits:
            self.answer_found = True
            self.confidence = max(float(getattr(base, "confidence", 0.0)), LOOKUP_CONFIDENCE)
        else:
            self.answer_found, self.confidence = False, 0.0
        self.message = found.message_zh + (" / " + found.message_en if found.message_en else "") or None

    def envelope(self) -> dict[str, Any]:
        """The per-question JSON fields of the ranking plus ``lookup`` and (when there is one) ``message``."""
        out = super().envelope()
        out["lookup"] = self.found.describe()
        if self.message:
            out["message"] = self.message
        return out


class UnindexedResults(Results):
    """Ranked results for a question naming an article of a regulation the index does not hold (党内监督条例第五条):
    the hits stay, as related text, but ``answer_found`` is false and ``message`` says the regulation is not
    there, so no other regulation's 第五条 passes for the answer."""

    def __init__(self, base: Any, name: str, ref: ArticleRef):
        super().__init__(base)
        self.__dict__.update(getattr(base, "__dict__", {}))
        self.answer_found, self.confidence = False, 0.0
        self.unindexed = {"regulation": name, "article": ref.label, "found": False, "indexed": False}
        self.message = (f"未收录《{name}》：以下段落不是它的{ref.label}，只是相关内容。 / {name} is not in the index: "
                        f"the passages below are related text, not its article {ref.article}.")

    def envelope(self) -> dict[str, Any]:
        """The per-question JSON fields of the ranking plus ``lookup`` (``indexed``: false) and ``message``."""
        out = super().envelope()
        out["lookup"] = dict(self.unindexed)
        if self.message:  # (none when a standard answer was linked to the question)
            out["message"] = self.message
        return out


# A regulation's name right before an article label: what a question names when no indexed regulation matches it.
_NAMED = re.compile(rf"((?:中国共产党|中共)?[\u4e00-\u9fff]{{1,16}}?(?:{_RULE_WORDS}|宪法|法))$")
_ASK_LEAD = re.compile(r"^(?:请问|请教|查一下|查询|查找|关于|根据|按照|依照|依据|看看|我想问|想问一下|想知道)")


def unindexed(question: str, catalog: Catalog) -> tuple[str, ArticleRef] | None:
    """(the name, the article reference) when ``question`` asks for 第X条 of a regulation no indexed document is
    (党内监督条例第五条, 宪法第一条), else None: a name of at least four characters ending like a regulation's
    (条例, 规定 …, or 宪法), that names no catalogued regulation nor any indexed one without articles."""
    refs = [r for r in find_refs(question) if r.article and not r.chapter]
    if not refs or not catalog.units:
        return None
    ref = refs[0]
    mention = _mention(question, ref.start)
    m = _NAMED.search(mention)
    if m is None:
        return None
    name = _ASK_LEAD.sub("", m.group(1))
    if (len(name) < 4 and name != "宪法") or name.startswith(("本", "该", "此", "上述")):
        return None  # (本条例第五条: a cross-reference, not a request)
    if catalog.named(mention) or catalog.named(name) or catalog.anywhere(normalise_name(name)) or any(
            mention_score(name, k) for keys in catalog.others for k in keys):
        return None  # (党章规定第七条 names 党章: ranking answers, as before)
    titles = [u.name for u in catalog.units] + [max(keys, key=len) for keys in catalog.others if keys]
    core = _RULE_WORD.sub("", normalise_name(name))
    if len(core) >= 2 and any(_in_order(core, normalise_name(t)) for t in titles):
        return None  # 纪律处分规定, 批准权限规定: a shortening or misnaming of an indexed title; never "not indexed"
    return name, ref


_RULE_WORD = re.compile(rf"(?:{_RULE_WORDS}|法)$")


def _in_order(short: str, full: str) -> bool:
    """True when every character of ``short`` occurs in ``full`` in the same order."""
    it = iter(full)
    return all(ch in it for ch in short)


def pin(results: Any, found: Found, k: int, make_hit: Callable[[int, str], dict[str, Any]],
        passages: Mapping[str, Any] | None = None, versions: Mapping[str, VersionInfo] | None = None,
        others: Callable[[str], Sequence[str]] = lambda pid: ()) -> LookupResults:
    """The results with the found article's passages first (hits the ranking already had keep their fields),
    renumbered and cut to k; no hits at all when the article does not exist.

    A pinned passage is a hit like a ranked one: what folds under it (:func:`~indexer.search.fold.fold_reason`) --
    a ranked hit that is the same article in another version or a repeat, with that hit's own ``also_in``, and of
    ``others(pid)`` (passages of the regulation's other versions) the same article -- is listed in its ``also_in``
    and shown nowhere else, so every passage stands once. The ranking should hand over a few more than ``k`` hits
    (:data:`PIN_SPARE`): the list is then still ``k`` long after the hits folded under the pinned ones leave it.
    """
    if not found.pids:
        return LookupResults(results, [], found)
    pinned = set(found.pids)
    have = {h["pid"]: h for h in results}
    first, absorbed = [], set()
    for pid in found.pids:
        hit = have.get(pid) or make_hit(0, pid)
        entries = [o for o in hit.get("also_in") or [] if o["pid"] not in pinned]
        if passages is not None:
            entries = _fold_under(pid, entries, results, pinned, absorbed, passages, versions or {}, others)
        hit["also_in"] = entries
        first.append(hit)
    top = first[0]["score"] if not results else max(results[0]["score"], first[0]["score"])
    for h in first:
        h["score"] = top
        h["why"] = _pinned_why(h, found)
    shown = {o["pid"] for h in first for o in h["also_in"]} | pinned
    rest = []
    for h in results:
        if h["pid"] in pinned or h["pid"] in absorbed:
            continue
        if any(o["pid"] in shown for o in h.get("also_in") or ()):
            h["also_in"] = [o for o in h["also_in"] if o["pid"] not in shown]
        rest.append(h)
    hits = (first + rest)[:k]
    for i, h in enumerate(hits, start=1):
        h["rank"] = i
    return LookupResults(results, hits, found)


# Hits the ranking hands over beyond k for a look-up question: the ranked hits folded under the pinned passages
# leave the list, which must still hold k.
PIN_SPARE = 2 * PIN_MAX


def _pinned_why(hit: dict[str, Any], found: Found) -> list[str]:
    """A pinned hit's rank line: it stands first because the question names it (问题指明第七条), not for the
    ranking's reasons (综合各项信号排序上调, 含所问的时间或频次 …, dropped); what it says of versions stays."""
    if found.ref.article:
        asked = found.articles or [found.ref.article]  # the asked articles a passage belongs to (rules 二、三、 share one)
        mine = [n for n in asked if hit["pid"] in found.unit.articles.get(n, ())] or [found.ref.article]
        label = "、".join(found.label_of(n) for n in mine)
    else:
        label = found.ref.label
    kept = [w for w in hit.get("why") or () if "版" in w]
    lead = f"问题所引的内容在{label}" if found.cited else f"问题指明{label}"
    return [lead] + [w for w in kept if w != lead]


def _fold_under(pid: str, entries: list[dict[str, Any]], results: Sequence[dict[str, Any]], pinned: set[str],
                absorbed: set[str], passages: Mapping[str, Any], versions: Mapping[str, VersionInfo],
                others: Callable[[str], Sequence[str]]) -> list[dict[str, Any]]:
    """The ``also_in`` of pinned passage ``pid``: its own ``entries``, then each ranked hit that folds under it (or
    that had it folded in) with that hit's own entries (the hit's pid goes into ``absorbed``), then the passages of
    ``others(pid)`` that are the same article in another version."""
    from indexer.search.fold import fold_reason

    lead = passages[pid]
    seen = pinned | absorbed | {o["pid"] for o in entries}

    def add(other: str) -> None:
        if other not in seen:
            seen.add(other)
            p = passages[other]
            info = versions.get(p.doc_id)
            entries.append({"pid": other, "doc_id": p.doc_id, "title": p.title, "section": p.section,
                            "fold": fold_reason(lead, p, versions) or "repeat",
                            "version_status": info.status if info else None,
                            "version_label": info.label if info else None})

    for h in results:
        if h["pid"] in seen:
            continue
        group = [h["pid"]] + [o["pid"] for o in h.get("also_in") or ()]
        if pid in group or fold_reason(lead, passages[h["pid"]], versions) is not None:
            absorbed.add(h["pid"])
            for other in group:
                add(other)
    for other in others(pid):
        if other not in seen and passages[other].doc_id != lead.doc_id and \
                fold_reason(lead, passages[other], versions) == "version":
            add(other)
    return entries


def references(pid: str, catalog: Catalog, passages: Mapping[str, Any], texts: Mapping[str, str]
               ) -> list[dict[str, Any]]:
    """The cross-references in one passage resolved to articles: ``{text, start, end, doc_id, pid, citation}``
    (``start``/``end`` are offsets into the passage text)."""
    p = passages[pid]
    here = catalog.unit_of.get(pid)
    out: list[dict[str, Any]] = []
    for c in find_cross_refs(p.text):
        target: Unit | None = None
        article = c.ref.article
        clause = c.ref.clause
        if c.kind in ("same", "bare"):
            target = here if here is not None and here.doc_id == p.doc_id else None
        elif c.kind == "named":
            named = catalog.named(normalise_name(c.name), exact=True)
            if named:
                target = _in_force(catalog, named, here)
        else:  # 前款 / 本条第N款: a clause of this very article
            target, article = here, catalog.article_of.get(pid)
            if target is None or article is None:
                continue
            clause = _clause_back(pid, c.start, c.back, target, article, passages, texts) if c.back else clause
        if target is None or not article or article not in target.articles:
            continue
        pids = target.articles[article]
        if clause:
            lead = _clause_first(pids, ArticleRef(0, 0, article=article, clause=clause), passages,
                                 texts.get(target.doc_id, ""))
            if lead is pids and clause > 1:
                continue  # no such clause
            pids = lead
        tp = passages[pids[0]]
        name, _ = _cited(tp.title, tp.section)
        cite = citation({"title": tp.title, "section": tp.section})
        if clause:
            cite += f"第{int_to_cn(clause)}款"
        out.append({"text": c.text, "start": c.start, "end": c.end, "doc_id": tp.doc_id, "pid": pids[0],
                    "citation": cite})
    return out


def _in_force(catalog: Catalog, named: list[Unit], here: Unit | None) -> Unit:
    """The version of a named regulation a citing regulation means: its own when it is one of them, else the
    newest not newer than the citing one (the current one when the citing year is unknown)."""
    if here is not None and any(u is here for u in named):
        return here
    family = catalog.family(named[0])
    if here is not None and here.year:
        older = [u for u in family if u.year and u.year <= here.year]
        if older:
            return older[0]
    return family[0]


def _clause_back(pid: str, offset: int, back: int, unit: Unit, article: int, passages: Mapping[str, Any],
                 texts: Mapping[str, str]) -> int | None:
    """The 款 number ``back`` paragraphs before the one holding ``offset`` (a 前款 in passage ``pid``)."""
    text = texts.get(unit.doc_id, "")
    ps = [passages[x] for x in unit.articles[article]]
    if not text or not ps:
        return None
    at = passages[pid].start + offset
    starts, pos = [], ps[0].start
    for line in text[ps[0].start:ps[-1].end].split("\n"):
        if line.strip():
            starts.append(pos)
        pos += len(line) + 1
    idx = bisect.bisect_right(starts, at)  # 1-based number of the clause holding the reference
    target = idx - back
    return target if target >= 1 and idx >= 2 else None


class ArticleLookup:
    """Per-engine look-up state: the catalog of the generation searched last, built on first need."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Any = None
        self._catalog: Catalog | None = None
        self._parts: dict[str, tuple[Any, _DocPart]] = {}
        self._refs: dict[str, list[dict[str, Any]]] = {}  # pid -> its resolved references, this catalog
        self._shingles: dict[str, dict[str, list[str]]] = {}  # family -> 4-gram -> its article passages, this catalog

    def references(self, pid: str, catalog: Catalog, passages: Mapping[str, Any], texts: Mapping[str, str]
                   ) -> list[dict[str, Any]]:
        """:func:`references` of one passage, resolved once per catalog (copies: callers may change them)."""
        refs = self._refs.get(pid)
        if refs is None:
            refs = self._refs[pid] = references(pid, catalog, passages, texts)
        return [dict(r) for r in refs]

    def catalog(self, key: Any, passages: Mapping[str, Any], by_doc: Mapping[str, Sequence[str]],
                texts: Mapping[str, str], docs: Mapping[str, Mapping[str, Any]],
                versions: Mapping[str, VersionInfo]) -> Catalog:
        """The catalog of generation ``key`` (built once, then reused until the generation changes)."""
        with self._lock:
            if self._catalog is None or self._key != key:
                self._catalog = build_catalog(passages, by_doc, texts, docs, versions, self._parts)
                self._key = key
                self._refs = {}
                self._shingles = {}
            return self._catalog

    def visible_copies(self, catalog: Catalog, unit: Unit, pid: str, passages: Mapping[str, Any],
                       hidden: Collection[str], allowed: Collection[str] | None) -> list[str]:
        """:meth:`near_copies` a search may show: not disabled by curation (``hidden``), and in the searched
        documents (``allowed``, None: all)."""
        return [p for p in self.near_copies(catalog, unit, pid, passages) if p not in hidden
                and (allowed is None or passages[p].doc_id in allowed)]

    def near_copies(self, catalog: Catalog, unit: Unit, pid: str, passages: Mapping[str, Any]) -> list[str]:
        """The article passages of ``unit``'s regulation (every version) that share enough 4-grams with ``pid`` to
        be its near duplicates (:func:`~indexer.search.fold.near_duplicate`'s test, counted through a 4-gram index
        of the family built once per catalog: checking each of 5 versions' 750 passages took ~12 ms a look-up)."""
        from indexer.search.fold import FOLD_CONTAINMENT, shingles

        index = self._shingles.get(unit.family)
        if index is None:
            index = {}
            for u in catalog.family(unit):
                for pids in u.articles.values():
                    for p in pids:
                        for gram in shingles(passages[p].text):
                            index.setdefault(gram, []).append(p)
            self._shingles[unit.family] = index
        mine = shingles(passages[pid].text)
        shared: dict[str, int] = {}
        for gram in mine:
            for p in index.get(gram, ()):
                shared[p] = shared.get(p, 0) + 1
        return [p for p, n in shared.items() if p != pid
                and n >= FOLD_CONTAINMENT * min(len(mine), len(shingles(passages[p].text)))]


def _make_hit(question: str, terms: Sequence[str] | None, pid: str, passages: Mapping[str, Any],
              versions: Mapping[str, VersionInfo]) -> dict[str, Any]:
    """A hit record for a looked-up passage the ranking did not return (same fields as ranked hits)."""
    from indexer.search.rank import build_hit
    from indexer.text.analyzer import expand_query, query_terms

    q_terms = list(terms) if terms is not None else query_terms(expand_query(question))
    hit = build_hit(0, passages[pid], question, q_terms, None, 0.0, {})
    info = versions.get(hit["doc_id"])
    hit.update({"version_status": info.status if info else None, "version_label": info.label if info else None,
                "also_in": []})
    return hit


def _answer_is_item(hits: Sequence[dict[str, Any]], pid: str, at: int, passages: Mapping[str, Any]) -> None:
    """A numbered item looked up as an article shares its passage with other items: its answer sentence is the
    item's own first sentence (from its number to the first 。 or the end of its line), not the passage's best."""
    text = passages[pid].text
    mark = _ITEM_MARK.match(text, at)
    body = mark.end() if mark else at
    while body < len(text) and text[body] in " \t\u3000\n":
        body += 1  # "二、" alone on its line, the rule on the next (scraped copies)
    end = len(text)
    for stop in ("。", "\n"):
        i = text.find(stop, body)
        if i != -1:
            end = min(end, i + (1 if stop == "。" else 0))
    for hit in hits:
        if hit["pid"] == pid:
            hit["best_span"] = [at, end]
            hit["best_sentence"] = text[at:end]


def find(state: ArticleLookup, key: Any, questions: Sequence[Any], passages: Mapping[str, Any],
         by_doc: Mapping[str, Sequence[str]], texts: Mapping[str, str], docs: Mapping[str, Mapping[str, Any]],
         versions: Mapping[str, VersionInfo], allowed: Collection[str] | None = None,
         hidden: Collection[str] = ()) -> list[Found | None]:
    """The article each question names (None: none, the ranking answers), never a passage in ``hidden``."""
    if not passages:
        return [None for _ in questions]
    catalog = state.catalog(key, passages, by_doc, texts, docs, versions)
    out: list[Found | None] = []
    for q in questions:
        found = lookup(_fold(getattr(q, "text", q)), catalog, passages, texts, allowed)
        if found is not None and found.pids and hidden:
            found.pids = [p for p in found.pids if p not in hidden]
            found = found if found.pids else None  # the article is disabled: ranking answers
        out.append(found)
    return out


def apply(state: ArticleLookup, key: Any, questions: Sequence[Any], results: Sequence[Any], k: int | Sequence[int],
          passages: Mapping[str, Any], by_doc: Mapping[str, Sequence[str]], texts: Mapping[str, str],
          docs: Mapping[str, Mapping[str, Any]], versions: Mapping[str, VersionInfo],
          allowed: Collection[str] | None = None, hidden: Collection[str] = (),
          found: Sequence[Found | None] | None = None) -> list[Any]:
    """Each question's results with its named article first, and ``references`` on every hit. ``questions``:
    analysed :class:`~indexer.search.query.Query` objects (or plain strings); ``hidden``: passages that must
    never be hits (disabled by curation); ``found``: :func:`find`'s answer when the caller asked it first; ``k``:
    the hits to keep, or per question (a later hook may fold some away)."""
    if not passages:
        return list(results)
    ks = [k] * len(results) if isinstance(k, int) else list(k)
    catalog = state.catalog(key, passages, by_doc, texts, docs, versions)
    if found is None:
        found = find(state, key, questions, passages, by_doc, texts, docs, versions, allowed, hidden)
    out = []
    for q, res, f, k_q in zip(questions, results, found, ks):
        text = getattr(q, "text", q)
        terms = getattr(q, "hit_terms", None)
        if f is not None:
            def others(pid: str, unit: Unit = f.unit) -> list[str]:
                return state.visible_copies(catalog, unit, pid, passages, hidden, allowed)

            res = pin(res, f, k_q, lambda _i, pid, text=text, terms=terms: _make_hit(text, terms, pid, passages,
                                                                                    versions),
                      passages, versions, others)
            at = f.unit.item_at.get(f.ref.article or 0) if f.pids else None
            if at is not None:
                _answer_is_item(res, f.pids[0], at, passages)
        else:
            named = unindexed(_fold(text), catalog)
            if named is not None:
                res = UnindexedResults(res, *named)
        for hit in res:
            hit["references"] = state.references(hit["pid"], catalog, passages, texts)
        out.append(res)
    return out


_STATES: "weakref.WeakKeyDictionary[Any, ArticleLookup]" = weakref.WeakKeyDictionary()
_EDITIONS: "weakref.WeakKeyDictionary[Any, dict[str, dict[str, Any]]]" = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def state_of(owner: Any) -> ArticleLookup:
    """The look-up state (catalog cache) kept for one searcher."""
    with _STATES_LOCK:
        state = _STATES.get(owner)
        if state is None:
            state = _STATES[owner] = ArticleLookup()
        return state


def _docs_of(gen: Any) -> Mapping[str, Mapping[str, Any]]:
    return gen.manifest["documents"]


def _catalog_docs(gen: Any) -> Mapping[str, Mapping[str, Any]]:
    """The documents the article catalog reads: a title a person corrected laid over the file's, so that the
    regulation is asked for by its corrected name."""
    from indexer.index.metadata import corrected_titles

    docs = _docs_of(gen)
    titles = corrected_titles(gen.manifest)
    if not titles:
        return docs
    return {d: {**m, "title": titles[d]} if d in titles else m for d, m in docs.items()}


def catalog_of(owner: Any, gen: Any, versions: Mapping[str, VersionInfo]) -> Catalog:
    """The article catalog of a searcher's generation ``gen`` (a Snapshot)."""
    return state_of(owner).catalog(gen.number, gen.passages, gen.by_doc, gen.texts, _catalog_docs(gen), versions)


def find_in(owner: Any, gen: Any, queries: Sequence[Any], allowed: Collection[str] | None,
            versions: Mapping[str, VersionInfo]) -> list[Found | None]:
    """:func:`find` over a searcher's Snapshot, never a passage curation disabled: asked before ranking, so that a
    look-up question is ranked :data:`PIN_SPARE` deeper."""
    from indexer.index.curation import disabled_pids

    return find(state_of(owner), gen.number, queries, gen.passages, gen.by_doc, gen.texts, _catalog_docs(gen),
                versions, allowed, disabled_pids(gen))


def apply_to_results(owner: Any, gen: Any, queries: Sequence[Any], results: Sequence[Any], k: int | Sequence[int],
                     allowed: Collection[str] | None, versions: Mapping[str, VersionInfo],
                     found: Sequence[Found | None] | None = None) -> list[Any]:
    """The search hook (:meth:`indexer.search.searcher.Searcher.search_queries`): :func:`apply` over a Snapshot,
    never pinning a passage curation disabled; ``found``: :func:`find_in`'s answer."""
    from indexer.index.curation import disabled_pids

    return apply(state_of(owner), gen.number, queries, results, k, gen.passages, gen.by_doc, gen.texts,
                 _catalog_docs(gen), versions, allowed, disabled_pids(gen), found)


def fold_in(owner: Any, gen: Any, pid: str, results: Sequence[dict[str, Any]], allowed: Collection[str] | None,
            versions: Mapping[str, VersionInfo]) -> tuple[list[dict[str, Any]], set[str]]:
    """The ``also_in`` of passage ``pid`` put first by another hook (a standard question's answer), as a pinned
    article gets it (:func:`pin`): the ranked hits that fold under it with their own entries, and the same article
    in the regulation's other versions; with the pids of those ranked hits, which leave the list."""
    from indexer.index.curation import disabled_pids

    hidden = disabled_pids(gen)
    catalog = catalog_of(owner, gen, versions)
    unit = catalog.unit_of.get(pid)

    def others(one: str) -> list[str]:
        if unit is None:
            return []
        return state_of(owner).visible_copies(catalog, unit, one, gen.passages, hidden, allowed)

    absorbed: set[str] = set()
    entries = _fold_under(pid, [], results, {pid}, absorbed, gen.passages, versions, others)
    return entries, absorbed


def editions_of(gen: Any, versions: Mapping[str, VersionInfo]) -> dict[str, dict[str, Any]]:
    """Every document's version fields in generation ``gen`` (computed once per Snapshot)."""
    from indexer.text.editions import version_fields

    with _STATES_LOCK:
        found = _EDITIONS.get(gen)
    if found is None:
        docs = {d: {"title": m.get("title", ""), "text": gen.texts.get(d, ""), "meta": m.get("meta")}
                for d, m in _docs_of(gen).items()}
        found = version_fields(docs, versions)
        with _STATES_LOCK:
            _EDITIONS[gen] = found
    return found


def annotate_documents(owner: Any, gen: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents-list hook (``Engine.documents``): version status, year and other versions on each record."""
    editions = editions_of(gen, owner.versions(gen))
    for d in records:
        d.update(editions.get(d["doc_id"], {}))
    return records


def annotate_document(owner: Any, gen: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The document-view hook (``Engine.document``): version fields on the document, ``references`` on each
    of its passages."""
    versions = owner.versions(gen)
    record.update(editions_of(gen, versions).get(record["doc_id"], {}))
    catalog = catalog_of(owner, gen, versions)
    for p in record.get("passages", []):
        p["references"] = references(f"{record['doc_id']}#{p['ordinal']}", catalog, gen.passages, gen.texts)
    return record


def _fold(question: str) -> str:
    from indexer.text.analyzer import fold

    return fold(question)
