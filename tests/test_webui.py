"""Flask test-client tests of the web UI and JSON API, on a real Engine over a small real corpus."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from markupsafe import escape

from conftest import ROOT, SEED, with_seed_cache
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import HashEncoder  # noqa: E402
from indexer import Config, Engine  # noqa: E402
from webui import create_app, serve  # noqa: E402
from webui.render import document_blocks, highlight_html  # noqa: E402
from webui.uploads import UploadNameError, sanitize_filename  # noqa: E402

SEED_ID = SEED.name
RULES_ID = "规章/支部工作规则.md"  # a doc id with "/" and Chinese
XSS_ID = "安全测试.txt"

RULES_MD = """# 支部工作规则

## 第一章 总则

第一条 为规范党支部工作，加强党员教育管理，制定本规则。

第二条 党支部每月召开一次支部委员会会议，每季度召开一次党员大会。

## 第二章 组织生活

第三条 党支部应当坚持“三会一课”制度，党小组会一般每月召开一次。

第四条 党支部书记每年至少讲一次党课，党员应当按时足额交纳党费。
"""

XSS_TXT = """安全测试<script>alert('title')</script>文档

本文档用于检验页面转义：其中含有脚本 <script>alert(1)</script> 以及图片 <img src=x onerror=alert(1)> 标签，党费收缴工作要规范透明。

第二段说明：任何文档内容都必须作为文本显示。
"""

FINAL = ("done", "failed")
ACTIVE = ("queued", "reading", "keyword-ready", "embedding")
JOB_STATES = ("queued", "reading", "keyword-ready", "embedding", "done", "failed")
JOB_KEYS = {"id", "kind", "state", "created_at", "started_at", "finished_at", "files", "passages_total",
            "passages_embedded", "rate", "eta_seconds", "queue_position", "report", "error", "summary"}
REQUIRED_HIT_FIELDS = {"rank", "pid", "doc_id", "title", "section", "text", "score", "keyword_rank", "semantic_rank",
                       "terms", "best_sentence", "best_span", "highlights", "start", "end", "ordinal"}


def _write_corpus(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED, dest / SEED.name)
    (dest / "规章").mkdir(exist_ok=True)
    (dest / RULES_ID).write_text(RULES_MD, encoding="utf-8")
    (dest / XSS_ID).write_text(XSS_TXT, encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory, seed_cache) -> Engine:
    """A real index (keyword + e5 vectors) over the seed essay and two small documents; read-only in tests (the
    essay's vectors come from the run's seed cache)."""
    base = tmp_path_factory.mktemp("webui-read")
    eng = Engine.open(with_seed_cache(seed_cache, base / "index"), Config())
    report = eng.index(_write_corpus(base / "corpus"))
    assert not report.errors, report.errors
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def writable(built, tmp_path_factory) -> Engine:
    """A second index for upload/delete tests, built from a copy of the first (embeddings come from its cache)."""
    base = tmp_path_factory.mktemp("webui-write")
    shutil.copytree(built.root, base / "index")
    eng = Engine.open(base / "index", Config())
    report = eng.index(_write_corpus(base / "corpus"))
    assert not report.errors, report.errors
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch):
    monkeypatch.delenv("PARTYQA_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("PARTYQA_TOKENS_FILE", raising=False)


@pytest.fixture()
def client(built):
    return create_app(built, Config()).test_client()


@pytest.fixture()
def wclient(writable):
    return create_app(writable, Config()).test_client()


def _upload(client, files: list[tuple[bytes, str]], headers: dict | None = None):
    data = {"files": [(io.BytesIO(content), name) for content, name in files]}
    return client.post("/api/documents", data=data, content_type="multipart/form-data", headers=headers or {})


def _wait_job(client, job_id: str, states: tuple[str, ...] = FINAL, timeout: float = 180) -> tuple[dict, list[str]]:
    """Poll GET /api/jobs/<id> until the job is in one of ``states``; (job, the states seen on the way)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        resp = client.get(f"/api/jobs/{job_id}")
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        job = resp.get_json()
        if not seen or seen[-1] != job["state"]:
            seen.append(job["state"])
        if job["state"] in states:
            return job, seen
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout} s: {seen}"
        time.sleep(0.05)


def _upload_done(client, files: list[tuple[bytes, str]], headers: dict | None = None) -> tuple[dict, dict]:
    """Upload, expect 202 with a job, and wait for it to end; (the 202 body, the finished job)."""
    resp = _upload(client, files, headers)
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    job, _ = _wait_job(client, body["job"]["id"])
    return body, job


def _delete_done(client, doc_id: str, headers: dict | None = None) -> list[str]:
    """DELETE a document: 200 with the result, or 202 with a job (queued behind another) polled until it ends."""
    resp = client.delete(f"/api/documents/{quote(doc_id)}", headers=headers or {})
    assert resp.status_code in (200, 202), resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert body["job"]["kind"] == "remove"
    if resp.status_code == 202:
        assert resp.headers["Location"] == f"/api/jobs/{body['job']['id']}"
        job, _ = _wait_job(client, body["job"]["id"])
        assert job["state"] == "done", job
        return [d for f in job["files"] if f["state"] == "done" for d in f["doc_ids"]]
    return body["removed"]


def _assert_json_error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    err = body["error"]
    assert err["message_zh"] and err["message_en"]
    assert re.search(r"[\u4e00-\u9fff]", err["message_zh"]), err
    if code:
        assert err["code"] == code, err
    raw = resp.get_data(as_text=True)
    assert "Traceback" not in raw and "<html" not in raw.lower()
    return body


# ---------------------------------------------------------------------------- API: health and search
def test_health_reports_counts_and_model(client, built):
    body = client.get("/api/health").get_json()
    stats = built.stats()
    assert body["status"] == "ok"
    assert body["documents"] == 3 == stats["documents"]
    assert body["passages"] == stats["passages"] > 10
    assert body["model"] == stats["model"] and body["model"]


def test_api_search_get_keyword(client):
    t0 = time.perf_counter()
    resp = client.get("/api/search", query_string={"q": "党支部怎样当好监督者", "mode": "keyword", "k": 3})
    elapsed_ms = (time.perf_counter() - t0) * 1000
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["question"] == "党支部怎样当好监督者" and body["mode"] == "keyword"
    # took_ms is the search's own time: a positive number of milliseconds (rounded to 0.1) within the request's
    # wall time measured here around it
    assert type(body["took_ms"]) in (int, float) and 0 < body["took_ms"] <= elapsed_ms + 0.1, (body["took_ms"],
                                                                                             elapsed_ms)
    hits = body["results"]
    assert 1 <= len(hits) <= 3
    assert REQUIRED_HIT_FIELDS <= set(hits[0])
    assert hits[0]["doc_id"] == SEED_ID
    assert "监督" in hits[0]["text"]
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert all(h["semantic_rank"] is None and h["keyword_rank"] for h in hits)


def test_took_ms_is_the_search_time_in_milliseconds(client, built, monkeypatch):
    """took_ms counts the engine's search, in milliseconds: a search held 250 ms reports at least 250 (not 0.25,
    not the time before or after the search), and no more than the request took."""
    def held(method):
        def run(*args, **kwargs):
            time.sleep(0.25)
            return method(*args, **kwargs)
        return run

    monkeypatch.setattr(built, "search", held(built.search))
    monkeypatch.setattr(built, "search_many", held(built.search_many))
    for path, payload, field in (("/api/search", {"question": "党费", "mode": "keyword"}, "took_ms"),
                                 ("/api/batch", {"questions": ["党费"], "mode": "keyword"}, "took_ms")):
        t0 = time.perf_counter()
        resp = client.post(path, json=payload)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        took = resp.get_json()[field]
        assert 250 <= took <= elapsed_ms + 0.1, (path, took, elapsed_ms)


def test_api_search_post_matches_get_and_engine(client, built):
    q = "党员应当按时交纳党费吗"
    got = client.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 4}).get_json()
    posted = client.post("/api/search", json={"question": q, "mode": "keyword", "k": 4}).get_json()
    direct = built.search(q, k=4, mode="keyword")
    assert [h["pid"] for h in got["results"]] == [h["pid"] for h in posted["results"]] == [h["pid"] for h in direct]
    assert posted["results"][0]["doc_id"] in (RULES_ID, XSS_ID)


def test_api_search_hybrid_uses_both_rankings(client):
    body = client.post("/api/search", json={"q": "基层党支部如何做好服务者", "k": 5}).get_json()
    assert body["mode"] == "hybrid"
    hits = body["results"]
    assert len(hits) == 5
    assert any(h["semantic_rank"] for h in hits) and any(h["keyword_rank"] for h in hits)
    assert hits[0]["doc_id"] == SEED_ID


def test_api_semantic_mode(client):
    hits = client.get("/api/search", query_string={"q": "怎样给职工群众办实事", "mode": "semantic"}).get_json()["results"]
    assert hits and all(h["semantic_rank"] and h["keyword_rank"] is None for h in hits)


def test_api_batch(client, built):
    qs = ["党支部怎样当好监督者", "党小组会多久召开一次"]
    body = client.post("/api/batch", json={"questions": qs, "mode": "keyword", "k": 2}).get_json()
    assert body["mode"] == "keyword" and len(body["results"]) == 2
    for q, hits in zip(qs, body["results"]):
        assert [h["pid"] for h in hits] == [h["pid"] for h in built.search(q, k=2, mode="keyword")]
    assert body["results"][1][0]["doc_id"] == RULES_ID
    bare = client.post("/api/batch", json=qs).get_json()  # a bare list works too (default mode and k)
    assert len(bare["results"]) == 2 and bare["mode"] == "hybrid"


@pytest.mark.parametrize("params, code", [
    ({}, "missing_question"),
    ({"q": ""}, "empty_question"),
    ({"q": "   "}, "empty_question"),
    ({"q": "党" * 501}, "question_too_long"),
    ({"q": "党支部", "mode": "fuzzy"}, "bad_mode"),
    ({"q": "党支部", "k": "0"}, "bad_k"),
    ({"q": "党支部", "k": "abc"}, "bad_k"),
    ({"q": "党支部", "k": "1000"}, "bad_k"),
])
def test_api_search_bad_input_is_400_json(client, params, code):
    _assert_json_error(client.get("/api/search", query_string=params), 400, code)


def test_api_post_bad_bodies(client):
    _assert_json_error(client.post("/api/search", data="q=党支部", content_type="text/plain"), 400, "bad_json")
    _assert_json_error(client.post("/api/search", json=["党支部"]), 400, "bad_json")
    _assert_json_error(client.post("/api/batch", json={"questions": []}), 400, "bad_batch")
    _assert_json_error(client.post("/api/batch", json={"questions": "党支部"}), 400, "bad_batch")
    body = _assert_json_error(client.post("/api/batch", json=["党支部", " "]), 400, "empty_question")
    assert "第 2 个" in body["error"]["message_zh"]
    _assert_json_error(client.post("/api/batch", json=["党支部"] * 101), 400, "batch_too_large")
    _assert_json_error(client.post("/api/batch", json=[1, 2]), 400, "bad_question")


def test_api_unknown_route_and_method_are_json(client):
    _assert_json_error(client.get("/api/nothing-here"), 404)
    _assert_json_error(client.put("/api/search", json={"q": "x"}), 405)
    _assert_json_error(client.get("/api/documents/没有这个文档.txt"), 404, "unknown_document")


