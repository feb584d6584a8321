"""An index built by the release before the issue-20 layout (commit 3c4ef62) opens and searches unchanged.

tests/fixtures/premove/ holds that index (the seed essay and the regulation fixture, vectors from the hashing
stand-in encoder of bench/common.py so that no model is needed), what the old code reported of it (answers.json:
stats and documents) and both search halves' raw candidates for eight questions (candidates.json), written by
tests/fixtures/premove/build.py and /build_candidates.py run in a checkout of 3c4ef62. The candidates depend only on
the index files and the question analysis, so they must stay identical; the final ranking may change with ranking
work (issue 22 changed it), not with where modules live.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.common import HashEncoder
from indexer import Config, Engine
from indexer.search.query import analyse

PREMOVE = Path(__file__).resolve().parent / "fixtures" / "premove"
EXPECTED = json.loads((PREMOVE / "answers.json").read_text("utf-8"))
CANDIDATES = json.loads((PREMOVE / "candidates.json").read_text("utf-8"))
PATH_KEYS = ("index_dir", "corpus_dir")  # where the index and corpus lay when it was built


@pytest.fixture()
def old_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The pre-move index, copied (opening may take locks), searched with the stand-in encoder it was built with."""
    import indexer.engine as engine_mod

    monkeypatch.setattr(engine_mod, "load_encoder", lambda cfg: HashEncoder())
    dest = tmp_path / "index"
    shutil.copytree(PREMOVE / "index", dest)
    eng = Engine.open(dest, Config(index_dir=str(dest), keyword_workers=False))
    yield eng
    eng.close()


def test_premove_index_opens_unchanged(old_index: Engine) -> None:
    stats = old_index.stats()
    for key, value in EXPECTED["_stats"].items():
        if key not in PATH_KEYS:
            assert stats[key] == value, key
    assert stats["analyzer_current"] is True  # same tokenization: the keyword half is not rebuilt
    docs = old_index.documents()
    assert [d["doc_id"] for d in docs] == [d["doc_id"] for d in EXPECTED["_documents"]]
    for got, want in zip(docs, EXPECTED["_documents"]):
        assert {k: got[k] for k in want} == want  # every field the old release reported, unchanged


@pytest.mark.parametrize("question", sorted(CANDIDATES))
def test_premove_index_gives_the_same_candidates(old_index: Engine, question: str) -> None:
    want = CANDIDATES[question]
    query = analyse(question)
    assert [list(t) for t in query.terms] == want["terms"]
    gen = old_index._state()
    keyword = gen.reader.keyword_search_many([query.terms], 50)[0]
    assert [[h.pid, h.terms] for h in keyword] == [[pid, terms] for pid, _, terms in want["keyword"]]
    assert [h.score for h in keyword] == pytest.approx([s for _, s, _ in want["keyword"]], rel=1e-9)
    semantic = gen.reader.vector_search_many(old_index.encoder.encode_queries([query.text]), 50)[0]
    assert [p for p, _ in semantic] == [p for p, _ in want["semantic"]]
    assert [s for _, s in semantic] == pytest.approx([s for _, s in want["semantic"]], abs=1e-6)  # float32 sums
    hits = old_index.search(question, k=5, mode="hybrid")
    assert hits and {h["pid"] for h in hits} <= {p for p, _, _ in want["keyword"]} | {p for p, _ in want["semantic"]}
