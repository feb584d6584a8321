"""Interrupted and concurrent writes (issue #6), with real `partyqa` subprocesses and real SIGKILLs.

Every write is killed at each of the engine's checkpoints (``PARTYQA_PAUSE_AT``: read, keyword, embedding,
before_switch, after_switch) and at arbitrary moments; afterwards the index must open, show the previous consistent
state (or the new one, once CURRENT has been switched), and re-running the same command must complete the work
without waiting for any lock (the re-runs use ``PARTYQA_LOCK_TIMEOUT=0``: a stale lock would fail them at once).
Also: two concurrent ``add`` commands, stale whoosh locks, and damaged index files with ``index --rebuild``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_corpus, with_seed_cache
from indexer import Config, Engine
from indexer.ingest.files import iter_corpus_files

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "partyqa"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "indexer.cli"]
MARKER_WAIT = 120.0  # seconds a test waits for a writer to reach its pause point

SEED_DOC = "基层党支部工作论文.txt"
REG_DOC = "支部工作条例示例.txt"
NEW_DOC = "00-鸿雁驿站学习材料.txt"  # sorts first, so the `embedding` pause lands after its passages are cached
NEW_TERM = "鸿雁驿站"
REG_TERM = "晨光讲堂"
QUERIES = ["基层党支部做好监督者", "支部委员会由党员大会选举产生", "党员教育管理"]

NEW_TEXT = """鸿雁驿站学习材料

一、鸿雁驿站的由来
鸿雁驿站是某社区党支部在党员活动室设立的学习角，用于存放学习资料、登记党员借阅情况。支部委员会每月检查一次学习角的使用情况，并在支部党员大会上通报，推动党员养成经常学习的习惯。

二、星火夜校的安排
星火夜校每周三晚上开课，由支部书记和党员骨干轮流授课，内容包括党章党规、理论文章和业务知识。夜校课程安排提前一周公布，党员因故缺课的，应当向党小组组长说明情况并在下次课前补学。

三、学习积分制度
支部对党员参加鸿雁驿站借阅和星火夜校学习实行积分管理，积分结果作为民主评议党员的参考。积分记录由组织委员负责，每季度在党员大会上公开一次，接受党员监督。

四、流动党员的学习
对外出务工的流动党员，支部通过微信群推送学习材料，并请其在返乡期间到鸿雁驿站补充学习。流动党员的学习情况由联系支委负责了解，年底纳入积分统计。

五、经费和保障
学习角所需图书资料由支部从党费中列支，使用情况向党员公开。社区党委对学习角建设给予指导，定期组织各支部交流经验，推广好的做法。

六、检查和改进
每年年底，支部委员会对鸿雁驿站和星火夜校的运行情况进行总结，听取党员和群众意见，对存在的问题提出改进措施，并报上级党组织备案。
"""

REG_APPENDIX = """

第五十条 党支部可以设立晨光讲堂，利用早间时间组织党员学习党的理论和方针政策，晨光讲堂的安排由支部委员会研究确定。
"""


# ---------------------------------------------------------------------------- helpers
def _env(**extra: str) -> dict[str, str]:
    """The environment of a `partyqa` subprocess: offline, no inherited PARTYQA_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYQA_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    env.update(extra)
    return env


