"""`partyqa serve` under concurrent load and concurrent writers (issue #6), over real loopback HTTP.

A real server subprocess answers 8 searching clients while a document is uploaded; it answers 503 + JSON (not a
hang, not a 500) when a CLI writer holds the index lock, keeps answering while that writer is SIGKILLed, and picks
up generations committed by other processes. Timings are measured in bench/bench_load.py, never asserted here.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import ROOT, make_corpus, with_seed_cache
from indexer import Config, Engine

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.serve_client import (CMD, LOAD_QUESTIONS, OFFLINE, SearchClients, Server, http, search,  # noqa: E402
                                 upload, upload_and_wait)

pytestmark = pytest.mark.slow

CLIENTS = 8
LOAD_SECONDS = 10.0  # minimum load duration; it also lasts until the upload has finished
MAX_REQUESTS = 2000
HARD_CAP_SECONDS = 180.0
SEED_DOC = "基层党支部工作论文.txt"
REG_DOC = "支部工作条例示例.txt"
QUESTIONS = LOAD_QUESTIONS[:8]
UPLOAD_TERM = "鸿雁驿站"
UPLOAD_TEXT = "鸿雁驿站学习材料\n\n" + "\n\n".join(
    f"{n}、第{i}项安排\n鸿雁驿站第{i}项安排：党支部组织党员在学习角集中学习党章党规，支部委员轮流领学，"
    f"每名党员结合本职工作谈体会，学习记录由组织委员整理后在党员大会上通报。"
    for i, n in enumerate("一二三四五六七八", start=1))


# ---------------------------------------------------------------------------- server and HTTP (bench/serve_client.py)
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYQA_")}
    env.update(OFFLINE)
    env.update(extra)
    return env


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory, seed_cache) -> tuple[Path, Path]:
    """The seed essay + regulation fixture, indexed once from the run's embedding cache (reused by every test)."""
    root = tmp_path_factory.mktemp("robust-service")
    corpus = make_corpus(root / "corpus")
    with Engine.open(with_seed_cache(seed_cache, root / "index"), Config()) as eng:
        assert not eng.index(corpus).errors
    return root / "index", corpus


@pytest.fixture
def fresh(base, tmp_path) -> tuple[Path, Path]:
    """A private corpus + index for one test (the server writes uploads into its corpus)."""
    index0, corpus0 = base
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(corpus0, corpus)
    index.mkdir()
    shutil.copytree(index0 / "cache", index / "cache")
    with Engine.open(index, Config()) as eng:
        assert eng.index(corpus).passages_encoded == 0
    return index, corpus


@pytest.fixture
def servers():
    """Start servers with ``servers(index, log, **env)``; all are stopped after the test."""
    started: list[Server] = []

    def make(index: Path, log: Path, **env: str) -> Server:
        srv = Server(index, log, env=_env(**env), start_timeout=120)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


# ---------------------------------------------------------------------------- load
def run_load(base_url: str, during: Callable[[], Any] | None) -> tuple[list[dict], dict]:
    """8 clients search until LOAD_SECONDS have passed and ``during`` (run in its own thread) has finished."""
    side: dict = {}

    def side_job() -> None:
        time.sleep(1.5)  # let the load settle first
        side["t0"] = time.monotonic()
        try:
            side["result"] = during()
        finally:
            side["t1"] = time.monotonic()

    t_start = time.monotonic()
    load = SearchClients(base_url, CLIENTS, QUESTIONS, MAX_REQUESTS)
    helper = threading.Thread(target=side_job, daemon=True) if during else None
    if helper:
        helper.start()
    while time.monotonic() - t_start < HARD_CAP_SECONDS:
        time.sleep(0.2)
        full = load.count() >= MAX_REQUESTS
        if full or (time.monotonic() - t_start >= LOAD_SECONDS and not (helper and helper.is_alive())):
            break
    records = load.stop(timeout=150)
    if helper:
        helper.join(timeout=150)
    return records, side


