"""问答对 (question-answer pairs) as FAQ entries (issue 26): a csv / xlsx / jsonl file of question, answer and
optional source becomes one document per pair, and each question a standard question of its entry. Entries are
listed, edited and deleted like documents.

An import named ``<name>`` (the file's stem) is a bulk ``.jsonl`` file in the index's data folder
(``问答-<name>.jsonl``), one line per entry: id ``问答/<name>/<n>``, the question as its title, ``问：…\\n答：…``
(and ``来源：…``) as its text -- so both halves match the question as well as the answer -- and the pair itself in
``faq_question`` / ``faq_answer`` / ``faq_source``. Each question is linked to its entry's first passage: that
question, or a close paraphrase, returns the entry first, marked ``standard_answer``.

Every change of an import (importing it, editing an entry, deleting entries) rewrites its file and adds it again,
the entries' standard questions committed in the same generation (``curate``, :meth:`indexer.engine.Engine.add`):
a kill at any point leaves the import as it was or as it is after the change, never entries without their links.
The keyword half is searchable at once; the vectors follow as for uploads (the background embedder, or ``wait``).
An edit whose import another writer changed meanwhile is tried again on the new state. Each change is one entry
of the audit log (``import``, ``edit``, ``delete``), with its user.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from indexer.fsutil import checkpoint
from indexer.index import journal
from indexer.index.curation import (DISABLED_KEY, FAQ_PREFIX, STANDARD_KEY, CurationError, check_question, key_of,
                                    link_record, normalise_question, pid_of_key)
from indexer.questions import numbered_questions
from indexer.types import PartyQAError

if TYPE_CHECKING:
    from indexer.engine import Engine
    from indexer.index.generations import Snapshot
    from indexer.index.sync import Plan
    from indexer.index.writer import Curate
    from indexer.types import Passage

logger = logging.getLogger(__name__)

ANSWER_KEYS = ("answer", "答案", "回答", "答", "a", "A")
SOURCE_KEYS = ("source", "来源", "出处", "依据")
MAX_PAIRS = 2000  # per file: each question's vector lives in the manifest (~1 kB), rewritten by every write
MAX_ANSWER_CHARS = 5000
MAX_SOURCE_CHARS = 200
RETRIES = 3  # an edit whose import changed meanwhile is tried again this often


class FaqError(PartyQAError):
    """An FAQ request that cannot be carried out (unknown entry, empty answer, bad file); bilingual message."""


class _Moved(Exception):
    """The import changed between reading it and committing the change (another writer): try again."""


def _field(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = row.get(key)
        if value is not None and str(value).strip():
            return " ".join(str(value).split()) if key in SOURCE_KEYS else str(value).strip()
    return ""


def _rows_named(numbers: Sequence[int]) -> tuple[str, str]:
    listed = "、".join(map(str, numbers[:10])) + (" …" if len(numbers) > 10 else "")
    return listed, listed.replace("、", ", ")


def read_pairs(path: str | Path, name: str | None = None) -> list[dict[str, str]]:
    """The (question, answer, source) pairs of a csv / xlsx (columns 问题, 答案, optional 来源) or jsonl file
    (question, answer, source). A row without an answer, or a question too long, refuses the file naming its rows
    (line of a jsonl, row of a table with the header as row 1); ``name``: what messages call the file."""
    p = Path(path)
    name = name or p.name
    if p.suffix.lower() not in (".csv", ".xlsx", ".jsonl"):
        raise FaqError(f"{name}：问答对文件须为 csv、xlsx 或 jsonl / {name}: a question-answer file must be .csv, "
                       f".xlsx or .jsonl")
    try:
        rows = numbered_questions(p, name)
    except PartyQAError as exc:
        raise FaqError(str(exc)) from None
    except (ValueError, OSError) as exc:  # a file that is not what its name says (a broken xlsx, ...)
        raise FaqError(f"{name}：无法读取该文件 / {name}: cannot read the file ({type(exc).__name__})") from None
    pairs, missing, too_long = [], [], []
    for n, row in rows:
        answer = _field(row, ANSWER_KEYS)
        question = " ".join(str(row["question"]).split())
        if not answer:
            missing.append(n)
        elif len(question) > 200 or len(answer) > MAX_ANSWER_CHARS:
            too_long.append(n)
        else:
            pairs.append({"question": question, "answer": answer,
                          "source": _field(row, SOURCE_KEYS)[:MAX_SOURCE_CHARS]})
    if missing:
        zh, en = _rows_named(missing)
        raise FaqError(f"{name}：第 {zh} 行缺少答案（列名：答案 或 answer） / {name}: row(s) {en} have no answer "
                       f"(column 答案 or answer)")
    if too_long:
        zh, en = _rows_named(too_long)
        raise FaqError(f"{name}：第 {zh} 行的问题超过 200 字或答案超过 {MAX_ANSWER_CHARS} 字 / {name}: row(s) {en}: "
                       f"the question is longer than 200 or the answer than {MAX_ANSWER_CHARS} characters")
    if not pairs:
        raise FaqError(f"{name}：没有问答对 / {name}: no question-answer pairs")
    if len(pairs) > MAX_PAIRS:
        raise FaqError(f"{name}：问答对过多（最多 {MAX_PAIRS}） / {name}: too many pairs (at most {MAX_PAIRS})")
    return pairs


def entry_name(path: str | Path) -> str:
    """The name of an imported file's entries: its stem without characters a doc id should not hold."""
    stem = re.sub(r"[\s/\\#?%]+", "_", Path(path).stem).strip("_.") or "faq"
    return stem[:60]