def run(index: Path, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
    """Run `partyqa --index-dir INDEX -q ARGS` to completion."""
    return subprocess.run([*CMD, "--index-dir", str(index), "-q", *args], capture_output=True, text=True,
                          env=_env(**extra), timeout=timeout)


def start(index: Path, log: Path, *args: str, **extra: str) -> subprocess.Popen:
    """Start `partyqa --index-dir INDEX -q ARGS` in the background (stdout to ``log``, stderr to ``log``.err)."""
    with open(log, "w", encoding="utf-8") as out, open(_err(log), "w", encoding="utf-8") as err:
        return subprocess.Popen([*CMD, "--index-dir", str(index), "-q", *args], stdout=out, stderr=err, text=True,
                                env=_env(**extra))


def _err(log: Path) -> Path:
    return log.with_name(log.name + ".err")


def output(log: Path) -> str:
    """A background command's stdout and stderr, for failure messages."""
    return log.read_text("utf-8") + _err(log).read_text("utf-8")


def last_json(log: Path) -> dict:
    """The JSON report a background `--json` command printed last."""
    return json.loads(log.read_text("utf-8").strip().splitlines()[-1])


def wait_paused(index: Path, point: str, proc: subprocess.Popen, log: Path) -> None:
    """Wait (bounded) until the writer ``proc`` has reached pause point ``point``."""
    marker = index / f".paused-{point}"
    deadline = time.monotonic() + MARKER_WAIT
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text("utf-8").strip() == str(proc.pid):
            return
        if proc.poll() is not None:
            pytest.fail(f"writer exited ({proc.returncode}) before pausing at {point}:\n{output(log)}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"writer did not reach {point} within {MARKER_WAIT:.0f}s:\n{output(log)}")


def sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL a writer and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL


def kill_at(index: Path, point: str, log: Path, *args: str) -> None:
    """Run a `partyqa` write command, let it reach ``point`` and SIGKILL it there."""
    for old in index.glob(".paused-*"):
        old.unlink()
    proc = start(index, log, *args, PARTYQA_PAUSE_AT=point, PARTYQA_PAUSE_SECONDS="300")
    try:
        wait_paused(index, point, proc, log)
    finally:
        if proc.poll() is None:
            sigkill(proc)
    (index / f".paused-{point}").unlink()


def release(index: Path, point: str, proc: subprocess.Popen) -> None:
    """Let a writer paused at ``point`` go on (the checkpoint waits while its marker exists)."""
    assert proc.poll() is None, f"the writer paused at {point} had already exited ({proc.returncode})"
    (index / f".paused-{point}").unlink()


def snapshot(index: Path) -> dict:
    """What a user sees of an index: its documents and the full hits of a few searches in each mode."""
    with Engine.open(index, Config()) as eng:
        assert_consistent(eng)
        return {
            "documents": eng.documents(),
            "keyword": [eng.search(q, k=5, mode="keyword") for q in QUERIES],
            "hybrid": [eng.search(q, k=5, mode="hybrid") for q in QUERIES],
            "generation": eng.stats()["generation"],
        }


def assert_consistent(eng: Engine) -> None:
    """Keyword entries, vectors, passages and the document list agree (passages pending vectors have none yet)."""
    gen = eng._state()
    assert gen.keyword.count() == len(gen.passages)
    assert gen.pending <= set(gen.passages)
    assert gen.vectors.count() == len(gen.passages) - len(gen.pending)
    assert set(gen.vectors.ids()) == set(gen.passages) - gen.pending
    assert sum(d["passages"] for d in eng.documents()) == len(gen.passages)
    assert {p.doc_id for p in gen.passages.values()} == {d["doc_id"] for d in eng.documents()}


def doc_ids(index: Path) -> set[str]:
    with Engine.open(index, Config()) as eng:
        return {d["doc_id"] for d in eng.documents()}


def finds(index: Path, term: str) -> list[str]:
    """Doc ids of the keyword hits for ``term``."""
    with Engine.open(index, Config()) as eng:
        return [h["doc_id"] for h in eng.search(term, k=5, mode="keyword")]


def pending(index: Path) -> int:
    """Passages searchable by keyword that still wait for their vectors."""
    with Engine.open(index, Config()) as eng:
        return eng.stats()["pending_vectors"]


def cache_keys(index: Path) -> list[str]:
    """Every key of the embedding cache: passage content hashes and (issue 22) sentence-window keys."""
    return [k for f in sorted((index / "cache").glob("*/keys.txt")) for k in f.read_text("utf-8").split()]


def passage_hashes(index: Path) -> set[str]:
    """Content hashes (title, section, text) of the passages any generation of the index lists."""
    out = set()
    for f in index.glob("gen-*/passages.jsonl"):
        for line in f.read_text("utf-8").splitlines():
            p = json.loads(line)
            out.add(hashlib.sha1(f"{p['title']}\x1f{p['section']}\x1f{p['text']}".encode("utf-8")).hexdigest())
    return out


def cache_entries(index: Path) -> int:
    """Passages in the embedding cache (its keys that are passage content hashes, not sentence windows)."""
    hashes = passage_hashes(index)
    return sum(k in hashes for k in cache_keys(index))


def report_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory, seed_cache) -> tuple[Path, Path]:
    """One index over the seed essay and the regulation fixture, built once from the run's embedding cache."""
    root = tmp_path_factory.mktemp("robust-kill")
    corpus = make_corpus(root / "corpus")
    with Engine.open(with_seed_cache(seed_cache, root / "index"), Config()) as eng:
        report = eng.index(corpus)
        assert sorted(report.added) == sorted([SEED_DOC, REG_DOC]) and not report.errors
    return root / "index", corpus


@pytest.fixture
def fresh(base, tmp_path) -> tuple[Path, Path]:
    """A private corpus + index pair for one test, built from the module's embedding cache (nothing re-encoded)."""
    index0, corpus0 = base
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus0, corpus)
    index = tmp_path / "index"
    index.mkdir()
    shutil.copytree(index0 / "cache", index / "cache")
    with Engine.open(index, Config()) as eng:
        assert eng.index(corpus).passages_encoded == 0
    return index, corpus


# ---------------------------------------------------------------------------- kill during `index`
INDEX_POINTS = ["read", "keyword", "embedding", "before_switch", "after_switch"]


@pytest.mark.parametrize("point", INDEX_POINTS)
def test_kill_during_index(fresh, tmp_path, point):
    """Keyword first: up to the first commit's switch a kill leaves the previous state; from its switch on (the
    `embedding` point lies in the vector stage after it) the documents are searchable by keyword and their vectors
    pending, and the next `index` encodes what is pending."""
    index, corpus = fresh
    before = snapshot(index)
    cached_before = cache_entries(index)
    (corpus / NEW_DOC).write_text(NEW_TEXT, "utf-8")
    with open(corpus / REG_DOC, "a", encoding="utf-8") as fh:
        fh.write(REG_APPENDIX)

    kill_at(index, point, tmp_path / "kill.log", "index", str(corpus))

    cached_after_kill = cache_entries(index)
    keyword_committed = point in ("after_switch", "embedding")
    if keyword_committed:
        # CURRENT was switched: the sync happened, completely, for the keyword half.
        after = snapshot(index)
        assert after["generation"] == before["generation"] + 1
        assert {d["doc_id"] for d in after["documents"]} == {SEED_DOC, REG_DOC, NEW_DOC}
        assert finds(index, NEW_TERM)[0] == NEW_DOC and finds(index, REG_TERM)[0] == REG_DOC
        assert pending(index) > 0
        assert not list(index.glob("gen-*.tmp")), "the vector stage builds no generation until its commit"
    else:
        assert snapshot(index) == before, "a killed sync must leave exactly the previous state"
        assert NEW_DOC not in finds(index, NEW_TERM) and REG_DOC not in finds(index, REG_TERM)
        if point == "read":
            assert not list(index.glob("gen-*.tmp")), "the kill landed before the next generation was started"
        if point == "keyword":
            assert list(index.glob("gen-*.tmp")), "the kill landed while the next generation was being built"
        if point == "before_switch":
            assert (index / f"gen-{before['generation'] + 1:08d}").is_dir()
    if point == "embedding":
        assert cached_after_kill > cached_before, "passages embedded before the kill stay in the cache"
    else:
        assert cached_after_kill == cached_before, "nothing is encoded before the keyword commit"

    # Re-running the same command completes the work, without waiting for any lock.
    rep = report_of(run(index, "index", str(corpus), "--json", PARTYQA_LOCK_TIMEOUT="0"))
    encoded_in_total = cache_entries(index) - cached_before
    if keyword_committed:
        assert rep["added"] == rep["updated"] == [] and rep["passages_encoded"] > 0
    else:
        assert rep["added"] == [NEW_DOC] and rep["updated"] == [REG_DOC]
    # Work done before the kill is not redone: the re-run encodes only what the cache does not hold yet.
    assert rep["passages_encoded"] == encoded_in_total - (cached_after_kill - cached_before)
    assert rep["passages_pending"] == 0 and pending(index) == 0
    after = snapshot(index)
    assert {d["doc_id"] for d in after["documents"]} == {SEED_DOC, REG_DOC, NEW_DOC}
    assert finds(index, NEW_TERM)[0] == NEW_DOC and finds(index, REG_TERM)[0] == REG_DOC
    assert not list(index.glob("gen-*.tmp")), "leftovers of the killed writer are cleaned by the next write"
    # The old generation's searches still answer the same way for text that did not change.
    assert after["keyword"][0][0]["doc_id"] == before["keyword"][0][0]["doc_id"]


