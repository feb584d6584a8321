"""Curation of the knowledge base (issue 26): disabled passages and standard questions (标准问题), kept by content
in the manifest and written as a generation, like a person's metadata corrections (:mod:`indexer.index.metadata`).

A passage is named by a content key, a hash of its document id and its (whitespace-normalised) text, not by its
pid (``doc_id#ordinal`` shifts when a paragraph is inserted above it): a state set on a passage stays on it when
the file is re-read, edited elsewhere or re-indexed, and is lost only when its own text changes.

Manifest keys::

    disabled_passages   content key -> {doc_id, title, section, text (its opening), at, by}
    standard_questions  normalised question -> {question, key, doc_id, title, section, text, vector, model_id, at, by}
                        (vector: the question's e5 vector as base64 float16, ~0.5 kB a question)

A change is a new generation whose only changed file is ``manifest.json`` (every other file stays a hard link of
the previous generation's), committed through the one commit path (:meth:`indexer.index.writer.Writer.commit_manifest`):
a kill at any point leaves the previous state. The kill tests pause at the ``curation`` checkpoint (before the
generation is built) and at ``before_switch`` / ``after_switch``.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import unicodedata
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from indexer.embed.encoders import l2_normalize
from indexer.index.generations import ManifestCommitter, Snapshot, now
from indexer.text.cite import citation
from indexer.text.courtesy import strip_courtesy
from indexer.types import KeywordHit, Passage, PartyQAError

logger = logging.getLogger(__name__)

DISABLED_KEY = "disabled_passages"
STANDARD_KEY = "standard_questions"
OPENING_CHARS = 60  # how much of a passage's text a curation record keeps (to show it when the passage is gone)
# A search whose question's e5 vector has at least this cosine with a linked question's, and that asks the same
# thing by its words (:func:`same_question`), is a paraphrase of it: 23 of 26 paraphrase pairs, 2 wrong pairs of
# 140,200 (bench/standard_threshold.py; the cosine alone at 0.93: 594 wrong pairs).
PARAPHRASE_COSINE = 0.93
MAX_QUESTION_CHARS = 200
FAQ_PREFIX = "问答"  # doc ids of 问答对 entries start with 问答/ (indexer.faq)
_FAQ_ANSWER_RE = re.compile(r"(?:^|\n)答：(.*?)\s*(?:\n来源：|\Z)", re.S)


class CurationError(PartyQAError):
    """A curation request that cannot be carried out (unknown passage, empty question); bilingual message."""


def passage_key(doc_id: str, text: str) -> str:
    """The content key of a passage: sha1 of its document id and its whitespace-normalised text (20 hex digits)."""
    body = " ".join(text.split())
    return hashlib.sha1(f"{doc_id}\x1f{body}".encode("utf-8")).hexdigest()[:20]


def key_of(p: Passage) -> str:
    """:func:`passage_key` of a stored passage."""
    return passage_key(p.doc_id, p.text)


_PUNCT_RE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_question(question: str) -> str:
    """A question as standard questions are matched: NFKC, lower case, without spaces and punctuation
    (so 支委会多久开一次会？ and ``支委会 多久开一次会?`` are the same question)."""
    return _PUNCT_RE.sub("", unicodedata.normalize("NFKC", question).lower())


# ------------------------------------------------------------------ reading the state of a generation
def disabled_pids(gen: Snapshot) -> frozenset[str]:
    """The pids of a generation's passages that are disabled (computed once per snapshot, only over the documents
    that have a disabled passage)."""
    cached = gen.__dict__.get("_disabled_pids")
    if cached is not None:
        return cached
    disabled = gen.manifest.get(DISABLED_KEY) or {}
    out: set[str] = set()
    if disabled:
        docs = {rec.get("doc_id") for rec in disabled.values()}
        for doc_id in docs:
            for pid in gen.by_doc.get(doc_id, ()):
                if key_of(gen.passages[pid]) in disabled:
                    out.add(pid)
    result = frozenset(out)
    gen.__dict__["_disabled_pids"] = result
    return result


def visible_candidates(gen: Snapshot, keyword_lists: list[list[KeywordHit]],
                       semantic_lists: list[list[tuple[str, float]]]
                       ) -> tuple[list[list[KeywordHit]], list[list[tuple[str, float]]]]:
    """Both halves' candidate lists without disabled passages: the searcher's hook, before fusion and folding, so
    a disabled passage is never a hit, an answer sentence, nor folded into another hit's ``also_in``."""
    off = disabled_pids(gen)
    if not off:
        return keyword_lists, semantic_lists
    return ([[h for h in hits if h.pid not in off] for hits in keyword_lists],
            [[(pid, s) for pid, s in hits if pid not in off] for hits in semantic_lists])