class _BrokenSearch:
    """The real engine, except that search raises an unexpected error (a bug must not leak a traceback)."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def search(self, *args, **kwargs):
        raise RuntimeError("secret internal detail /srv/partyqa")


def test_internal_error_is_json_without_traceback(built):
    c = create_app(_BrokenSearch(built), Config()).test_client()
    body = _assert_json_error(c.get("/api/search?q=党支部"), 500, "internal_error")
    assert "secret internal detail" not in json.dumps(body)
    page = c.get("/?q=党支部")
    assert page.status_code == 500 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "服务器内部错误" in text and "secret internal detail" not in text and "Traceback" not in text


# ---------------------------------------------------------------------------- API: documents
def test_api_documents_list_and_one(client, built):
    body = client.get("/api/documents").get_json()
    ids = sorted(d["doc_id"] for d in body["documents"])
    assert ids == sorted([SEED_ID, RULES_ID, XSS_ID]) and body["count"] == 3
    for d in body["documents"]:
        assert {"title", "kind", "passages", "added_at"} <= set(d)
    one = client.get(f"/api/documents/{quote(RULES_ID)}").get_json()
    assert one["doc_id"] == RULES_ID and one["title"] == "支部工作规则"
    assert "三会一课" in one["text"]
    assert [p["ordinal"] for p in one["passages"]] == sorted(p["ordinal"] for p in one["passages"])
    for p in one["passages"]:
        assert one["text"][p["start"]:p["end"]] == p["text"]


# ---------------------------------------------------------------------------- HTML pages
def test_home_page_examples_come_from_the_corpus(client, built):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '<meta name="viewport"' in html
    assert 'name="q"' in html and 'value="keyword"' in html and 'value="semantic"' in html
    examples = re.findall(r'<li><a href="(/\?q=[^"]+)">([^<]+)</a></li>', html)
    assert examples, "no example questions on the empty page"
    corpus_text = "\n".join(built.document(d["doc_id"])["text"] for d in built.documents())
    for href, question in examples:
        core = re.sub(r"^如何|有哪些要求？$|的主要内容是什么？$|？$", "", question)
        assert core and core in corpus_text, f"example {question!r} is not derived from the corpus"
        assert unquote(href.split("q=")[1].split("&")[0]) == question
    assert "已收录 3 篇文档" in html


def test_no_external_resources(client):
    for path in ("/", "/documents", f"/doc/{quote(SEED_ID)}", "/?q=党支部"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r'(src|href)="(https?:)?//', html), path
    css = client.get("/static/style.css").get_data(as_text=True)
    assert "@import" not in css and "url(http" not in css and "@font-face" not in css
    assert client.get("/static/app.js").status_code == 200


def test_results_page_shows_highlighted_hits(client, built):
    q = "党支部怎样当好监督者"
    resp = client.get("/", query_string={"q": q, "mode": "keyword", "k": 3})
    html = resp.get_data(as_text=True)
    hits = built.search(q, k=3, mode="keyword")
    assert f'value="{q}"' in html  # the question stays in the box
    assert len(re.findall(r'<li class="result[ "]', html)) == len(hits)
    assert "基层党支部工作论文" in html
    assert "<mark>" in html and html.count('<strong class="answer">') <= 1  # the strong mark: the top card only
    top = hits[0]
    for part in [s.strip() for s in top["section"].split(">") if s.strip()]:
        assert part in html
    link = f'/doc/{quote(top["doc_id"])}?p={top["ordinal"]}'
    assert link in html and f'#p-{top["ordinal"]}' in html
    assert "查看原文" in html and "关键词 第 1 名" in html
    # the value="keyword" radio is checked and the k select keeps 3
    assert re.search(r'value="keyword"\s+checked', html) and re.search(r'<option value="3"\s+selected', html)


def test_results_link_to_document_with_slash_in_id(client):
    html = client.get("/", query_string={"q": "党小组会多久召开一次", "mode": "keyword"}).get_data(as_text=True)
    links = re.findall(r'href="(/doc/[^"#]+)#p-(\d+)"', html)
    rules = [(u, p) for u, p in links if unquote(u.split("?")[0]) == f"/doc/{RULES_ID}"]
    assert rules, links
    url, ordinal = rules[0]
    page = client.get(url.replace("&amp;", "&"))
    assert page.status_code == 200
    doc_html = page.get_data(as_text=True)
    assert f'id="p-{ordinal}"' in doc_html and "返回搜索结果" in doc_html


@pytest.mark.parametrize("q, expect", [("", "问题为空"), ("   ", "问题为空"), ("党" * 600, "问题过长")])
def test_results_page_friendly_messages(client, q, expect):
    resp = client.get("/", query_string={"q": q})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert expect in html and 'id="search-error"' in html and 'class="result"' not in html


def test_results_page_nothing_found(client):
    html = client.get("/", query_string={"q": "量子计算机芯片", "mode": "keyword"}).get_data(as_text=True)
    assert 'id="no-results"' in html and "没有找到" in html and 'class="result"' not in html


def test_bad_mode_and_k_on_page_fall_back(client):
    html = client.get("/", query_string={"q": "党支部", "mode": "bogus", "k": "x"}).get_data(as_text=True)
    assert 'class="result"' in html and 'class="notice"' in html


def test_document_view_marks_chosen_passage_and_headings(client, built):
    doc = built.document(SEED_ID)
    chosen = doc["passages"][len(doc["passages"]) // 2]["ordinal"]
    resp = client.get(f"/doc/{quote(SEED_ID)}", query_string={"p": chosen})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for p in doc["passages"]:
        assert f'id="p-{p["ordinal"]}"' in html
    assert re.search(rf'class="doc-passage chosen" id="p-{chosen}"', html)
    assert html.count("doc-passage chosen") == 1
    assert f'data-chosen="p-{chosen}"' in html
    # numbered essay headings (一、…) are styled as headings
    assert re.search(r'<h2 class="doc-heading[^"]*"[^>]*>二、制度建设不放松', html)
    # every line of the cleaned text is on the page (escaped)
    for line in doc["text"].split("\n"):
        if line.strip():
            assert str(highlight_html(line.strip())) in html or line.strip().lstrip("#").strip() in html


def test_document_view_markdown_headings_and_articles(client):
    html = client.get(f"/doc/{quote(RULES_ID)}").get_data(as_text=True)
    assert re.search(r"<h\d class=\"doc-heading[^\"]*\"[^>]*>第一章 总则</h\d>", html)
    assert "## " not in html
    assert '<strong class="article-label">第三条</strong>' in html


def test_document_view_unknown_is_friendly_404(client):
    resp = client.get("/doc/不存在的文档.txt")
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "找不到该文档" in resp.get_data(as_text=True)


def test_documents_page_lists_documents(client, built):
    html = client.get("/documents").get_data(as_text=True)
    for d in built.documents():
        assert d["doc_id"] in html
        assert str(d["passages"]) in html
    assert 'id="upload-form"' in html and "multiple" in html and 'name="files"' in html
    assert f'data-url="/api/documents/{quote(RULES_ID)}"' in html
    assert 'id="login-open"' not in html and 'id="account"' not in html  # no token configured: no token UI
    # Every document's index state (all embedded here), the jobs panel and the every-page indicator.
    assert html.count('data-state="done">完成<') == len(built.documents())
    assert 'id="jobs-panel"' in html and "较大的文件需要几分钟" not in html
    home = client.get("/").get_data(as_text=True)
    assert 'id="job-indicator"' in home and 'aria-live="polite"' in home and 'data-api="/api/jobs"' in home


# ---------------------------------------------------------------------------- XSS
# The site's own scripts, and only they (curation.js: the 问答对 / 操作记录 pages and the admins' nav link).
OWN_SCRIPTS = ['<script src="/static/app.js" defer>', '<script src="/static/curation.js" defer>']


def test_xss_results_page_escapes_document_text(client):
    html = client.get("/", query_string={"q": "党费收缴", "mode": "keyword", "k": 5}).get_data(as_text=True)
    assert "安全测试" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == OWN_SCRIPTS
    assert not re.search(r"<img\b", html)


def test_xss_in_highlight_spans_and_query(client):
    html = client.get("/", query_string={"q": "<script>alert(9)</script>党费", "mode": "keyword"}).get_data(as_text=True)
    assert "&lt;script&gt;alert(9)" in html
    assert re.findall(r"<script[^>]*>", html) == OWN_SCRIPTS


def test_xss_document_page_and_list(client):
    for path in (f"/doc/{quote(XSS_ID)}?p=0", "/documents"):
        html = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;" in html, path
        assert re.findall(r"<script[^>]*>", html) == OWN_SCRIPTS, path
        assert not re.search(r"<img\b", html), path


def test_xss_json_api_has_no_raw_tags(client):
    resp = client.get("/api/search", query_string={"q": "党费收缴", "mode": "keyword"})
    raw = resp.get_data(as_text=True)
    assert "<script" not in raw and "<img" not in raw and "\\u003cscript>" in raw
    texts = [h["text"] for h in resp.get_json()["results"]]
    assert any("<script>alert(1)</script>" in t for t in texts)  # the value itself is unchanged
    doc_raw = client.get(f"/api/documents/{quote(XSS_ID)}").get_data(as_text=True)
    assert "<script" not in doc_raw and "<img" not in doc_raw
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


def test_highlight_html_escapes_before_wrapping():
    text = "甲<b>乙</b>丙&丁。戊己"
    html = str(highlight_html(text, [[1, 4], [5, 9], [50, 60], ["x", 1]], [0, 8]))
    assert "<b>" not in html and "&lt;b&gt;" in html and "&amp;" in html
    assert html.startswith('<strong class="answer">甲<mark>&lt;b&gt;</mark>')
    assert html.count("<strong") == 1 and html.count("</strong>") == 1
    # a mark crossing the end of the answer is split in two, never mis-nested; bad spans are ignored
    assert html == ('<strong class="answer">甲<mark>&lt;b&gt;</mark>乙<mark>&lt;/b</mark></strong>'
                    '<mark>&gt;</mark>丙&amp;丁。戊己')
    assert str(highlight_html("<i>x</i>")) == "&lt;i&gt;x&lt;/i&gt;"


def test_document_blocks_cover_text_once():
    text = "标题\n第一段。\n第二段。\n尾注"
    passages = [{"ordinal": 0, "start": 3, "end": 7, "section": ""}, {"ordinal": 1, "start": 8, "end": 12, "section": ""}]
    blocks = document_blocks(text, passages)
    assert [b["kind"] for b in blocks] == ["gap", "passage", "passage", "gap"]
    assert [str(line["html"]) for b in blocks for line in b["lines"]] == ["标题", "第一段。", "第二段。", "尾注"]


# ---------------------------------------------------------------------------- uploads and deletes
@pytest.mark.parametrize("raw, expected", [
    ("../../逃逸测试.txt", "逃逸测试.txt"),
    ("..\\..\\windows\\系统.md", "系统.md"),
    ("/etc/passwd.txt", "passwd.txt"),
    ("  党支部 工作.docx ", "党支部 工作.docx"),
    ("a\x00b\x1f<c>.pdf", "abc.pdf"),
    ("...隐藏.txt", "隐藏.txt"),
    ("报告..txt", "报告.txt"),
])
def test_sanitize_filename_keeps_chinese_and_drops_paths(raw, expected):
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", "..", "../..", "....", "/", "\x00\x01", " . "])
def test_sanitize_filename_refuses_empty(raw):
    with pytest.raises(UploadNameError):
        sanitize_filename(raw)


def test_sanitize_filename_limits_length():
    name = sanitize_filename("党" * 200 + ".txt")
    assert name.endswith(".txt") and len(name.encode("utf-8")) <= 200


def test_upload_answers_202_with_a_job_that_progresses_to_done(wclient, writable):
    before = writable.stats()
    text = "# 焦裕禄精神学习会\n\n焦裕禄精神学习会在兰考召开，全体党员参加，亲民爱民、艰苦奋斗。\n"
    resp = _upload(wclient, [(text.encode("utf-8"), "焦裕禄学习.md")])
    assert resp.status_code == 202, resp.get_data(as_text=True)
    body = resp.get_json()
    job = body["job"]
    assert JOB_KEYS <= set(job) and job["kind"] == "add" and job["state"] in JOB_STATES
    assert resp.headers["Location"] == f"/api/jobs/{job['id']}" and re.fullmatch(r"[\w.-]+", job["id"])
    assert [f["name"] for f in job["files"]] == ["焦裕禄学习.md"]
    assert body["files"] == [{"filename": "焦裕禄学习.md", "saved_as": "焦裕禄学习.md", "status": "queued",
                              "doc_ids": [], "reason": None}]
    done, seen = _wait_job(wclient, job["id"])
    assert done["state"] == "done" and seen[-1] == "done", seen
    assert all(JOB_STATES.index(a) < JOB_STATES.index(b) for a, b in zip(seen, seen[1:])), seen  # only forward
    f = done["files"][0]
    assert (f["state"], f["status"], f["doc_ids"]) == ("done", "added", ["焦裕禄学习.md"])
    assert done["passages_total"] == done["passages_embedded"] == f["passages"] == f["embedded"] > 0
    assert done["report"]["added"] == ["焦裕禄学习.md"] and "新增 1 篇" in done["summary"]
    assert done["finished_at"] and done["active"] is False
    after = writable.stats()
    assert after["passages"] == before["passages"] + f["passages"] and after.get("pending_vectors", 0) == 0
    doc = next(d for d in wclient.get("/api/documents").get_json()["documents"] if d["doc_id"] == "焦裕禄学习.md")
    assert (doc["state"], doc["embedded"]) == ("done", doc["passages"])
    # Embedded: the semantic half finds it too, not only the keyword half.
    hits = wclient.get("/api/search", query_string={"q": "焦裕禄精神", "mode": "semantic", "k": 3}).get_json()
    assert hits["results"][0]["doc_id"] == "焦裕禄学习.md"
    listed = wclient.get("/api/jobs").get_json()
    assert listed["jobs"][0]["id"] == job["id"] and listed["count"] == len(listed["jobs"])
    assert job["id"] not in {j["id"] for j in wclient.get("/api/jobs?active=1").get_json()["jobs"]}


def test_upload_several_files_then_search_and_reupload(wclient, writable):
    files = [("红旗渠精神学习会在三号会议室召开，全体党员参加。".encode("utf-8"), "红旗渠学习.txt"),
             ("# 志愿服务记录\n\n支部组织党员到敬老院开展志愿服务，共计二十人次。\n".encode("utf-8"), "志愿服务.md")]
    body, job = _upload_done(wclient, files)
    assert [f["saved_as"] for f in body["files"]] == ["红旗渠学习.txt", "志愿服务.md"]
    assert [(f["name"], f["status"]) for f in job["files"]] == [("红旗渠学习.txt", "added"), ("志愿服务.md", "added")]
    assert job["files"][0]["doc_ids"] == ["红旗渠学习.txt"]
    ids = {d["doc_id"] for d in wclient.get("/api/documents").get_json()["documents"]}
    assert {"红旗渠学习.txt", "志愿服务.md"} <= ids
    hits = wclient.get("/api/search", query_string={"q": "红旗渠精神", "mode": "keyword"}).get_json()["results"]
    assert hits[0]["doc_id"] == "红旗渠学习.txt"
    assert (writable.corpus_dir / "红旗渠学习.txt").is_file()
    _, again = _upload_done(wclient, files[:1])
    assert again["files"][0]["status"] == "unchanged" and again["state"] == "done"


def test_upload_path_traversal_lands_in_corpus(wclient, writable):
    content = "路径穿越测试文件：井冈山精神专题学习。".encode("utf-8")
    body, job = _upload_done(wclient, [(content, "../../穿越.txt")])
    assert body["files"][0]["saved_as"] == "穿越.txt" and job["files"][0]["status"] == "added"
    corpus = writable.corpus_dir
    assert (corpus / "穿越.txt").read_bytes() == content
    assert not (corpus.parent.parent / "穿越.txt").exists() and not (corpus.parent / "穿越.txt").exists()
    for raw in (json.dumps(body), json.dumps(job)):
        assert "/tmp/" not in raw and str(writable.root) not in raw


def test_upload_bad_extension_is_415_and_mixed_is_per_file(wclient, writable):
    n = len(writable.documents())
    body = _assert_json_error(_upload(wclient, [(b"MZ\x90\x00", "病毒.exe")]), 415, "unsupported_type")
    assert body["files"][0]["status"] == "error" and ".exe" in body["files"][0]["reason"]
    assert body["error"]["message_zh"].startswith("不支持的文件类型")
    assert len(writable.documents()) == n
    body, job = _upload_done(wclient, [(b"x", "a.exe"), ("延安精神学习材料。".encode("utf-8"), "延安.txt")])
    assert [f["status"] for f in body["files"]] == ["error", "queued"]
    assert body["files"][0]["reason"].startswith("不支持的文件类型")
    assert [(f["name"], f["status"]) for f in job["files"]] == [("延安.txt", "added")]
    assert not (writable.corpus_dir / "a.exe").exists()


def test_upload_refuses_missing_empty_and_nameless(wclient):
    _assert_json_error(wclient.post("/api/documents", data={}, content_type="multipart/form-data"), 400, "no_files")
    body = _assert_json_error(_upload(wclient, [(b"", "空文件.txt")]), 400, "bad_upload")
    assert body["error"]["message_zh"] == "文件为空。" and body["files"][0]["reason"].startswith("文件为空。 / ")
    _assert_json_error(_upload(wclient, [(b"abc", "../..")]), 400, "bad_upload")
    body, job = _upload_done(wclient, [("同名文件一：党史学习。".encode("utf-8"), "同名.txt"), (b"b", "同名.txt")])
    assert [f["status"] for f in body["files"]] == ["queued", "error"]
    assert body["files"][1]["reason"].startswith("同一次上传中文件名重复")


def test_upload_failed_parse_leaves_nothing(wclient, writable):
    stats = writable.stats()
    files = [(b"%PDF-1.4 this is not really a pdf", "损坏.pdf"), (b"PK\x03\x04 broken", "损坏.docx"),
             ('{"id": "ok-1"}\nnot json at all\n'.encode("utf-8"), "全坏.jsonl")]
    body, job = _upload_done(wclient, files)
    assert [f["status"] for f in body["files"]] == ["queued", "queued", "queued"]
    results = job["files"]
    assert [(f["name"], f["state"], f["status"]) for f in results] == [
        ("损坏.pdf", "failed", "error"), ("损坏.docx", "failed", "error"), ("全坏.jsonl", "failed", "error")]
    for f in results:  # Chinese first, then the engine's English
        assert " / " in f["reason"] and re.search(r"[\u4e00-\u9fff]", f["reason"].split(" / ")[0]), f["reason"]
    assert results[1]["reason"].startswith("文件已损坏，或不是 Word .docx 文件 / corrupt or not a Word .docx file")
    assert re.search(r"[\u4e00-\u9fff]", job["summary"]) and "失败" in job["summary"]
    after = writable.stats()
    assert (after["documents"], after["passages"]) == (stats["documents"], stats["passages"])
    ids = {d["doc_id"] for d in writable.documents()}
    assert "ok-1" not in ids and "损坏.pdf" not in ids
    for name in ("损坏.pdf", "损坏.docx", "全坏.jsonl"):
        assert not (writable.corpus_dir / name).exists()


def test_upload_jsonl_keeps_valid_lines_and_reports_bad_ones(wclient, writable):
    body = '{"id": "半坏-1", "text": "党小组会一般每月召开一次。"}\n{"id": "半坏-2"}\n'.encode("utf-8")
    _, job = _upload_done(wclient, [(body, "半坏.jsonl")])
    result = job["files"][0]
    assert result["doc_ids"] == ["半坏-1"] and result["status"] == "added"
    assert "line 2" in json.dumps(job, ensure_ascii=False)
    assert "半坏-1" in {d["doc_id"] for d in writable.documents()}
    assert "半坏-2" not in {d["doc_id"] for d in writable.documents()}


def test_upload_jsonl_records_are_reported(wclient):
    lines = ['{"id": "纪要-1", "title": "支委会纪要", "text": "支委会研究了发展党员计划。"}',
             '{"id": "纪要-2", "title": "党员大会纪要", "text": "党员大会选举产生新一届支部委员会。"}']
    _, job = _upload_done(wclient, [("\n".join(lines).encode("utf-8"), "会议纪要.jsonl"),
                                    ("单独文件：廉政教育。".encode("utf-8"), "廉政.txt")])
    files = job["files"]
    assert files[0]["status"] == "added" and sorted(files[0]["doc_ids"]) == ["纪要-1", "纪要-2"]
    assert files[1]["doc_ids"] == ["廉政.txt"]


def test_upload_too_large_is_413(writable):
    c = create_app(writable, Config(max_upload_mb=1)).test_client()
    n = len(writable.documents())
    _assert_json_error(_upload(c, [("党".encode("utf-8") * 400_000, "太大.txt")]), 413, "too_large")
    assert len(writable.documents()) == n


def _spool_files(engine: Engine) -> list[Path]:
    """What the upload spool of ``engine``'s index holds (bodies being received, accepted files not yet queued)."""
    folder = engine.root / "jobs" / "incoming"
    return sorted(folder.rglob("*")) if folder.is_dir() else []


