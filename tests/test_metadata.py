"""Document metadata (issue 23 item 4, issue 24 item 1): front matter read into the documents and hits, and a
person's corrections of title, category, dates and status through the engine, the CLI and the API -- stored as a
generation, surviving re-indexing, used by version ordering and the category filter, and safe against a kill."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer import Config, Engine
from indexer.cli import main as cli_main
from indexer.index.metadata import MetadataError, check_changes
from indexer.ingest.files import load_file_checked
from indexer.types import QueryError
from webui import create_app

from conftest import ESSAY, SHIPPED as CORPUS

D2018 = "中国共产党纪律处分条例（2018）.md"
D2023 = "中国共产党纪律处分条例（2023）.md"
LIANJIE = "中国共产党廉洁自律准则.md"
# A question both versions of 纪律处分条例 answer (the 处分 kinds article is in each).
DISCIPLINE_Q = "对党员的纪律处分种类有哪些"


def front_matter(name: str) -> dict[str, str]:
    """The front matter of a shipped file, read here with a plain line parser (independent of the loader)."""
    text = (CORPUS / name).read_text("utf-8")
    block = text.split("---\n", 2)[1]
    out = {}
    for line in block.splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            out[key.strip()] = value.strip()
    return out


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """Four shipped files: both 纪律处分条例 versions, the 廉洁自律准则 and the seed essay (no front matter); the
    ``eng`` fixture (conftest) indexes them."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in (D2018, D2023, LIANJIE, ESSAY):
        shutil.copy(CORPUS / name, corpus / name)
    return corpus


def by_id(eng: Engine) -> dict[str, dict]:
    return {d["doc_id"]: d for d in eng.documents()}


# ------------------------------------------------------------------------------------------- front matter
def test_markdown_loader_reads_every_front_matter_field() -> None:
    for name in (D2018, D2023, "中央八项规定实施细则.md"):
        raws, _ = load_file_checked(CORPUS / name)
        meta = raws[0].meta
        expected = front_matter(name)
        for key in ("version", "issuer", "published", "effective", "status", "category", "superseded_by"):
            assert meta.get(key) == expected.get(key), (name, key)
        assert raws[0].title == expected["title"]
        assert not raws[0].text.lstrip().startswith("---")


def test_documents_and_document_show_the_front_matter(eng: Engine) -> None:
    docs = by_id(eng)
    old, new, essay = docs[D2018], docs[D2023], docs[ESSAY]
    assert (old["status"], old["published"], old["effective"], old["version"]) == ("已修订", "2018-08-18",
                                                                                   "2018-10-01", "2018")
    assert (new["status"], new["category"], new["issuer"]) == ("现行", "党章党规", "中共中央")
    assert old["superseded_by"].startswith("中国共产党纪律处分条例（2023")
    # no front matter: nothing invented
    assert essay["category"] is None and essay["issuer"] is None and essay["status"] is None
    one = eng.document(D2018)
    assert one["status"] == "已修订" and one["category"] == "党章党规" and one["passages"]
    # the existing keys are all still there
    for key in ("doc_id", "title", "kind", "source", "passages", "chars", "added_at", "updated_at", "state"):
        assert key in old


def test_hits_carry_status_and_category(eng: Engine) -> None:
    hits = eng.search(DISCIPLINE_Q, k=10, mode="keyword")
    statuses = {h["doc_id"]: h["status"] for h in hits}
    statuses.update({o["doc_id"]: o["status"] for h in hits for o in h.get("also_in") or []})
    assert statuses.get(D2018) == "已修订" and statuses.get(D2023) == "现行", statuses
    assert all(h["category"] == "党章党规" for h in hits if h["doc_id"] != ESSAY)
    essay_hits = eng.search("党支部如何当好监督者", k=3, mode="keyword", docs=[ESSAY])
    assert essay_hits and all(h["category"] is None and h["status"] is None for h in essay_hits)


# ------------------------------------------------------------------------------------------- corrections
def test_check_changes_normalises_and_refuses_with_both_languages() -> None:
    ok = check_changes({"status": "repealed", "published": "2018年8月18日", "effective": "2018/10",
                        "category": "  本单位 制度 "})
    assert ok == {"status": "已废止", "published": "2018-08-18", "effective": "2018-10", "category": "本单位 制度"}
    assert check_changes({"title": "", "status": None}) == {"title": None, "status": None}
    for bad, words in (({"status": "作废了"}, ("状态", "status")), ({"published": "2018-02-30"}, ("发布日期", "date")),
                       ({"issuer": "中共中央"}, ("不能修改", "cannot be edited")), ({}, ("没有要修改", "nothing"))):
        with pytest.raises(MetadataError) as err:
            check_changes(bad)
        assert all(w in str(err.value) for w in words), str(err.value)