def entry_text(pair: dict[str, str]) -> str:
    """An entry's document text: ``问：…\\n答：…`` (and ``\\n来源：…``)."""
    text = f"问：{pair['question']}\n答：{pair['answer']}"
    return text + (f"\n来源：{pair['source']}" if pair.get("source") else "")


def entries(pairs: dict[int, dict[str, str]], name: str) -> list[dict[str, Any]]:
    """The jsonl documents of numbered pairs: id ``问答/<name>/<n>``, title = question, :func:`entry_text`."""
    return [{"id": f"{FAQ_PREFIX}/{name}/{n}", "title": pair["question"], "text": entry_text(pair),
             "faq_question": pair["question"], "faq_answer": pair["answer"], "faq_source": pair.get("source", "")}
            for n, pair in sorted(pairs.items())]


# ------------------------------------------------------------------ the imports of a generation
@dataclass
class _Import:
    """One import as committed: its file (rel to the corpus folder, sha1) and its pairs by number."""

    name: str
    rel: str | None = None
    sha1: str | None = None
    pairs: dict[int, dict[str, str]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{FAQ_PREFIX}/{self.name}/"

    def doc_id(self, n: int) -> str:
        return f"{self.prefix}{n}"


def split_id(doc_id: str) -> tuple[str, int] | None:
    """(import name, number) of an entry id ``问答/<name>/<n>`` (or ``<name>/<n>``), else None."""
    m = re.fullmatch(rf"(?:{FAQ_PREFIX}/)?(.+)/(\d+)", doc_id or "")
    return (m.group(1), int(m.group(2))) if m else None


def _pair_of(meta: dict[str, Any], text: str) -> dict[str, str]:
    """An entry's pair from its document record (older imports kept no ``faq_answer``: read from the text)."""
    fields = meta.get("meta") or {}
    question = fields.get("faq_question") or meta.get("title") or ""
    answer = fields.get("faq_answer")
    if answer is None:
        m = re.search(r"答：(.*?)(?:\n来源：.*)?\Z", text or "", re.S)
        answer = m.group(1).strip() if m else (text or "")
    return {"question": question, "answer": answer, "source": fields.get("faq_source") or ""}


def _imports(gen: "Snapshot") -> dict[str, _Import]:
    """The committed imports of a generation, by name."""
    out: dict[str, _Import] = {}
    for doc_id, meta in gen.manifest["documents"].items():
        parts = split_id(doc_id) if doc_id.startswith(FAQ_PREFIX + "/") else None
        if parts is None:
            continue
        imp = out.setdefault(parts[0], _Import(parts[0]))
        imp.rel = meta.get("file") or imp.rel
        imp.pairs[parts[1]] = _pair_of(meta, gen.texts.get(doc_id, ""))
    for imp in out.values():
        imp.sha1 = (gen.manifest["files"].get(imp.rel) or {}).get("sha1") if imp.rel else None
    return out


def list_entries(eng: "Engine", name: str | None = None) -> list[dict[str, Any]]:
    """The FAQ entries (of import ``name``, or all) in order: ``doc_id``, ``import``, ``n``, ``question``,
    ``answer``, ``source``, ``state`` (``keyword``: searchable by keyword, its vector still pending; ``done``) and
    ``linked`` (its question is a standard question of it)."""
    gen = eng.curator.generation()
    waiting = {gen.passages[pid].doc_id for pid in gen.pending}
    linked = {rec.get("doc_id") for rec in (gen.manifest.get(STANDARD_KEY) or {}).values()
              if pid_of_key(gen, rec.get("doc_id", ""), rec["key"]) is not None}
    out = []
    for imp in sorted(_imports(gen).values(), key=lambda i: i.name):
        if name is not None and imp.name != name:
            continue
        for n, pair in sorted(imp.pairs.items()):
            doc_id = imp.doc_id(n)
            out.append({"doc_id": doc_id, "import": imp.name, "n": n, **pair,
                        "state": "keyword" if doc_id in waiting else "done", "linked": doc_id in linked})
    return out


def get_entry(eng: "Engine", doc_id: str) -> dict[str, Any]:
    """One entry as :func:`list_entries` shows it; FaqError for an unknown id (``问答/<name>/<n>`` or
    ``<name>/<n>``)."""
    parts = split_id(doc_id)
    for e in list_entries(eng, parts[0]) if parts else []:
        if e["n"] == parts[1]:
            return e
    raise _unknown(doc_id)


def _unknown(doc_id: str) -> FaqError:
    return FaqError(f"找不到问答对 {doc_id}（见 partyqa faq list） / unknown FAQ entry {doc_id!r} (see `partyqa faq "
                    f"list`)")


# ------------------------------------------------------------------ writing
def _links_change(root: Path, imp: _Import, questions: dict[int, str],
                  vectors: dict[str, tuple[str | None, str | None]], who: str, base_sha1: str | None) -> "Curate":
    """The ``curate`` hook of a change of ``imp``: the import must still be as read (``base_sha1``), then its
    standard questions are replaced by ``questions`` (by number) linked to their entries' first passages; disabled
    states of passages the change drops go too (so an edited entry's old text is never shown again). The kill
    tests pause at the ``faq`` checkpoint after it (under the write lock, before the generation is built)."""
    def change(gen: "Snapshot", manifest: dict[str, Any], plan: "Plan") -> None:
        if base_sha1 is not None and imp.rel is not None and \
                (gen.manifest["files"].get(imp.rel) or {}).get("sha1") != base_sha1:
            raise _Moved(imp.name)
        first: dict[str, "Passage"] = {}
        keys: set[str] = set()
        for _, doc, passages in plan.new_docs:
            if doc.doc_id.startswith(imp.prefix) and passages:
                first[doc.doc_id] = min(passages, key=lambda p: p.ordinal)
                keys.update(key_of(p) for p in passages)
        linked = manifest.setdefault(STANDARD_KEY, {})
        for norm in [k for k, rec in linked.items() if str(rec.get("doc_id", "")).startswith(imp.prefix)]:
            del linked[norm]
        for n, question in sorted(questions.items()):
            p = first.get(imp.doc_id(n))
            if p is not None:
                vec, model_id = vectors.get(normalise_question(question), (None, None))
                linked[normalise_question(question)] = link_record(question, p, who, vec, model_id)
        if not linked:
            manifest.pop(STANDARD_KEY, None)
        disabled = manifest.get(DISABLED_KEY) or {}
        for key in [k for k, rec in disabled.items()
                    if str(rec.get("doc_id", "")).startswith(imp.prefix) and k not in keys]:
            del disabled[key]
        if DISABLED_KEY in manifest and not disabled:
            manifest.pop(DISABLED_KEY)
        checkpoint(root, "faq")

    return change


def _question_vectors(eng: "Engine", imp_prefix: str, questions: Iterable[str]
                      ) -> dict[str, tuple[str | None, str | None]]:
    """normalised question -> (packed e5 vector, model id): kept from the import's current links, encoded for the
    questions that have none (None when no model can be loaded: then only the same question matches)."""
    from indexer.index.curation import pack_vector

    gen = eng.curator.generation()
    out: dict[str, tuple[str | None, str | None]] = {}
    for rec in (gen.manifest.get(STANDARD_KEY) or {}).values():
        if str(rec.get("doc_id", "")).startswith(imp_prefix) and rec.get("vector") is not None:
            out[normalise_question(rec["question"])] = (rec["vector"], rec.get("model_id"))
    need = list(dict.fromkeys(q for q in questions if normalise_question(q) not in out))
    if need:
        vectors, model_id = eng.curator.question_vectors(need)
        for q, v in zip(need, vectors):
            out[normalise_question(q)] = (None if v is None else pack_vector(v), model_id if v is not None else None)
    return out


def _commit(eng: "Engine", imp: _Import, pairs: dict[int, dict[str, str]], base_sha1: str | None, wait: bool,
            who: str) -> Any:
    """Write ``pairs`` as import ``imp``'s whole file and add it, its links in the same generation; an import
    left with no pair is removed (its file kept in removed/ like a deleted document's). Returns the add's report
    (None for a removal)."""
    questions = {n: p["question"] for n, p in pairs.items()}
    if not pairs:
        ids = [imp.doc_id(n) for n in imp.pairs]
        eng.remove(ids, curate=_links_change(eng.root, imp, {}, {}, who, base_sha1))
        return None
    vectors = _question_vectors(eng, imp.prefix, questions.values())
    with tempfile.TemporaryDirectory(prefix="partyqa-faq-") as tmp:
        bulk = Path(tmp) / (Path(imp.rel).name if imp.rel else f"{FAQ_PREFIX}-{imp.name}.jsonl")
        bulk.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries(pairs, imp.name)), "utf-8")
        report = eng.add([bulk], wait=wait, curate=_links_change(eng.root, imp, questions, vectors, who, base_sha1))
    if report.errors:
        raise FaqError(f"问答对未能写入 / the pairs could not be written: {report.errors}")
    return report


