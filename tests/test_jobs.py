"""Jobs and keyword-first writes (issue 12): searchable by keyword before the vectors exist, then embedded.

Real engine, real e5 model, a small corpus (the seed essay and the regulation fixture) built once; every test works
on a copy with the module's embedding cache, and adds only a few short passages. To look at the state between the
keyword commit and the vectors deterministically, a test holds the index's embed lock (as another process that is
embedding the backlog would), or its write lock (as a writer would).
"""
from __future__ import annotations

import re
import time
import shutil
from contextlib import contextmanager
from pathlib import Path

import filelock
import pytest

from conftest import make_corpus, with_seed_cache

pytestmark = pytest.mark.slow  # an engine with the real model in every test
from indexer import Config, Engine

NEW_DOC = "鸿雁驿站.txt"
NEW_TERM = "鸿雁驿站"
NEW_TEXT = """鸿雁驿站学习材料

一、鸿雁驿站的由来
鸿雁驿站是某社区党支部在党员活动室设立的学习角，用于存放学习资料、登记党员借阅情况。支部委员会每月检查一次学习角的使用情况，并在支部党员大会上通报。

二、星火夜校的安排
星火夜校每周三晚上开课，由支部书记和党员骨干轮流授课，内容包括党章党规、理论文章和业务知识。党员因故缺课的，应当向党小组组长说明情况并在下次课前补学。

三、学习积分制度
支部对党员参加鸿雁驿站借阅和星火夜校学习实行积分管理，积分结果作为民主评议党员的参考。积分记录由组织委员负责，每季度在党员大会上公开一次。
"""
OTHER_TEXT = "晨光讲堂\n\n党支部可以设立晨光讲堂，利用早间时间组织党员学习党的理论和方针政策，讲堂安排由支部委员会研究确定。"
_HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def base(tmp_path_factory, seed_cache) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("jobs")
    corpus = make_corpus(root / "corpus")
    with Engine.open(with_seed_cache(seed_cache, root / "index"), Config()) as eng:
        assert eng.index(corpus).passages_encoded == 0
    return root / "index", corpus


@pytest.fixture
def eng(base, tmp_path):
    """An engine on a private copy of the base index (same embedding cache: nothing of the base is re-encoded)."""
    index0, corpus0 = base
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus0, corpus)
    (tmp_path / "index").mkdir()
    shutil.copytree(index0 / "cache", tmp_path / "index" / "cache")
    engine = Engine.open(tmp_path / "index", Config())
    assert engine.index(corpus).passages_encoded == 0
    yield engine
    engine.close()


@contextmanager
def held(eng: Engine, name: str):
    """Hold one of the index's lock files the way another process would."""
    lock = filelock.FileLock(str(eng.root / name), is_singleton=False)
    lock.acquire(timeout=300)
    try:
        yield
    finally:
        lock.release()