# ---------------------------------------------------------------------------- kill during `add`
@pytest.mark.parametrize("point", INDEX_POINTS)
def test_kill_during_add(fresh, tmp_path, point):
    index, corpus = fresh
    before = snapshot(index)
    outside = tmp_path / "upload" / NEW_DOC
    outside.parent.mkdir()
    outside.write_text(NEW_TEXT, "utf-8")

    kill_at(index, point, tmp_path / "kill.log", "add", str(outside))

    staged = list(corpus.glob(".partyqa-staged-*"))
    assert all(p.name in (SEED_DOC, REG_DOC, NEW_DOC) for p in iter_corpus_files(corpus)), "a staged copy is no document"
    if point == "embedding":  # after the keyword commit: the copy is in the corpus, the vectors pending
        assert not staged and (corpus / NEW_DOC).read_bytes() == outside.read_bytes()
        assert finds(index, NEW_TERM)[0] == NEW_DOC and pending(index) > 0
    else:
        assert staged, "the killed add left its staged copy"
        assert not (corpus / NEW_DOC).exists(), "the copy is renamed into the corpus only after the commit"
    if point == "after_switch":
        after = snapshot(index)
        assert {d["doc_id"] for d in after["documents"]} == {SEED_DOC, REG_DOC, NEW_DOC}
        assert finds(index, NEW_TERM)[0] == NEW_DOC
    elif point != "embedding":
        assert snapshot(index) == before
        assert NEW_DOC not in finds(index, NEW_TERM)

    rep = report_of(run(index, "add", str(outside), "--json", PARTYQA_LOCK_TIMEOUT="0"))
    if point in ("after_switch", "embedding"):
        # Indexed already (the corpus copy is repaired); the re-run waits for the file's pending vectors.
        assert rep["unchanged"] == [NEW_DOC] and rep["added"] == [] and rep["passages_pending"] == 0
    else:
        assert rep["added"] == [NEW_DOC]
    assert pending(index) == 0
    assert (corpus / NEW_DOC).read_bytes() == outside.read_bytes()
    assert not list(corpus.glob(".partyqa-staged-*"))
    assert not list(index.glob("gen-*.tmp"))
    after = snapshot(index)
    assert {d["doc_id"] for d in after["documents"]} == {SEED_DOC, REG_DOC, NEW_DOC}
    assert finds(index, NEW_TERM)[0] == NEW_DOC
    # The repaired corpus and the index agree: a sync finds nothing to do.
    rep = report_of(run(index, "index", str(corpus), "--json"))
    assert sorted(rep["unchanged"]) == sorted([SEED_DOC, REG_DOC, NEW_DOC]) and not rep["added"] and not rep["removed"]


def test_staged_copy_of_a_killed_add_is_not_indexed_by_a_sync(fresh, tmp_path):
    index, corpus = fresh
    before = snapshot(index)
    outside = tmp_path / NEW_DOC
    outside.write_text(NEW_TEXT, "utf-8")
    kill_at(index, "keyword", tmp_path / "kill.log", "add", str(outside))
    assert list(corpus.glob(".partyqa-staged-*"))
    rep = report_of(run(index, "index", str(corpus), "--json", PARTYQA_LOCK_TIMEOUT="0"))
    assert rep["added"] == [] and sorted(rep["unchanged"]) == sorted([SEED_DOC, REG_DOC])
    assert snapshot(index)["documents"] == before["documents"]
    # The next add clears the stale staged copy and adds the file properly.
    assert report_of(run(index, "add", str(outside), "--json"))["added"] == [NEW_DOC]
    assert not list(corpus.glob(".partyqa-staged-*"))


def test_committed_staged_copy_survives_other_writes(fresh, tmp_path):
    """Killed after the switch (e.g. the server died during an upload), and the user then adds another file and
    syncs, instead of re-adding the same file: the committed document must not be lost."""
    index, corpus = fresh
    outside = tmp_path / "upload" / NEW_DOC
    outside.parent.mkdir()
    outside.write_text(NEW_TEXT, "utf-8")
    kill_at(index, "after_switch", tmp_path / "kill.log", "add", str(outside))
    shutil.rmtree(outside.parent)  # like the web upload's temp dir: the original is gone
    other = tmp_path / "短讯.txt"
    other.write_text("短讯\n\n党支部本月新增图书二十册，欢迎党员借阅。", "utf-8")
    assert report_of(run(index, "add", str(other), "--json"))["added"] == ["短讯.txt"]
    report_of(run(index, "index", str(corpus), "--json"))
    assert NEW_DOC in doc_ids(index), "the committed upload was dropped"
    assert (corpus / NEW_DOC).read_text("utf-8") == NEW_TEXT


