"""Listing documents at any index size: the catalogue (ids in natural order with folded names, rebuilt once per
index generation), name filtering, paging and the search box's bounded document picker."""
from __future__ import annotations

import bisect
import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Container, Iterable, Mapping, Sequence

from indexer.text.analyzer import fold

PICKER_CAP = 200  # options the search box's document picker renders (3.7 MB of HTML for 7,104 documents before)
DOCS_PAGE = 100  # rows per page of the documents page
MAX_DOC_LIMIT = 1000  # most documents one GET /api/documents?limit= may ask for


def natural_key(text: str) -> str:
    """Sort key that orders embedded numbers by value: dangfa2 before dangfa10, case-insensitively.

    A string, not a list of parts, so a catalogue can keep one per document (~100 bytes, not ~500): a number run
    becomes ``\x01`` + its digit count + its digits, a text run ``\x02`` + the text in lower case; both markers
    sort below any character, so a number sorts before text and a shorter run before a longer one."""
    parts = []
    for t in _RUNS.split(text or ""):
        if not t:
            continue
        if t.isdigit():
            n = str(int(t))
            parts.append(f"\x01{chr(len(n))}{n}")
        else:
            parts.append("\x02" + t.lower())
    return "".join(parts)


_RUNS = re.compile(r"(\d+)")
_SEP = "\x00"  # joins names for one fold() call (fold keeps lengths and maps no phrase across it)


def fold_name(text: str) -> str:
    """A name as the filters compare it: simplified, half-width, lower case (so 黨章 and ＡＢ find 党章 and ab)."""
    return fold(text or "").lower()


def _fold_names(texts: list[str]) -> list[str]:
    """:func:`fold_name` of each text, in one call (~30 % less than one call per name)."""
    if not texts or any(_SEP in t for t in texts):
        return [fold_name(t) for t in texts]
    return fold(_SEP.join(texts)).lower().split(_SEP)


@dataclass
class Catalog:
    """The indexed documents' ids in natural order, their titles, and what a name filter searches in."""

    ids: list[str]  # natural order: what every listing shows
    titles: dict[str, str]
    names: list[str]  # fold_name(id + title), aligned with ``ids``
    plain: list[str] = field(default_factory=list)  # code-point order: a folder's documents are one run (bisect)
    key: Any = None
    sort_keys: dict[str, str] = field(default_factory=dict, repr=False)  # natural_key of each id, kept for the next
    records: dict[str, dict[str, Any]] | None = field(default=None, repr=False)  # see CatalogCache.get

    @classmethod
    def build(cls, docs: Iterable[Mapping[str, Any]], key: Any = None, previous: Catalog | None = None) -> Catalog:
        """The catalogue of ``docs`` (``engine.documents()`` records); ``previous`` lends its order and folded
        names where the ids and titles did not change (a natural sort of 7,104 ids costs ~18 ms, 10x that at 1M
        passages, and a vector-only commit changes no id)."""
        titles = {str(d["doc_id"]): str(d.get("title") or "") for d in docs}
        old_keys = previous.sort_keys if previous is not None else {}
        if previous is not None and previous.titles.keys() == titles.keys():
            ids, sort_keys = previous.ids, old_keys
        else:  # natural_key costs ~2.7 µs an id; sorting by kept keys ~0.2 µs
            sort_keys = {d: old_keys.get(d) or natural_key(d) for d in titles}
            ids = sorted(titles, key=sort_keys.__getitem__)
        old_titles = previous.titles if previous is not None else {}
        known = dict(zip(previous.ids, previous.names)) if previous is not None else {}
        fresh = [d for d in ids if d not in known or old_titles.get(d) != titles[d]]
        known.update(zip(fresh, _fold_names([f"{d}\n{titles[d]}" for d in fresh])))
        return cls(ids=ids, titles=titles, names=[known[d] for d in ids], plain=sorted(titles), key=key,
                   sort_keys=sort_keys)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def position(self) -> dict[str, int]:
        """Each id's place in the natural order."""
        return {d: i for i, d in enumerate(self.ids)}

    def matching(self, query: str) -> list[str]:
        """Ids (natural order) whose id or title contains ``query``, compared folded; all when it is blank."""
        needle = fold_name(" ".join(str(query or "").split()))
        if not needle:
            return list(self.ids)
        return [d for d, name in zip(self.ids, self.names) if needle in name]

    def under(self, folder: str) -> list[str]:
        """Ids under ``folder`` (``规章/``), in code-point order."""
        return under(self.plain, folder)

    def resolve(self, values: Sequence[Any]) -> tuple[list[str], list[str], list[str]]:
        """A document filter's values as (chosen ids, folders named, unknown values); see :func:`resolve_docs`."""
        return resolve_docs(values, self.plain, self.titles)


def resolve_docs(values: Sequence[Any], plain: Sequence[str], known: Container[str]) -> tuple[list[str], list[str],
                                                                                              list[str]]:
    """A document filter's values as (chosen ids, folders named, unknown values): an exact id selects that
    document, else ``规章`` or ``规章/`` every document under the folder. ``plain`` is the ids in code-point order,
    ``known`` a set (or dict) of them."""
    chosen: list[str] = []
    seen: set[str] = set()
    folders: list[str] = []
    unknown: list[str] = []
    for value in values:
        v = str(value).strip()
        if not v:
            continue
        if v in known:
            matched = [v]
        else:
            folder = v.rstrip("/") + "/"
            matched = under(plain, folder)
            if matched and folder not in folders:
                folders.append(folder)
        if not matched:
            unknown.append(v)
        for d in matched:
            if d not in seen:
                seen.add(d)
                chosen.append(d)
    return chosen, folders, unknown