def _change(eng: "Engine", name: str, edit: Any, wait: bool, who: str) -> Any:
    """Apply ``edit(imp) -> pairs`` to import ``name`` as committed now and commit the result; tried again when
    another writer changed the import meanwhile. Returns (imp as read, the add's report)."""
    for attempt in range(RETRIES):
        imp = _imports(eng.curator.generation()).get(name) or _Import(name)
        pairs = edit(imp)
        try:
            return imp, _commit(eng, imp, pairs, imp.sha1, wait, who)
        except _Moved:
            logger.info("FAQ import %s changed meanwhile: trying again (%d)", name, attempt + 1)
    raise FaqError(f"问答对 {name} 正被同时修改，请稍后重试 / the FAQ import {name!r} is being changed by someone else; "
                   f"try again")


def import_faq(eng: "Engine", path: str | Path, wait: bool = False, who: str | None = None,
               job: str | None = None, filename: str | None = None) -> dict[str, Any]:
    """Import a 问答对 file: its entries replace those of an earlier import of the same name, each question linked to
    its entry, in one generation. Returns ``{"file", "entries", "linked", "report"}``; audited as ``import``.
    ``filename``: the name the user gave the file (an upload saved under another)."""
    shown = filename or Path(path).name
    pairs = read_pairs(path, shown)
    name = entry_name(shown)
    numbered = dict(enumerate(pairs, start=1))
    who = who or journal.current_actor()
    with journal.acting_as(who), journal.audited(eng.root, "import", {"faq": shown, "pairs": len(pairs)},
                                                 job=job) as end:
        imp, report = _change(eng, name, lambda imp: numbered, wait, who)
        fresh = _imports(eng.curator.generation()).get(name) or imp
        missing = [e for e in list_entries(eng, name) if not e["linked"]]
        if missing:  # an unchanged file whose links someone removed (or an import of an older version)
            links = [(fresh.pairs[e["n"]]["question"], eng.passages(e["doc_id"])[0]["pid"]) for e in missing]
            eng.curator.link_questions(links)
        end["entries"] = len(pairs)
    logger.info("imported %d question-answer pairs from %s", len(pairs), shown)
    ids = [imp.doc_id(n) for n in numbered]
    return {"file": shown, "import": name, "entries": ids, "linked": sum(e["linked"] for e in list_entries(eng, name)),
            "report": report.to_dict() if report is not None else None}