# ---------------------------------------------------------------------------- kill during `remove`
@pytest.mark.parametrize("point", ["keyword", "before_switch", "after_switch"])
def test_kill_during_remove(fresh, tmp_path, point):
    index, corpus = fresh
    before = snapshot(index)
    kill_at(index, point, tmp_path / "kill.log", "remove", REG_DOC)
    moved = list((index / "removed").rglob(REG_DOC))
    assert len(moved) == 1, "the file left the corpus for removed/ before the commit (nothing is lost)"
    assert not (corpus / REG_DOC).exists()
    if point == "after_switch":
        assert doc_ids(index) == {SEED_DOC}
        proc = run(index, "remove", REG_DOC, PARTYQA_LOCK_TIMEOUT="0")
        assert proc.returncode == 1 and "not found" in proc.stderr  # already removed
    else:
        assert snapshot(index) == before
        proc = run(index, "remove", REG_DOC, PARTYQA_LOCK_TIMEOUT="0")
        assert proc.returncode == 0 and f"removed: {REG_DOC}" in proc.stdout, proc.stderr
    assert doc_ids(index) == {SEED_DOC}
    assert REG_DOC not in finds(index, "支部委员会由党员大会选举产生")
    assert snapshot(index)["keyword"][0][0]["doc_id"] == SEED_DOC
    rep = report_of(run(index, "index", str(corpus), "--json"))
    assert rep["unchanged"] == [SEED_DOC] and not rep["added"] and not rep["removed"]


# ---------------------------------------------------------------------------- kills between the checkpoints
LONG_DOC = "长篇学习材料.txt"
LONG_TEXT = "长篇学习材料\n\n" + "\n\n".join(
    f"第{i}部分 鸿雁驿站第{i}次学习活动\n第{i}次活动中，党支部组织党员学习党章第{i}条的内容，结合本单位实际开展讨论，"
    f"每名党员都结合自身工作谈了体会，支部书记作了总结，要求大家把学习成果转化为推动工作的实际行动，"
    f"并在下次组织生活会上交流落实情况。" for i in range(1, 25))
STAGE_TRIES = 5  # runs tried per stage; a run that got past the stage before it was stopped is not counted


def _generation(index: Path) -> int | None:
    """The generation CURRENT names (None while it cannot be read)."""
    try:
        return json.loads((index / "CURRENT").read_text("utf-8"))["generation"]
    except (OSError, ValueError, KeyError):
        return None


def stage_of(index: Path, gen0: int, cached0: int) -> str:
    """Where a stopped `index` run is, read from the index folder: ``keyword`` (the next generation is being written,
    CURRENT unchanged), ``embedding`` (keyword half committed, passages being encoded, no generation being
    written), or ``other``."""
    gen, building = _generation(index), bool(list(index.glob("gen-*.tmp")))
    if gen == gen0 and building:
        return "keyword"
    if gen == gen0 + 1 and not building and cache_entries(index) > cached0:
        return "embedding"
    return "other"


def stop_in_stage(index: Path, proc: subprocess.Popen, stage: str, gen0: int, cached0: int, log: Path) -> str:
    """SIGSTOP ``proc`` as soon as the index folder shows ``stage``; return the stage it was really stopped in."""
    deadline = time.monotonic() + MARKER_WAIT
    while stage_of(index, gen0, cached0) != stage:
        if proc.poll() is not None:
            return "finished"
        assert time.monotonic() < deadline, f"the sync did not reach its {stage} stage in {MARKER_WAIT:.0f}s:\n" \
                                            f"{output(log)}"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGSTOP)
    return stage_of(index, gen0, cached0)  # the folder no longer changes: this is where the kill lands


@pytest.mark.parametrize("stage", ["keyword", "embedding"])
def test_kill_between_checkpoints_lands_in_its_stage(fresh, tmp_path, stage):
    """SIGKILL a sync in the middle of a stage, away from the checkpoints: the writer is stopped as soon as the index
    folder shows the stage, the folder is read again to confirm where it stopped, and only then is it killed. The
    index then shows the state that stage promises, and the same command finishes the work."""
    index, corpus = fresh
    (corpus / LONG_DOC).write_text(LONG_TEXT, "utf-8")
    before = snapshot(index)
    gen0, cached0 = before["generation"], cache_entries(index)
    pristine = tmp_path / "pristine"
    shutil.copytree(index, pristine)
    seen = []
    for attempt in range(STAGE_TRIES):
        if attempt:  # the last run got past the stage: start again from the same index
            shutil.rmtree(index)
            shutil.copytree(pristine, index)
        log = tmp_path / f"kill-{attempt}.log"
        proc = start(index, log, "index", str(corpus))
        try:
            seen.append(stop_in_stage(index, proc, stage, gen0, cached0, log))
        finally:
            if proc.poll() is None:
                sigkill(proc)
        if seen[-1] == stage:
            break
    assert seen[-1] == stage, f"{STAGE_TRIES} runs got past the {stage} stage before they were stopped: {seen}"

    cached_after_kill = cache_entries(index)
    if stage == "keyword":
        assert snapshot(index) == before, "killed while writing the next generation: the previous state, exactly"
        assert LONG_DOC not in finds(index, "鸿雁驿站第7次学习活动")
        assert cached_after_kill == cached0, "nothing is encoded before the keyword commit"
    else:
        with Engine.open(index, Config()) as eng:
            assert_consistent(eng)
            assert {d["doc_id"] for d in eng.documents()} == before_ids(before) | {LONG_DOC}
            assert eng.stats()["pending_vectors"] > 0, "killed while encoding: vectors are still pending"
        assert finds(index, "鸿雁驿站第7次学习活动")[0] == LONG_DOC, "keyword-searchable before its vectors"
        assert cached_after_kill > cached0

    rep = report_of(run(index, "index", str(corpus), "--json", PARTYQA_LOCK_TIMEOUT="0"))
    assert rep["added"] == ([LONG_DOC] if stage == "keyword" else [])
    # what was encoded before the kill is not encoded again
    assert rep["passages_encoded"] == cache_entries(index) - cached_after_kill > 0
    assert rep["passages_pending"] == 0 and pending(index) == 0
    assert doc_ids(index) == before_ids(before) | {LONG_DOC}
    assert finds(index, "鸿雁驿站第7次学习活动")[0] == LONG_DOC
    assert not list(index.glob("gen-*.tmp")), "leftovers of the killed writer are cleaned by the next write"


