"""Tokenizing big keyword batches in worker processes: jieba runs in a pool while the writer writes the postings.

jieba takes ~60 % of keyword indexing (profiled on the 8gui regulations), so large batches
are tokenized in worker processes while this process writes the postings: the workers run ChineseAnalyzer and
return each field's tokens, and during the write the fields' analyzer replays them (:class:`_Replay`), so the
index is identical to a one-process build (tests/test_jobs.py compares every term's postings and positions).
Below PARALLEL_MIN_PASSAGES, shipping the texts costs more than it saves.

Off by default: on the shared 2-core bench machine (other processes on both cores) the workers got no spare core
and a 1,558-passage build took 3.9 s with them against 2.5 s without (docs/BENCHMARKS.md, "Adding documents"),
although the writing process's own CPU fell from 2.4 s to 1.35 s. PARTYQA_KEYWORD_WORKERS=1 turns it on.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator

from whoosh.analysis import Token

from indexer.text.analyzer import ChineseAnalyzer, segmenter
from indexer.types import Passage

logger = logging.getLogger(__name__)

PARALLEL_MIN_PASSAGES = 200
ANALYSED_FIELDS = ("text", "section", "title")
TOKENIZE_CHUNK = 200  # texts per worker call (50: +30 % pool overhead, measured on 1,558 passages)
_pool: Executor | None = None
_pool_lock = threading.Lock()


def _fields(p: Passage) -> dict[str, str]:
    return {"text": p.text or "", "section": p.section or "", "title": p.title or ""}


class _Analysed(str):
    """A field value whose tokens a worker computed: (position of the first token, token texts)."""

    tokens: tuple[int, list[str]]


def _tokenize_fields(chunk: list[dict[str, str]]) -> list[dict[str, tuple[int, list[str]]]]:
    """Worker: each field's index-time tokens as (first position, texts); ChineseAnalyzer's positions run on by
    one from the first kept token (its StopFilter renumbers), so that pair is the whole token stream."""
    analyzer = _worker_analyzer()
    out = []
    for fields in chunk:
        analysed = {}
        for name, value in fields.items():
            tokens = [(t.text, t.pos) for t in analyzer(value, positions=True)]
            first = tokens[0][1] if tokens else 0
            if any(pos != first + i for i, (_, pos) in enumerate(tokens)):  # the replay could not reproduce them
                raise ValueError(f"token positions of {name} are not consecutive")
            analysed[name] = (first, [t for t, _ in tokens])
        out.append(analysed)
    return out


@lru_cache(maxsize=1)
def _worker_analyzer() -> Any:
    return ChineseAnalyzer()


class _Replay:
    """Stands in for a field's analyzer while a batch is written: replays a worker's tokens of an
    :class:`_Analysed` value, analyses any other value with the real analyzer."""

    def __init__(self, analyzer: Any):
        self.analyzer = analyzer

    def __call__(self, value: Any, positions: bool = False, chars: bool = False, **kwargs: Any) -> Iterator[Token]:
        if not isinstance(value, _Analysed):
            yield from self.analyzer(value, positions=positions, chars=chars, **kwargs)
            return
        first, texts = value.tokens
        t = Token(positions, chars, **kwargs)
        for i, text in enumerate(texts):
            t.text, t.boost, t.stopped = text, 1.0, False
            if positions:
                t.pos = first + i
            yield t


@contextmanager
def replaying(schema: Any, enabled: bool) -> Iterator[None]:
    """Swap the text fields' analyzers for :class:`_Replay` on a writer's own schema, and back before its commit
    (the commit pickles the schema into the index)."""
    if not enabled:
        yield
        return
    originals = {name: schema[name].analyzer for name in ANALYSED_FIELDS}
    try:
        for name, analyzer in originals.items():
            schema[name].analyzer = _Replay(analyzer)
        yield
    finally:
        for name, analyzer in originals.items():
            schema[name].analyzer = analyzer


def tokenizer_pool() -> Executor:
    """The worker processes that tokenize big batches (started once per process; jieba initialised in each).

    fork, not spawn/forkserver: those re-import the caller's main script in every worker (a user's script without
    a ``__main__`` guard would run again there). The workers only run jieba; the server starts them early
    (:func:`warm_tokenizers`), while it has few threads.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            _pool = ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 4),
                                        mp_context=multiprocessing.get_context(method), initializer=_init_worker,
                                        initargs=(os.getpid(),))
        return _pool


def _init_worker(parent: int) -> None:
    """Worker start: initialise jieba, and exit when the parent dies (a SIGKILLed server must not leave workers)."""
    segmenter()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="partyqa-parent-watch", daemon=True).start()


def warm_tokenizers() -> None:
    """Start the tokenizer workers now (they initialise jieba in the background), so a big write need not wait."""
    pool = tokenizer_pool()
    for _ in range(min(os.cpu_count() or 1, 4)):
        pool.submit(_tokenize_fields, [])


def field_values(passages: list[Passage], parallel: bool) -> Iterator[dict[str, Any]]:
    """Field values for whoosh: the texts, or (parallel) their token lists, in order, as workers finish them.

    If the workers fail (a broken pool, no processes allowed), the rest is tokenized here.
    """
    done = 0
    if parallel:
        chunks = [[_fields(p) for p in passages[i:i + TOKENIZE_CHUNK]]
                  for i in range(0, len(passages), TOKENIZE_CHUNK)]
        try:
            for chunk_fields, chunk in zip(chunks, tokenizer_pool().map(_tokenize_fields, chunks)):
                for fields, analysed in zip(chunk_fields, chunk):
                    out = {}
                    for name, value in fields.items():
                        out[name] = _Analysed(value)
                        out[name].tokens = analysed[name]
                    yield out
                done += len(chunk)
        except Exception as exc:
            global _pool
            logger.warning("tokenizer workers failed (%s); tokenizing in this process", exc)
            with _pool_lock:
                _pool = None
    yield from (_fields(p) for p in passages[done:])