def test_upload_is_written_once_and_moved_into_the_corpus(wclient, writable, monkeypatch):
    """The body lands once, in a spool file inside the index folder, written in chunks (never whole in memory) and
    hashed as it arrives; that same file (same inode) becomes the corpus file, and nothing reads it to hash it."""
    import indexer.index.sync as sync
    import webui.uploads as uploads

    bodies: list[tuple[Path, int]] = []  # (spool path, inode) of each body received
    chunks: list[int] = []
    real_init, real_write = uploads.SpooledUpload.__init__, uploads.SpooledUpload.write

    def init(self, folder):
        real_init(self, folder)
        bodies.append((self.path, os.fstat(self.fileno()).st_ino))

    def write(self, data):
        chunks.append(len(data))
        return real_write(self, data)

    hashed: list[str] = []
    real_sha1 = sync.file_sha1
    monkeypatch.setattr(uploads.SpooledUpload, "__init__", init)
    monkeypatch.setattr(uploads.SpooledUpload, "write", write)
    monkeypatch.setattr(sync, "file_sha1", lambda path: hashed.append(str(path)) or real_sha1(path))
    line = "一次写入材料：党支部组织党员学习党章党规，支部委员轮流领学，学习记录由组织委员整理后通报。\n"
    data = (line * 40_000).encode("utf-8")  # ~5 MB
    body, job = _upload_done(wclient, [(data, "一次写入材料.txt")])
    assert job["state"] == "done" and job["files"][0]["doc_ids"] == ["一次写入材料.txt"], job
    stored = writable.corpus_dir / "一次写入材料.txt"
    assert stored.read_bytes() == data
    assert len(bodies) == 1 and bodies[0][0].parent == writable.root / "jobs" / "incoming"
    assert os.stat(stored).st_ino == bodies[0][1], "the stored file is not the spooled body: it was copied"
    assert os.stat(stored).st_nlink == 1  # the job's spool link is gone with the job
    assert sum(chunks) == len(data) and max(chunks) <= 1 << 20 < len(data) // 4, max(chunks)
    assert not [h for h in hashed if Path(h).name.endswith("一次写入材料.txt")], hashed
    assert _spool_files(writable) == [] and not list(writable.corpus_dir.glob(".partyqa-staged-*"))
    _delete_done(wclient, "一次写入材料.txt")


def test_refused_uploads_leave_nothing_behind(writable):
    """Refused uploads (wrong type, empty, identical to an indexed file, too large, a broken body) leave no spool
    file, no job folder and the index as it was."""
    c = create_app(writable, Config(max_upload_mb=1)).test_client()
    def job_dirs() -> list[str]:
        folder = writable.root / "jobs"
        return sorted(p.name for p in folder.iterdir() if p.name != "incoming") if folder.is_dir() else []

    jobs = job_dirs()
    gen, docs = writable.stats()["generation"], sorted(writable.doc_ids())
    same = (writable.corpus_dir / RULES_ID).read_bytes()
    _assert_json_error(_upload(c, [(b"MZ\x90\x00", "tool.exe")]), 415, "unsupported_type")
    _assert_json_error(_upload(c, [(b"", "空.txt")]), 400, "bad_upload")
    _assert_json_error(_upload(c, [(same, "规则副本二.md")]), 409, "duplicate_upload")
    _assert_json_error(_upload(c, [("党".encode("utf-8") * 400_000, "太大.txt")]), 413, "too_large")
    boundary = "b0undary"
    broken = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"半截.txt\"\r\n"
              f"Content-Type: text/plain\r\n\r\n").encode("utf-8") + "党支部".encode("utf-8") * 1000  # no end
    resp = c.post("/api/documents", data=broken, content_type=f"multipart/form-data; boundary={boundary}")
    assert resp.status_code in (400, 202) and resp.status_code != 500, resp.get_data(as_text=True)[:300]
    if resp.status_code == 202:  # werkzeug may take a body without its closing boundary: then it is a normal job
        _wait_job(c, resp.get_json()["job"]["id"])
        _delete_done(c, "半截.txt")
    assert _spool_files(writable) == []
    assert job_dirs() == jobs
    assert writable.stats()["generation"] >= gen and sorted(writable.doc_ids()) == docs
    assert not [p for p in writable.corpus_dir.rglob("*") if p.name in ("tool.exe", "空.txt", "规则副本二.md", "太大.txt")]


def test_upload_falls_back_to_the_temp_dir_when_the_index_folder_cannot_spool(writable, tmp_path):
    """Where the upload spool cannot be made (here: its parent is a file), bodies go to the temp dir as before and
    the upload still lands."""
    app = create_app(writable, Config())
    (tmp_path / "a-file").write_text("x", "utf-8")
    app.extensions["partyqa"].incoming = tmp_path / "a-file" / "incoming"
    body, job = _upload_done(app.test_client(), [("回退上传：党员学习记录。".encode("utf-8"), "回退上传.txt")])
    assert job["state"] == "done" and job["files"][0]["doc_ids"] == ["回退上传.txt"], job
    assert (writable.corpus_dir / "回退上传.txt").read_text("utf-8") == "回退上传：党员学习记录。"
    _delete_done(app.test_client(), "回退上传.txt")


def test_a_killed_servers_spooled_bodies_are_cleared_at_start(writable):
    """A body left by a server killed mid-upload (its pid is gone) is deleted when the next app starts; one of a
    live process stays."""
    folder = writable.root / "jobs" / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    import subprocess
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    left = [folder / f"{dead_pid}-00ff00ff00ff00ff.part", folder / f"upload-{dead_pid}-abc" / "x.txt"]
    left[0].write_bytes(b"half an upload")
    left[1].parent.mkdir()
    left[1].write_bytes(b"accepted, never queued")
    mine = folder / f"{os.getpid()}-1234567812345678.part"
    mine.write_bytes(b"being received")
    create_app(writable, Config())
    assert not left[0].exists() and not left[1].parent.exists() and mine.exists()
    mine.unlink()


def test_unknown_job_is_404_bilingual_and_bad_limit_400(wclient):
    body = _assert_json_error(wclient.get("/api/jobs/20990101-000000-dead"), 404, "unknown_job")
    assert body["error"]["message_zh"].startswith("找不到任务")
    _assert_json_error(wclient.get("/api/jobs?limit=abc"), 400, "bad_limit")


def test_delete_document_goes_through_a_job(wclient, writable):
    _upload_done(wclient, [("待删除文档：红色家书诵读活动。".encode("utf-8"), "待删除.txt")])
    assert wclient.get(f"/api/documents/{quote('待删除.txt')}").status_code == 200
    resp = wclient.delete(f"/api/documents/{quote('待删除.txt')}?wait=30")
    # Nothing else queued: the removal job ends within the DELETE's wait, so the answer is the result.
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["removed"] == ["待删除.txt"]
    assert (body["job"]["kind"], body["job"]["state"]) == ("remove", "done")
    assert wclient.get(f"/api/jobs/{body['job']['id']}").get_json()["state"] == "done"
    _assert_json_error(wclient.get(f"/api/documents/{quote('待删除.txt')}"), 404)
    hits = wclient.get("/api/search", query_string={"q": "红色家书", "mode": "keyword"}).get_json()["results"]
    assert all(h["doc_id"] != "待删除.txt" for h in hits)
    assert not (writable.corpus_dir / "待删除.txt").exists()
    _assert_json_error(wclient.delete(f"/api/documents/{quote('待删除.txt')}"), 404, "unknown_document")


def test_token_protects_writes(writable):
    c = create_app(writable, Config(admin_token="s3cret-令牌")).test_client()
    doc = ("令牌测试：两学一做学习教育。".encode("utf-8"), "令牌测试.txt")
    _assert_json_error(_upload(c, [doc]), 401, "token_required")
    _assert_json_error(_upload(c, [doc], {"X-Admin-Token": "wrong"}), 403, "bad_token")
    assert "令牌测试.txt" not in {d["doc_id"] for d in writable.documents()}
    assert c.get("/api/search?q=两学一做&mode=keyword").status_code == 200  # reads need no token
    assert c.get("/api/jobs").status_code == 200  # job progress is a read
    token = "s3cret-令牌".encode("utf-8").decode("latin-1")  # HTTP headers travel as bytes
    _, job = _upload_done(c, [doc], {"X-Admin-Token": token})
    assert job["files"][0]["status"] == "added"
    url = f"/api/documents/{quote('令牌测试.txt')}"
    _assert_json_error(c.delete(url), 401)
    _assert_json_error(c.delete(url, headers={"Authorization": "Bearer nope"}), 403)
    assert _delete_done(c, "令牌测试.txt", {"Authorization": f"Bearer {token}"}) == ["令牌测试.txt"]
    page = c.get("/documents").get_data(as_text=True)  # the nav's 登录令牌; the writes hidden from no one ...
    assert 'id="login-open"' in page and 'id="upload-form" class="needs-editor" hidden' in page
    assert 'delete-btn needs-admin" type="button" hidden' in page and 'id="meta-edit" hidden>' in page
    assert 'id="upload-login-note">' in page
    page = c.get("/documents", headers={"X-Admin-Token": token}).get_data(as_text=True)  # ... shown to the admin
    assert 'id="upload-form" class="needs-editor" action' in page and 'id="meta-edit">' in page
    assert 'delete-btn needs-admin" type="button" data-url' in page and 'id="upload-login-note" hidden>' in page


def test_token_from_environment(writable, monkeypatch):
    monkeypatch.setenv("PARTYQA_ADMIN_TOKEN", "env-token")
    c = create_app(writable, Config()).test_client()
    _assert_json_error(c.delete("/api/documents/whatever.txt"), 401)
    _assert_json_error(c.delete("/api/documents/whatever.txt", headers={"X-Admin-Token": "env-token"}), 404)