def before_ids(snap: dict) -> set[str]:
    """The document ids of a snapshot."""
    return {d["doc_id"] for d in snap["documents"]}


# ---------------------------------------------------------------------------- stale whoosh locks
HOLD_WHOOSH_LOCK = """
import os, sys, time
from pathlib import Path
import whoosh.index
ix = whoosh.index.open_dir(sys.argv[1])
w = ix.writer(timeout=0)
Path(sys.argv[2]).write_text(str(os.getpid()))
time.sleep(300)
"""


@pytest.mark.parametrize("where", ["current", "tmp"])
def test_stale_whoosh_lock_of_a_killed_writer_is_harmless(fresh, tmp_path, where):
    """A writer killed while holding whoosh's MAIN_WRITELOCK leaves the file; the next add must not wait on it."""
    import whoosh.index

    index, corpus = fresh
    with Engine.open(index, Config()) as eng:
        gen = eng.stats()["generation"]
    kw_dir = index / f"gen-{gen:08d}" / "keyword"
    if where == "tmp":  # a writer killed half-way through its keyword write in the next generation
        tmp_gen = index / f"gen-{gen + 1:08d}.tmp"
        shutil.copytree(index / f"gen-{gen:08d}", tmp_gen)
        kw_dir = tmp_gen / "keyword"
    marker = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WHOOSH_LOCK, str(kw_dir), str(marker)], env=_env())
    try:
        deadline = time.monotonic() + MARKER_WAIT
        while not marker.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "lock holder did not start"
            time.sleep(0.05)
        with pytest.raises(whoosh.index.LockError):  # the lock is really held while the holder lives
            whoosh.index.open_dir(str(kw_dir)).writer(timeout=0)
    finally:
        sigkill(holder)
    assert (kw_dir / "MAIN_WRITELOCK").exists(), "the killed writer's lock file is left behind"
    whoosh.index.open_dir(str(kw_dir)).writer(timeout=0).cancel()  # ...but it no longer locks anything

    outside = tmp_path / "短讯.txt"
    outside.write_text(f"短讯\n\n{NEW_TERM}本月新增图书二十册，欢迎党员借阅。", "utf-8")
    rep = report_of(run(index, "add", str(outside), "--json", PARTYQA_LOCK_TIMEOUT="0"))
    assert rep["added"] == ["短讯.txt"]
    assert finds(index, NEW_TERM)[0] == "短讯.txt"
    assert not list(index.glob("gen-*.tmp"))


# ---------------------------------------------------------------------------- concurrent adds
def test_concurrent_adds_one_fails_clearly_one_waits(fresh, tmp_path):
    index, corpus = fresh
    files = {}
    for name, term in (("甲.txt", "甲字号学习小组"), ("乙.txt", "乙字号学习小组"), ("丙.txt", "丙字号学习小组")):
        files[name] = tmp_path / name
        files[name].write_text(f"{name[0]}材料\n\n{term}每月开展一次集中学习，党员轮流领学，"
                               f"支部书记点评，学习记录报党委备案。", "utf-8")
    # First writer: holds the index lock while paused building its keyword half, until the test releases it.
    first = start(index, tmp_path / "first.log", "add", str(files["甲.txt"]), PARTYQA_PAUSE_AT="keyword",
                  PARTYQA_PAUSE_SECONDS="600")
    wait_paused(index, "keyword", first, tmp_path / "first.log")
    # Third writer: patient, waits for the lock and then adds on top of the first one's commit.
    third = start(index, tmp_path / "third.log", "add", str(files["丙.txt"]), "--json", PARTYQA_LOCK_TIMEOUT="600")
    # Second writer: impatient (1 s): fails clearly, exit 2, no traceback, nothing changed by it.
    second = run(index, "add", str(files["乙.txt"]), PARTYQA_LOCK_TIMEOUT="1")
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert "错误 error:" in second.stderr and "locked by another process" in second.stderr
    assert "PARTYQA_LOCK_TIMEOUT" in second.stderr and "Traceback" not in second.stderr
    assert third.poll() is None, f"the patient writer finished while the lock was held:\n{output(tmp_path / 'third.log')}"
    assert "丙.txt" not in doc_ids(index)
    release(index, "keyword", first)
    assert first.wait(timeout=300) == 0, output(tmp_path / "first.log")
    assert third.wait(timeout=300) == 0, output(tmp_path / "third.log")
    assert last_json(tmp_path / "third.log")["added"] == ["丙.txt"]
    assert doc_ids(index) == {SEED_DOC, REG_DOC, "甲.txt", "丙.txt"}
    assert not (corpus / "乙.txt").exists() and not list(corpus.glob(".partyqa-staged-*"))
    with Engine.open(index, Config()) as eng:
        assert_consistent(eng)
        assert eng.search("甲字号学习小组", k=1, mode="keyword")[0]["doc_id"] == "甲.txt"
        assert eng.search("丙字号学习小组", k=1, mode="keyword")[0]["doc_id"] == "丙.txt"
    # The one that failed succeeds when retried.
    assert report_of(run(index, "add", str(files["乙.txt"]), "--json"))["added"] == ["乙.txt"]