def pid_of_key(gen: Snapshot, doc_id: str, key: str) -> str | None:
    """The pid a content key names in a generation (None when its document or its text is gone)."""
    for pid in gen.by_doc.get(doc_id, ()):
        if key_of(gen.passages[pid]) == key:
            return pid
    return None


def document_passages(gen: Snapshot, doc_id: str) -> list[dict[str, Any]]:
    """A document's passages in order with section, citation, content key and state (``enabled`` / ``disabled``)
    and the standard questions linked to each; KeyError for an unknown document."""
    if doc_id not in gen.manifest["documents"]:
        raise KeyError(doc_id)
    off = disabled_pids(gen)
    linked: dict[str, list[str]] = {}
    for rec in (gen.manifest.get(STANDARD_KEY) or {}).values():
        if rec.get("doc_id") == doc_id:
            linked.setdefault(rec["key"], []).append(rec["question"])
    out = []
    for pid in gen.by_doc.get(doc_id, ()):
        p = gen.passages[pid]
        key = key_of(p)
        out.append({"pid": pid, "ordinal": p.ordinal, "section": p.section,
                    "citation": citation({"title": p.title, "section": p.section}), "text": p.text,
                    "start": p.start, "end": p.end, "key": key,
                    "state": "disabled" if pid in off else "enabled", "enabled": pid not in off,
                    "standard_questions": linked.get(key, [])})
    out.sort(key=lambda r: r["ordinal"])
    return out


def disabled_list(gen: Snapshot) -> list[dict[str, Any]]:
    """Every disabled-passage record, with the pid it names now (None when the passage is not in the index)."""
    out = []
    for key, rec in (gen.manifest.get(DISABLED_KEY) or {}).items():
        out.append({"key": key, **rec, "pid": pid_of_key(gen, rec.get("doc_id", ""), key)})
    return sorted(out, key=lambda r: (r.get("doc_id", ""), r.get("at", "")))


def standard_list(gen: Snapshot) -> list[dict[str, Any]]:
    """Every standard question with the pid its passage has now (None when the passage is gone), vectors left out."""
    out = []
    for norm, rec in (gen.manifest.get(STANDARD_KEY) or {}).items():
        shown = {k: v for k, v in rec.items() if k not in ("vector",)}
        out.append({**shown, "normalised": norm, "pid": pid_of_key(gen, rec.get("doc_id", ""), rec["key"]),
                    "paraphrases": rec.get("vector") is not None})
    return sorted(out, key=lambda r: r.get("at", ""))


# ------------------------------------------------------------------ is it the same question?
# What a question asks, by its question words (checked in this order: 为什么 before 什么, 多少时间 before 多少).
_ASKS = [("why", re.compile(r"为什么|为何|何以")),
         ("time", re.compile(r"多久|多长时间|多少时间|多长|几年|多少年|几个月|多少个月|几天|多少天|几次|多少次|何时|什么时候|期限")),
         ("amount", re.compile(r"多少|多大|几[个名人条项位种]?")),
         ("how", re.compile(r"怎么|怎样|如何|咋")),
         ("who", re.compile(r"谁|哪个部门|哪级|哪一级")),
         ("what", re.compile(r"什么|哪些|哪几|哪|啥")),
         ("whether", re.compile(r"是否|能不能|能否|可不可以|可以吗|行不行|吗"))]
_FILLER_RE = re.compile(r"一般|应该|应当|需要|必须|可以|的|是|要|有|了|呢|吧|啊|请问|都|该")
_DIGITS = str.maketrans("0123456789", "〇一二三四五六七八九")
_COUNTED_RE = re.compile(r"第[〇一二三四五六七八九十百千零两]+|[〇一二三四五六七八九十百千零两]+(?=[条章节款项年月日人个名])")
CONTENT_OVERLAP = 0.8  # share of the shorter question's content characters the longer one must have
CONTENT_JACCARD = 0.6  # and of the two questions' content characters together (党章第八条 is not 纪律处分条例第八条)
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")