def test_named_users_guard_upload_delete_and_metadata_and_are_audited(writable, tmp_path, monkeypatch):
    """With only a tokens file (issue 26): readers may not upload or delete, editors upload but may not delete or
    correct metadata, admins do all; each write is in the audit log under its user."""
    path = tmp_path / "tokens.txt"
    path.write_text("r-tok reader 王读者\ne-tok editor 李编辑\na-tok admin 张管理\n", "utf-8")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(path))
    c = create_app(writable, Config()).test_client()
    reader, editor, admin = ({"Authorization": f"Bearer {t}"} for t in ("r-tok", "e-tok", "a-tok"))
    doc = ("角色测试：三会一课制度落实情况。".encode("utf-8"), "角色测试.txt")
    _assert_json_error(_upload(c, [doc]), 401, "token_required")
    _assert_json_error(_upload(c, [doc], reader), 403, "forbidden")
    assert "角色测试.txt" not in {d["doc_id"] for d in writable.documents()}
    body, job = _upload_done(c, [doc], editor)
    assert job["state"] == "done" and job["files"][0]["status"] == "added"
    url = f"/api/documents/{quote('角色测试.txt')}"
    _assert_json_error(c.delete(url, headers=reader), 403, "forbidden")
    _assert_json_error(c.delete(url, headers=editor), 403, "forbidden")
    _assert_json_error(c.patch(url, json={"status": "已废止"}, headers=editor), 403, "forbidden")
    assert "角色测试.txt" in {d["doc_id"] for d in writable.documents()}
    patched = c.patch(url, json={"category": "制度"}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["category"] == "制度"
    assert _delete_done(c, "角色测试.txt", admin) == ["角色测试.txt"]
    _assert_json_error(c.get("/api/audit", headers=editor), 403)
    entries = c.get("/api/audit", headers=admin).get_json()["entries"]
    mine = [(e["who"], e["action"]) for e in entries if "角色测试.txt" in (e["target"] or [])
            or e["target"] == "角色测试.txt"]
    assert mine == [("张管理", "delete"), ("张管理", "metadata"), ("李编辑", "upload")], entries[:5]
    upload = next(e for e in entries if e["action"] == "upload" and e["target"] == ["角色测试.txt"])
    assert upload["job"] == body["job"]["id"]


def test_without_tokens_uploads_and_deletes_stay_open_and_are_audited_as_local(wclient, writable):
    _, job = _upload_done(wclient, [("本地用户：主题党日活动安排。".encode("utf-8"), "本地用户.txt")])
    assert job["state"] == "done"
    assert _delete_done(wclient, "本地用户.txt") == ["本地用户.txt"]
    entries = wclient.get("/api/audit").get_json()["entries"]
    assert [(e["who"], e["action"]) for e in entries if e["target"] == ["本地用户.txt"]] == [
        ("local", "delete"), ("local", "upload")]


def test_cross_site_write_is_refused(wclient, writable):
    n = len(writable.documents())
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    _assert_json_error(_upload(wclient, [("跨站上传".encode("utf-8"), "跨站.txt")], evil), 403, "cross_site")
    _assert_json_error(wclient.delete(f"/api/documents/{quote(SEED_ID)}", headers={"Origin": "http://evil.example"}),
                       403, "cross_site")
    assert len(writable.documents()) == n
    _, job = _upload_done(wclient, [("同源上传：遵义会议精神。".encode("utf-8"), "同源.txt")],
                          {"Origin": "http://localhost"})
    assert job["state"] == "done"


def test_searches_keep_working_during_upload(writable):
    app = create_app(writable, Config())
    big = "\n".join(f"第{i}段：基层党组织标准化建设的第{i}项措施，要求党员发挥先锋模范作用。" for i in range(1, 40))
    c = app.test_client()
    resp = _upload(c, [(big.encode("utf-8"), "标准化建设.txt")])
    assert resp.status_code == 202
    job_id = resp.get_json()["job"]["id"]
    statuses = []
    deadline = time.monotonic() + 300
    while True:
        job = c.get(f"/api/jobs/{job_id}").get_json()
        statuses.append(c.get("/api/search", query_string={"q": "党支部监督", "mode": "hybrid"}).status_code)
        if job["state"] in FINAL:
            break
        assert time.monotonic() < deadline, (f"upload job {job_id} did not end (done/failed) within 300 s: still "
                                             f"{job['state']} after {len(statuses)} searches")
    assert set(statuses) == {200}
    assert job["state"] == "done" and job["files"][0]["status"] == "added"


# ---------------------------------------------------------------------------- jobs with a held embedding stage
class GatedEncoder(HashEncoder):
    """The hash stand-in whose passage encoding waits while ``gate`` is closed: holds a job in its embedding
    stage for as long as a test needs (questions are encoded at once)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()

    def encode_passages(self, texts, batch_size: int = 16, progress: bool = False):
        assert self.gate.wait(120), "the test never opened the gate"
        return super().encode_passages(texts, batch_size, progress)


@pytest.fixture()
def gated(tmp_path, monkeypatch):
    """A real Engine (hash vectors) over the small corpus, whose passage embedding the test can hold."""
    import indexer.engine as engine_mod

    encoder = GatedEncoder()
    monkeypatch.setattr(engine_mod, "load_encoder", lambda cfg: encoder)
    eng = Engine.open(tmp_path / "index", Config())
    assert not eng.index(_write_corpus(tmp_path / "corpus")).errors
    yield eng, encoder
    encoder.gate.set()
    eng.close()


def _doc_states(client) -> dict[str, tuple[str, int, int]]:
    return {d["doc_id"]: (d["state"], d["embedded"], d["passages"])
            for d in client.get("/api/documents").get_json()["documents"]}


def test_second_upload_while_one_embeds_is_queued_and_both_finish(gated):
    eng, encoder = gated
    c = create_app(eng, Config()).test_client()
    first = "\n\n".join(f"第{i}条 延安整风学习第{i}项要求：理论联系实际，密切联系群众。" for i in range(1, 30))
    encoder.gate.clear()
    resp = _upload(c, [(first.encode("utf-8"), "延安整风.txt")])
    assert resp.status_code == 202
    one = resp.get_json()["job"]["id"]
    job, _ = _wait_job(c, one, ("keyword-ready", "embedding", "done", "failed"), timeout=60)
    assert job["state"] in ("keyword-ready", "embedding"), job  # held before its vectors
    # Keyword-ready: searchable now, and the documents list says so.
    hits = c.get("/api/search", query_string={"q": "延安整风学习", "mode": "keyword"}).get_json()["results"]
    assert hits and hits[0]["doc_id"] == "延安整风.txt"
    hybrid = c.get("/api/search", query_string={"q": "延安整风学习", "mode": "hybrid"}).get_json()["results"]
    assert hybrid and hybrid[0]["doc_id"] == "延安整风.txt"
    state, embedded, passages = _doc_states(c)["延安整风.txt"]
    assert state in ("keyword", "embedding") and embedded < passages
    html = c.get("/documents").get_data(as_text=True)
    assert re.search(r'data-state="(keyword|embedding)">(可检索 · 等待语义索引|语义索引中 \d+%)<', html), "no per-document state"
    assert 'id="job-indicator"' in html and 'id="jobs-panel"' in html

    # A second upload while the first embeds: accepted at once, never refused; searchable by keyword at once,
    # its vectors queued behind the first job's (one shared backlog, embedded in order).
    resp = _upload(c, [("第二次上传：古田会议精神学习记录。".encode("utf-8"), "古田会议.txt")])
    assert resp.status_code == 202, resp.get_data(as_text=True)
    two = resp.get_json()["job"]
    assert two["state"] in ACTIVE, two
    two, _ = _wait_job(c, two["id"], ("keyword-ready", "embedding", "done", "failed"), timeout=60)
    assert two["state"] in ("keyword-ready", "embedding") and two["passages_embedded"] == 0, two
    hits = c.get("/api/search", query_string={"q": "古田会议精神", "mode": "keyword"}).get_json()["results"]
    assert hits and hits[0]["doc_id"] == "古田会议.txt"
    active = c.get("/api/jobs?active=1").get_json()
    assert [j["id"] for j in active["jobs"]] == [two["id"], one] and active["active"] == 2
    assert all(j["active"] for j in active["jobs"])
    # Deleting while the jobs embed is not held up by them: the removal writes no vectors.
    resp = c.delete(f"/api/documents/{quote(XSS_ID)}")
    assert resp.status_code == 200 and resp.get_json()["removed"] == [XSS_ID], resp.get_data(as_text=True)
    assert c.get(f"/api/jobs/{one}").get_json()["state"] in ("keyword-ready", "embedding")

    encoder.gate.set()
    done_one, _ = _wait_job(c, one)
    done_two, _ = _wait_job(c, two["id"])
    assert (done_one["state"], done_two["state"]) == ("done", "done"), (done_one, done_two)
    assert done_one["passages_embedded"] == done_one["passages_total"] > 20
    assert done_two["finished_at"] >= done_one["finished_at"]
    assert c.get("/api/jobs?active=1").get_json()["jobs"] == []
    states = _doc_states(c)
    assert all(s == "done" and e == p for s, e, p in states.values()), states
    health = c.get("/api/health").get_json()
    assert health["pending_vectors"] == 0 and health["documents"] == len(states) == 4
    assert health["passages"] == sum(p for _, _, p in states.values())


def test_delete_with_wait_0_answers_202_with_the_job(wclient, writable):
    _upload_done(wclient, [("待删除文档二：南湖红船精神。".encode("utf-8"), "待删除二.txt")])
    resp = wclient.delete(f"/api/documents/{quote('待删除二.txt')}?wait=0")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    job = resp.get_json()["job"]
    assert job["kind"] == "remove" and job["state"] in ACTIVE + FINAL
    assert resp.headers["Location"] == f"/api/jobs/{job['id']}"
    done, _ = _wait_job(wclient, job["id"])
    assert done["state"] == "done" and [(f["name"], f["state"]) for f in done["files"]] == [("待删除二.txt", "done")]
    assert "待删除二.txt" not in {d["doc_id"] for d in writable.documents()}
    assert "删除 1 篇" in done["summary"]
    _assert_json_error(wclient.delete(f"/api/documents/{quote(SEED_ID)}?wait=soon"), 400, "bad_wait")
    assert SEED_ID in {d["doc_id"] for d in writable.documents()}


# ---------------------------------------------------------------------------- serving
def test_serve_with_waitress_prints_url_and_handles_concurrent_requests(built, capsys):
    servers = []
    ready = threading.Event()

    def on_ready(server):
        servers.append(server)
        ready.set()

    t = threading.Thread(target=serve, args=(built, "127.0.0.1", 0), kwargs={"threads": 4, "warm_up": False,
                                                                             "on_ready": on_ready}, daemon=True)
    t.start()
    assert ready.wait(120), "the waitress server did not call on_ready within 120 s"
    server = servers[0]
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        assert f"PartyQA 已启动: {base}/" in capsys.readouterr().out
        errors: list = []

        def worker(q):
            try:
                url = f"{base}/api/search?q={quote(q)}&mode=keyword"
                with urllib.request.urlopen(url, timeout=120) as r:
                    assert r.status == 200 and json.loads(r.read())["results"]
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(q,)) for q in ["党支部监督", "三会一课", "服务者", "党费"] * 3]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        with urllib.request.urlopen(f"{base}/", timeout=120) as r:
            assert "党建问答检索" in r.read().decode("utf-8")
        # a client that keeps its connection open (as a browser does) does not keep serve() running after close()
        import http.client

        held = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=120)
        held.request("GET", "/api/health")
        assert held.getresponse().read() and held.sock is not None  # kept alive
    finally:
        server.close()
        t.join(60)
    assert not t.is_alive(), "serve() still running 60 s after close() with a keep-alive connection open"


def test_empty_index_pages(tmp_path):
    eng = Engine.open(tmp_path / "index", Config())
    try:
        c = create_app(eng, Config()).test_client()
        html = c.get("/").get_data(as_text=True)
        assert 'id="empty-index"' in html and 'id="examples"' not in html
        assert c.get("/api/health").get_json()["documents"] == 0
        assert c.get("/api/search?q=党支部&mode=keyword").get_json()["results"] == []
        assert "没有找到" in c.get("/?q=党支部&mode=keyword").get_data(as_text=True)
        assert "还没有文档" in c.get("/documents").get_data(as_text=True)
        assert c.get("/api/documents").get_json() == {"count": 0, "total": 0, "documents": []}
    finally:
        eng.close()


# ---------------------------------------------------------------------------- round 2: citations, envelopes, filters
def test_every_hit_has_a_citation_and_every_answer_an_envelope(client, built):
    q = "党小组会多久召开一次"
    body = client.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 5}).get_json()
    direct = built.search(q, k=5, mode="keyword")
    assert body["answer_found"] == direct.answer_found and body["confidence"] == direct.envelope()["confidence"]
    assert body["results"] and all(h["citation"].startswith("《") for h in body["results"])
    rules = next(h for h in body["results"] if h["doc_id"] == RULES_ID)
    assert rules["citation"].startswith("《支部工作规则》第二章 组织生活"), rules["citation"]
    seed = client.get("/api/search", query_string={"q": "当好监督者", "mode": "keyword"}).get_json()["results"][0]
    assert seed["citation"] == f"《基层党支部工作论文》{seed['section']}"
    batch = client.post("/api/batch", json={"questions": [q, "党支部怎样当好监督者"], "k": 2, "mode": "keyword"}).get_json()
    assert [a["question"] for a in batch["answers"]] == batch["questions"]
    assert all(set(a) == {"question", "answer_found", "confidence", "semantic_share", "min_confidence"}
               for a in batch["answers"])
    assert all(h["citation"] for hits in batch["results"] for h in hits)
    assert all(isinstance(hits, list) and hits[0]["rank"] == 1 for hits in batch["results"])  # hit lists unchanged


def test_document_filter_in_search_and_batch(client):
    q = "党费"
    everywhere = client.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 10}).get_json()["results"]
    assert {h["doc_id"] for h in everywhere} >= {RULES_ID, XSS_ID}
    only = client.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 10, "doc": RULES_ID}).get_json()
    assert only["docs"] == [RULES_ID] and only["results"] and {h["doc_id"] for h in only["results"]} == {RULES_ID}
    folder = client.get("/api/search", query_string={"q": q, "mode": "keyword", "doc": "规章/"}).get_json()
    assert folder["docs"] == [RULES_ID]
    two = client.get("/api/search", query_string=[("q", q), ("mode", "keyword"), ("doc", RULES_ID), ("doc", XSS_ID)])
    assert {h["doc_id"] for h in two.get_json()["results"]} == {RULES_ID, XSS_ID}
    posted = client.post("/api/search", json={"q": q, "mode": "keyword", "doc": [XSS_ID]}).get_json()
    assert {h["doc_id"] for h in posted["results"]} == {XSS_ID}
    batch = client.post("/api/batch", json={"questions": [q, "监督"], "mode": "keyword", "doc": [SEED_ID]}).get_json()
    assert all(h["doc_id"] == SEED_ID for hits in batch["results"] for h in hits)
    body = _assert_json_error(client.get("/api/search", query_string={"q": q, "doc": "没有这个.txt"}), 400,
                              "unknown_document")
    assert "没有这个.txt" in body["error"]["message_zh"]


def test_results_page_document_picker_counts_and_filter(client, built):
    html = client.get("/", query_string={"q": "党费", "mode": "keyword"}).get_data(as_text=True)
    picker = html[html.index('id="doc-picker"'):html.index("</details>", html.index('id="doc-picker"'))]
    for d in built.documents():
        assert f'value="{d["doc_id"]}"' in picker
    url = re.search(r'data-counts="([^"]+)"', picker).group(1).replace("&amp;", "&")
    assert url.startswith("/api/doc_counts?q=") and 'id="doc-picker-legend" hidden' in picker
    counts = client.get(url).get_json()["counts"]  # the picker fetches them when opened
    assert counts[RULES_ID] >= 1 and counts[XSS_ID] >= 1
    filtered = client.get("/", query_string=[("q", "党费"), ("mode", "keyword"), ("doc", XSS_ID)]).get_data(as_text=True)
    assert re.search(rf'value="{XSS_ID}"\s+checked', filtered)
    assert re.search(r'data-counts="/api/doc_counts\?q=', filtered)  # every document's count, filter or not
    assert "限定 1 篇文档" in filtered
    titles = re.findall(r'class="result-title" href="[^"]*">([^<]+)</a>', filtered)
    assert titles and set(titles) == {str(escape(built.document(XSS_ID)["title"]))}
    bad = client.get("/", query_string={"q": "党费", "doc": "没有.txt"}).get_data(as_text=True)
    assert 'class="notice"' in bad and "未找到文档" in bad and re.search(r'<li class="result[ "]', bad)
    assert "含问题词语" in picker  # the page says what it counts
    _assert_json_error(client.get("/api/doc_counts"), 400, "missing_question")
    _assert_json_error(client.get("/api/doc_counts", query_string={"q": "？？？"}), 400, "bad_question")


@pytest.mark.parametrize("q", ["党费", "党支部委员会会议", "监督者"])
def test_picker_counts_equal_what_selecting_the_document_returns(client, built, q):
    """Each document's count in 限定文档 (GET /api/doc_counts, which the picker shows) is the number of results
    the search page shows when that document alone is selected (keyword mode, k large enough)."""
    counts = client.get("/api/doc_counts", query_string={"q": q}).get_json()["counts"]
    assert set(counts) <= {d["doc_id"] for d in built.documents()} and sum(counts.values()) > 0
    for doc_id in [d["doc_id"] for d in built.documents()]:
        page = client.get("/", query_string=[("q", q), ("mode", "keyword"), ("k", 20), ("doc", doc_id)])
        shown = len(re.findall(r'<li class="result[ "]', page.get_data(as_text=True)))
        assert shown == counts.get(doc_id, 0), (doc_id, counts, shown)


class _CountingSearches:
    """The real engine, counting the searches a page runs."""

    def __init__(self, engine):
        self._engine, self.calls = engine, []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def search(self, question, **kw):
        self.calls.append(kw)
        return self._engine.search(question, **kw)


def test_a_filtered_search_page_runs_one_search(built):
    eng = _CountingSearches(built)
    c = create_app(eng, Config()).test_client()
    html = c.get("/", query_string=[("q", "党费"), ("mode", "hybrid"), ("doc", RULES_ID)]).get_data(as_text=True)
    assert re.search(r'<li class="result[ "]', html)
    assert len(eng.calls) == 1 and {k: eng.calls[0][k] for k in ("k", "mode", "docs")} == \
        {"k": 5, "mode": "hybrid", "docs": [RULES_ID]}


def test_answer_sentence_in_results_and_document_view(client, built):
    q = "党支部书记每年至少讲几次党课"
    html = client.get("/", query_string={"q": q, "mode": "keyword", "k": 3}).get_data(as_text=True)
    top = built.search(q, k=3, mode="keyword")[0]
    box = html[html.index('id="answer-box"'):html.index("</section>", html.index('id="answer-box"'))]
    label = re.match(r"第[一二三四五六七八九十百]+条\s*", top["best_sentence"])  # the citation names the article
    sentence = top["best_sentence"][label.end() if label else 0:]
    assert f'<span id="answer-sentence">{escape(sentence)}</span>' in box
    assert f'<span id="answer-citation">{escape(top["citation"])}</span>' in box
    answers = re.findall(r'<strong class="answer">(.*?)</strong>', html)
    assert len(answers) <= 1  # the top card only (none when the sentence is the whole passage)
    if answers:
        assert re.sub(r"</?mark>", "", answers[0]) == top["best_sentence"]
    a, b = top["start"] + top["best_span"][0], top["start"] + top["best_span"][1]
    link = re.search(r'class="result-title" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"hl={a}-{b}" in link and link.endswith(f"#p-{top['ordinal']}")
    doc_html = client.get(link.split("#")[0]).get_data(as_text=True)
    marked = re.findall(r'<strong class="answer">(.*?)</strong>', doc_html)
    label = re.match(r"第[一二三四五六七八九十百]+条", top["best_sentence"])  # stays in its own bold label
    expected = top["best_sentence"][label.end() if label else 0:].strip()
    assert len(marked) == 1 and marked[0].strip() == expected
    assert built.document(top["doc_id"])["text"][a:b] == top["best_sentence"]
    assert 'data-copy="' + top["citation"] in html and "复制引用" in html


class _VersionedResults:
    """The real engine, with the fields the ranking round adds (answer_found, also_in, version badges) forced.

    Those fields come from the lead's ranking work; this wrapper checks only that the page renders them.
    """

    def __init__(self, engine, answer_found: bool):
        self._engine, self._answer_found = engine, answer_found

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def search(self, question, k=5, mode="hybrid", docs=None, **kw):
        from indexer.search.rank import Results

        hits = self._engine.search(question, k=k, mode=mode, docs=docs, **kw)
        other = self._engine.document(RULES_ID)["passages"][1]
        for h in hits:
            h["version_status"], h["version_label"] = "current", "2024年版"
            h["also_in"] = [{"pid": f"{RULES_ID}#{other['ordinal']}", "doc_id": RULES_ID, "title": other["title"],
                             "section": other["section"], "version_status": "historical"}]
        return Results(list(hits), answer_found=self._answer_found, confidence=0.9 if self._answer_found else 0.05)


def test_no_direct_answer_and_folded_versions_render(built):
    c = create_app(_VersionedResults(built, answer_found=False), Config()).test_client()
    html = c.get("/", query_string={"q": "党支部监督", "mode": "keyword"}).get_data(as_text=True)
    assert 'id="no-answer"' in html and "未找到直接回答" in html
    assert '<strong class="answer">' not in html and "相近段落" in html and "最接近的" in html
    assert "现行 · 2024年版" in html and "历史版本" in html
    other = built.document(RULES_ID)["passages"][1]
    assert f'/doc/{quote(RULES_ID)}?p={other["ordinal"]}' in html
    assert "《支部工作规则》" in html[html.index('class="also-in"'):]
    found = create_app(_VersionedResults(built, answer_found=True), Config()).test_client()
    html2 = found.get("/", query_string={"q": "党支部监督", "mode": "keyword"}).get_data(as_text=True)
    assert 'id="no-answer"' not in html2 and '<strong class="answer">' in html2
    body = c.get("/api/search", query_string={"q": "党支部监督", "mode": "keyword"}).get_json()
    assert body["answer_found"] is False and body["confidence"] == 0.05
    assert body["results"][0]["also_in"][0]["doc_id"] == RULES_ID


# ---------------------------------------------------------------------------- round 2: export and batch page
def test_export_csv_and_docx(client, built):
    import csv as _csv

    from docx import Document as Docx

    q = "党支部怎样当好监督者"
    hits = built.search(q, k=3, mode="keyword")
    resp = client.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 3, "format": "csv"})
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"] and ".csv" in resp.headers["Content-Disposition"]
    raw = resp.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens the Chinese correctly
    rows = list(_csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert len(body) == len(hits)
    col = {name.split(" ")[-1]: i for i, name in enumerate(header)}
    assert [r[col["citation"]] for r in body] == [h["citation"] for h in hits]
    assert [r[col["text"]] for r in body] == [h["text"] for h in hits]
    assert body[0][col["question"]] == q and body[0][col["best_sentence"]] == hits[0]["best_sentence"]
    docx_resp = client.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 3, "format": "docx"})
    assert docx_resp.status_code == 200 and docx_resp.mimetype.endswith("wordprocessingml.document")
    doc = Docx(io.BytesIO(docx_resp.get_data()))
    paras = [p.text for p in doc.paragraphs]
    assert any(q in p for p in paras)
    assert "检索方式：关键词 · 每题 3 条 · 文档范围：全部文档" in paras
    for h in hits:
        assert any(h["citation"] in p for p in paras)
        # the passage once, after "原文：" (left out when the answer sentence is the whole passage)
        assert sum(h["text"] in p for p in paras) == 1 or h["best_sentence"].strip() == h["text"].strip()
    batch = client.post("/api/batch", json={"questions": [q, "党小组会多久召开一次"], "mode": "keyword", "k": 2,
                                            "format": "csv"})
    assert batch.mimetype == "text/csv"
    assert len(list(_csv.reader(io.StringIO(batch.get_data().decode("utf-8-sig"))))) == 1 + 4
    _assert_json_error(client.get("/api/search", query_string={"q": q, "format": "pdf"}), 400, "bad_format")


def test_batch_page_pasted_and_uploaded_questions(client, built):
    import csv as _csv

    from docx import Document as Docx

    page = client.get("/batch").get_data(as_text=True)
    assert 'id="batch-form"' in page and 'name="questions"' in page and 'name="file"' in page
    pasted = "党支部怎样当好监督者\n\n党小组会多久召开一次\n"
    html = client.post("/batch", data={"questions": pasted, "mode": "keyword", "k": "3", "format": "html"},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "共 2 个问题" in html and "党小组会多久召开一次" in html and "《支部工作规则》" in html
    resp = client.post("/batch", data={"questions": pasted, "mode": "keyword", "k": "2", "format": "csv"},
                       content_type="multipart/form-data")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(_csv.DictReader(io.StringIO(resp.get_data().decode("utf-8-sig"))))
    assert {r["问题 question"] for r in rows} == {"党支部怎样当好监督者", "党小组会多久召开一次"}
    assert all(r["出处 citation"].startswith("《") for r in rows)
    upload = {"questions": "", "mode": "keyword", "k": "2", "format": "docx",
              "file": (io.BytesIO("question,备注\n党员应当按时交纳党费吗,甲\n党支部怎样当好服务者,乙\n".encode("gbk")),
                       "问题.csv")}
    resp = client.post("/batch", data=upload, content_type="multipart/form-data")
    assert resp.status_code == 200 and resp.mimetype.endswith("wordprocessingml.document")
    paras = [p.text for p in Docx(io.BytesIO(resp.get_data())).paragraphs]
    assert any("党员应当按时交纳党费吗" in p for p in paras) and any("党支部怎样当好服务者" in p for p in paras)
    empty = client.post("/batch", data={"questions": "  \n", "format": "csv"}, content_type="multipart/form-data")
    assert empty.status_code == 400 and "没有可检索的问题" in empty.get_data(as_text=True)
    bad = client.post("/batch", data={"file": (io.BytesIO(b"a,b\n1,2\n"), "q.csv")}, content_type="multipart/form-data")
    assert bad.status_code == 400 and "question" in bad.get_data(as_text=True) and "/tmp" not in bad.get_data(as_text=True)


# ---------------------------------------------------------------------------- round 2: documents
def test_document_outline_links_to_articles(client):
    html = client.get(f"/doc/{quote(RULES_ID)}").get_data(as_text=True)
    outline = html[html.index('id="outline"'):html.index("</nav>", html.index('id="outline"'))]
    entries = re.findall(r'<a href="#(h-\d+)">([^<]+)</a>', outline)
    texts = [t for _, t in entries]
    assert texts[:3] == ["第一章 总则", "第一条", "第二条"] and "第二章 组织生活" in texts and "第四条" in texts
    anchor = dict((t, a) for a, t in entries)["第三条"]
    target = re.search(rf'<p id="{anchor}">(.*?)</p>', html).group(1)
    assert target.startswith('<strong class="article-label">第三条</strong>') and "三会一课" in target
    assert 'id="doc-find-input"' in html


def test_documents_api_has_no_server_paths(client, built):
    raw = client.get("/api/documents").get_data(as_text=True)
    corpus = str(Path(built.stats()["corpus_dir"]).resolve())
    assert corpus not in raw and str(built.root) not in raw
    docs = json.loads(raw)["documents"]
    assert {d["source"] for d in docs} == {SEED_ID, RULES_ID, XSS_ID}
    one = client.get(f"/api/documents/{quote(RULES_ID)}").get_json()
    assert one["source"] == RULES_ID


def test_documents_sorted_naturally_with_size_and_dates(wclient):
    for n in (10, 2, 1):
        _upload_done(wclient, [(f"第{n}号党纪学习材料：遵守党的纪律。".encode("utf-8"), f"dangfa{n}.txt")])
    ids = [d["doc_id"] for d in wclient.get("/api/documents").get_json()["documents"]]
    ordered = [i for i in ids if i.startswith("dangfa")]
    assert ordered == ["dangfa1.txt", "dangfa2.txt", "dangfa10.txt"]
    html = wclient.get("/documents").get_data(as_text=True)
    assert html.index('data-doc-id="dangfa2.txt"') < html.index('data-doc-id="dangfa10.txt"')
    assert 'id="doc-filter"' in html and re.search(r'class="num size">\d+ 字<', html)


def test_cli_ask_and_batch_with_doc_filter_and_envelope(built, tmp_path, capsys):
    from indexer.cli import main

    assert main(["--index-dir", str(built.root), "-q", "ask", "党费", "--mode", "keyword", "--doc", RULES_ID,
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["docs"] == [RULES_ID] and isinstance(out["answer_found"], bool) and "confidence" in out
    assert out["results"] and all(h["doc_id"] == RULES_ID and h["citation"] for h in out["results"])
    questions = tmp_path / "q.txt"
    questions.write_text("党费\n监督\n", encoding="utf-8")
    dest = tmp_path / "a.jsonl"
    assert main(["--index-dir", str(built.root), "-q", "batch", str(questions), "--mode", "keyword", "--doc", SEED_ID,
                 "--doc", XSS_ID, "-o", str(dest)]) == 0
    lines = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    assert [line["question"] for line in lines] == ["党费", "监督"]
    for line in lines:
        assert isinstance(line["answer_found"], bool) and "confidence" in line
        assert all(h["doc_id"] in (SEED_ID, XSS_ID) and h["citation"] for h in line["results"])
    assert main(["--index-dir", str(built.root), "-q", "ask", "党费", "--doc", "没有.txt"]) == 2
    assert "没有.txt" in capsys.readouterr().err


def test_natural_key_and_doc_filter_parsing():
    from webui.app import natural_key, parse_docs
    from webui.errors import ApiError

    assert sorted(["dangfa10", "dangfa2", "Dangfa1", "dangfa2a"], key=natural_key) == \
        ["Dangfa1", "dangfa2", "dangfa2a", "dangfa10"]
    known = ["a.txt", "规章/甲.md", "规章/乙.md", "规章二/丙.md"]
    assert parse_docs(["规章"], known) == sorted(["规章/甲.md", "规章/乙.md"])
    assert parse_docs(["a.txt", "a.txt", ""], known) == ["a.txt"]
    assert parse_docs([], known) is None and parse_docs(None, known) is None
    with pytest.raises(ApiError):
        parse_docs(["规"], known)
    # The API passes a function: the document list is read only when a filter names documents (listing every
    # document on each question cost ~10 ms of an HTTP keyword search at 100k passages).
    calls: list[int] = []

    def ids() -> list[str]:
        calls.append(1)
        return known

    assert parse_docs(None, ids) is None and parse_docs([], ids) is None and not calls
    assert parse_docs(["规章二"], ids) == ["规章二/丙.md"] and calls == [1]


@pytest.fixture(scope="module")
def handbook(tmp_path_factory):
    """The compiled handbook party_rules.md (≈700 passages) indexed with the hashing stand-in encoder.

    Semantic quality is irrelevant here (keyword searches, citations, outline); the stand-in avoids ~70 s of
    encoding. It is set on this engine only, so other tests keep the real model.
    """
    from conftest import require_party_docs
    from bench.common import HashEncoder

    src = require_party_docs() / "partymate" / "party_rules.md"
    base = tmp_path_factory.mktemp("handbook")
    (base / "corpus" / "partymate").mkdir(parents=True)
    shutil.copy(src, base / "corpus" / "partymate" / "party_rules.md")
    eng = Engine.open(base / "index", Config())
    eng._encoder = HashEncoder()
    report = eng.index(base / "corpus")
    assert not report.errors, report.errors
    yield eng
    eng.close()


def test_handbook_citations_name_the_regulation_on_every_interface(handbook):
    c = create_app(handbook, Config()).test_client()
    q = "党支部委员会会议多久召开一次"
    doc_id = "partymate/party_rules.md"
    title = handbook.document(doc_id)["title"]
    hits = c.get("/api/search", query_string={"q": q, "mode": "keyword", "k": 5}).get_json()["results"]
    rule_hits = [h for h in hits if h["section"].startswith("中国共产党支部工作条例（试行） > ")]
    assert rule_hits, [h["section"] for h in hits]
    for h in rule_hits:
        assert h["citation"].startswith("《中国共产党支部工作条例（试行）》第") and title not in h["citation"]
    html = c.get("/", query_string={"q": q, "mode": "keyword", "k": 5}).get_data(as_text=True)
    assert f'<p class="citation" title="引用">{rule_hits[0]["citation"]}</p>' in html
    page = c.get(f"/doc/{quote(doc_id)}").get_data(as_text=True)
    outline = page[page.index('id="outline"'):page.index("</nav>", page.index('id="outline"'))]
    tops = re.findall(r'<summary><a href="#(h-\d+)"[^>]*>([^<]+)</a>', outline)  # grouped under each regulation
    names = [t for _, t in tops]
    assert names[:2] == ["中国共产党支部工作条例（试行）", "中国共产党党员教育管理工作条例"], names
    assert "特此通知" not in names and not any(n.endswith("审批意见") for n in names)
    entries = re.findall(r'<a href="#(h-\d+)">([^<]+)</a>', outline)
    first_rule = [t for _, t in entries].index("中国共产党支部工作条例（试行）")
    article = next(a for a, t in entries[first_rule:] if t == "第十二条")
    assert re.search(rf'id="{article}">(<strong class="article-label">)?第十二条', page)


def test_csv_export_neutralises_formulas():
    import csv as _csv

    from webui.export import to_csv

    hit = {"rank": 1, "title": "=HYPERLINK(\"http://x\")", "section": "", "doc_id": "a.txt", "text": "--- 表格47 ---",
           "best_sentence": "+1", "score": 1.0, "citation": "《甲》"}
    rows = list(_csv.reader(io.StringIO(to_csv([{"question": "@SUM(A1)", "hits": [hit], "answer_found": True,
                                                  "confidence": 0.5}]).decode("utf-8-sig"))))
    header, row = rows[0], rows[1]
    col = {name.split(" ")[-1]: i for i, name in enumerate(header)}
    assert row[col["question"]] == "'@SUM(A1)" and row[col["title"]].startswith("'=")
    assert row[col["text"]] == "'--- 表格47 ---" and row[col["best_sentence"]] == "'+1"
    assert row[col["citation"]] == "《甲》" and row[col["score"]] == "1.0"


# ---------------------------------------------------------------------------- many documents: picker, paging, API
MANY = 30  # doc1.txt .. doc30.txt, plus 规章/条例1..4.md and one traditional-titled file: 35 documents
MANY_TERM = "廉政谈话"  # only in doc3 (one passage), doc17 (three) and doc24 (two)


def _many_corpus(dest: Path) -> Path:
    (dest / "规章").mkdir(parents=True)
    fillers = ("支部组织党员认真学习", "党小组按月交流心得", "书记带头讲授专题党课")

    def paragraphs(n: int, times: int) -> str:  # ~230 different characters each: one passage each
        return "".join(f"\n\n第{n}号材料第{i}段{MANY_TERM}，" + f"{fillers[i]}，" * 20 for i in range(times))

    for n in range(1, MANY + 1):
        extra = paragraphs(n, {3: 1, 17: 3, 24: 2}.get(n, 0))
        (dest / f"doc{n}.txt").write_text(f"第{n}号学习材料\n\n党员学习第{n}号材料，按时参加组织生活。{extra}\n",
                                          encoding="utf-8")
    for n in range(1, 5):
        (dest / "规章" / f"条例{n}.md").write_text(f"# 支部条例第{n}部分\n\n第一条 党员应当遵守纪律。\n",
                                                 encoding="utf-8")
    (dest / "zhangcheng.txt").write_text("黨章學習筆記\n\n學習黨章，党员要增强党性。\n", encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Engine:
    """A real index of 35 tiny documents (hash vectors: semantic quality is irrelevant to listing them)."""
    base = tmp_path_factory.mktemp("webui-many")
    eng = Engine.open(base / "index", Config())
    eng._encoder = HashEncoder()
    report = eng.index(_many_corpus(base / "corpus"))
    assert not report.errors, report.errors
    yield eng
    eng.close()


def _many_client(eng: Engine, cap: int = 8, page: int = 10):
    """A client whose picker lists at most ``cap`` documents and whose documents page shows ``page`` rows, so
    35 documents behave like 7,000 do with the defaults."""
    app = create_app(eng, Config())
    app.config.update(PICKER_CAP=cap, DOCS_PAGE=page)
    return app.test_client()


def _picker(html: str) -> tuple[str, list[tuple[str, str]]]:
    """(the picker's HTML, its options as (value, the input's attributes after the value))."""
    start = html.index('id="doc-picker"')
    picker = html[start:html.index("</details>", start)]
    return picker, re.findall(r'<input type="checkbox" name="doc" value="([^"]+)"([^>]*)>', picker)


def _natural(ids):
    from webui.app import natural_key

    return sorted(ids, key=natural_key)


def test_picker_lists_at_most_the_cap_selected_and_hit_documents_first(many):
    docs = many.documents()
    assert len(docs) == 35
    c = _many_client(many)
    picker, options = _picker(c.get("/").get_data(as_text=True))
    natural = _natural(d["doc_id"] for d in docs)
    assert [v for v, _ in options] == natural[:8] == [f"doc{n}.txt" for n in range(1, 9)]
    assert "共 35 篇文档，列出 8 篇（已选的优先）；输入名称查找其余" in picker
    assert 'data-cut="1"' in picker and 'data-api="/api/documents"' in picker and 'role="status"' in picker

    # A question: the selected document first, then those with hits (most first), then natural order to the cap.
    q = MANY_TERM
    html = c.get("/", query_string=[("q", q), ("mode", "keyword"), ("doc", "doc30.txt")]).get_data(as_text=True)
    picker, options = _picker(html)
    values = [v for v, _ in options]
    assert len(values) == 8 and values[0] == "doc30.txt" and "checked" in options[0][1]
    counts = many.search(q, k=1, mode="keyword").doc_counts
    hits = sorted((d for d, n in counts.items() if n), key=lambda d: -counts[d])
    assert counts["doc17.txt"] > counts["doc24.txt"] > counts["doc3.txt"] > 0 and len(hits) == 3, counts
    assert values[1:4] == ["doc17.txt", "doc24.txt", "doc3.txt"]
    assert values[4:] == [d for d in natural if d not in values[:4]][:4]
    assert all("checked" not in attrs for _, attrs in options[1:])
    assert "已选及与本问题相关的优先" in picker and 'data-counts="/api/doc_counts?q=' in picker
    assert 'id="no-results"' in html  # restricted to doc30, which lacks the term three other documents have

    # A folder: one ticked option for it, its listed documents ticked through it (disabled: the folder submits).
    html = c.get("/", query_string=[("q", "党员"), ("mode", "keyword"), ("doc", "规章")]).get_data(as_text=True)
    picker, options = _picker(html)
    assert options[0] == ("规章/", ' data-folder="规章/" data-count="4" checked') and "整个文件夹 规章/" in picker
    assert "限定 4 篇文档" in html and len(options) <= 9
    for value, attrs in options[1:]:
        assert ("disabled" in attrs and "checked" in attrs) == value.startswith("规章/"), (value, attrs)

    # An index within the cap lists every document in natural order, as before, with no note.
    picker, options = _picker(_many_client(many, cap=200).get("/").get_data(as_text=True))
    assert [v for v, _ in options] == natural and "data-cut" not in picker and "列出" not in picker


def test_documents_api_filters_pages_and_counts(many):
    c = _many_client(many)
    natural = _natural(d["doc_id"] for d in many.documents())
    full = c.get("/api/documents").get_json()
    assert set(full) == {"count", "total", "documents"} and full["count"] == full["total"] == 35
    assert [d["doc_id"] for d in full["documents"]] == natural

    page = c.get("/api/documents?offset=5&limit=10").get_json()
    assert (page["count"], page["total"], page["offset"], page["limit"]) == (10, 35, 5, 10)
    assert [d["doc_id"] for d in page["documents"]] == natural[5:15]
    assert {"title", "state", "passages", "source"} <= set(page["documents"][0])
    tail = c.get("/api/documents?offset=30").get_json()
    assert [d["doc_id"] for d in tail["documents"]] == natural[30:] and tail["limit"] is None

    found = c.get("/api/documents", query_string={"q": "DOC1", "limit": 3}).get_json()
    expected = [d for d in natural if "doc1" in d]  # doc1, doc10 .. doc19
    assert found["total"] == len(expected) == 11 and [d["doc_id"] for d in found["documents"]] == expected[:3]
    by_title = c.get("/api/documents", query_string={"q": "第17号学习"}).get_json()
    assert [d["doc_id"] for d in by_title["documents"]] == ["doc17.txt"] and by_title["total"] == 1
    folded = c.get("/api/documents", query_string={"q": "党章学习"}).get_json()  # the title is 黨章學習筆記
    assert [d["doc_id"] for d in folded["documents"]] == ["zhangcheng.txt"]
    assert c.get("/api/documents", query_string={"q": "没有这个名字"}).get_json() == {"count": 0, "total": 0,
                                                                                  "documents": []}

    for params, code in [({"limit": "0"}, "bad_limit"), ({"limit": "abc"}, "bad_limit"), ({"limit": "1001"}, "bad_limit"),
                         ({"offset": "-1"}, "bad_offset"), ({"offset": "1.5"}, "bad_offset"), ({"q": "党" * 201}, "bad_q")]:
        body = _assert_json_error(c.get("/api/documents", query_string=params), 400, code)
        assert re.search(r"[\u4e00-\u9fff]", body["error"]["message_zh"]), body


def test_documents_page_is_paged_and_filtered_on_the_server(many):
    c = _many_client(many)
    natural = _natural(d["doc_id"] for d in many.documents())

    def rows(html: str) -> list[str]:
        return re.findall(r'<tr data-doc-id="([^"]+)"', html)

    first = c.get("/documents").get_data(as_text=True)
    assert rows(first) == natural[:10] and "第 1 / 4 页" in first and 'href="/documents?page=2"' in first
    assert first.count('data-state="done">完成<') == 10 and first.count('class="btn btn-small btn-danger delete-btn needs-admin"') == 10
    assert 'id="jobs-panel"' in first and '已收录 <span id="doc-count">35</span> 篇文档' in first
    last = c.get("/documents?page=4").get_data(as_text=True)
    assert rows(last) == natural[30:] and "第 4 / 4 页" in last and "第 31–35 篇" in last
    assert rows(c.get("/documents?page=99").get_data(as_text=True)) == natural[30:]  # past the end: the last page
    bad = c.get("/documents?page=abc").get_data(as_text=True)
    assert rows(bad) == natural[:10] and 'class="notice"' in bad and "page" in bad
    folder = c.get("/documents", query_string={"q": "规章/"}).get_data(as_text=True)
    assert rows(folder) == [f"规章/条例{n}.md" for n in range(1, 5)] and "找到 4 篇" in folder
    assert 'id="doc-pager"' in folder and re.search(r'id="doc-pager"[^>]*hidden', folder)
    none = c.get("/documents", query_string={"q": "没有这个名字"}).get_data(as_text=True)
    assert rows(none) == [] and "没有名称含“没有这个名字”的文档" in none


def test_listings_follow_index_writes(tmp_path):
    """The catalogue is kept per index generation: a document added or removed shows at once in every listing."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in (1, 2, 10):
        (corpus / f"dangfa{n}.txt").write_text(f"第{n}号材料\n\n党员学习第{n}号材料。\n", encoding="utf-8")
    eng = Engine.open(tmp_path / "index", Config())
    eng._encoder = HashEncoder()
    try:
        assert not eng.index(corpus).errors
        c = _many_client(eng, cap=2, page=2)
        ids = lambda: [d["doc_id"] for d in c.get("/api/documents").get_json()["documents"]]  # noqa: E731
        assert ids() == ["dangfa1.txt", "dangfa2.txt", "dangfa10.txt"]
        (corpus / "dangfa3.txt").write_text("第3号材料\n\n新增的材料。\n", encoding="utf-8")
        (corpus / "dangfa1.txt").unlink()
        assert not eng.index(corpus).errors
        assert ids() == ["dangfa2.txt", "dangfa3.txt", "dangfa10.txt"]
        assert c.get("/api/documents?q=第3号").get_json()["total"] == 1
        _, options = _picker(c.get("/").get_data(as_text=True))
        assert [v for v, _ in options] == ["dangfa2.txt", "dangfa3.txt"]
        assert re.findall(r'<tr data-doc-id="([^"]+)"', c.get("/documents?page=2").get_data(as_text=True)) == \
            ["dangfa10.txt"]
    finally:
        eng.close()