def test_an_embedding_writer_does_not_block_the_next_add(fresh, tmp_path):
    """The write lock is held only around commits: while one `add` encodes its vectors (paused there, holding the
    embedding backlog), an impatient second `add` commits its keyword half, then both finish their vectors."""
    index, corpus = fresh
    first_doc, second_doc = tmp_path / "甲.txt", tmp_path / "乙.txt"
    first_doc.write_text(NEW_TEXT.replace("鸿雁驿站", "甲字号驿站"), "utf-8")
    second_doc.write_text("乙材料\n\n乙字号学习小组每月开展一次集中学习，党员轮流领学，支部书记点评。", "utf-8")
    first = start(index, tmp_path / "first.log", "add", str(first_doc), "--json", PARTYQA_PAUSE_AT="embedding",
                  PARTYQA_PAUSE_SECONDS="600")
    wait_paused(index, "embedding", first, tmp_path / "first.log")
    assert finds(index, "甲字号驿站")[0] == "甲.txt", "keyword-ready before its vectors"
    second = start(index, tmp_path / "second.log", "add", str(second_doc), "--json", PARTYQA_LOCK_TIMEOUT="1")
    deadline = time.monotonic() + 300
    while "乙.txt" not in finds(index, "乙字号学习小组"):
        assert second.poll() in (None, 0), output(tmp_path / "second.log")
        assert time.monotonic() < deadline, "300 s and the second add's keyword half is not searchable: it waited " \
                                            "for the first one's embedding?\n" + output(tmp_path / "second.log")
        time.sleep(0.2)
    # the first writer is still paused in its embedding stage (it goes on only when released)
    assert (index / ".paused-embedding").read_text("utf-8") == str(first.pid)
    release(index, "embedding", first)
    assert first.wait(timeout=300) == 0, output(tmp_path / "first.log")
    assert second.wait(timeout=300) == 0, output(tmp_path / "second.log")
    assert last_json(tmp_path / "first.log")["added"] == ["甲.txt"]
    assert last_json(tmp_path / "second.log")["added"] == ["乙.txt"]
    assert pending(index) == 0
    with Engine.open(index, Config()) as eng:
        assert_consistent(eng)
        assert eng.search("甲字号驿站的借阅登记", k=1, mode="hybrid")[0]["doc_id"] == "甲.txt"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_server_killed_while_embedding_resumes_after_restart(fresh, tmp_path):
    """`add --no-wait` leaves vectors pending; a server picks them up, is SIGKILLed in the middle of encoding them,
    and the restarted server finishes them: consistent at every step, searchable by keyword throughout."""
    index, corpus = fresh
    long_text = NEW_TEXT + "\n".join(
        f"七、补充第{i}条\n鸿雁驿站第{i}次交流会上，党员结合学习体会发言，支部书记作总结，要求把学习成果转化为推动工作的"
        f"实际行动，并在下次组织生活会上交流落实情况。" for i in range(1, 30))
    outside = tmp_path / NEW_DOC
    outside.write_text(long_text, "utf-8")
    rep = report_of(run(index, "add", str(outside), "--no-wait", "--json"))
    assert rep["added"] == [NEW_DOC] and rep["passages_encoded"] == 0
    total = rep["passages_pending"]
    assert total > 20 and pending(index) == total
    cached_before = cache_entries(index)

    log = tmp_path / "serve1.log"
    server = start(index, log, "serve", "--port", str(_free_port()), PARTYQA_PAUSE_AT="embedding",
                   PARTYQA_PAUSE_SECONDS="300")
    try:
        wait_paused(index, "embedding", server, log)
    finally:
        sigkill(server)
    assert cache_entries(index) > cached_before, "the server had started encoding the backlog"
    with Engine.open(index, Config()) as eng:
        assert_consistent(eng)
        assert eng.stats()["pending_vectors"] == total  # the chunk was encoded, not committed
        assert eng.search(NEW_TERM, k=1, mode="hybrid")[0]["doc_id"] == NEW_DOC

    log = tmp_path / "serve2.log"
    server = start(index, log, "serve", "--port", str(_free_port()))
    try:
        wait_for(lambda: server.poll() is not None or pending(index) == 0, "the restarted server's embeddings")
        assert server.poll() is None, output(log)
    finally:
        server.terminate()
        server.wait(timeout=60)
    with Engine.open(index, Config()) as eng:
        assert_consistent(eng)
        assert eng.stats()["pending_vectors"] == 0
        assert {d["doc_id"] for d in eng.documents()} == {SEED_DOC, REG_DOC, NEW_DOC}
        assert all(d["state"] == "done" for d in eng.documents())
        assert eng.search("鸿雁驿站第7次交流会", k=1, mode="semantic")[0]["doc_id"] == NEW_DOC
    rep = report_of(run(index, "index", str(corpus), "--json"))
    assert rep["passages_encoded"] == 0 and not rep["added"], "nothing was left to do"


SUBMIT_JOB = """
import sys
from indexer import Config, Engine
eng = Engine.open(sys.argv[1], Config())
job = eng.jobs.submit_add([sys.argv[2]])
print(job.id, flush=True)
eng.jobs.wait(job.id)
"""