def upload(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "upload" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def assert_consistent(eng: Engine) -> None:
    gen = eng._state()
    assert gen.keyword.count() == len(gen.passages)
    assert set(gen.vectors.ids()) == set(gen.passages) - gen.pending
    assert sum(d["passages"] for d in eng.documents()) == len(gen.passages)


def test_searchable_by_keyword_and_hybrid_before_the_vectors_then_embedded(eng, tmp_path):
    path = upload(tmp_path, "a.txt", NEW_TEXT)
    with held(eng, "embed.lock"):  # another process is encoding the backlog: this job's vectors must wait
        job = eng.jobs.submit_add([path], names={str(path): NEW_DOC})
        assert eng.jobs.wait(job.id, "keyword-ready", timeout=300).state in ("keyword-ready", "embedding")
        d = job.to_dict()
        assert d["files"][0]["name"] == NEW_DOC and d["files"][0]["doc_ids"] == [NEW_DOC]
        n_new = d["files"][0]["passages"]
        assert n_new >= 3 and d["passages_total"] == n_new and d["passages_embedded"] == 0
        assert d["summary"].startswith("新增 1 篇") and d["report"]["added"] == [NEW_DOC]
        assert eng.stats()["pending_vectors"] == n_new
        doc = next(x for x in eng.documents() if x["doc_id"] == NEW_DOC)
        assert doc["embedded"] == 0 and doc["state"] in ("keyword", "embedding")
        assert all(x["state"] == "done" for x in eng.documents() if x["doc_id"] != NEW_DOC)
        assert_consistent(eng)
        kw = eng.search(NEW_TERM, k=3, mode="keyword")
        assert kw[0]["doc_id"] == NEW_DOC
        hyb = eng.search(NEW_TERM, k=3, mode="hybrid")
        assert hyb[0]["doc_id"] == NEW_DOC and hyb[0]["semantic_rank"] is None
        # The missing semantic half does not count as 0: under plain convex fusion (a given semantic weight, which
        # leaves the learned head re-ranker and its rescaled scores out) the keyword half's best passage scores as
        # if both halves ranked it first.
        fused = eng.search(NEW_TERM, k=3, mode="hybrid", semantic_weight=0.5)
        assert fused[0]["doc_id"] == NEW_DOC and fused[0]["semantic_rank"] is None and fused[0]["score"] == 1.0
        assert all(h["doc_id"] != NEW_DOC for h in eng.search(NEW_TERM, k=5, mode="semantic"))
    done = eng.jobs.wait(job.id, "done", timeout=300).to_dict()
    assert done["state"] == "done" and done["passages_embedded"] == n_new and done["finished_at"]
    assert done["files"][0]["state"] == "done" and done["files"][0]["embedded"] == n_new
    assert eng.stats()["pending_vectors"] == 0
    assert_consistent(eng)
    gen = eng._state()
    assert gen.vectors.count() == len(gen.passages)
    assert next(x for x in eng.documents() if x["doc_id"] == NEW_DOC)["state"] == "done"
    assert eng.search("社区学习角的借阅登记", k=3, mode="semantic")[0]["doc_id"] == NEW_DOC
    assert (eng.corpus_dir / NEW_DOC).read_text("utf-8") == NEW_TEXT
    assert not (eng.root / "jobs" / job.id).exists(), "a finished job's spool is deleted"


def test_second_job_is_queued_and_a_bad_file_fails_alone(eng, tmp_path):
    good = upload(tmp_path, NEW_DOC, NEW_TEXT)
    bad = upload(tmp_path, "旧版.doc", "not a docx")
    empty = upload(tmp_path, "空白.txt", "   \n")
    other = upload(tmp_path, "晨光讲堂.txt", OTHER_TEXT)
    with held(eng, "write.lock"):  # a writer holds the index: the first job waits in its reading phase
        first = eng.jobs.submit_add([good, bad, empty])
        second = eng.jobs.submit_add([other])
        assert eng.jobs.wait(first.id, "reading", timeout=300).state == "reading"
        assert second.to_dict()["state"] == "queued" and second.to_dict()["queue_position"] == 1
        assert [j.id for j in eng.jobs.list(active_only=True)] == [second.id, first.id]
    a = eng.jobs.wait(first.id, "done", timeout=300).to_dict()
    b = eng.jobs.wait(second.id, "done", timeout=300).to_dict()
    assert a["state"] == b["state"] == "done"
    states = {f["name"]: f for f in a["files"]}
    assert states[NEW_DOC]["state"] == "done" and states[NEW_DOC]["embedded"] == states[NEW_DOC]["passages"] > 0
    for name in ("旧版.doc", "空白.txt"):
        reason = states[name]["reason"]
        assert states[name]["state"] == "failed" and " / " in reason, reason
        assert _HAN.search(reason.split(" / ")[0]) and re.search(r"[a-z]", reason.split(" / ", 1)[1]), reason
    assert states["旧版.doc"]["reason"].startswith("不支持的文件类型") and "文件为空" in states["空白.txt"]["reason"]
    assert a["summary"] == "新增 1 篇，更新 0 篇，删除 0 篇；2 个文件失败"
    assert {e["path"] for e in a["report"]["errors"]} == {"旧版.doc", "空白.txt"}
    assert b["files"][0]["state"] == "done" and b["summary"] == "新增 1 篇，更新 0 篇，删除 0 篇"
    ids = {d["doc_id"] for d in eng.documents()}
    assert {NEW_DOC, "晨光讲堂.txt"} <= ids and "旧版.doc" not in ids and "空白.txt" not in ids
    assert eng.search("晨光讲堂", k=1, mode="keyword")[0]["doc_id"] == "晨光讲堂.txt"
    assert_consistent(eng)
    # Finished jobs are kept: in memory, and in jobs.json for the next process.
    with Engine.open(eng.root, Config()) as again:
        kept = again.jobs.get(first.id)
        assert kept is not None and kept.to_dict()["summary"] == a["summary"]
        assert [f["state"] for f in kept.to_dict()["files"]] == [f["state"] for f in a["files"]]


def test_remove_as_a_job(eng, tmp_path):
    before = {d["doc_id"] for d in eng.documents()}
    job = eng.jobs.submit_remove(["支部工作条例示例.txt", "没有这篇.txt"])
    d = eng.jobs.wait(job.id, timeout=300).to_dict()
    assert d["kind"] == "remove" and d["state"] == "done"
    assert [(f["name"], f["state"]) for f in d["files"]] == [("支部工作条例示例.txt", "done"), ("没有这篇.txt", "failed")]
    assert _HAN.search(d["files"][1]["reason"].split(" / ")[0])
    assert {x["doc_id"] for x in eng.documents()} == before - {"支部工作条例示例.txt"}
    assert d["summary"] == "新增 0 篇，更新 0 篇，删除 1 篇；1 个文件失败"
    assert_consistent(eng)


def test_wait_false_leaves_pending_that_the_next_index_finishes(eng, tmp_path):
    """`partyqa add --no-wait`: keyword-ready at return; a later sync (or a server) encodes what is pending."""
    rep = eng.add([upload(tmp_path, NEW_DOC, NEW_TEXT)], wait=False)
    assert rep.added == [NEW_DOC] and rep.passages_pending > 0 and rep.passages_encoded == 0
    assert eng.stats()["pending_vectors"] == rep.passages_pending
    assert eng.search(NEW_TERM, k=1, mode="keyword")[0]["doc_id"] == NEW_DOC
    with Engine.open(eng.root, Config()) as other:  # another process resumes the backlog
        again = other.index(eng.corpus_dir)
        assert again.added == [] and again.passages_encoded == rep.passages_pending
        assert other.stats()["pending_vectors"] == 0
    assert eng.stats()["pending_vectors"] == 0
    assert_consistent(eng)


def test_removing_a_pending_document_drops_it_from_the_backlog(eng, tmp_path):
    eng.add([upload(tmp_path, NEW_DOC, NEW_TEXT)], wait=False)
    assert eng.stats()["pending_vectors"] > 0
    assert eng.remove([NEW_DOC]) == [NEW_DOC]
    assert eng.stats()["pending_vectors"] == 0
    assert_consistent(eng)
    assert eng.embed_pending() == 0



# ---------------------------------------------------------------------------- throughput: parallel tokenization
def test_parallel_tokenization_builds_the_same_keyword_index(tmp_path, seed_path):
    """Big batches are tokenized in worker processes; every term's postings, the field lengths, the stored fields
    and the search results must equal a one-process build (seed essay + real regulations)."""
    from conftest import require_party_docs
    from indexer.ingest import files as ingest
    from indexer.backends.local.keyword import WhooshKeywordIndex
    from indexer.backends.local.tokenize_pool import PARALLEL_MIN_PASSAGES
    from indexer.ingest.prepare import prepare

    passages = []
    files = [seed_path] + sorted((require_party_docs() / "xtjeyvc-8gui").glob("*.md"))[:12]
    for f in files:
        for raw in ingest.load_file_checked(f, doc_id=f.name)[0]:
            passages.extend(prepare(raw)[1])
    assert len(passages) > PARALLEL_MIN_PASSAGES
    built = {}
    for parallel in (False, True):
        kw = WhooshKeywordIndex.create(tmp_path / f"kw-{parallel}")
        kw.add(passages[:40], parallel=False)  # an existing segment, then an update batch (update_document path)
        kw.add(passages[20:], parallel=parallel)
        built[parallel] = kw
    one, many = built[False]._ix.reader(), built[True]._ix.reader()
    assert one.doc_count() == many.doc_count() == len(passages)
    for field in ("text", "section", "title"):
        terms = list(one.lexicon(field))
        assert terms and terms == list(many.lexicon(field))
        assert one.field_length(field) == many.field_length(field)
        for term in terms[::7]:
            a, b = one.postings(field, term), many.postings(field, term)
            assert list(a.items_as("positions" if field == "text" else "frequency")) == \
                list(b.items_as("positions" if field == "text" else "frequency")), (field, term)
    assert [one.doc_field_length(d, "text") for d in one.all_doc_ids()] == \
        [many.doc_field_length(d, "text") for d in many.all_doc_ids()]
    assert list(one.all_stored_fields()) == list(many.all_stored_fields())
    for question in ("党支部委员会的职责", "发展党员的程序", "纪律处分的种类", "支部书记"):
        assert built[False].search(question, 20) == built[True].search(question, 20)
    for kw in built.values():
        kw.close()


def test_document_removed_while_embedding_stops_its_encoding_and_its_job_says_so(eng, tmp_path, monkeypatch):
    """Issue 25: a document deleted while the backlog encodes it. The background embedder pauses after the first
    batch of its passages (PARTYQA_PAUSE_AT=embedding), the document is removed, and the embedder is let go: not one
    more batch of it is encoded, and its job says it was removed, not "完成 · 已添加"."""
    from indexer import fsutil
    from webui.jobs import public_job

    src = Path(__file__).resolve().parents[1] / "corpus" / "中国共产党问责条例.md"  # 18 passages
    path = upload(tmp_path, src.name, src.read_text("utf-8"))
    eng.config.encode_batch = 4  # several batches of this document
    batches: list[list[str]] = []
    real_encoded = eng.backlog.encoded

    def encoded(pids, n):
        batches.append(list(pids))
        real_encoded(pids, n)

    monkeypatch.setattr(eng.backlog, "encoded", encoded)
    monkeypatch.setattr(fsutil, "_PAUSED", set())
    monkeypatch.setenv("PARTYQA_PAUSE_AT", "embedding")
    marker = eng.root / ".paused-embedding"
    job = eng.jobs.submit_add([path])
    eng.jobs.wait(job.id, "keyword-ready", timeout=300)
    n_total = job.to_dict()["passages_total"]
    assert n_total >= 12, "the document must span at least three batches"
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert time.monotonic() < deadline, "the background embedder never reached its first batch"
        time.sleep(0.05)
    monkeypatch.delenv("PARTYQA_PAUSE_AT")
    assert [len(b) for b in batches] == [4] and all(pid.startswith(src.name + "#") for pid in batches[0])
    assert eng.jobs.wait(eng.jobs.submit_remove([src.name]).id, "done", timeout=300).state == "done"
    marker.unlink()  # the embedder goes on from its first batch
    d = eng.jobs.wait(job.id, "done", timeout=300).to_dict()
    deadline = time.monotonic() + 300
    while eng.backlog.active:  # the embedder's run ends (idle) once nothing is pending
        assert time.monotonic() < deadline, "the background embedder's run did not end (idle) within 300 s"
        time.sleep(0.05)
    assert len(batches) == 1, f"{sum(map(len, batches[1:]))} more passages of the removed document were encoded"
    assert d["state"] == "done" and d["files"][0]["state"] == "removed"
    zh, en = d["files"][0]["reason"].split(" / ", 1)
    assert zh.startswith("已删除（语义索引已停止）") and "not encoded" in en
    assert "已删除 1 个文件（语义索引已停止）" in d["summary"] and d["passages_total"] == 0
    assert public_job(d)["files"][0]["status"] == "removed"
    assert src.name not in eng.doc_ids() and eng.stats()["pending_vectors"] == 0
    assert_consistent(eng)
    # the finished record (jobs.json) keeps what happened
    with Engine.open(eng.root, Config()) as again:
        assert again.jobs.get(job.id).to_dict()["files"][0]["state"] == "removed"