# ---------------------------------------------------------------------------- round 3 (issue 25)
def test_answer_box_on_top_only_when_an_answer_is_found(client, built):
    q = "党支部每月召开几次支部委员会会议"
    res = built.search(q, k=5, mode="hybrid")
    assert res.answer_found, "the regulation answers this question"
    html = client.get("/", query_string={"q": q}).get_data(as_text=True)
    assert html.index('id="answer-box"') < html.index('id="results"')  # above the cards
    box = html[html.index('id="answer-box"'):html.index("</section>", html.index('id="answer-box"'))]
    assert "答：" in box and 'id="answer-copy"' in box and "复制" in box and "查看原文" in box
    copy = re.search(r'data-copy="([^"]+)"', box).group(1)
    assert copy.endswith(f"（{escape(res[0]['citation'])}）")
    assert re.search(r'id="answer-source" href="/doc/[^"]+hl=\d+-\d+', box)
    assert html.count('<strong class="answer">') <= 1 and 'class="answer-hint"' in html  # lighter below the top
    off = client.get("/", query_string={"q": "今天天气怎么样"}).get_data(as_text=True)
    assert built.search("今天天气怎么样", k=5).answer_found is False
    assert 'id="answer-box"' not in off and 'id="no-answer"' in off and "未找到直接回答" in off
    assert '<strong class="answer">' not in off and 'class="answer-hint"' not in off