@pytest.mark.parametrize("spool", ["kept", "lost"])
def test_queued_job_of_a_killed_server_resumes_or_fails_clearly(fresh, tmp_path, spool):
    """A server killed while a job reads its files: the next start runs the spooled job again (or, if its spooled
    files are gone, marks it failed with a reason), and nothing half-done is visible in between."""
    index, corpus = fresh
    before = snapshot(index)
    outside = tmp_path / NEW_DOC
    outside.write_text(NEW_TEXT, "utf-8")
    log = tmp_path / "job.log"
    with open(log, "w", encoding="utf-8") as out, open(_err(log), "w", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-c", SUBMIT_JOB, str(index), str(outside)], stdout=out, stderr=err,
                                env=_env(PARTYQA_PAUSE_AT="read", PARTYQA_PAUSE_SECONDS="300"))
    try:
        wait_paused(index, "read", proc, log)
    finally:
        sigkill(proc)
    job_id = log.read_text("utf-8").strip()
    record = json.loads((index / "jobs" / job_id / "job.json").read_text("utf-8"))
    assert record["state"] == "reading" and snapshot(index) == before
    spooled = [Path(p) for p in record["paths"]]
    assert spooled and all(p.is_file() and p.is_relative_to(index / "jobs" / job_id) for p in spooled)
    if spool == "lost":
        for p in spooled:
            p.unlink()
    with Engine.open(index, Config()) as eng:
        job = eng.jobs.wait(job_id, timeout=300).to_dict()
        if spool == "kept":
            assert job["state"] == "done" and job["files"][0]["state"] == "done"
            assert eng.search(NEW_TERM, k=1, mode="hybrid")[0]["doc_id"] == NEW_DOC
            assert eng.stats()["pending_vectors"] == 0
        else:
            assert job["state"] == "failed" and job["error"].startswith("服务重启时任务的文件已丢失 / ")
            assert snapshot(index)["documents"] == before["documents"]
    assert not (index / "jobs" / job_id).exists()
    assert job_id in (index / "jobs.json").read_text("utf-8")


def test_concurrent_adds_of_the_same_file(fresh, tmp_path):
    """Two users add the same file at once: it is indexed once, the second finds it unchanged."""
    index, corpus = fresh
    outside = tmp_path / NEW_DOC
    outside.write_text(NEW_TEXT, "utf-8")
    procs = [start(index, tmp_path / f"same-{i}.log", "add", str(outside), "--json") for i in range(2)]
    reports = []
    for i, proc in enumerate(procs):
        assert proc.wait(timeout=300) == 0, output(tmp_path / f"same-{i}.log")
        reports.append(last_json(tmp_path / f"same-{i}.log"))
    assert sorted((r["added"], r["unchanged"]) for r in reports) == [([], [NEW_DOC]), ([NEW_DOC], [])]
    with Engine.open(index, Config()) as eng:
        assert_consistent(eng)
        assert [d["doc_id"] for d in eng.documents()].count(NEW_DOC) == 1
    assert (corpus / NEW_DOC).read_bytes() == outside.read_bytes()


# ---------------------------------------------------------------------------- damaged index files
def _current_gen(index: Path) -> Path:
    return index / f"gen-{json.loads((index / 'CURRENT').read_text('utf-8'))['generation']:08d}"


def _truncate_npy(index: Path) -> None:
    path = _current_gen(index) / "vectors" / "vectors.npy"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _delete_segment(index: Path) -> None:
    for seg in (_current_gen(index) / "keyword").glob("*.seg"):
        seg.unlink()


def _delete_toc(index: Path) -> None:
    for toc in (_current_gen(index) / "keyword").glob("_MAIN_*.toc"):
        toc.unlink()