def test_searches_under_load_while_a_document_is_uploaded(fresh, servers, tmp_path):
    index, corpus = fresh
    srv = servers(index, tmp_path / "server.log")
    records, side = run_load(srv.url, lambda: upload_and_wait(srv.url, "鸿雁驿站学习材料.txt", UPLOAD_TEXT.encode("utf-8")))

    # The upload is answered at once (202, a queued job); the side job lasts until the job is done.
    status, job, _ = side["result"]
    assert status == 202, job
    assert job["state"] == "done", job
    assert job["files"][0]["status"] == "added" and job["files"][0]["doc_ids"] == ["鸿雁驿站学习材料.txt"]
    assert records, "no search was made"
    failed = [r for r in records if r["status"] != 200 or r["hits"] == 0]
    assert not failed, f"{len(failed)} of {len(records)} searches failed, e.g. {failed[:3]}"
    during = [r for r in records if r["t0"] < side["t1"] and r["t1"] > side["t0"]]
    assert len(during) >= CLIENTS, "searches really ran while the upload was being indexed"
    assert len(records) <= MAX_REQUESTS + CLIENTS
    # Afterwards the uploaded document is findable, and it is in the corpus.
    status, body, _ = search(srv.url, UPLOAD_TERM, "keyword")
    assert status == 200 and body["results"][0]["doc_id"] == "鸿雁驿站学习材料.txt"
    status, body, _ = search(srv.url, "鸿雁驿站的学习安排", "semantic")
    assert status == 200 and "鸿雁驿站学习材料.txt" in [h["doc_id"] for h in body["results"]]
    assert (corpus / "鸿雁驿站学习材料.txt").is_file()
    assert http("GET", srv.url + "api/health")[1]["documents"] == 3
    srv.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text("utf-8")


