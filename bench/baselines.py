"""The retrievers peers ship, run over exactly the passages (and vectors) of a PartyQA index.

* ``rank_bm25`` -- Langchain's ``BM25Retriever`` as Langchain-Chatchat builds it:
  ``BM25Retriever.from_documents(docs, preprocess_func=jieba.lcut_for_search)``, i.e. ``rank_bm25.BM25Okapi``
  with its defaults (k1 1.5, b 0.75, epsilon 0.25) over ``jieba.lcut_for_search`` tokens, top k by
  ``np.argsort(scores)[::-1]`` as ``BM25Okapi.get_top_n`` does.
* ``bm25s`` -- ``bm25s.BM25()`` with its defaults (Lucene variant, k1 1.5, b 0.75) over the same jieba tokens.
* ``ensemble`` -- Langchain-Chatchat's ``EnsembleRetriever(retrievers=[bm25, faiss], weights=[0.5, 0.5])``:
  each retriever returns its top k; Langchain's weighted reciprocal rank fusion scores a document
  ``sum(weight / (rank + c))`` with c = 60 and 1-based ranks, merges documents with the same page content, and
  sorts by score (a stable sort, so ties keep the BM25-list-first order). The dense retriever is exact cosine
  search over the PartyQA index's own vectors with the same query encoder (what a flat FAISS index returns);
  Chatchat's score threshold is not applied (it only removes hits).

A peer indexes a passage's page content. Here that is the text PartyQA's embedding model sees for the passage
(``passage_context``: document title and section heading lines, then the passage text), so the baselines see the
same words as PartyQA's keyword half, which indexes title, section and text. The jieba tokenizer is a fresh
``jieba.Tokenizer()`` with jieba's default dictionary: PartyQA's party-building user dictionary is not lent to
the baselines.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

RRF_C = 60
WEIGHTS = (0.5, 0.5)


@dataclass
class PassageCorpus:
    """Passages in a fixed order: pids, their document ids and the page content a peer's retriever indexes."""

    pids: list[str]
    doc_ids: list[str]
    texts: list[str]
    tokens: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_passages(cls, passages: Any) -> "PassageCorpus":
        """From a {pid: Passage} mapping (an engine generation's passages), in pid insertion order."""
        from indexer.embed.encoders import passage_context

        pids, docs, texts = [], [], []
        for pid, p in passages.items():
            pids.append(pid)
            docs.append(p.doc_id)
            texts.append(passage_context(p.title, p.section, p.text))
        return cls(pids, docs, texts)

    def tokenize(self, tokenizer: Callable[[str], list[str]]) -> float:
        """Tokenize every passage once (shared by both BM25 baselines); returns the seconds it took."""
        t0 = time.perf_counter()
        self.tokens = [tokenizer(t) for t in self.texts]
        return time.perf_counter() - t0


def jieba_tokenizer() -> Callable[[str], list[str]]:
    """``lcut_for_search`` of a fresh jieba.Tokenizer with the default dictionary (as Langchain-Chatchat uses)."""
    import jieba

    tk = jieba.Tokenizer()
    tk.initialize()
    return tk.lcut_for_search