def _truncate_segment(index: Path) -> None:
    for seg in (_current_gen(index) / "keyword").glob("*.seg"):
        with open(seg, "r+b") as fh:
            fh.truncate(seg.stat().st_size // 2)


def _garbage_current(index: Path) -> None:
    (index / "CURRENT").write_bytes(b"\x00garbage{")


def _current_to_missing_generation(index: Path) -> None:
    shutil.rmtree(_current_gen(index))


def _drop_passages(index: Path) -> None:
    path = _current_gen(index) / "passages.jsonl"
    lines = path.read_text("utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]), "utf-8")


def _vector_ids_mismatch(index: Path) -> None:
    path = _current_gen(index) / "vectors" / "ids.json"
    path.write_text(json.dumps(json.loads(path.read_text("utf-8"))[:-1]), "utf-8")


def _truncate_manifest(index: Path) -> None:
    path = _current_gen(index) / "manifest.json"
    path.write_bytes(path.read_bytes()[:50])


DAMAGE = {
    "truncated vectors.npy": _truncate_npy,
    "missing keyword segment": _delete_segment,
    "missing keyword toc": _delete_toc,
    "truncated keyword segment": _truncate_segment,
    "garbage in CURRENT": _garbage_current,
    "CURRENT names a missing generation": _current_to_missing_generation,
    "passages.jsonl cut short": _drop_passages,
    "vector ids disagree": _vector_ids_mismatch,
    "truncated manifest.json": _truncate_manifest,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_is_detected_and_rebuild_recovers(fresh, damage):
    index, corpus = fresh
    good = snapshot(index)
    DAMAGE[damage](index)
    commands = [["ask", "党支部的主要任务"]]
    if damage == "truncated vectors.npy":  # every command opens the index the same way: try them all once
        commands += [["docs"], ["add", str(corpus / SEED_DOC)], ["index", str(corpus)], ["remove", SEED_DOC]]
    for args in commands:
        proc = run(index, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert f"错误 error: index at {index.resolve()} is damaged" in proc.stderr
        assert f"Recover with: partyqa --index-dir {index.resolve()} index --rebuild" in proc.stderr
    # The documented recovery: the corpus is re-read; cached embeddings mean nothing is re-encoded.
    rep = report_of(run(index, "index", "--rebuild", str(corpus), "--json"))
    assert sorted(rep["added"]) == sorted([SEED_DOC, REG_DOC]) and rep["passages_encoded"] == 0
    recovered = snapshot(index)
    assert [d["doc_id"] for d in recovered["documents"]] == [d["doc_id"] for d in good["documents"]]
    assert [[h["pid"] for h in hits] for hits in recovered["keyword"]] == \
        [[h["pid"] for h in hits] for hits in good["keyword"]]
    proc = run(index, "ask", "党支部的主要任务", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["results"]


@pytest.mark.parametrize("damage", ["truncated vectors.npy", "garbage in CURRENT"])
def test_rebuild_remembers_the_corpus(fresh, damage):
    """Without CORPUS_DIR, `index --rebuild` re-reads the corpus recorded in the newest readable manifest."""
    index, corpus = fresh
    DAMAGE[damage](index)
    rep = report_of(run(index, "index", "--rebuild", "--json"))
    assert sorted(rep["added"]) == sorted([SEED_DOC, REG_DOC]) and rep["passages_encoded"] == 0
    assert finds(index, "支部委员会由党员大会选举产生")[0] == REG_DOC


def test_serve_refuses_a_damaged_index_clearly(fresh):
    index, _ = fresh
    _truncate_npy(index)
    proc = run(index, "serve", "--port", "0", timeout=120)
    assert proc.returncode == 2 and "is damaged" in proc.stderr and "index --rebuild" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_truncated_embedding_cache_is_trimmed_not_fatal(fresh, tmp_path):
    """A cache write cut by a kill (vectors longer or shorter than the keys) is trimmed; lost entries re-encode."""
    index, corpus = fresh
    vecs = next((index / "cache").glob("*/vecs.f32"))
    keys = cache_keys(index)
    row = vecs.stat().st_size // len(keys)
    with open(vecs, "r+b") as fh:
        fh.truncate(vecs.stat().st_size - 2 * row - row // 3)  # two and a third rows lost
    lost_passages = sum(k in passage_hashes(index) for k in keys[-3:])  # trimmed to whole rows: the last 3 entries
    rep = report_of(run(index, "index", "--rebuild", str(corpus), "--json"))
    assert rep["passages_encoded"] == lost_passages
    assert set(cache_keys(index)) >= {k for k in keys[-3:] if k in passage_hashes(index)}, "lost passages re-encoded"
    assert snapshot(index)["keyword"][0][0]["doc_id"] == SEED_DOC


# ---------------------------------------------------------------------------- interrupted rebuild
def test_kill_during_rebuild_then_rerun_with_corpus(fresh, tmp_path):
    index, corpus = fresh
    good = snapshot(index)
    _truncate_npy(index)
    kill_at(index, "embedding", tmp_path / "kill.log", "index", "--rebuild", str(corpus))
    # Killed in the vector stage: the rebuilt keyword half was committed, the vectors are pending (not damaged).
    proc = run(index, "docs", "--json")
    assert proc.returncode == 0
    assert {(d["doc_id"], d["state"]) for d in json.loads(proc.stdout)} == {(SEED_DOC, "keyword"), (REG_DOC, "keyword")}
    rep = report_of(run(index, "index", "--rebuild", str(corpus), "--json", PARTYQA_LOCK_TIMEOUT="0"))
    assert sorted(rep["added"]) == sorted([SEED_DOC, REG_DOC])
    assert snapshot(index)["documents"] != [] and doc_ids(index) == {d["doc_id"] for d in good["documents"]}


def test_kill_during_rebuild_then_rerun_same_command(fresh, tmp_path):
    index, corpus = fresh
    _truncate_npy(index)
    kill_at(index, "embedding", tmp_path / "kill.log", "index", "--rebuild")
    proc = run(index, "index", "--rebuild", "--json", PARTYQA_LOCK_TIMEOUT="0")
    assert proc.returncode == 0, proc.stderr
    assert doc_ids(index) == {SEED_DOC, REG_DOC}


def test_a_process_with_the_index_open_sees_the_rebuilt_index(fresh):
    """A rebuild numbers its generations on from the ones it replaced: a process that had the index open (a server)
    switches to the rebuilt state at its next search, instead of taking a reused number for the state it has."""
    index, corpus = fresh
    with Engine.open(index, Config()) as reader:
        before = reader.stats()["generation"]
        assert set(reader.doc_ids()) == {SEED_DOC, REG_DOC}
        (corpus / REG_DOC).unlink()
        Engine.rebuild(index, corpus, Config())[0].close()
        assert reader.doc_ids() == [SEED_DOC] and reader.stats()["generation"] > before
        assert {h["doc_id"] for h in reader.search("支部委员会由党员大会选举产生", k=5, mode="keyword")} == {SEED_DOC}


def test_missing_current_with_generations_is_damage_not_a_new_index(fresh, tmp_path):
    index, corpus = fresh
    (index / "CURRENT").unlink()
    outside = tmp_path / NEW_DOC
    outside.write_text(NEW_TEXT, "utf-8")
    proc = run(index, "add", str(outside))
    assert proc.returncode == 2 and "is damaged" in proc.stderr, (proc.stdout, proc.stderr)
    assert not (index / "corpus").exists(), "nothing was written to a default corpus beside the index"
    report_of(run(index, "index", "--rebuild", "--json"))
    assert doc_ids(index) == {SEED_DOC, REG_DOC}
