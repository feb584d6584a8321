"""Questions -> Results over one committed generation: each question checked and analysed once, both halves
searched with the :class:`~indexer.search.query.Query`, and that same Query handed to :func:`~indexer.search.rank.rank`.

A search only reads: an index embedded with another model is not re-embedded here (that is a write, done by the
embedding backlog); until it is, hybrid searches rank keyword-first and semantic searches say so.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from indexer.config import Config
from indexer.embed.encoders import Encoder
from indexer.index.curation import (STANDARD_KEY, disabled_pids, match_standard, put_standard_first,
                                    visible_candidates)
from indexer.index.generations import CurrentGeneration, Snapshot
from indexer.index.metadata import all_fields, annotate_hits, category_names, docs_in_categories, version_input
from indexer.index.sentences import sentence_store
from indexer.search import lookup
from indexer.search.query import Query, analyse, check_k, check_mode, check_question, check_share
from indexer.search.rank import Results, build_hit, rank
from indexer.search.sentences import sentence_candidates
from indexer.text.versions import VersionInfo, version_families
from indexer.types import KeywordHit, ModelError, Passage, QueryError

logger = logging.getLogger(__name__)

Candidates = tuple[list[list[KeywordHit]], list[list[tuple[str, float]]]]  # per question: keyword, semantic lists


class Searcher:
    """Searches the current generation of one index (many threads at once; it never writes)."""

    def __init__(self, config: Config, current: CurrentGeneration, encoder: Callable[[], Encoder],
                 stale_model: Callable[[], None] = lambda: None):
        self.config = config
        self.current = current
        self._encoder = encoder
        self._stale_model = stale_model  # told when the index was embedded with another model
        self._reranker: Any = None
        self._reranker_for: str | None = None  # the config.reranker the loaded cross-encoder is
        self._versions_cache: tuple[int, dict[str, VersionInfo]] | None = None
        self._fields_cache: tuple[int, dict[str, dict[str, Any]]] | None = None

    def search_many(self, questions: Sequence[str], k: int = 5, mode: str = "hybrid",
                    docs: Sequence[str] | None = None, count_all: bool = False,
                    category: str | Sequence[str] | None = None, semantic_weight: float | None = None,
                    min_confidence: float | None = None) -> list[Results]:
        """Check the request (the one set of request rules), analyse each question once, search and rank.

        ``docs`` restricts both halves to those documents; ``count_all`` then makes each Results' ``doc_counts``
        count every document's candidates, as an unfiltered search would (the question is encoded once).
        ``category`` (one or several) keeps the documents of those categories (with ``docs``: those of them); a
        category no document has is a QueryError.

        ``semantic_weight`` and ``min_confidence`` (the retrieval-test knobs, 0-1) replace the configured semantic
        share of hybrid fusion and answer threshold for this call only (see :meth:`tuned`).
        """
        check_mode(mode)
        config = self.tuned(check_share(semantic_weight, "semantic_weight"),
                            check_share(min_confidence, "min_confidence"))
        qs = [check_question(q, self.config.max_query_chars) for q in questions]
        check_k(k)
        with self.current.using() as gen:  # open until the search ends, whatever writers commit meanwhile
            allowed = validate_docs(gen, docs)
            wanted = category_names(category)
            if wanted:
                in_categories = docs_in_categories(self.fields(gen), wanted)
                allowed = in_categories if allowed is None else allowed & in_categories
            if not qs:
                return []
            queries = [analyse(q, keyword=mode != "semantic") for q in qs]
            return self.search_queries(gen, queries, k, mode, allowed, count_all=count_all and allowed is not None,
                                       config=config)

    def tuned(self, semantic_weight: float | None = None, min_confidence: float | None = None) -> Config:
        """The settings of one search: the engine's config, or a copy (``dataclasses.replace``, so concurrent
        searches never see each other's values) where ``semantic_weight`` is the semantic share of hybrid fusion
        for every question, as given (``search_alpha``; with RRF fusion the halves' weights 1 - w and w) and
        ``min_confidence`` the answer threshold."""
        changes: dict[str, Any] = {}
        if semantic_weight is not None:
            changes["search_alpha"] = semantic_weight
            if self.config.fusion == "rrf":
                changes.update(keyword_weight=1.0 - semantic_weight, semantic_weight=semantic_weight)
        if min_confidence is not None:
            changes["min_confidence"] = min_confidence
        return replace(self.config, **changes) if changes else self.config

    def search_queries(self, gen: Snapshot, queries: Sequence[Query], k: int, mode: str,
                       allowed: set[str] | None = None, count_all: bool = False,
                       config: Config | None = None) -> list[Results]:
        """The search hook: build both halves' candidates for analysed questions, then rank each with its Query
        (``config``: this search's settings, default the engine's)."""
        config = config or self.config
        depth = max(config.candidates, k)
        semantic = mode in ("hybrid", "semantic") and self._vectors_usable(gen, mode)
        vectors = self._encode(queries) if semantic and gen.reader.vector_count() else None
        candidates = self.candidates(gen, queries, mode, depth, allowed, vectors)
        reranker = self._reranker_for_search()
        versions = self.versions(gen)
        # Hybrid: passages without a vector yet rank keyword first -- every passage, while the vectors are another
        # model's (until the backlog has re-embedded them).
        pending = (gen.pending if semantic else frozenset(gen.passages)) if mode == "hybrid" else frozenset()
        sentences = self.sentence_scores(gen, vectors, candidates)  # issue 22: each candidate's best sentence
        # issue 23: a question naming an article gets it first; ranked deeper, as hits may fold under it
        found = lookup.find_in(self, gen, queries, allowed, versions)
        # issue 26: a question matching a standard question gets its passage first; ranked deeper likewise
        linked = standard_matches(gen, queries, vectors)
        results = [rank(gen.passages, q, kw_hits, sem_hits,
                        k + (lookup.PIN_SPARE if f is not None or m is not None else 0), mode,
                        config, reranker, versions=versions, pending=pending, sentences=sent)
                   for q, kw_hits, sem_hits, sent, f, m in zip(queries, *candidates, sentences, found, linked)]
        results = lookup.apply_to_results(self, gen, queries, results,
                                          [k + (lookup.PIN_SPARE if m is not None else 0) for m in linked],
                                          allowed, versions, found)

        def fold(pid: str, hits: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
            return lookup.fold_in(self, gen, pid, hits, allowed, versions)

        standard_answers(gen, queries, results, vectors, k, versions, linked, fold)
        if count_all:
            every = self.candidates(gen, queries, mode, depth, None, vectors)
            for res, q, kw_hits, sem_hits in zip(results, queries, *every):
                res.doc_counts = rank(gen.passages, q, kw_hits, sem_hits, 1, mode, config, reranker,
                                      versions=versions, pending=pending).doc_counts
        fields = self.fields(gen)
        for res in results:
            annotate_hits(res, fields)  # issue 23: every hit's status and category, a corrected title
            res.min_confidence = config.min_confidence  # the threshold answer_found was judged with
        return results

    def candidates(self, gen: Snapshot, queries: Sequence[Query], mode: str, depth: int, allowed: set[str] | None,
                   vectors: Any = None) -> Candidates:
        """Both halves' candidate lists (``depth`` each) of every question; ``vectors``: the encoded questions."""
        keyword_lists: list[list[KeywordHit]] = [[] for _ in queries]
        semantic_lists: list[list[tuple[str, float]]] = [[] for _ in queries]
        reader = gen.reader
        if vectors is not None:
            # One step after the other, on the calling thread. The encoder's OpenMP team wants both cores: with the
            # keyword half searching beside it a question's encoding took 21 ms p50 instead of 11 (first pass at
            # 100k passages, 2 cores). Nor does the vector search gain from running beside the keyword half: both
            # need the GIL between their C calls, and the hand-offs cost more than the ~1.5 ms overlap saved
            # (hybrid p50 / p95 17.3 / 31.1 ms one after the other, 18.4 / 35.8 side by side; medians of 6
            # alternating rounds of the 200 bench questions at 100k, bench/NOTES.md).
            semantic_lists = reader.vector_search_many(vectors, depth, allowed)
        if mode in ("hybrid", "keyword"):
            keyword_lists = reader.keyword_search_many([q.terms for q in queries], depth, allowed)
        return visible_candidates(gen, keyword_lists, semantic_lists)  # issue 26: disabled passages never rank

    def sentence_scores(self, gen: Snapshot, vectors: Any, candidates: Candidates) -> list[dict[str, Any]]:
        """Per question, the sentence-window scores of both halves' first candidates (indexer.search.sentences)."""
        if vectors is None:
            return [{} for _ in candidates[0]]
        store = sentence_store(self.current.root, self._encoder().model_id)
        return sentence_candidates(store, gen.passages, vectors, *candidates)

    def _encode(self, queries: Sequence[Query]) -> Any:
        texts = [q.expanded if self.config.expand_semantic else q.text for q in queries]
        return self._encoder().encode_queries(texts)

    def _vectors_usable(self, gen: Snapshot, mode: str) -> bool:
        """False when the index's vectors come from another model than the configured one (semantic: an error)."""
        built_with = gen.manifest.get("model_id")
        if not gen.passages or not built_with or built_with == self._encoder().model_id:
            return True
        self._stale_model()
        if mode == "semantic":
            raise ModelError(f"索引的向量由模型 {built_with} 生成，当前模型为 {self._encoder().model_id}，正在重新生成；"
                             f"请稍后再试，或运行 partyqa index / the index was embedded with {built_with}, the "
                             f"configured model is {self._encoder().model_id}: it is being re-embedded; try again "
                             f"later or run `partyqa index`")
        logger.warning("index embedded with %s, configured model %s: keyword-only until it is re-embedded",
                       built_with, self._encoder().model_id)
        return False

    def versions(self, gen: Snapshot) -> dict[str, VersionInfo]:
        """Which documents are versions of one regulation, and which is current (computed once per generation)."""
        cached = self._versions_cache
        if cached is not None and cached[0] == gen.number:
            return cached[1]
        fields = self.fields(gen)  # a person's corrections of title, date and status order the versions too
        docs = {d: {"title": fields[d]["title"], "text": gen.texts.get(d, ""), "meta": version_input(m, fields[d])}
                for d, m in gen.manifest["documents"].items()}
        found = version_families(docs)
        self._versions_cache = (gen.number, found)
        return found

    def fields(self, gen: Snapshot) -> dict[str, dict[str, Any]]:
        """Every document's metadata, a person's corrections laid over its file's (computed once per generation)."""
        cached = self._fields_cache
        if cached is not None and cached[0] == gen.number:
            return cached[1]
        found = all_fields(gen.manifest)
        self._fields_cache = (gen.number, found)
        return found

    def _reranker_for_search(self) -> Any:
        """The cross-encoder, loaded on first use when one is configured (again when another is); None otherwise."""
        if not self.config.reranker:
            return None
        if self._reranker_for != self.config.reranker:
            from indexer.search.rerank import load_reranker

            self._reranker = load_reranker(self.config)
            self._reranker_for = self.config.reranker
        return self._reranker


def standard_matches(gen: Snapshot, queries: Sequence[Any], vectors: Any) -> list[Any]:
    """The standard question each question matches (:func:`~indexer.index.curation.match_standard`), or None."""
    if not gen.manifest.get(STANDARD_KEY):
        return [None for _ in queries]
    return [match_standard(gen, q.text, None if vectors is None else vectors[i], asked=q.asked)
            for i, q in enumerate(queries)]


def standard_answers(gen: Snapshot, queries: Sequence[Any], results: Sequence[list[dict[str, Any]]],
                     vectors: Any, k: int, versions: Mapping[str, Any] | None = None,
                     matches: Sequence[Any] | None = None, fold: Callable[..., Any] | None = None) -> None:
    """The searcher's second hook, after ranking: drops disabled passages a later hook put in (the 第X条 look-up
    reads the passage store, not the candidates), then gives a question that matches a standard question its
    passage first (:func:`~indexer.index.curation.match_standard`, :func:`~indexer.index.curation.put_standard_first`). ``vectors``: the questions' e5 vectors
    (None in keyword mode: then only the same question matches)."""
    off = disabled_pids(gen)
    if off:
        for res in results:
            kept = [h for h in res if h.get("pid") not in off]
            for h in kept:
                if h.get("also_in"):
                    h["also_in"] = [o for o in h["also_in"] if o.get("pid") not in off]
            if len(kept) != len(res):
                res[:] = kept
                for i, h in enumerate(res, start=1):
                    h["rank"] = i
    if not gen.manifest.get(STANDARD_KEY):
        return
    if matches is None:
        matches = standard_matches(gen, queries, vectors)
    for q, res, found in zip(queries, results, matches):
        if found is None:
            continue

        def make_hit(p: Passage, q: Any = q) -> dict[str, Any]:
            hit = build_hit(1, p, q.text, q.hit_terms, None, 1.0, {})
            info = (versions or {}).get(p.doc_id)
            hit.update(version_status=getattr(info, "status", None), version_label=getattr(info, "label", None),
                       also_in=[])
            return hit

        put_standard_first(res, gen, found, k, make_hit, fold)
        if hasattr(res, "answer_found"):
            res.answer_found = True
        if getattr(res, "unindexed", None):
            res.message = None  # a person linked an answer to this question: "未收录…" would contradict it


def validate_docs(gen: Snapshot, docs: Sequence[str] | None) -> set[str] | None:
    """The doc-id filter as a set (None = every document); unknown ids are refused with their names."""
    if docs is None:
        return None
    if isinstance(docs, str):
        docs = [docs]
    wanted = {str(d) for d in docs if str(d).strip()}
    if not wanted:
        return None
    unknown = sorted(wanted - set(gen.manifest["documents"]))
    if unknown:
        raise QueryError(f"未找到文档：{'、'.join(unknown[:5])}（见文档列表） / unknown document id(s): "
                         f"{', '.join(unknown[:5])} (see the document list)")
    return wanted