class RankBM25:
    """Langchain's BM25Retriever: rank_bm25.BM25Okapi, top k by argsort of all scores."""

    name = "rank_bm25"

    def __init__(self, corpus: PassageCorpus, tokenizer: Callable[[str], list[str]]):
        from rank_bm25 import BM25Okapi

        if not corpus.tokens:
            corpus.tokenize(tokenizer)
        self.corpus = corpus
        self.tokenizer = tokenizer
        t0 = time.perf_counter()
        self.bm25 = BM25Okapi(corpus.tokens)
        self.build_seconds = time.perf_counter() - t0

    def search(self, question: str, k: int) -> list[str]:
        """Top-k pids for one question."""
        scores = self.bm25.get_scores(self.tokenizer(question))
        top = np.argsort(scores)[::-1][:k]
        return [self.corpus.pids[i] for i in top]

    def search_many(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Top-k pids for each question."""
        return [self.search(q, k) for q in questions]


class BM25S:
    """bm25s.BM25 with its defaults over the same jieba tokens."""

    name = "bm25s"

    def __init__(self, corpus: PassageCorpus, tokenizer: Callable[[str], list[str]]):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG on import
        if not corpus.tokens:
            corpus.tokenize(tokenizer)
        self.corpus = corpus
        self.tokenizer = tokenizer
        t0 = time.perf_counter()
        self.model = bm25s.BM25()
        self.model.index(corpus.tokens, show_progress=False)
        self.build_seconds = time.perf_counter() - t0

    def search_many(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Top-k pids for each question (tokenized one by one, retrieved in one call)."""
        if not questions:
            return []
        k = min(k, len(self.corpus.pids))
        docs, _ = self.model.retrieve([self.tokenizer(q) for q in questions], k=k, show_progress=False)
        return [[self.corpus.pids[i] for i in row] for row in docs]

    def search(self, question: str, k: int) -> list[str]:
        """Top-k pids for one question."""
        return self.search_many([question], k)[0]


class Dense:
    """Exact cosine search over a PartyQA index's vectors with its query encoder (a flat FAISS index's answer)."""

    name = "dense"

    def __init__(self, vectors: Any, encoder: Any):
        self.vectors = vectors
        self.encoder = encoder

    def search_many(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Top-k pids for each question."""
        if not questions:
            return []
        hits = self.vectors.search_many(self.encoder.encode_queries(list(questions)), k)
        return [[pid for pid, _ in row] for row in hits]

    def search(self, question: str, k: int) -> list[str]:
        """Top-k pids for one question."""
        return self.search_many([question], k)[0]


def weighted_rrf(doc_lists: Sequence[Sequence[str]], weights: Sequence[float], content: Callable[[str], str],
                 c: int = RRF_C) -> list[str]:
    """Langchain's ``EnsembleRetriever.weighted_reciprocal_rank``: fuse by page content, keep the first pid seen."""
    if len(doc_lists) != len(weights):
        raise ValueError("Number of rank lists must be equal to the number of weights.")
    score: dict[str, float] = {}
    for docs, w in zip(doc_lists, weights):
        for rank, pid in enumerate(docs, start=1):
            key = content(pid)
            score[key] = score.get(key, 0.0) + w / (rank + c)
    seen: set[str] = set()
    unique = []
    for docs in doc_lists:
        for pid in docs:
            key = content(pid)
            if key not in seen:
                seen.add(key)
                unique.append(pid)
    return sorted(unique, key=lambda pid: score[content(pid)], reverse=True)


class Ensemble:
    """Langchain-Chatchat's EnsembleRetriever: [BM25 (rank_bm25), dense], weights 0.5/0.5, weighted RRF c=60."""

    name = "ensemble"

    def __init__(self, corpus: PassageCorpus, sparse: Any, dense: Any, weights: Sequence[float] = WEIGHTS,
                 c: int = RRF_C):
        self.sparse, self.dense, self.weights, self.c = sparse, dense, list(weights), c
        self._content = dict(zip(corpus.pids, corpus.texts))

    def fuse(self, sparse_top: Sequence[str], dense_top: Sequence[str]) -> list[str]:
        """Fuse one question's two top-k lists."""
        return weighted_rrf([sparse_top, dense_top], self.weights, self._content.__getitem__, self.c)

    def search_many(self, questions: Sequence[str], k: int) -> list[list[str]]:
        """Each retriever's top k (k = the retrievers' ``k``, as Chatchat sets both to top_k), fused."""
        sparse = self.sparse.search_many(questions, k)
        dense = self.dense.search_many(questions, k)
        return [self.fuse(s, d)[:k] for s, d in zip(sparse, dense)]

    def search(self, question: str, k: int) -> list[str]:
        """Top-k pids for one question."""
        return self.search_many([question], k)[0]


def build_all(passages: Any, vectors: Any, encoder: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """rank_bm25, bm25s and the ensemble over one index's passages and vectors; returns (systems, build seconds)."""
    corpus = PassageCorpus.from_passages(passages)
    tok = jieba_tokenizer()
    seconds = {"tokenize": round(corpus.tokenize(tok), 3)}
    rb = RankBM25(corpus, tok)
    seconds["rank_bm25"] = round(rb.build_seconds, 3)
    bs = BM25S(corpus, tok)
    seconds["bm25s"] = round(bs.build_seconds, 3)
    ens = Ensemble(corpus, rb, Dense(vectors, encoder))
    return {"rank_bm25": rb, "bm25s": bs, "ensemble": ens}, seconds