def _asks(text: str) -> tuple[frozenset[str], str]:
    """The kinds of question words in ``text`` and the text without them."""
    kinds = set()
    for kind, rx in _ASKS:
        if rx.search(text):
            kinds.add(kind)
            text = rx.sub("", text)
    return frozenset(kinds), text


def same_question(a: str, b: str) -> bool:
    """Whether two questions close in meaning ask the same thing, by their words: the same kinds of question words
    (怎么 / 多少 / 多久 ...), the same counted numbers (第十条, 3人, 2018年), and the shorter one's content
    characters nearly all in the longer one and most of both shared (党费怎么交 ~ 党费应该怎样交纳, but not 党费交多少;
    党员的权利 is not 党员的义务). The e5 cosine alone rates 党费怎么交 / 党费交多少 0.98 (bench/standard_threshold.py)."""
    na, nb = (normalise_question(x).translate(_DIGITS) for x in (a, b))
    if _COUNTED_RE.findall(na) != _COUNTED_RE.findall(nb):
        return False
    (ka, ra), (kb, rb) = _asks(na), _asks(nb)
    if ka != kb:
        return False
    ca, cb = set(_FILLER_RE.sub("", ra)), set(_FILLER_RE.sub("", rb))
    short, long_ = (ca, cb) if len(ca) <= len(cb) else (cb, ca)
    if not _HAN_RE.search("".join(short)):
        return False
    shared = len(short & long_)
    return shared / len(short) >= CONTENT_OVERLAP and shared / len(short | long_) >= CONTENT_JACCARD


# ------------------------------------------------------------------ standard answers at search time
def _standard_matrix(gen: Snapshot) -> tuple[list[str], np.ndarray | None]:
    """The linked questions that have vectors, and those vectors as a unit-row matrix (cached per snapshot)."""
    cached = gen.__dict__.get("_standard_matrix")
    if cached is not None:
        return cached
    names: list[str] = []
    rows: list[np.ndarray] = []
    model = gen.manifest.get("model_id")
    for norm, rec in (gen.manifest.get(STANDARD_KEY) or {}).items():
        if rec.get("vector") is not None and (model is None or rec.get("model_id") == model):
            row = unpack_vector(rec["vector"])
            if rows and row.shape != rows[0].shape:
                continue  # a vector of another model's size
            names.append(norm)
            rows.append(row)
    matrix = None
    if rows:
        matrix = l2_normalize(np.stack(rows))
    gen.__dict__["_standard_matrix"] = (names, matrix)
    return names, matrix


def _standard_plain(gen: Snapshot) -> dict[str, dict[str, Any]]:
    """The linked questions by their normalised text without courtesy (indexer.text.courtesy; cached per
    snapshot): "老师您好，请问…？谢谢！" linked as typed is the same question as "…"."""
    cached = gen.__dict__.get("_standard_plain")
    if cached is None:
        cached = {normalise_question(strip_courtesy(rec.get("question", ""))): rec
                  for rec in (gen.manifest.get(STANDARD_KEY) or {}).values()}
        gen.__dict__["_standard_plain"] = cached
    return cached


def pack_vector(vector: Iterable[float]) -> str:
    """A question vector as stored in the manifest: little-endian float16, base64 (the cosine changes < 0.001)."""
    return base64.b64encode(np.asarray(list(vector), dtype="<f2").tobytes()).decode("ascii")


def unpack_vector(stored: Any) -> np.ndarray:
    """The float32 vector of :func:`pack_vector`'s text (or of a plain list)."""
    if isinstance(stored, str):
        return np.frombuffer(base64.b64decode(stored), dtype="<f2").astype(np.float32)
    return np.asarray(stored, dtype=np.float32)