def _check_pair(pair: dict[str, str]) -> dict[str, str]:
    """A pair as stored: question checked as a standard question, answer non-empty, lengths bounded."""
    try:
        question = check_question(pair["question"])
    except CurationError as exc:
        raise FaqError(str(exc)) from None
    answer = str(pair.get("answer") or "").strip()
    if not answer:
        raise FaqError("答案不能为空 / the answer is empty")
    if len(answer) > MAX_ANSWER_CHARS:
        raise FaqError(f"答案过长（最多 {MAX_ANSWER_CHARS} 字） / the answer is too long (at most {MAX_ANSWER_CHARS} "
                       f"characters)")
    source = " ".join(str(pair.get("source") or "").split())[:MAX_SOURCE_CHARS]
    return {"question": question, "answer": answer, "source": source}


def edit_entry(eng: "Engine", doc_id: str, question: str | None = None, answer: str | None = None,
               source: str | None = None, wait: bool = False, who: str | None = None,
               job: str | None = None) -> dict[str, Any]:
    """Change an entry's question and / or answer (and source; None: unchanged). The entry is indexed again (its
    keyword half at once, its vector as for uploads) and its standard question follows; its old text is never
    returned again. Returns the entry; audited as ``edit``. FaqError for an unknown entry or an empty field."""
    parts = split_id(doc_id)
    current = get_entry(eng, doc_id)  # unknown: FaqError before anything is logged
    changes = {k: v for k, v in (("question", question), ("answer", answer), ("source", source)) if v is not None}
    if not changes:
        raise FaqError("没有要修改的内容（问题、答案或来源） / nothing to change: give the question, answer or source")
    wanted = _check_pair({**current, **changes})
    who = who or journal.current_actor()
    with journal.acting_as(who), journal.audited(eng.root, "edit", {"faq": current["doc_id"]}, job=job,
                                                 fields=sorted(changes)) as end:
        def edit(imp: _Import) -> dict[int, dict[str, str]]:
            if parts[1] not in imp.pairs:
                raise FaqError(f"问答对 {doc_id} 已被删除 / the FAQ entry {doc_id!r} was deleted")
            return {**imp.pairs, parts[1]: wanted}

        _change(eng, parts[0], edit, wait, who)
        end["changed"] = wanted != {k: current[k] for k in ("question", "answer", "source")}
    return get_entry(eng, current["doc_id"])


