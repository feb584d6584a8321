"""One conformance suite for every storage backend (indexer/backends): local (whoosh + numpy) and Milvus Lite.

Same small corpus (the seed essay and the regulation fixture), same questions, same ids; keyword results must be
identical across backends, hybrid quality within one question; add / update / remove / reopen, bad input, the doc
filter, and a writer killed before its commit. The HashEncoder stand-in (bench/common.py) replaces the model: the
dense half is then arbitrary but the same for both backends, which is what a conformance test needs.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, SEED, make_corpus
from indexer import Config, Engine, PartyQAError, QueryError
from indexer.types import ModelError

REG_DOC = "支部工作条例示例.txt"
SEED_DOC = SEED.name

try:  # the Milvus half of the suite needs pymilvus and milvus-lite (both in the `test` extra)
    import milvus_lite  # noqa: F401
    import pymilvus  # noqa: F401

    MILVUS_SKIP = ""
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    MILVUS_SKIP = f"milvus-lite / pymilvus not importable ({exc}): pip install -e '.[test]' to run the Milvus backend tests"

BACKENDS = ["local", pytest.param("milvus", marks=pytest.mark.skipif(bool(MILVUS_SKIP), reason=MILVUS_SKIP or "-"))]

# Paraphrased questions (not the regulation's wording) and a phrase of the passage or section that answers them.
QUESTIONS = [
    ("几个正式党员就要成立支部？", "有正式党员3人以上的，应当成立党支部"),
    ("支部委员会多长时间开一次会", "一般每月召开1次会议"),
    ("党员大会多久召开一次", "一般每季度召开1次"),
    ("组织生活会每年开几次", "每年至少召开1次组织生活会"),
    ("支委会一届干几年", "每届任期一般为3年"),
    ("单位里党员不到三个人怎么建支部", "成立联合党支部"),
    ("主题党日多久搞一次", "每月相对固定1天开展主题党日"),
    ("支部成员之间谈心一年至少几回", "每年谈心谈话一般不少于1次"),
    ("基层支部怎么当好监督者", "做好监督者"),
    ("支部怎样为职工群众办实事", "做好服务者"),
]

NEW_DOC = "鸿雁驿站.txt"
NEW_TEXT = ("鸿雁驿站学习材料\n\n一、鸿雁驿站的由来\n鸿雁驿站是某社区党支部在党员活动室设立的学习角，用于存放学习资料、"
            "登记党员借阅情况。支部委员会每月检查一次学习角的使用情况。\n\n二、星火夜校\n星火夜校每周三晚上开课，由支部书记和"
            "党员骨干轮流授课，内容包括党章党规和业务知识。\n")
NEW_TEXT_V2 = ("鸿雁驿站学习材料（修订）\n\n一、晨光讲堂\n晨光讲堂每月第一个周六上午开讲，由退休老党员讲述入党经历，"
               "青年党员分享学习体会。\n")


@pytest.fixture(autouse=True, scope="module")
def _stand_in_encoder():
    """The HashEncoder instead of the model (no load time, no encoding cost) for every engine of this module."""
    import indexer.engine
    from bench.common import HashEncoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(indexer.engine, "load_encoder", lambda cfg: HashEncoder())
        yield


def _config(backend: str, **kw) -> Config:
    return Config(backend=backend, lock_timeout=5, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The seed essay and the regulation fixture."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def engines(corpus, tmp_path_factory):
    """One engine per available backend over the same corpus, built once for the read-only tests."""
    out = {}
    names = ["local"] + ([] if MILVUS_SKIP else ["milvus"])
    for name in names:
        eng = Engine.open(tmp_path_factory.mktemp(f"index-{name}"), _config(name))
        report = eng.index(corpus)
        assert sorted(report.added) == sorted([SEED_DOC, REG_DOC]) and not report.errors
        out[name] = eng
    yield out
    for eng in out.values():
        eng.close()


def _found(hit: dict, gold: str) -> bool:
    return gold in hit["text"] or gold in (hit["section"] or "")


def _hits_at(eng: Engine, mode: str, k: int = 5) -> int:
    results = eng.search_many([q for q, _ in QUESTIONS], k=k, mode=mode)
    return sum(any(_found(h, gold) for h in hits) for (_, gold), hits in zip(QUESTIONS, results))


# ----------------------------------------------------------------------------------------------- read-only


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_documents_passages_and_ids(engines, backend):
    eng, ref = engines[backend], engines["local"]
    assert eng.stats()["backend"] == backend
    assert [d["doc_id"] for d in eng.documents()] == [d["doc_id"] for d in ref.documents()] == sorted([REG_DOC, SEED_DOC])
    gen, ref_gen = eng._state(), ref._state()
    assert set(gen.passages) == set(ref_gen.passages) and len(gen.passages) > 20
    assert gen.reader.keyword_count() == gen.reader.vector_count() == len(gen.passages)
    assert eng.document(REG_DOC)["passages"] == ref.document(REG_DOC)["passages"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_keyword_results_identical_to_local(engines, backend):
    """Same pids in the same order, same matched terms, same scores (Milvus holds float32) as the local backend."""
    questions = [q for q, _ in QUESTIONS] + ["支委会一般多久开一次会？", "黨支部委員會", "三会一课是什么"]
    ours = engines[backend].search_many(questions, k=10, mode="keyword")
    local = engines["local"].search_many(questions, k=10, mode="keyword")
    for q, a, b in zip(questions, ours, local):
        assert [h["pid"] for h in a] == [h["pid"] for h in b], q
        assert [h["terms"] for h in a] == [h["terms"] for h in b], q
        assert [h["score"] for h in a] == pytest.approx([h["score"] for h in b], rel=1e-4), q
    assert sum(len(a) == 10 for a in ours) >= len(questions) // 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_quality_within_one_question_of_local(engines, backend):
    eng, ref = engines[backend], engines["local"]
    assert _hits_at(ref, "keyword") >= 7  # the paraphrases are answerable: a floor that a broken analyzer fails
    for mode in ("keyword", "hybrid"):
        assert abs(_hits_at(eng, mode) - _hits_at(ref, mode)) <= 1, mode
    semantic = eng.search_many([q for q, _ in QUESTIONS], k=10, mode="semantic")
    ref_semantic = ref.search_many([q for q, _ in QUESTIONS], k=10, mode="semantic")
    assert [[h["pid"] for h in r] for r in semantic] == [[h["pid"] for h in r] for r in ref_semantic]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_doc_filter_is_pushed_down_and_fills_k(engines, backend, mode):
    """A filter to one document still returns k hits (they are searched inside it, not cut from a global list)."""
    eng = engines[backend]
    n_reg = len(eng.document(REG_DOC)["passages"])
    hits = eng.search("党支部委员会", k=n_reg, mode=mode, docs=[REG_DOC])
    assert len(hits) == n_reg and {h["doc_id"] for h in hits} == {REG_DOC}
    # a question about the essay, restricted to the regulation, still answers from the regulation only
    question = "做好协调者 上传下达 党支部书记"
    hits = eng.search(question, k=5, mode=mode, docs=[REG_DOC])
    assert len(hits) == 5 and {h["doc_id"] for h in hits} == {REG_DOC}
    # the keyword half: the order inside the document is the order of the unfiltered search (the semantic half
    # re-scores its first candidates by their best sentence, and a filter changes which those are)
    if mode == "keyword":
        deep = [h["pid"] for h in eng.search(question, k=100, mode=mode) if h["doc_id"] == REG_DOC]
        assert [h["pid"] for h in hits] == deep[:5]
    with pytest.raises(QueryError, match="未找到文档"):
        eng.search("党支部", k=5, mode=mode, docs=["没有这个文档.txt"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_is_refused_in_chinese_first(engines, backend):
    eng = engines[backend]
    for question, k, mode in [("", 5, "hybrid"), ("？！……", 5, "hybrid"), ("党" * 501, 5, "hybrid"),
                              ("党支部", 0, "hybrid"), ("党支部", 101, "keyword"), ("党支部", 5, "fuzzy"),
                              (None, 5, "hybrid")]:
        with pytest.raises(QueryError) as err:
            eng.search(question, k=k, mode=mode)  # type: ignore[arg-type]
        assert "\u4e00" <= str(err.value)[0] <= "\u9fff", str(err.value)


def test_local_keyword_search_from_terms_equals_whoosh_search(engines):
    """The local backend searches already analysed terms exactly as WhooshKeywordIndex.search analyses text."""
    from indexer.search.query import analyse

    kw = engines["local"]._state().keyword
    for q, _ in QUESTIONS:
        query = analyse(q)
        assert kw.search_terms(query.terms, 50) == kw.search(query.expanded, 50)


def test_split_does_not_import_whoosh_or_the_engine():
    code = ("import sys; from indexer import cli; cli.main(['split', sys.argv[1], '--json']); "
            "bad = [m for m in sys.modules if m.startswith(('whoosh', 'indexer.engine', 'indexer.backends'))]; "
            "sys.stderr.write(repr(bad)); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code, str(SEED)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert '"pid"' in proc.stdout


# ----------------------------------------------------------------------------------------------- writes


def _unique_hits(eng: Engine, phrase: str) -> list[str]:
    return [h["doc_id"] for h in eng.search(phrase, k=5, mode="keyword") if phrase in h["text"]]


def test_add_update_remove_reopen_agree_across_backends(tmp_path):
    """The same sequence of writes on each backend: the same documents and answers, also after reopening.

    After updates the keyword scores drift apart slightly (whoosh counts deleted passages in its statistics until
    segments merge; the Milvus backend keeps each field's average length from the first write), so near-ties may
    swap: the test asks for the same best hit and nearly the same top 8, not the same order.
    """
    backends = ["local"] + ([] if MILVUS_SKIP else ["milvus"])
    probes = ["晨光讲堂 老党员", "支部委员会 开会"] + [q for q, _ in QUESTIONS[:8]]
    seen: dict[str, list] = {}
    for name in backends:
        corpus = tmp_path / f"corpus-{name}"
        corpus.mkdir()
        shutil.copy(ROOT / "tests" / "fixtures" / "regulation_sample.txt", corpus / REG_DOC)
        new = tmp_path / f"in-{name}" / NEW_DOC
        new.parent.mkdir()
        index = tmp_path / f"index-{name}"
        eng = Engine.open(index, _config(name))
        try:
            assert eng.index(corpus).added == [REG_DOC]
            new.write_text(NEW_TEXT, "utf-8")
            assert eng.add([new]).added == [NEW_DOC]
            assert _unique_hits(eng, "鸿雁驿站") == [NEW_DOC]
            new.write_text(NEW_TEXT_V2, "utf-8")
            assert eng.add([new]).updated == [NEW_DOC]
            assert _unique_hits(eng, "鸿雁驿站") == [] and _unique_hits(eng, "晨光讲堂") == [NEW_DOC]
            assert eng.add([new]).unchanged == [NEW_DOC]  # identical re-add: no write
            gen = eng._state()
            assert gen.reader.keyword_count() == gen.reader.vector_count() == len(gen.passages)
            after_update = [[h["pid"] for h in r] for r in eng.search_many(probes, k=8, mode="keyword")]
        finally:
            eng.close()
        eng = Engine.open(index, _config(name))  # reopen (Milvus: load_collection again)
        try:
            assert [[h["pid"] for h in r] for r in eng.search_many(probes, k=8, mode="keyword")] == after_update
            assert eng.remove([NEW_DOC, "不存在.txt"]) == [NEW_DOC]
            assert _unique_hits(eng, "晨光讲堂") == [] and [d["doc_id"] for d in eng.documents()] == [REG_DOC]
            gen = eng._state()
            assert gen.reader.keyword_count() == gen.reader.vector_count() == len(gen.passages)
            after_remove = [[h["pid"] for h in r] for r in eng.search_many(probes, k=8, mode="keyword")]
            seen[name] = after_update + after_remove
        finally:
            eng.close()
    for name, lists in seen.items():
        for ours, local in zip(lists, seen["local"]):
            assert ours[:1] == local[:1], name
            assert len(set(ours) & set(local)) >= len(local) - 2, name


def test_backend_mismatch_is_refused(tmp_path, corpus):
    if MILVUS_SKIP:
        pytest.skip(MILVUS_SKIP)
    eng = Engine.open(tmp_path / "index", _config("local"))
    eng.close()
    with pytest.raises(PartyQAError, match="PARTYQA_BACKEND=local"):
        Engine.open(tmp_path / "index", _config("milvus"))
    with pytest.raises(PartyQAError, match="未知的存储后端"):
        Engine.open(tmp_path / "other", _config("elastic"))


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import indexer.engine
    from bench.common import HashEncoder
    indexer.engine.load_encoder = lambda cfg: HashEncoder()
    from indexer import Config, Engine
    from indexer.types import PartyQAError
    try:
        eng = Engine.open(sys.argv[1], Config(backend="milvus", lock_timeout=5))
    except PartyQAError as exc:
        print("ERROR", exc)
        sys.exit(3)
    if len(sys.argv) > 2:
        eng.add(sys.argv[2:])
    print("DONE")
""")