def match_standard(gen: Snapshot, question: str, vector: Any = None,
                   threshold: float = PARAPHRASE_COSINE, asked: str = "") -> tuple[dict[str, Any], float] | None:
    """The standard question a search matches -- the same normalised text (``asked``, the question as typed, first;
    then ``question``, without its courtesy, against the linked questions as typed and without theirs), else the linked question whose vector is closest to ``vector`` (the
    question's e5 query vector) at ``threshold`` or above -- with its similarity (1.0 for the same text); None when
    none matches or the linked passage is gone or disabled."""
    linked = gen.manifest.get(STANDARD_KEY) or {}
    if not linked:
        return None
    rec = linked.get(normalise_question(asked)) if asked else None
    if rec is None:
        rec = linked.get(normalise_question(question)) or _standard_plain(gen).get(normalise_question(question))
    sim = 1.0
    if rec is None and vector is not None:
        names, matrix = _standard_matrix(gen)
        if matrix is not None:
            v = l2_normalize(np.asarray(vector, dtype=np.float32).reshape(-1))[0]
            if v.shape[0] == matrix.shape[1]:
                sims = matrix @ v
                for best in np.argsort(-sims):
                    if float(sims[best]) < threshold:
                        break
                    if same_question(question, linked[names[best]]["question"]):
                        rec, sim = linked[names[best]], float(sims[best])
                        break
    if rec is None:
        return None
    pid = pid_of_key(gen, rec.get("doc_id", ""), rec["key"])
    if pid is None or pid in disabled_pids(gen):
        return None
    return {**{k: v for k, v in rec.items() if k != "vector"}, "pid": pid}, sim


def put_standard_first(results: list[dict[str, Any]], gen: Snapshot, match: tuple[dict[str, Any], float],
                       k: int, make_hit: Callable[[Passage], dict[str, Any]],
                       fold: Callable[[str, list[dict[str, Any]]], tuple[list[dict[str, Any]], set[str]]] | None = None
                       ) -> None:
    """Put the standard answer's hit first (moved up when ranked, else built by ``make_hit``), marked
    ``standard_answer: true`` with the linked question; the list keeps at most ``k`` hits, ranks renumbered.
    ``fold(pid, results)``: a built hit's ``also_in`` (its other versions and repeats) and the ranked hits that
    fold under it, which leave the list (hand over a few more than ``k`` results, so that it still holds ``k``)."""
    rec, sim = match
    pid = rec["pid"]
    at = next((i for i, h in enumerate(results) if h.get("pid") == pid), None)
    if at is None:
        hit = make_hit(gen.passages[pid])
        if fold is not None:
            hit["also_in"], absorbed = fold(pid, results)
            results[:] = [h for h in results if h.get("pid") not in absorbed]
        # folded into another hit's also_in? take it out there, it leads now (so does what folds under it)
        shown = {pid} | {o["pid"] for o in hit.get("also_in") or ()}
        for h in results:
            h["also_in"] = [o for o in h.get("also_in") or [] if o.get("pid") not in shown]
    else:
        hit = results.pop(at)
    hit["standard_answer"] = True
    hit["standard_question"] = rec["question"]
    hit["standard_similarity"] = round(sim, 4)
    results.insert(0, hit)
    del results[k:]
    for i, h in enumerate(results, start=1):
        h["rank"] = i


# ------------------------------------------------------------------ writing
def _passage(gen: Snapshot, pid: str) -> Passage:
    p = gen.passages.get(pid)
    if p is None:
        raise CurationError(f"找不到段落 {pid}（用 partyqa passages 文档 查看段落编号） / unknown passage id {pid!r} "
                            f"(list a document's passages with `partyqa passages DOC`)")
    return p


def _record(p: Passage, who: str) -> dict[str, Any]:
    return {"doc_id": p.doc_id, "title": p.title, "section": p.section, "text": p.text[:OPENING_CHARS],
            "at": now(), "by": who}


def link_record(question: str, p: Passage, who: str, vector: str | None, model_id: str | None) -> dict[str, Any]:
    """The manifest record of a standard question linked to passage ``p`` (``vector``: :func:`pack_vector`'s)."""
    return {"question": question, "key": key_of(p), **_record(p, who), "vector": vector, "model_id": model_id}


def set_enabled(writer: ManifestCommitter, pids: Sequence[str], enabled: bool, who: str = "local") -> dict[str, list[str]]:
    """Disable (``enabled=False``) or enable passages by pid; ``{"changed": [...], "unchanged": [...]}``. An unknown
    pid refuses the whole request (CurationError) and nothing is written."""
    pids = list(dict.fromkeys(str(p) for p in pids))
    if not pids:
        raise CurationError("没有给出段落编号 / no passage id given")
    out: dict[str, list[str]] = {"changed": [], "unchanged": []}

    def change(gen: Snapshot, manifest: dict[str, Any]) -> bool:
        disabled = manifest.setdefault(DISABLED_KEY, {})
        for pid in pids:
            p = _passage(gen, pid)
            key = key_of(p)
            if enabled and key in disabled:
                del disabled[key]
                out["changed"].append(pid)
            elif not enabled and key not in disabled:
                disabled[key] = _record(p, who)
                out["changed"].append(pid)
            else:
                out["unchanged"].append(pid)
        if not disabled:
            manifest.pop(DISABLED_KEY, None)
        return bool(out["changed"])

    writer.commit_manifest(change)
    return out