def test_a_correction_is_a_new_generation_and_shows_everywhere(eng: Engine) -> None:
    before = eng.stats()["generation"]
    shown = eng.set_metadata(D2023, status="已废止", category="本单位制度", title="纪律处分条例（新）")
    assert eng.stats()["generation"] == before + 1
    assert shown["status"] == "已废止" and shown["edited"] == ["title", "category", "status"]
    doc = by_id(eng)[D2023]
    assert (doc["status"], doc["category"], doc["title"]) == ("已废止", "本单位制度", "纪律处分条例（新）")
    assert doc["issuer"] == "中共中央"  # fields not corrected keep the file's value
    hits = eng.search(DISCIPLINE_Q, k=10, mode="keyword", docs=[D2023])
    assert hits and all(h["status"] == "已废止" and h["category"] == "本单位制度" for h in hits)
    assert all(h["title"] == "纪律处分条例（新）" and "纪律处分条例（新）" in h["citation"] for h in hits)
    # another engine on the same folder (another process) sees it: it is in the index, not in memory
    with Engine.open(eng.root, Config()) as other:
        assert by_id(other)[D2023]["status"] == "已废止"
    # None reverts a field to the file's own value
    eng.set_metadata(D2023, status=None, title=None)
    doc = by_id(eng)[D2023]
    assert (doc["status"], doc["title"], doc["category"]) == ("现行", "中国共产党纪律处分条例", "本单位制度")


def test_bad_corrections_change_nothing(eng: Engine) -> None:
    before = eng.stats()["generation"]
    with pytest.raises(MetadataError):
        eng.set_metadata(D2023, status="废掉")
    with pytest.raises(KeyError):
        eng.set_metadata("没有这个文件.md", status="已废止")
    assert eng.stats()["generation"] == before and by_id(eng)[D2023]["status"] == "现行"


def test_version_ordering_follows_corrected_status(eng: Engine) -> None:
    def version_status(doc_id: str) -> str | None:
        hits = eng.search(DISCIPLINE_Q, k=10, mode="keyword", docs=[doc_id])
        return hits[0]["version_status"]

    assert (version_status(D2023), version_status(D2018)) == ("current", "historical")
    eng.set_metadata(D2023, status="已废止")
    eng.set_metadata(D2018, status="现行")
    assert (version_status(D2023), version_status(D2018)) == ("historical", "current")
    # folded hits: the current version leads the group
    top = eng.search(DISCIPLINE_Q, k=3, mode="keyword")[0]
    if top.get("also_in"):
        assert top["doc_id"] == D2018


def test_corrections_survive_reindexing_the_file_and_leave_with_the_document(eng: Engine, corpus: Path) -> None:
    eng.set_metadata(D2018, status="已废止", published="2018-08")
    path = corpus / D2018
    path.write_text(path.read_text("utf-8") + "\n附：本文件供测试修改。\n", encoding="utf-8")
    report = eng.index(corpus, wait=False)
    assert report.updated == [D2018]
    doc = by_id(eng)[D2018]
    assert (doc["status"], doc["published"], doc["effective"]) == ("已废止", "2018-08", "2018-10-01")
    assert eng.remove([D2018]) == [D2018]
    shutil.copy(CORPUS / D2018, corpus / D2018)
    eng.index(corpus, wait=False)
    assert by_id(eng)[D2018]["status"] == "已修订"  # a new document: the file's own status again