def under(plain: Sequence[str], folder: str) -> list[str]:
    """The ids of ``plain`` (code-point order) under ``folder`` (``规章/``): one contiguous run, found by bisection."""
    if not folder:
        return list(plain)
    start = bisect.bisect_left(plain, folder)
    end = bisect.bisect_left(plain, folder[:-1] + chr(ord(folder[-1]) + 1))
    return list(plain[start:end])


class CatalogCache:
    """The current index generation's :class:`Catalog`, shared by the requests of one app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Catalog | None = None

    def get(self, engine: Any) -> Catalog:
        """The catalogue of ``engine``'s current generation: built from ``engine.documents()`` only when the
        generation (or index, or counts) changed since the last call, so a page costs no O(documents) work while
        the index stands still.

        With no passage waiting for its vector, the records themselves are kept too: a document's state is then
        ``done`` whatever the embedding worker does, and everything else in a record is the generation's. While
        vectors are pending, states move without a new generation, so :func:`records` asks the engine."""
        stats = engine.stats()
        key = (stats.get("index_dir"), stats.get("generation"), stats.get("documents"), stats.get("pending_vectors"))
        if key[1] is None:  # an engine that numbers no generations: nothing tells when to rebuild
            return Catalog.build(engine.documents())
        with self._lock:  # one build at a time: concurrent requests after a commit wait for it, not redo it
            current = self._current
            if current is not None and current.key == key:
                return current
            docs = engine.documents()
            built = Catalog.build(docs, key=key, previous=current)
            if key[3] == 0:
                built.records = {d["doc_id"]: d for d in docs}
            self._current = built
            return built


def records(engine: Any, catalog: Catalog, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The ``engine.documents()`` records of ``ids``, in that order (copies; ids removed meanwhile are skipped):
    from the catalogue when it keeps them (O(len(ids))), else from one ``engine.documents()`` call."""
    if not ids:
        return []
    by_id = catalog.records
    if by_id is None:
        by_id = {d["doc_id"]: d for d in engine.documents()}
    return [dict(by_id[d]) for d in ids if d in by_id]


def page_bounds(total: int, page: int, size: int = DOCS_PAGE) -> tuple[int, int, int]:
    """(page clamped to 1..pages, pages, offset) for ``total`` rows shown ``size`` a page."""
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    return page, pages, (page - 1) * size


@dataclass
class PickerOption:
    """One checkbox of the document picker."""

    doc_id: str
    title: str
    count: int | None  # candidate passages for this question (None: no question)
    checked: bool
    folder: str = ""  # the selected folder that covers this document (ticked through it, not on its own)


@dataclass
class Picker:
    """What the search box's document picker shows: selected folders, at most ``cap`` documents, and a note
    when the list is cut."""

    folders: list[tuple[str, int]]  # (folder, documents under it), ticked
    options: list[PickerOption]
    total: int
    cut: bool
    counted: bool  # every document with a candidate hit is listed: one not listed has 0
    note: str


def build_picker(catalog: Catalog, selected: Sequence[str], folders: Sequence[str],
                 counts: Mapping[str, int] | None, cap: int = PICKER_CAP) -> Picker:
    """The picker for a page: every document when there are at most ``cap``, else the selected documents first,
    then those with candidate hits for the question (most first), then the rest in natural order up to ``cap``.

    ``selected`` are the chosen ids (folders expanded), ``folders`` the folders named; a document under a named
    folder is ticked through its folder, so a folder of thousands costs one option.
    """
    total = len(catalog)
    covered = {d: f for f in folders for d in catalog.under(f)}
    own = [d for d in selected if d not in covered]
    order: list[str]
    if total <= cap:
        order = catalog.ids
    else:
        order, seen = [], set()
        position = catalog.position
        for d in sorted(own, key=lambda d: position.get(d, 0)):
            order.append(d)
            seen.add(d)
        ranked = sorted(((n, d) for d, n in (counts or {}).items() if n > 0 and d in catalog.titles),
                        key=lambda t: (-t[0], position.get(t[1], 0)))
        for _, d in ranked:
            if len(order) >= cap:
                break
            if d not in seen:
                order.append(d)
                seen.add(d)
        for d in catalog.ids:
            if len(order) >= cap:
                break
            if d not in seen:
                order.append(d)
                seen.add(d)
    chosen = set(own)
    options = [PickerOption(d, catalog.titles.get(d, d), (counts or {}).get(d, 0) if counts else None,
                            d in chosen or d in covered, covered.get(d, "")) for d in order]
    cut = total > len(options)
    listed = {o.doc_id for o in options}
    counted = bool(counts) and all(d in listed for d, n in counts.items() if n > 0)
    note = ""
    if cut:
        first = "已选及与本问题相关的优先" if counts else "已选的优先"
        note = f"共 {total:,} 篇文档，列出 {len(options):,} 篇（{first}）；输入名称查找其余"
    return Picker(folders=[(f, len(catalog.under(f))) for f in folders], options=options, total=total, cut=cut,
                  counted=counted, note=note)