def check_question(question: Any) -> str:
    """A standard question as stored: a non-empty string of at most :data:`MAX_QUESTION_CHARS`, spaces tidied."""
    if not isinstance(question, str) or not normalise_question(question):
        raise CurationError("问题不能为空 / the question is empty")
    question = " ".join(question.split())
    if len(question) > MAX_QUESTION_CHARS:
        raise CurationError(f"问题过长（最多 {MAX_QUESTION_CHARS} 字） / the question is too long (at most "
                            f"{MAX_QUESTION_CHARS} characters)")
    return question


def link(writer: ManifestCommitter, question: str, pid: str, who: str = "local", vector: Iterable[float] | None = None,
         model_id: str | None = None) -> dict[str, Any]:
    """Link a standard question to a passage (replacing the question's earlier link); ``vector``: the question's
    e5 query vector, for paraphrases. Returns the stored record (without the vector)."""
    return link_many(writer, [(question, pid, vector)], who, model_id)[0]


def link_many(writer: ManifestCommitter, items: Sequence[tuple[str, str, Iterable[float] | None]], who: str = "local",
              model_id: str | None = None, replace_docs: str | None = None) -> list[dict[str, Any]]:
    """Link several (question, pid, vector) at once, in one generation: all or none (an unknown or disabled
    passage refuses the lot). ``replace_docs``: first drop the links to documents whose id starts with it (an
    imported file's earlier entries). Returns the stored records (without vectors)."""
    checked = [(check_question(q), pid, None if v is None else pack_vector(v)) for q, pid, v in items]
    stored: list[dict[str, Any]] = []

    def change(gen: Snapshot, manifest: dict[str, Any]) -> bool:
        off = disabled_pids(gen)
        linked = manifest.setdefault(STANDARD_KEY, {})
        if replace_docs:
            for norm in [n for n, rec in linked.items() if str(rec.get("doc_id", "")).startswith(replace_docs)]:
                del linked[norm]
        for question, pid, vec in checked:
            p = _passage(gen, pid)
            if p.pid in off:
                raise CurationError(f"段落 {pid} 已停用，不能作为标准答案 / passage {pid} is disabled and cannot be a "
                                    f"standard answer")
            rec = link_record(question, p, who, vec, model_id)
            linked[normalise_question(question)] = rec
            stored.append({**{k: v for k, v in rec.items() if k != "vector"}, "pid": p.pid})
        return bool(checked)

    writer.commit_manifest(change)
    return stored


def unlink(writer: ManifestCommitter, question: str) -> bool:
    """Remove a standard question; False when it was not linked."""
    norm = normalise_question(question or "")

    def change(gen: Snapshot, manifest: dict[str, Any]) -> bool:
        linked = manifest.get(STANDARD_KEY) or {}
        if norm not in linked:
            return False
        del linked[norm]
        if not linked:
            manifest.pop(STANDARD_KEY, None)
        return True

    return bool(writer.commit_manifest(change))


# ------------------------------------------------------------------ 问答对 hits
def faq_answer_span(doc_id: str, text: str) -> tuple[int, int] | None:
    """Where a 问答对 entry's answer stands in a passage of it (after ``答：``, up to ``来源：``); None for another
    document or a passage without the answer's start."""
    if not str(doc_id or "").startswith(FAQ_PREFIX + "/"):
        return None
    m = _FAQ_ANSWER_RE.search(text or "")
    return (m.start(1), m.start(1) + len(m.group(1))) if m and m.group(1).strip() else None


def faq_answer_sentences(results: Iterable[list[dict[str, Any]]]) -> None:
    """Give each 问答对 entry's hit its answer as ``best_sentence`` / ``best_span``: the sentence nearest the question
    would be the entry's own question, echoed back as the answer on the page and in every export."""
    for res in results:
        for hit in res:
            span = faq_answer_span(hit.get("doc_id", ""), hit.get("text", ""))
            if span is not None:
                hit["best_span"] = [span[0], span[1]]
                hit["best_sentence"] = hit["text"][span[0]:span[1]]