def test_no_answer_names_the_documents_that_would_answer_and_links_to_documents(client):
    html = client.get("/", query_string={"q": "违反八项规定精神给予什么处分"}).get_data(as_text=True)
    note = html[html.index('id="no-answer"'):html.index("</div>", html.index('id="no-answer"'))]
    assert "纪律处分条例" in note and "尚未收录" in note and 'href="/documents"' in note and "文档管理" in note
    general = client.get("/", query_string={"q": "今天天气怎么样"}).get_data(as_text=True)
    note = general[general.index('id="no-answer"'):general.index("</div>", general.index('id="no-answer"'))]
    assert "党章" in note and 'href="/documents"' in note


def test_whole_passage_answer_is_not_painted_and_enumeration_is_whole():
    from webui.render import covers_passage, enumeration_span, informative_highlights

    text = "党员交纳党费的比例为：每月工资收入在3000元以下者，交纳0.5%；3000元以上至5000元者，交纳1%；5000元以上者，交纳2%。其他说明。"
    first = text.index("每月")
    tier = (first, text.index("；") + 1)
    a, b = enumeration_span(text, tier, "党费按什么比例交纳")
    assert text[a:b] == text[:text.index("。") + 1]  # every tier, with its lead-in
    assert enumeration_span(text, tier, "党费交给谁") == tier  # not a list question: unchanged
    assert covers_passage("第九条 党支部委员会一般每月召开1次会议。", (0, 23))
    assert not covers_passage(text, tier)
    texts = ["党支部委员会会议每月召开", "党支部委员会由党员大会选举", "党支部书记讲党课"]
    spans = informative_highlights(texts, [[(0, 3), (8, 10)], [(0, 3)], [(0, 3), (5, 7)]])
    assert spans == [[(8, 10)], [], [(5, 7)]]  # 党支部 is in every passage: no underline


def test_batch_page_forgives_symbols_numbering_and_keeps_the_form(client):
    pasted = "1. 党支部怎样当好监督者\n？？？\n（2）党小组会多久召开一次\n——\n"
    resp = client.post("/batch", data={"questions": pasted, "mode": "keyword", "k": "3", "format": "html"},
                       content_type="multipart/form-data")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "共 2 个问题" in html
    assert "1. 党支部怎样当好监督者" in html and "2. 党小组会多久召开一次" in html  # numbering stripped, renumbered
    skipped = html[html.index('id="batch-skipped"'):html.index("</div>", html.index('id="batch-skipped"'))]
    for n in (2, 4):  # the reason is the search's own check, as a search of that line would say
        assert f"第 {n} 行已跳过：问题中没有可检索的文字（只有标点或符号）" in skipped
    assert f">{escape(pasted)}</textarea>" in html  # the pasted list stays in the form
    only = client.post("/batch", data={"questions": "？？？\n——", "format": "html"}, content_type="multipart/form-data")
    page = only.get_data(as_text=True)
    assert only.status_code == 400 and "没有可检索的问题" in page and ">？？？\n——</textarea>" in page
    assert not re.search(r"[A-Za-z]{4,} [a-z]{3,}", re.sub(r"<[^>]+>|\{[^}]*\}", " ", page.split("<main", 1)[1]))