# ---------------------------------------------------------------------------- a CLI writer beside the server
def _wait_marker(index: Path, point: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    marker = index / f".paused-{point}"
    deadline = time.monotonic() + timeout
    while not (marker.exists() and marker.read_text("utf-8").strip() == str(proc.pid)):
        assert proc.poll() is None, f"the CLI writer exited ({proc.returncode}) before pausing at {point}"
        assert time.monotonic() < deadline, f"the CLI writer did not reach {point}"
        time.sleep(0.05)


def test_upload_while_a_cli_writer_holds_the_lock_then_is_killed(fresh, servers, tmp_path):
    index, corpus = fresh
    srv = servers(index, tmp_path / "server.log", PARTYQA_LOCK_TIMEOUT="1")
    cli_doc = tmp_path / "命令行材料.txt"
    cli_doc.write_text("命令行材料\n\n晨光讲堂每周一早上七点开讲，由党员轮流主讲党的理论知识。", "utf-8")
    writer = subprocess.Popen([*CMD, "--index-dir", str(index), "-q", "add", str(cli_doc)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=_env(PARTYQA_PAUSE_AT="keyword", PARTYQA_PAUSE_SECONDS="300"))
    try:
        _wait_marker(index, "keyword", writer)
        # The server cannot write now, but the upload is accepted at once as a job (202), never refused.
        status, body, headers = upload(srv.url, "网页上传.txt", "网页上传\n\n鸿雁驿站开放时间为每天下午。".encode())
        assert status == 202 and headers.get("Location") == f"/api/jobs/{body['job']['id']}", body
        job_id = body["job"]["id"]
        time.sleep(3)  # several lock timeouts (PARTYQA_LOCK_TIMEOUT=1): the job waits for the writer
        status, job, _ = http("GET", f"{srv.url}api/jobs/{job_id}")
        assert status == 200 and job["state"] in ("queued", "reading"), job
        # ...and the server still searches, on the last committed generation.
        status, body, _ = search(srv.url, "基层党支部如何做好监督者")
        assert status == 200 and body["results"][0]["doc_id"] == SEED_DOC
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=120)
    assert writer.returncode == -signal.SIGKILL
    # After the kill the lock is free: the waiting job runs; the killed writer's document never appeared.
    deadline = time.monotonic() + 300
    while (job := http("GET", f"{srv.url}api/jobs/{job_id}")[1])["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["state"] == "done" and job["files"][0]["status"] == "added", job
    status, body, _ = search(srv.url, "晨光讲堂", "keyword")
    assert status == 200 and "命令行材料.txt" not in [h["doc_id"] for h in body["results"]]
    # Re-running the killed CLI command completes it; the running server picks up the new generation.
    proc = subprocess.run([*CMD, "--index-dir", str(index), "-q", "add", str(cli_doc), "--json"],
                          capture_output=True, text=True, env=_env(PARTYQA_LOCK_TIMEOUT="0"), timeout=300)
    assert proc.returncode == 0 and json.loads(proc.stdout)["added"] == ["命令行材料.txt"], proc.stderr
    status, body, _ = search(srv.url, "晨光讲堂", "keyword")
    assert status == 200 and body["results"][0]["doc_id"] == "命令行材料.txt"
    status, docs, _ = http("GET", srv.url + "api/documents")
    assert {d["doc_id"] for d in docs["documents"]} == {SEED_DOC, REG_DOC, "网页上传.txt", "命令行材料.txt"}
    assert not list(corpus.glob(".partyqa-staged-*"))


def test_server_killed_during_an_upload(fresh, servers, tmp_path):
    """SIGKILL `partyqa serve` while it embeds an upload: the upload was keyword-committed first, so after a restart
    it is there, searchable by keyword at once, and its pending passages are embedded; nothing is lost."""
    index, corpus = fresh
    srv = servers(index, tmp_path / "server.log", PARTYQA_PAUSE_AT="embedding", PARTYQA_PAUSE_SECONDS="300")
    before = http("GET", srv.url + "api/documents")[1]
    outcome: dict = {}

    def send() -> None:
        try:
            outcome["response"] = upload(srv.url, "鸿雁驿站学习材料.txt", UPLOAD_TEXT.encode("utf-8"))
        except Exception as exc:  # not expected: the upload is answered before the embedding starts
            outcome["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    _wait_marker(index, "embedding", srv.proc)
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=120)
    sender.join(timeout=120)
    # The upload was answered (202) before its passages were embedded; it was keyword-ready when the server died.
    assert outcome.get("response", (None,))[0] == 202, outcome
    assert (corpus / "鸿雁驿站学习材料.txt").is_file() and not list(corpus.glob(".partyqa-staged-*"))

    # The restarted server has the document (searchable by keyword at once) and embeds its pending passages.
    again = servers(index, tmp_path / "server2.log")
    docs = {d["doc_id"] for d in http("GET", again.url + "api/documents")[1]["documents"]}
    assert docs == {d["doc_id"] for d in before["documents"]} | {"鸿雁驿站学习材料.txt"}
    assert search(again.url, UPLOAD_TERM, "keyword")[1]["results"][0]["doc_id"] == "鸿雁驿站学习材料.txt"
    deadline = time.monotonic() + 300
    while (health := http("GET", again.url + "api/health")[1]).get("pending_vectors"):
        assert time.monotonic() < deadline, health
        time.sleep(0.5)
    status, body, _ = search(again.url, "鸿雁驿站的学习安排", "semantic")
    assert status == 200 and "鸿雁驿站学习材料.txt" in [h["doc_id"] for h in body["results"]]
    again.stop()
    with Engine.open(index, Config()) as eng:
        gen = eng._state()
        assert gen.keyword.count() == gen.vectors.count() == len(gen.passages)


def test_two_concurrent_uploads_both_land(fresh, servers, tmp_path):
    """Two uploads at once through the server: both are accepted (202), the second job queued behind the first."""
    index, corpus = fresh
    srv = servers(index, tmp_path / "server.log")
    results: dict[str, tuple] = {}

    def send(name: str, term: str) -> None:
        results[name] = upload_and_wait(srv.url, name, f"{name[:-4]}\n\n{term}每月开展一次集中学习，党员轮流领学。".encode())

    threads = [threading.Thread(target=send, args=(f"{x}.txt", f"{x}字号学习小组")) for x in ("甲", "乙")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for name in ("甲.txt", "乙.txt"):
        status, job, _ = results[name]
        assert status == 202 and job["state"] == "done" and job["files"][0]["status"] == "added", job
        status, body, _ = search(srv.url, f"{name[0]}字号学习小组", "keyword", k=1)
        assert body["results"][0]["doc_id"] == name
    with Engine.open(index, Config()) as eng:
        gen = eng._state()
        assert gen.keyword.count() == gen.vectors.count() == len(gen.passages)
        assert len(eng.documents()) == 4


def test_bad_questions_over_http_are_400_json(fresh, servers, tmp_path):
    index, _ = fresh
    srv = servers(index, tmp_path / "server.log")
    for q, code in [("？！……", "bad_question"), ("🙂🎉", "bad_question"), ("", "empty_question"),
                    ("党" * 501, "question_too_long")]:
        status, body, _ = search(srv.url, q)
        assert status == 400 and body["error"]["code"] == code, (q, body)
        assert body["error"]["message_zh"] and body["error"]["message_en"]
    status, body, _ = search(srv.url, "党支部 AND (监督 OR *")  # query syntax is plain text
    assert status == 200 and body["results"]


def test_index_damaged_while_serving_gives_a_clear_error(fresh, servers, tmp_path):
    """If CURRENT is damaged under a running server, API calls fail with JSON that says how to recover (no hang,
    no traceback to users)."""
    index, _ = fresh
    srv = servers(index, tmp_path / "server.log")
    assert search(srv.url, "三会一课")[0] == 200
    (index / "CURRENT").write_text("garbage{", "utf-8")
    status, body, _ = search(srv.url, "三会一课")
    assert status >= 500 and "error" in body and "Traceback" not in json.dumps(body)
    assert status == 503 and "index --rebuild" in body["error"]["message_en"], body
    # Once the file is repaired (here: CURRENT restored by hand), the same server answers again.
    (index / "CURRENT").write_text(json.dumps({"generation": _newest_generation(index)}), "utf-8")
    assert search(srv.url, "三会一课")[0] == 200


def _newest_generation(index: Path) -> int:
    return max(int(p.name.split("-")[1]) for p in index.glob("gen-*") if not p.name.endswith(".tmp"))


def test_a_killed_or_broken_upload_leaves_the_index_and_spool_as_they_were(fresh, servers, tmp_path):
    """SIGKILL the server when an upload's files are accepted but no job holds them yet, and cut another upload
    off mid-body: the index, its data folder and its upload spool are as before; the restarted server clears what
    the killed one left, and takes the next upload."""
    import socket
    import urllib.parse

    index, corpus = fresh
    incoming = index / "jobs" / "incoming"
    srv = servers(index, tmp_path / "server.log", PARTYQA_PAUSE_AT="upload", PARTYQA_PAUSE_SECONDS="300")
    before = sorted(d["doc_id"] for d in http("GET", srv.url + "api/documents")[1]["documents"])
    generation = json.loads((index / "CURRENT").read_text("utf-8"))["generation"]
    corpus_files = sorted(p.relative_to(corpus) for p in corpus.rglob("*"))

    # An upload cut off by its client before its body ended: nothing reaches the app, nothing is left.
    host, port = urllib.parse.urlsplit(srv.url).hostname, urllib.parse.urlsplit(srv.url).port
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.sendall(b"POST /api/documents HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 5000000\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"files\"; "
                     b"filename=\"cut.txt\"\r\n\r\n" + "党支部".encode() * 100_000)
    status, health, _ = http("GET", srv.url + "api/health")
    assert status == 200 and not list(incoming.rglob("*.part")), list(incoming.rglob("*"))

    outcome: dict = {}
    sender = threading.Thread(target=lambda: outcome.update(r=_try(lambda: upload(srv.url, "半途材料.txt",
                                                                                 UPLOAD_TEXT.encode("utf-8")))))
    sender.start()
    _wait_marker(index, "upload", srv.proc)
    accepted = list(incoming.glob("upload-*/半途材料.txt"))
    assert len(accepted) == 1 and accepted[0].read_bytes() == UPLOAD_TEXT.encode("utf-8")
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=120)
    sender.join(timeout=120)
    (index / ".paused-upload").unlink(missing_ok=True)
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*")) == corpus_files
    with Engine.open(index, Config()) as eng:
        assert eng.stats()["generation"] == generation and sorted(eng.doc_ids()) == before

    again = servers(index, tmp_path / "server2.log")
    assert not list(incoming.rglob("*")), list(incoming.rglob("*"))
    assert sorted(d["doc_id"] for d in http("GET", again.url + "api/documents")[1]["documents"]) == before
    assert not [j for j in http("GET", again.url + "api/jobs")[1]["jobs"] if j["state"] not in ("done", "failed")]
    status, job, _ = upload_and_wait(again.url, "半途材料.txt", UPLOAD_TEXT.encode("utf-8"))
    assert status == 202 and job["state"] == "done", job
    assert (corpus / "半途材料.txt").stat().st_nlink == 1 and not list(incoming.rglob("*.part"))


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # the server was killed under the request
        return exc