def remove_entries(eng: "Engine", doc_ids: Sequence[str] = (), name: str | None = None, who: str | None = None,
                   job: str | None = None) -> list[str]:
    """Delete FAQ entries (by id), or every entry of import ``name``, with their standard questions; an import
    left empty is removed with its file (kept under removed/). Returns the ids deleted; audited as ``delete``.
    FaqError when an id is not an entry (nothing is deleted then)."""
    imports = _imports(eng.curator.generation())
    wanted: dict[str, set[int]] = {}
    if name is not None:
        if name not in imports:
            raise FaqError(f"没有名为 {name} 的问答对导入 / no FAQ import named {name!r}")
        wanted[name] = set(imports[name].pairs)
    for doc_id in doc_ids:
        parts = split_id(doc_id)
        if parts is None or parts[0] not in imports or parts[1] not in imports[parts[0]].pairs:
            raise _unknown(doc_id)
        wanted.setdefault(parts[0], set()).add(parts[1])
    if not wanted:
        raise FaqError("没有给出要删除的问答对 / no FAQ entry given")
    gone = [imports[n].doc_id(i) for n, nums in sorted(wanted.items()) for i in sorted(nums)]
    who = who or journal.current_actor()
    with journal.acting_as(who), journal.audited(eng.root, "delete", {"faq": gone}, job=job):
        for imp_name, nums in sorted(wanted.items()):
            _change(eng, imp_name, lambda imp, nums=nums: {n: p for n, p in imp.pairs.items() if n not in nums},
                    False, who)
    return gone