@pytest.mark.skipif(bool(MILVUS_SKIP), reason=MILVUS_SKIP or "-")
def test_milvus_killed_writer_leaves_no_half_visible_document(tmp_path, corpus):
    """SIGKILL a Milvus writer after its rows are inserted and flushed but before CURRENT switches: the document
    must not be visible, counts must agree; the next writer deletes the orphan rows and succeeds. A second process
    opening the same Milvus Lite file meanwhile gets a clear message, Chinese first."""
    index = tmp_path / "index"
    eng = Engine.open(index, _config("milvus"))
    eng.index(corpus)
    before = [[h["pid"] for h in r] for r in eng.search_many([q for q, _ in QUESTIONS], k=5, mode="hybrid")]
    n_before = len(eng._state().passages)

    # While this process holds the Lite file, another process cannot open it.
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)), "utf-8")
    proc = subprocess.run([sys.executable, str(script), str(index)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 3 and "ERROR Milvus Lite 数据目录" in proc.stdout and "another process" in proc.stdout
    eng.close()  # releases the Lite file for the writer below

    new = tmp_path / NEW_DOC
    new.write_text(NEW_TEXT, "utf-8")
    env = {**os.environ, "PARTYQA_PAUSE_AT": "before_switch", "PARTYQA_PAUSE_SECONDS": "120"}
    writer = subprocess.Popen([sys.executable, str(script), str(index), str(new)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marker = index / ".paused-before_switch"
    deadline = time.monotonic() + 150
    while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), writer.stderr.read().decode()[-2000:] if writer.poll() is not None else "no pause"
    writer.send_signal(signal.SIGKILL)
    writer.wait(120)
    marker.unlink()

    eng = Engine.open(index, _config("milvus"))
    try:
        gen = eng._state()
        assert NEW_DOC not in {d["doc_id"] for d in eng.documents()}
        assert len(gen.passages) == n_before == gen.reader.keyword_count() == gen.reader.vector_count()
        assert _unique_hits(eng, "鸿雁驿站") == [] and not any(
            h["doc_id"] == NEW_DOC for h in eng.search("鸿雁驿站 星火夜校", k=20, mode="hybrid"))
        assert [[h["pid"] for h in r] for r in eng.search_many([q for q, _ in QUESTIONS], k=5, mode="hybrid")] == before
        collection = gen.reader.collection
        orphans = eng.backend.client.query(collection, filter=f"gen > {gen.number}", output_fields=["count(*)"])
        assert orphans[0]["count(*)"] > 0  # the killed writer's rows are there, but invisible

        assert eng.add([new]).added == [NEW_DOC]  # the next writer cleans up and commits
        gen = eng._state()
        assert _unique_hits(eng, "鸿雁驿站") == [NEW_DOC]
        total = eng.backend.client.query(collection, filter="gen >= 0", output_fields=["count(*)"])
        assert total[0]["count(*)"] == len(gen.passages) == gen.reader.keyword_count()
    finally:
        eng.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_change_and_analyzer_change_rewrite_both_halves(tmp_path, corpus, backend, monkeypatch):
    """A new model re-embeds every passage (Milvus: into a new collection, the old one dropped); a changed stopword
    list re-tokenizes the keyword half and keeps the vectors. Both backends then still agree with a fresh build."""
    import indexer.engine
    from bench.common import HashEncoder
    from indexer.text import analyzer

    class Wider(HashEncoder):
        model_id, dim = "hash-wider", 96

    eng = Engine.open(tmp_path / "index", _config(backend))
    eng.index(corpus)
    n = len(eng._state().passages)
    eng.close()

    monkeypatch.setattr(indexer.engine, "load_encoder", lambda cfg: Wider())
    eng = Engine.open(tmp_path / "index", _config(backend))
    try:
        before = eng._state()
        # A search never writes: it answers keyword first (the other model's vectors are not used) ...
        assert eng.search("党支部委员会", k=3, mode="hybrid")
        with pytest.raises(ModelError):
            eng.search("党支部委员会", k=3, mode="semantic")
        assert eng._state().number == before.number and eng._state().manifest["model_id"] != "hash-wider"
        eng.embed_pending()  # ... and the backlog re-embeds every passage with the configured model
        gen = eng._state()
        assert gen.manifest["model_id"] == "hash-wider" and gen.reader.model_id == "hash-wider"
        assert gen.reader.vector_count() == n
        if backend == "milvus":
            assert eng.backend.client.list_collections() == [gen.reader.collection]
        semantic = [h["pid"] for h in eng.search("党支部委员会", k=5, mode="semantic")]
    finally:
        eng.close()

    stop_file = tmp_path / "stopwords.txt"
    stop_file.write_text(analyzer.STOPWORDS_PATH.read_text("utf-8") + "\n监督\n监督者\n", encoding="utf-8")
    monkeypatch.setattr(analyzer, "STOPWORDS_PATH", stop_file)
    for cached in (analyzer.stopwords, analyzer._analyzer, analyzer.analyzer_fingerprint):
        cached.cache_clear()
    try:
        eng = Engine.open(tmp_path / "index", _config(backend))
        try:
            report = eng.index(corpus)
            assert report.passages_retokenized == n and report.passages_encoded == 0
            gen = eng._state()
            assert gen.reader.keyword_count() == gen.reader.vector_count() == n
            after = eng.search("基层党支部如何做好监督者", k=5, mode="keyword")
            assert after and not {"监督", "监督者"} & {t for h in after for t in h["terms"]}
            assert [h["pid"] for h in eng.search("党支部委员会", k=5, mode="semantic")] == semantic  # vectors kept
            fresh = Engine.open(tmp_path / "fresh", _config(backend))
            try:
                fresh.index(corpus)
                assert [h["pid"] for h in fresh.search("基层党支部如何做好监督者", k=5, mode="keyword")] == \
                    [h["pid"] for h in after]
            finally:
                fresh.close()
        finally:
            eng.close()
    finally:
        for cached in (analyzer.stopwords, analyzer._analyzer, analyzer.analyzer_fingerprint):
            cached.cache_clear()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_corrected_title_is_written_into_the_keyword_half(tmp_path, backend):
    """A title correction (issue 23 item 4) rewrites that document's keyword entries under the new title, in both
    backends, and keeps every vector; its revert takes them back to the file's title."""
    eng = Engine.open(tmp_path / "index", _config(backend))
    try:
        eng.index(make_corpus(tmp_path / "corpus"))  # the module's corpus gains 鸿雁驿站.txt in another test
        n = len(eng._state().passages)
        semantic = [h["pid"] for h in eng.search("党支部委员会", k=5, mode="semantic")]
        assert not eng.search("鸿雁驿站", k=5, mode="keyword")  # in no text, section or title
        eng.set_metadata(SEED_DOC, title="鸿雁驿站支部工作随笔")
        hits = eng.search("鸿雁驿站", k=5, mode="keyword")
        assert len(hits) == 5 and {h["doc_id"] for h in hits} == {SEED_DOC}
        assert {h["title"] for h in hits} == {"鸿雁驿站支部工作随笔"}
        gen = eng._state()
        assert gen.reader.keyword_count() == gen.reader.vector_count() == n
        assert [h["pid"] for h in eng.search("党支部委员会", k=5, mode="semantic")] == semantic  # vectors kept
        eng.set_metadata(SEED_DOC, title=None)
        assert not eng.search("鸿雁驿站", k=5, mode="keyword")
        assert eng._state().reader.keyword_count() == n
    finally:
        eng.close()


def _title_stats(eng: Engine) -> tuple[int, dict[tuple[str, str], int]]:
    """The Milvus BM25F statistics of the generation in use: passages, and each (field, term)'s document count."""
    model = eng._state().reader.model
    return model.n, {name: df for name, df in zip(model.names, model.df) if df > 0}


def _differ(got: dict, want: dict) -> dict:
    """The (field, term)s whose document counts differ: (got, want)."""
    return {t: (got.get(t), want.get(t)) for t in set(got) | set(want) if got.get(t) != want.get(t)}


@pytest.mark.skipif(bool(MILVUS_SKIP), reason=MILVUS_SKIP or "-")
def test_milvus_statistics_of_a_corrected_document_equal_a_fresh_build(tmp_path):
    """Rewriting a document whose title a person corrected (its file changed; a second correction) takes the
    corrected title's words out of the BM25F statistics, as they were counted, not the file's: the statistics then
    equal those of a fresh build of the same files with the same correction."""
    corpus = make_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    eng = Engine.open(index, _config("milvus"))
    try:
        eng.index(corpus)
        eng.set_metadata(REG_DOC, title="中国共产党支部工作条例（试行）")
        with open(corpus / REG_DOC, "a", encoding="utf-8") as fh:  # the file changes: its passages are rewritten
            fh.write("\n第十九条　本条例自发布之日起施行，由中央组织部负责解释。\n")
        report = eng.index(corpus)
        assert report.updated == [REG_DOC], report
        after_rewrite = _title_stats(eng)
        assert ("title", "中国共产党") in after_rewrite[1]
        eng.set_metadata(REG_DOC, title="基层党组织支部建设规定")  # corrected again: A -> B
        after_second = _title_stats(eng)
    finally:
        eng.close()
    eng, _ = Engine.rebuild(index, corpus, _config("milvus"))  # keeps the correction (B)
    try:
        assert eng.metadata(REG_DOC)["title"] == "基层党组织支部建设规定"
        fresh = _title_stats(eng)
        assert after_second == fresh, _differ(after_second[1], fresh[1])
    finally:
        eng.close()
    (index / "CURRENT").unlink()  # a fresh build of the same files with correction A
    eng, _ = Engine.rebuild(index, corpus, _config("milvus"))
    try:
        eng.set_metadata(REG_DOC, title="中国共产党支部工作条例（试行）")
        eng.close()
        eng, _ = Engine.rebuild(index, corpus, _config("milvus"))
        fresh = _title_stats(eng)
        assert after_rewrite == fresh, _differ(after_rewrite[1], fresh[1])
    finally:
        eng.close()


@pytest.mark.slow
@pytest.mark.skipif(bool(MILVUS_SKIP), reason=MILVUS_SKIP or "-")
def test_real_model_quality_within_one_question(tmp_path, monkeypatch, seed_cache):
    """With the bundled e5 model (~40 passages: their vectors come from the run's seed cache, which both indexes
    share; the questions are encoded here), every mode answers the paraphrased questions on Milvus within one
    question of the local backend."""
    import os

    import indexer.embed.encoders
    import indexer.engine

    monkeypatch.setattr(indexer.engine, "load_encoder", indexer.embed.encoders.load_encoder)
    corpus = make_corpus(tmp_path / "corpus")  # its own: the module's corpus gains files in the write tests above
    cache = tmp_path / "cache"
    shutil.copytree(seed_cache, cache)
    engines = {}
    try:
        for name in ("local", "milvus"):
            index = tmp_path / f"index-{name}"
            index.mkdir()
            os.symlink(cache, index / "cache")
            engines[name] = Engine.open(index, _config(name))
            report = engines[name].index(corpus)
            assert not report.errors and report.passages_encoded == 0, report.to_dict()  # all from the seed cache
        hits = {(name, mode): _hits_at(eng, mode) for name, eng in engines.items()
                for mode in ("keyword", "semantic", "hybrid")}
        print("answered in top 5 of", len(QUESTIONS), hits)
        assert hits[("local", "hybrid")] >= 7
        for mode in ("keyword", "semantic", "hybrid"):
            assert abs(hits[("milvus", mode)] - hits[("local", mode)]) <= 1, hits
    finally:
        for eng in engines.values():
            eng.close()