def _xlsx(rows: list[list]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_question_list_round_trips_to_an_xlsx_answer_file(client, built):
    from openpyxl import load_workbook

    data = _xlsx([["序号", "问题", "备注"], [1, "党支部怎样当好监督者", "甲"], [2, "？？？", ""],
                  [3, "党小组会多久召开一次", "乙"]])
    resp = client.post("/batch", data={"questions": "", "mode": "keyword", "k": "2", "format": "xlsx",
                                       "file": (io.BytesIO(data), "问题清单.xlsx")}, content_type="multipart/form-data")
    assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
    assert ".xlsx" in resp.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(resp.get_data()))
    sheet = book["问答结果"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    col = {str(name).split(" ")[-1]: i for i, name in enumerate(rows[0])}
    questions = [r[col["question"]] for r in rows[1:]]
    assert questions == ["党支部怎样当好监督者"] * 2 + ["党小组会多久召开一次"] * 2
    expected = built.search("党小组会多久召开一次", k=2, mode="keyword")
    assert [r[col["citation"]] for r in rows[3:]] == [h["citation"] for h in expected]
    settings = dict(book["检索设置"].iter_rows(values_only=True))
    assert settings["检索方式"] == "关键词" and settings["文档范围"] == "全部文档"
    # the answer file is a question list again (its 问题 column; one question per run of rows)
    again = client.post("/batch", data={"questions": "", "mode": "keyword", "k": "2", "format": "html",
                                        "file": (io.BytesIO(resp.get_data()), "答案.xlsx")},
                        content_type="multipart/form-data").get_data(as_text=True)
    assert "共 2 个问题" in again
    # a CSV with a 问题 header, and the app's own CSV export, are question lists too
    csv_resp = client.post("/batch", data={"questions": "党支部怎样当好监督者\n党小组会多久召开一次", "mode": "keyword",
                                           "k": "2", "format": "csv"}, content_type="multipart/form-data")
    for name, raw in (("问题.csv", "问题\n党支部怎样当好监督者\n党小组会多久召开一次\n".encode("utf-8")),
                      ("导出.csv", csv_resp.get_data())):
        html = client.post("/batch", data={"questions": "", "mode": "keyword", "file": (io.BytesIO(raw), name)},
                           content_type="multipart/form-data").get_data(as_text=True)
        assert "共 2 个问题" in html, name
    search = client.get("/api/search", query_string={"q": "党小组会多久召开一次", "mode": "keyword", "k": 2,
                                                      "format": "xlsx", "doc": RULES_ID})
    assert search.status_code == 200 and search.mimetype.endswith("spreadsheetml.sheet")
    settings = dict(load_workbook(io.BytesIO(search.get_data()))["检索设置"].iter_rows(values_only=True))
    assert settings["文档范围"] == RULES_ID
    page = client.get("/", query_string={"q": "党小组会多久召开一次"}).get_data(as_text=True)
    assert 'id="export-xlsx"' in page and "format=xlsx" in page


def test_question_lines_strip_numbering_and_read_tables():
    from indexer.questions import file_lines, screen, strip_numbering

    assert strip_numbering("1. 党费怎么交") == "党费怎么交"
    assert strip_numbering("（12）党费怎么交") == "党费怎么交"
    assert strip_numbering("三、党费怎么交") == "党费怎么交"
    assert strip_numbering("① 党费怎么交") == "党费怎么交"
    assert strip_numbering("1.5倍工资怎么算") == "1.5倍工资怎么算"
    assert strip_numbering("2023年党费怎么交") == "2023年党费怎么交"
    kept, skipped = screen(file_lines("题目\n入党誓词是什么\n……\n".encode("utf-8"), "q.csv"), 100)
    assert [q.text for q in kept] == ["入党誓词是什么"]
    assert [s.message_zh for s in skipped] == ["q.csv 第 3 行已跳过：问题中没有可检索的文字（只有标点或符号）"]
    single = file_lines(_xlsx([["入党誓词是什么"], ["预备期多长"]]), "单列.xlsx")
    assert [q.text for q in single] == ["入党誓词是什么", "预备期多长"]
    from indexer.types import PartyQAError

    with pytest.raises(PartyQAError, match="找不到问题列"):
        file_lines(_xlsx([["甲", "乙"], ["一", "二"]]), "两列.xlsx")
    with pytest.raises(PartyQAError, match="不是有效的 Excel"):
        file_lines(b"PK\x03\x04 broken", "坏.xlsx")


def test_html_pages_speak_chinese_only(client):
    def visible(html: str) -> str:
        body = html.split("<main", 1)[1].split("</main>", 1)[0]
        return re.sub(r"<[^>]+>", " ", body)

    english = re.compile(r"\b[A-Za-z]{3,}(?: [A-Za-z]{2,}){2,}")  # an English phrase of three words or more
    for path, status in (("/nowhere", 404), ("/doc/none.txt", 404), ("/?q=？？？", 200), ("/?q=" + "党" * 600, 200)):
        resp = client.get(path)
        assert resp.status_code == status, path
        text = visible(resp.get_data(as_text=True))
        assert not english.search(text), (path, english.search(text))
        assert re.search(r"[\u4e00-\u9fff]", text)
    err = client.get("/doc/none.txt").get_data(as_text=True)
    assert "找不到该文档" in err and "unknown document" not in err
    status = client.get("/status")
    assert status.status_code == 200 and status.mimetype == "text/html"
    page = status.get_data(as_text=True)
    assert "已收录文档" in page and "3 篇" in page and 'href="/api/health"' in page
    assert 'href="/status"' in client.get("/").get_data(as_text=True)  # the footer's 服务状态 opens this page


def test_outline_keeps_the_essays_fourth_heading_and_marks_the_current_section(client, built):
    page = client.get(f"/doc/{quote(SEED_ID)}").get_data(as_text=True)
    outline = page[page.index('id="outline"'):page.index("</nav>", page.index('id="outline"'))]
    fourth = next(line for line in built.document(SEED_ID)["text"].splitlines() if line.startswith("四、"))
    assert fourth.endswith("。") and fourth.strip()[:40] in outline
    doc = built.document(RULES_ID)
    passage = doc["passages"][-1]
    page = client.get(f"/doc/{quote(RULES_ID)}", query_string={"p": passage["ordinal"]}).get_data(as_text=True)
    current = re.findall(r'<a href="#h-\d+" aria-current="location">([^<]+)</a>', page)
    assert current and current[-1] in passage["text"], (current, passage["section"])


def test_recycle_bin_lists_and_restores_a_deleted_document(wclient, writable):
    body, job = _upload_done(wclient, [("回收站测试文档\n\n支部回收站恢复功能测试段落，包含独特词语青松翠柏。\n".encode("utf-8"),
                                         "回收站测试.txt")])
    assert job["state"] == "done"
    assert _delete_done(wclient, "回收站测试.txt") == ["回收站测试.txt"]
    page = wclient.get("/documents").get_data(as_text=True)
    trash = page[page.index('id="trash-panel"'):page.index("</section>", page.index('id="trash-panel"'))]
    url = re.search(r'data-url="([^"]+)" data-name="回收站测试.txt"', trash).group(1)
    assert wclient.post("/api/removed/../../etc/passwd").status_code == 404
    resp = wclient.post(url)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    restored, _ = _wait_job(wclient, resp.get_json()["job"]["id"])
    assert restored["state"] == "done", restored
    assert "回收站测试.txt" in {d["doc_id"] for d in writable.documents()}
    hits = wclient.get("/api/search", query_string={"q": "青松翠柏", "mode": "keyword"}).get_json()["results"]
    assert hits and hits[0]["doc_id"] == "回收站测试.txt"
    page = wclient.get("/documents").get_data(as_text=True)
    assert 'data-name="回收站测试.txt"' not in page  # indexed again: no longer offered for restoring
    _delete_done(wclient, "回收站测试.txt")


class _Embedding:
    """The real engine reporting two documents still waiting for their vectors."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def stats(self):
        return {**self._engine.stats(), "pending_vectors": 7}

    def documents(self):
        docs = self._engine.documents()
        return [{**d, "state": "embedding", "embedded": 0} if i < 2 else d for i, d in enumerate(docs)]


def test_semantic_results_say_how_many_documents_are_not_embedded_yet(built):
    c = create_app(_Embedding(built), Config()).test_client()
    html = c.get("/", query_string={"q": "党支部怎样当好监督者", "mode": "semantic"}).get_data(as_text=True)
    assert "2 篇文档的语义索引尚未完成" in html
    keyword = c.get("/", query_string={"q": "党支部怎样当好监督者", "mode": "keyword"}).get_data(as_text=True)
    assert "语义索引尚未完成" not in keyword
    plain = create_app(built, Config()).test_client()
    assert "语义索引尚未完成" not in plain.get("/", query_string={"q": "党支部", "mode": "semantic"}).get_data(as_text=True)


def test_home_page_shows_the_library_with_curated_examples(tmp_path, built):
    """corpus/examples.json gives the home page its example questions, grouped by category, with the library."""
    corpus = Path(built.stats()["corpus_dir"])
    examples = [{"question": "党支部委员会多久开一次会", "doc": RULES_ID, "article": "第二条", "category": "党内法规"},
                {"question": "支委会怎样当好监督者", "doc": SEED_ID, "article": "", "category": "学习材料"},
                {"question": "未收录的文件问什么", "doc": "没有这个文件.md", "article": "", "category": "党内法规"}]
    (corpus / "examples.json").write_text(json.dumps(examples, ensure_ascii=False), encoding="utf-8")
    try:
        html = create_app(built, Config()).test_client().get("/").get_data(as_text=True)
    finally:
        (corpus / "examples.json").unlink()
    ex = html[html.index('id="examples"'):html.index("</section>", html.index('id="examples"'))]
    assert "党支部委员会多久开一次会" in ex and "支委会怎样当好监督者" in ex and "未收录的文件问什么" not in ex
    assert ex.index("党内法规") < ex.index("学习材料")
    lib = html[html.index('id="library"'):]
    assert "党内法规" in lib and "支部工作规则" in lib and "1 篇" in lib
    assert "已收录 3 篇文档" in lib



def test_identical_upload_under_another_name_asks_first(wclient, writable):
    same = (Path(writable.stats()["corpus_dir"]) / RULES_ID).read_bytes()
    resp = _upload(wclient, [(same, "规则副本.md")])
    body = _assert_json_error(resp, 409, "duplicate_upload")
    assert "规则副本.md" in body["error"]["message_zh"] and "支部工作规则" in body["error"]["message_zh"]
    assert body["duplicates"] == [{"filename": "规则副本.md", "doc_id": RULES_ID, "title": "支部工作规则"}]
    assert "规则副本.md" not in {d["doc_id"] for d in writable.documents()}
    data = {"files": [(io.BytesIO(same), "规则副本.md")], "allow_duplicate": "1"}
    resp = wclient.post("/api/documents", data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    job, _ = _wait_job(wclient, resp.get_json()["job"]["id"])
    assert job["state"] == "done" and "规则副本.md" in {d["doc_id"] for d in writable.documents()}
    _delete_done(wclient, "规则副本.md")


# ---------------------------------------------------------------------------------------- 版本对照 (issue 23)
DISCIPLINE = ["中国共产党纪律处分条例（2023）.md", "中国共产党纪律处分条例（2018）.md"]


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """纪律处分条例 2023 and 2018 from corpus/ (hash vectors: the comparison does not depend on the model)."""
    base = tmp_path_factory.mktemp("webui-versions")
    (base / "corpus").mkdir()
    for name in DISCIPLINE:
        shutil.copy(ROOT / "corpus" / name, base / "corpus" / name)
    eng = Engine.open(base / "index", Config())
    eng._encoder = HashEncoder()
    assert not eng.index(base / "corpus").errors
    yield eng
    eng.close()


def test_compare_page_api_and_links_from_hits_and_the_document(two_versions):
    new, old = DISCIPLINE
    c = create_app(two_versions, Config()).test_client()
    body = c.get("/api/compare", query_string={"doc": new, "article": "第一百零一条"}).get_json()
    assert [v["doc_id"] for v in body["versions"]] == [new, old]
    asked, other = body["versions"]
    assert asked["asked"] and asked["article"] == "第一百零一条" and other["article"] and other["article"] != "第一百零一条"
    assert any(s["kind"] != "same" for s in other["segments"])
    page = c.get("/compare", query_string={"doc": old, "article": other["article"]}).get_data(as_text=True)
    assert "版本对照" in page and ("<ins>" in page or "<del>" in page) and "第一百零一条" in page
    assert 'class="compare-cite"><a href="/doc/' in page
    _assert_json_error(c.get("/api/compare", query_string={"doc": new, "article": "第九百条"}), 404, "unknown_article")
    _assert_json_error(c.get("/api/compare", query_string={"doc": "没有.md", "article": "1"}), 404, "unknown_document")
    _assert_json_error(c.get("/api/compare", query_string={"doc": new}), 400, "bad_compare")
    # a hit of a versioned regulation links to the comparison of its article
    html = c.get("/", query_string={"q": "纪律处分条例第一百零一条", "mode": "keyword"}).get_data(as_text=True)
    links = re.findall(r'class="compare-link" href="([^"]+)"', html)
    assert links, "no 版本对照 link on the hits"
    first = c.get(links[0].replace("&amp;", "&"))
    assert first.status_code == 200 and "版本对照" in first.get_data(as_text=True)
    # the document view of a versioned regulation links to the comparison of the chosen article
    doc_html = c.get(f"/doc/{quote(new)}").get_data(as_text=True)
    found = re.search(r'id="doc-compare" href="([^"]+)"', doc_html)
    assert found and c.get(found.group(1).replace("&amp;", "&")).status_code == 200


# --------------------------------------------------------------------------------------- 有用 / 没用 and 反馈
def test_result_cards_carry_feedback_buttons_and_the_feedback_page_lists_them(writable, tmp_path, monkeypatch):
    c = create_app(writable, Config()).test_client()
    q = "党支部应当如何开展组织生活"
    html = c.get("/", query_string={"q": q, "mode": "keyword"}).get_data(as_text=True)
    pids = [unescape_html(p) for p in re.findall(r'class="btn btn-small fb-btn" type="button" data-pid="([^"]+)" '
                                                 r'data-useful="1"', html)]
    assert len(pids) >= 2 and re.search(r'data-pid="[^"]+" data-useful="0">没用<', html)
    assert 'href="/feedback"' in html and ">反馈<" in html  # in the nav
    good, bad = pids[0], pids[1]
    assert c.post("/api/feedback", json={"question": q, "pid": good, "useful": True, "mode": "keyword"}).status_code == 201
    assert c.post("/api/feedback", json={"question": q, "pid": bad, "useful": False, "mode": "keyword"}).status_code == 201
    page = c.get("/feedback").get_data(as_text=True)
    negative = page.split('id="feedback-negative"', 1)[1].split("</ul>\n", 1)[0]
    useful = page.split('id="feedback-useful"', 1)[1].split("</ul>", 1)[0]
    assert str(escape(q)) in negative and str(escape(q)) in useful
    with c.application.test_request_context():
        assert doc_href(bad) in negative and doc_href(good) in useful and "（local）" in useful
    # with tokens, a reader's page shows no feedback (the API needs an editor); an editor's does
    path = tmp_path / "tokens.txt"
    path.write_text("r-tok reader 王读者\ne-tok editor 李编辑\n", "utf-8")
    monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(path))
    t = create_app(writable, Config()).test_client()
    assert 'id="feedback-token-note"' in t.get("/feedback", headers={"Authorization": "Bearer r-tok"}).get_data(
        as_text=True)
    assert 'id="feedback-useful"' in t.get("/feedback", headers={"Authorization": "Bearer e-tok"}).get_data(
        as_text=True)


def unescape_html(text: str) -> str:
    import html as _html

    return _html.unescape(text)


def doc_href(pid: str) -> str:
    from webui.common import doc_url, ordinal_of

    return str(escape(doc_url(pid.rsplit("#", 1)[0], ordinal_of(pid))))


# ------------------------------------------------------------------------------ 停用 / 启用 on the document page
def test_document_page_toggles_passages_for_editors(writable, tmp_path, monkeypatch):
    c = create_app(writable, Config()).test_client()
    url = f"/doc/{quote(RULES_ID)}"
    html = c.get(url).get_data(as_text=True)
    pids = re.findall(r'class="btn btn-small passage-toggle" type="button" data-pid="([^"]+)" data-state="enabled">停用<',
                      html)
    passages = c.get(f"/api/documents/{quote(RULES_ID)}/passages").get_json()["passages"]
    assert pids and len(pids) == len(passages) and pids[0] == passages[0]["pid"]
    pid = pids[-1]
    api = f"/api/passages/{quote(pid, safe='')}"  # '#' as %23, as app.js's encodeURIComponent sends it
    assert c.post(api + "/disable").get_json()["state"] == "disabled"
    try:
        html = c.get(url).get_data(as_text=True)
        assert re.search(rf'passage-disabled" id="p-{pid.rsplit("#", 1)[1]}"', html)
        assert f'data-pid="{pid}" data-state="disabled">启用<' in html
        # with tokens: a reader's page hides the buttons (app.js shows them to a kept editor token), and a
        # reader may not toggle
        path = tmp_path / "tokens.txt"
        path.write_text("r-tok reader 王读者\ne-tok editor 李编辑\n", "utf-8")
        monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(path))
        t = create_app(writable, Config()).test_client()
        hidden = t.get(url, headers={"Authorization": "Bearer r-tok"}).get_data(as_text=True)
        assert "passage-toggle needs-editor" in hidden and re.search(r"needs-editor\" type=\"button\" hidden", hidden)
        _assert_json_error(t.post(api + "/enable", headers={"Authorization": "Bearer r-tok"}), 403, "forbidden")
        shown = t.get(url, headers={"Authorization": "Bearer e-tok"}).get_data(as_text=True)
        assert "needs-editor" not in shown and f'data-pid="{pid}" data-state="disabled">启用<' in shown
        assert t.post(api + "/enable", headers={"Authorization": "Bearer e-tok"}).get_json()["state"] == "enabled"
    finally:
        monkeypatch.delenv("PARTYQA_TOKENS_FILE", raising=False)
        c.post(api + "/enable")
    assert f'data-pid="{pid}" data-state="enabled">停用<' in c.get(url).get_data(as_text=True)


# ------------------------------------------------------------- 标准问题 from a result card and the passage list
def test_result_cards_and_passages_offer_standard_questions_to_editors(writable, tmp_path, monkeypatch):
    c = create_app(writable, Config()).test_client()
    q = "党小组会多久开一次"
    html = c.get("/", query_string={"q": q, "mode": "keyword"}).get_data(as_text=True)
    pids = [unescape_html(p) for p in re.findall(r'class="btn btn-small std-link-btn" type="button" data-pid="([^"]+)" '
                                                 r'data-linked="0"', html)]
    assert len(pids) >= 2 and "badge-standard" not in html
    target = pids[-1]  # the last card: linking must move it first
    assert c.post("/api/standard_questions", json={"question": q, "pid": target}).status_code == 201
    try:
        html = c.get("/", query_string={"q": q, "mode": "keyword"}).get_data(as_text=True)
        first = html.split('id="result-1"', 1)[1].split('id="result-2"', 1)[0]
        assert re.search(rf'data-pid="{re.escape(str(escape(target)))}" data-linked="1" title="[^"]*">取消标准答案<', first)
        assert f'<span class="badge badge-standard" title="标准问题：{escape(q)}">标准答案</span>' in first
        # the document page lists the linked question on its passage, with 关联问题 on every passage
        doc_id, ordinal = target.rsplit("#", 1)
        page = c.get(f"/doc/{quote(doc_id)}").get_data(as_text=True)
        section = page.split(f'id="p-{ordinal}"', 1)[1].split("</section>", 1)[0]
        assert f'class="std-q">{escape(q)}</span>' in section and f'data-question="{escape(q)}">取消<' in section
        assert page.count('class="btn btn-small std-add-btn"') == len(writable.document(doc_id)["passages"])
        # with tokens: a reader sees the 标准答案 mark but the controls are hidden, and may not link
        path = tmp_path / "tokens.txt"
        path.write_text("r-tok reader 王读者\ne-tok editor 李编辑\n", "utf-8")
        monkeypatch.setenv("PARTYQA_TOKENS_FILE", str(path))
        t = create_app(writable, Config()).test_client()
        reader = t.get("/", query_string={"q": q, "mode": "keyword"}, headers={"Authorization": "Bearer r-tok"})
        text = reader.get_data(as_text=True)
        assert "标准答案</span>" in text and re.search(r'std-link-btn needs-editor" type="button" hidden', text)
        doc_page = t.get(f"/doc/{quote(doc_id)}", headers={"Authorization": "Bearer r-tok"}).get_data(as_text=True)
        assert re.search(r'std-add-btn needs-editor" type="button" hidden', doc_page)
        _assert_json_error(t.post("/api/standard_questions", json={"question": q, "pid": pids[0]},
                                  headers={"Authorization": "Bearer r-tok"}), 403, "forbidden")
        editor = t.get("/", query_string={"q": q, "mode": "keyword"}, headers={"Authorization": "Bearer e-tok"})
        assert "needs-editor" not in editor.get_data(as_text=True)
    finally:
        monkeypatch.delenv("PARTYQA_TOKENS_FILE", raising=False)
        c.delete("/api/standard_questions", json={"question": q})
    assert "badge-standard" not in c.get("/", query_string={"q": q, "mode": "keyword"}).get_data(as_text=True)


# ------------------------------------- other versions, cross-references and the category filter on the pages (23)
def test_pages_link_other_versions_and_references_and_filter_by_category(two_versions):
    new, old = DISCIPLINE
    c = create_app(two_versions, Config()).test_client()
    with c.application.test_request_context():
        from webui.common import doc_url

        new_href, old_href = (str(escape(doc_url(d))) for d in (new, old))
    listing = c.get("/documents").get_data(as_text=True)
    assert f'<div class="doc-versions">其他版本：<a href="{old_href}">2018年版</a></div>' in listing
    assert f'<div class="doc-versions">其他版本：<a href="{new_href}">2023年版</a></div>' in listing
    page = c.get(f"/doc/{quote(new)}").get_data(as_text=True)
    assert re.search(rf'id="doc-versions">其他版本：<a href="{re.escape(old_href)}">2018年版</a> <span class="badge '
                     r'badge-historical">历史版本</span>', page)
    # every passage's references link to the article they name (never to the passage itself)
    doc = two_versions.document(new)
    refs = [(p["ordinal"], r) for p in doc["passages"] for r in p.get("references") or []
            if r.get("doc_id") and r["pid"] != f"{new}#{p['ordinal']}"]
    assert refs
    links = re.findall(r'<a class="ref-link" href="([^"]+)" title="([^"]*)">([^<]+)</a>', page)
    assert len(links) == len(refs)
    for (ordinal, r), (href, title, text) in zip(refs, links):
        target = r["pid"].rsplit("#", 1)[1]
        assert href.endswith(f"?p={target}#p-{target}") and title == r["citation"]
        assert text == "本文" + r["citation"].rsplit(" ", 1)[-1]
    # the category filter: a select of the categories on the search page, applied to the search and its export
    html = c.get("/", query_string={"q": "党组织", "mode": "keyword"}).get_data(as_text=True)
    assert '<option value="党章党规">党章党规（2 篇）</option>' in html
    assert two_versions.set_metadata(old, category="学习材料")["category"] == "学习材料"
    try:
        html = c.get("/", query_string={"q": "党组织", "mode": "keyword", "category": "学习材料"}).get_data(as_text=True)
        assert '<option value="学习材料" selected>学习材料（1 篇）</option>' in html and "类别：学习材料" in html
        cards = re.findall(r'class="result-title" href="([^"]+)"', html)
        assert cards and all(h.startswith(old_href.split("#")[0]) for h in cards)
        assert "category=%E5%AD%A6%E4%B9%A0%E6%9D%90%E6%96%99" in re.search(r'id="export-csv" href="([^"]+)"',
                                                                                html).group(1)
        html = c.get("/", query_string={"q": "党组织", "mode": "keyword", "category": "没有的类别"}).get_data(as_text=True)
        assert "没有类别为“没有的类别”的文档，已在全部文档中检索。" in html and 'class="result-title"' in html
    finally:
        two_versions.set_metadata(old, category=None)


def test_batch_page_filters_by_category_in_its_answers_and_exports(two_versions):
    """批量问答 offers the search page's 类别 select (issue 25): the answers, the CSV/Excel/Word downloads and the
    links to the full results keep to the chosen category, the Excel and Word files record it; an unknown one is
    refused in Chinese (an answer sheet must not quietly cover every document)."""
    import csv as _csv

    from docx import Document as Docx
    from openpyxl import load_workbook

    new, old = DISCIPLINE
    c = create_app(two_versions, Config()).test_client()
    questions = "党组织应当怎样处理违纪党员\n留党察看的期限是多长时间\n"
    form = {"questions": questions, "mode": "keyword", "k": "5"}

    def docs_of(html: str) -> set[str]:
        return {unquote(h.split("?")[0].split("/doc/", 1)[1]) for h in re.findall(r'<a href="([^"]+)">查看原文', html)}

    page = c.get("/batch").get_data(as_text=True)
    assert '<select name="category" id="batch-category">' in page and '<option value="党章党规">党章党规（2 篇）</option>' in page
    unfiltered = c.post("/batch", data={**form, "format": "html"}).get_data(as_text=True)
    assert new in docs_of(unfiltered)  # both questions answer from the current version without a filter
    assert two_versions.set_metadata(old, category="学习材料")["category"] == "学习材料"
    try:
        html = c.post("/batch", data={**form, "category": "学习材料", "format": "html"}).get_data(as_text=True)
        assert "共 2 个问题" in html and "类别：学习材料" in html and docs_of(html) == {old}
        assert '<option value="学习材料" selected>学习材料（1 篇）</option>' in html  # the form keeps the choice
        more = re.findall(r'href="([^"]+)">全部 \d+ 条结果', html)
        assert more and all("category=%E5%AD%A6%E4%B9%A0%E6%9D%90%E6%96%99" in h for h in more)
        rows = list(_csv.DictReader(io.StringIO(c.post("/batch", data={**form, "category": "学习材料", "format": "csv"})
                                                .get_data().decode("utf-8-sig"))))
        assert rows and {r["文档编号 doc_id"] for r in rows} == {old}
        book = load_workbook(io.BytesIO(c.post("/batch", data={**form, "category": "学习材料", "format": "xlsx"})
                                        .get_data()))
        assert ["类别", "学习材料"] in [[cell.value for cell in row] for row in book["检索设置"].iter_rows()]
        word = Docx(io.BytesIO(c.post("/batch", data={**form, "category": "学习材料", "format": "docx"}).get_data()))
        assert any("类别：学习材料" in p.text for p in word.paragraphs)
        word = Docx(io.BytesIO(c.get("/api/search", query_string={"q": "留党察看", "mode": "keyword", "format": "docx",
                                                                  "category": "学习材料"}).get_data()))
        assert any("类别：学习材料" in p.text for p in word.paragraphs)  # the search page's export records it too
        bad = c.post("/batch", data={**form, "category": "没有的类别", "format": "xlsx"})
        assert bad.status_code == 400 and "没有类别为“没有的类别”的文档" in bad.get_data(as_text=True)
        book = load_workbook(io.BytesIO(c.post("/batch", data={**form, "format": "xlsx"}).get_data()))
        assert ["类别", "全部类别"] in [[cell.value for cell in row] for row in book["检索设置"].iter_rows()]
    finally:
        two_versions.set_metadata(old, category=None)


# ---------------------------------------------------------------- 检索测试 panel on the search page (issue 26 item 4)
def test_search_page_tries_a_semantic_weight_and_threshold_and_shows_percentages(client, built):
    q = "党支部委员会会议多久召开一次"
    plain = client.get("/", query_string={"q": q}).get_data(as_text=True)
    assert 'id="advanced"' in plain and 'id="advanced" open' not in plain and 'id="tried-summary"' not in plain
    assert f'placeholder="{Config().min_confidence}"' in plain
    scores = re.findall(r'<span class="score" title="得分 ([0-9.]+)">得分 (\d+)%</span>', plain)
    assert scores and all(int(p) == round(min(float(s), 1.0) * 100) for s, p in scores)
    for weight in (0.0, 1.0):
        html = client.get("/", query_string={"q": q, "semantic_weight": weight, "min_confidence": 1}).get_data(
            as_text=True)
        expected = built.search(q, k=Config().k, mode="hybrid", semantic_weight=weight, min_confidence=1.0)
        assert 'id="advanced" open' in html and f'value="{weight}"' in html and 'value="1.0"' in html
        summary = re.search(r'id="tried-summary" role="status">([^<]+)<', html).group(1)
        assert f"语义权重 {weight * 100:.0f}%" in summary and "阈值 100%，不给出直接回答" in summary
        assert f"置信度 {expected.confidence * 100:.0f}%" in summary and 'id="answer-box"' not in html
        assert re.findall(r'data-pid="([^"]+)" data-useful="1"', html) == [str(escape(h["pid"])) for h in expected]
    # the defaults are unchanged, and a bad value is a Chinese notice on the page
    assert built.config.min_confidence == Config().min_confidence
    bad = client.get("/", query_string={"q": q, "semantic_weight": "2"}).get_data(as_text=True)
    assert re.search(r'class="notice">[^<]*0 到 1 之间的数', bad) and 'id="tried-summary"' not in bad
    keyword = client.get("/", query_string={"q": q, "mode": "keyword", "min_confidence": 0}).get_data(as_text=True)
    assert "语义权重 —（只用于综合检索）" in keyword and "阈值 0%，给出直接回答" in keyword