def test_a_sync_that_removes_a_document_drops_its_corrections(eng: Engine, corpus: Path) -> None:
    """A file gone from the folder takes its document's corrections out of the manifest in the same generation
    (they were kept unused, and laid over the file if it came back as a new document); a document that comes back
    in the same sync under the same id (a .jsonl record moved to another file) keeps them."""
    record = {"id": "dj-1", "title": "党员教育材料", "text": (CORPUS / LIANJIE).read_text("utf-8").split("---\n", 2)[2]}
    (corpus / "a.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    eng.index(corpus, wait=False)
    eng.set_metadata(D2018, status="已废止", title="纪律处分条例旧版")
    eng.set_metadata("dj-1", category="学习材料", title="廉洁自律准则学习材料")
    edits = lambda: eng._state().manifest.get("metadata_edits") or {}  # noqa: E731
    assert set(edits()) == {D2018, "dj-1"}
    (corpus / D2018).unlink()
    (corpus / "a.jsonl").rename(corpus / "b.jsonl")  # the record moves: gone from a.jsonl, back in b.jsonl
    before = eng._state().number
    report = eng.index(corpus, wait=False)
    assert D2018 in report.removed and eng._state().number == before + 1
    assert D2018 not in by_id(eng) and "dj-1" in by_id(eng)
    assert set(edits()) == {"dj-1"} and edits()["dj-1"]["title"] == "廉洁自律准则学习材料"
    assert by_id(eng)["dj-1"]["category"] == "学习材料"
    shutil.copy(CORPUS / D2018, corpus / D2018)  # back in a later sync: a new document, the file's own metadata
    eng.index(corpus, wait=False)
    doc = by_id(eng)[D2018]
    assert (doc["status"], doc["title"], doc["edited"]) == ("已修订", front_matter(D2018)["title"], [])
    assert set(edits()) == {"dj-1"}


NEW_TITLE = "鸿雁驿站支部工作随笔"  # 鸿雁驿站: in no text of the corpus


def title_hits(eng: Engine) -> list[dict]:
    """Keyword hits for the corrected title's own words."""
    return eng.search("鸿雁驿站", k=5, mode="keyword")


def test_a_corrected_title_is_searchable_by_keyword_and_shown(eng: Engine, corpus: Path) -> None:
    """Issue 23 item 4: the keyword index's title field follows a title correction (and its revert), also when the
    file is re-read, so a keyword search for the new title finds the document and shows the new title."""
    assert not [h for h in title_hits(eng) if h["doc_id"] == ESSAY]
    eng.set_metadata(ESSAY, title=NEW_TITLE)
    hits = title_hits(eng)
    assert hits and {h["doc_id"] for h in hits} == {ESSAY}
    assert all(h["title"] == NEW_TITLE and h["citation"].startswith(f"《{NEW_TITLE}》") for h in hits)
    # the file changes: its passages are read again, under the corrected title
    path = corpus / ESSAY
    path.write_text(path.read_text("utf-8") + "\n附：本文件供测试修改。\n", encoding="utf-8")
    assert eng.index(corpus, wait=False).updated == [ESSAY]
    assert {h["doc_id"] for h in title_hits(eng)} == {ESSAY}
    assert eng.search(NEW_TITLE, k=1, mode="keyword")[0]["title"] == NEW_TITLE
    # the other documents' keyword entries are untouched; back to the file's title: no longer found by the old one
    assert eng.search("廉洁自律准则", k=1, mode="keyword")[0]["doc_id"] == LIANJIE
    eng.set_metadata(ESSAY, title=None)
    assert title_hits(eng) == [] and eng.metadata(ESSAY)["title"] != NEW_TITLE


def test_category_filter(eng: Engine) -> None:
    eng.set_metadata(ESSAY, category="学习材料")
    hits = eng.search("党支部", k=10, mode="keyword", category="学习材料")
    assert hits and {h["doc_id"] for h in hits} == {ESSAY}
    regs = eng.search("党员领导干部廉洁", k=10, mode="keyword", category=["党章党规"])
    assert regs and ESSAY not in {h["doc_id"] for h in regs}
    both = eng.search("党员领导干部廉洁", k=10, mode="keyword", category="党章党规", docs=[LIANJIE, ESSAY])
    assert both
    assert {h["doc_id"] for h in both} <= {LIANJIE}
    with pytest.raises(QueryError) as err:
        eng.search("党支部", mode="keyword", category="没有的类别")
    assert "没有的类别" in str(err.value) and "categor" in str(err.value)
    assert eng.categories() == {"党章党规": 3, "学习材料": 1}


# ------------------------------------------------------------------------------------------- CLI and API
def test_cli_meta_and_category(eng: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(eng.root)
    eng.close()
    assert cli_main(["--index-dir", index, "-q", "meta", D2018, "--status", "已废止", "--category", "历史文件",
                     "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "已废止" and shown["category"] == "历史文件"
    assert cli_main(["--index-dir", index, "-q", "ask", "纪律处分", "--mode", "keyword", "--category", "历史文件",
                     "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["results"]
    assert hits and {h["doc_id"] for h in hits} == {D2018}
    assert cli_main(["--index-dir", index, "-q", "meta", D2018, "--status", "不知道"]) == 2
    err = capsys.readouterr().err
    assert "状态" in err and "status" in err
    assert cli_main(["--index-dir", index, "-q", "meta", "nope.md", "--status", "现行"]) == 2
    assert "nope.md" in capsys.readouterr().err
    assert cli_main(["--index-dir", index, "-q", "meta", D2018, "--reset", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "已修订"


def test_api_patch_with_token_and_category_filter(eng: Engine) -> None:
    c = create_app(eng, Config(admin_token="令牌-123")).test_client()
    url = "/api/documents/" + D2023
    assert c.patch(url, json={"status": "已废止"}).status_code == 401
    assert c.patch(url, json={"status": "已废止"}, headers={"X-Admin-Token": "wrong"}).status_code == 403
    good = {"Authorization": "Bearer 令牌-123".encode("utf-8").decode("latin-1")}
    bad = c.patch(url, json={"status": "作废"}, headers=good)
    assert bad.status_code == 400
    msg = json.dumps(bad.get_json(), ensure_ascii=False)
    assert "状态" in msg and "status must be" in msg
    assert c.patch("/api/documents/nope.md", json={"status": "现行"}, headers=good).status_code == 404
    assert c.patch(url, data="not json", headers=good).status_code == 400
    r = c.patch(url, json={"status": "已废止", "category": "本单位制度", "effective": "2024-01-01"}, headers=good)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "已废止" and r.get_json()["category"] == "本单位制度"
    listed = {d["doc_id"]: d for d in c.get("/api/documents").get_json()["documents"]}
    assert listed[D2023]["status"] == "已废止" and listed[D2018]["status"] == "已修订"
    assert c.get(url).get_json()["category"] == "本单位制度"
    found = c.get("/api/search", query_string={"q": "纪律处分", "mode": "keyword", "category": "本单位制度"})
    assert found.status_code == 200
    assert {h["doc_id"] for h in found.get_json()["results"]} == {D2023}
    assert all(h["status"] == "已废止" for h in found.get_json()["results"])
    batch = c.post("/api/batch", json={"questions": ["纪律处分"], "mode": "keyword", "category": ["党章党规"]})
    assert batch.status_code == 200 and D2023 not in {h["doc_id"] for h in batch.get_json()["results"][0]}
    unknown = c.get("/api/search", query_string={"q": "纪律处分", "category": "没有"})
    assert unknown.status_code == 400


# ------------------------------------------------------------------------------------------- kill test
@pytest.mark.slow
@pytest.mark.parametrize("point", ["metadata", "keyword", "before_switch"])
def test_a_killed_correction_leaves_the_old_state(eng: Engine, point: str) -> None:
    """Killed before its switch, a correction (here of status and title: the title rewrites the document's keyword
    entries, paused at ``keyword`` after that) leaves the old state, and the next one goes through."""
    index = eng.root
    eng.close()
    cmd = [str(Path(sys.executable).parent / "partyqa"), "--index-dir", str(index), "-q", "meta", D2023,
           "--status", "已废止", "--title", NEW_TITLE]
    if not Path(cmd[0]).exists():
        cmd[:1] = [sys.executable, "-m", "indexer.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYQA_")}
    env.update(PARTYQA_PAUSE_AT=point, PARTYQA_PAUSE_SECONDS="120", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = index / f".paused-{point}"
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text("utf-8").strip() == str(proc.pid)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the writer never paused at {point}"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    with Engine.open(index, Config(lock_timeout=0)) as after:
        assert by_id(after)[D2023]["status"] == "现行" and by_id(after)[D2023]["title"] != NEW_TITLE
        assert title_hits(after) == []
        # the next correction goes through at once: no stale lock, no damaged generation
        after.set_metadata(D2023, status="已废止", title=NEW_TITLE)
        assert by_id(after)[D2023]["status"] == "已废止"
        assert after.search("纪律处分", k=3, mode="keyword")
        assert {h["doc_id"] for h in title_hits(after)} == {D2023}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["keyword", "before_switch"])
def test_a_killed_sync_keeps_a_removed_documents_correction_with_it(eng: Engine, corpus: Path, point: str) -> None:
    """A sync that removes a document and its correction, killed before its switch, leaves both (the document
    listed, the correction shown); the next sync removes both, in one generation."""
    from test_robust_kill import kill_at

    eng.set_metadata(D2018, status="已废止")
    index = eng.root
    eng.close()
    (corpus / D2018).unlink()
    kill_at(index, point, index.parent / "sync.log", "index", str(corpus))
    with Engine.open(index, Config(lock_timeout=0)) as after:
        assert by_id(after)[D2018]["status"] == "已废止"
        assert D2018 in (after._state().manifest.get("metadata_edits") or {})
        after.index(corpus, wait=False)
        assert D2018 not in by_id(after) and D2018 not in (after._state().manifest.get("metadata_edits") or {})


def test_documents_page_form_corrects_with_the_token(eng: Engine) -> None:
    c = create_app(eng, Config(admin_token="t0k-令牌")).test_client()
    page = c.get("/documents").get_data(as_text=True)
    assert 'id="meta-form"' in page and 'name="admin_token"' in page
    form = {"doc_id": LIANJIE, "status": "已废止", "category": "", "title": ""}
    assert c.post("/documents/meta", data=form).status_code == 401
    assert by_id(eng)[LIANJIE]["status"] == "现行"
    done = c.post("/documents/meta", data={**form, "admin_token": "t0k-令牌"})
    assert done.status_code == 303 and by_id(eng)[LIANJIE]["status"] == "已废止"
    assert by_id(eng)[LIANJIE]["category"] == "党章党规"  # an empty field changes nothing
    bad = c.post("/documents/meta", data={"doc_id": LIANJIE, "published": "2015-13-01", "admin_token": "t0k-令牌"})
    assert bad.status_code == 400 and "发布日期" in bad.get_data(as_text=True)
