"""User data lives in the index's data folder: importing shipped samples, uploads and deletes never write them."""
from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ROOT, SEED
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import HashEncoder  # noqa: E402
from indexer import Config, Engine  # noqa: E402
import indexer.engine as engine_mod  # noqa: E402
from webui import create_app  # noqa: E402

REGULATION = ROOT / "tests" / "fixtures" / "regulation_sample.txt"
SEED_ID = SEED.name
REG_ID = "规章/" + REGULATION.name  # a sub-folder, as a repository corpus may have
SEED_PHRASE = "党支部怎样当好监督者"


def _tree(d: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``d``."""
    return {p.relative_to(d).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _ids(eng: Engine) -> list[str]:
    return [d["doc_id"] for d in eng.documents()]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of a repository corpus (the seed essay + a regulation); the model replaced by the hash stand-in."""
    monkeypatch.setattr(engine_mod, "load_encoder", lambda cfg: HashEncoder())
    monkeypatch.delenv("PARTYQA_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("PARTYQA_CORPUS_DIR", raising=False)
    corpus = tmp_path / "repo" / "corpus"
    (corpus / "规章").mkdir(parents=True)
    shutil.copy(SEED, corpus / SEED.name)
    shutil.copy(REGULATION, corpus / REG_ID)
    return corpus


def test_import_upload_delete_never_write_the_repository(repo: Path, tmp_path: Path) -> None:
    before = _tree(repo)
    index = tmp_path / "index"
    eng = Engine.open(index, Config())
    try:
        report = eng.import_dir(repo)
        assert sorted(report.added) == sorted([SEED_ID, REG_ID])
        data = (index / "corpus").resolve()
        assert eng.corpus_dir == data and _tree(data) == before
        assert any(h["doc_id"] == SEED_ID for h in eng.search(SEED_PHRASE, k=5, mode="keyword"))

        client = create_app(eng, Config()).test_client()
        upload = "通知：本支部定于周五开展红色家书诵读活动。".encode("utf-8")
        resp = client.post("/api/documents", data={"files": [(io.BytesIO(upload), "诵读通知.txt")]},
                           content_type="multipart/form-data")
        assert resp.status_code == 202, resp.get_data(as_text=True)  # a queued job: spooled under the index
        job = eng.jobs.wait(resp.get_json()["job"]["id"], "done", timeout=300).to_dict()
        assert job["state"] == "done" and job["files"][0]["doc_ids"] == ["诵读通知.txt"], job
        assert (data / "诵读通知.txt").read_bytes() == upload
        assert not (repo / "诵读通知.txt").exists()
        spooled = [p.resolve() for p in index.rglob("*") if p.is_file() and p.name == "诵读通知.txt"]
        assert spooled == [data / "诵读通知.txt"], spooled  # the job's spool copy is gone once it is done

        resp = client.delete(f"/api/documents/{quote(SEED_ID)}")
        if resp.status_code == 202:  # not finished within the DELETE's short wait (a busy machine)
            eng.jobs.wait(resp.get_json()["job"]["id"], "done", timeout=300)
        else:
            assert resp.status_code == 200 and resp.get_json()["removed"] == [SEED_ID]
        assert _tree(repo) == before  # names and bytes: the repository corpus was never written
        assert SEED_ID not in _ids(eng)
        assert all(h["doc_id"] != SEED_ID for h in eng.search(SEED_PHRASE, k=10, mode="keyword"))
        assert not (data / SEED_ID).exists()
        assert [p.name for p in (index / "removed").rglob("*.txt")] == [SEED_ID]  # kept aside, not lost

        # The next import (every `make run`) does not bring the deleted sample back, nor touch the upload.
        again = eng.import_dir(repo)
        assert not again.added and not again.updated and not again.removed
        assert sorted(_ids(eng)) == sorted(["诵读通知.txt", REG_ID])
        assert all(h["doc_id"] != SEED_ID for h in eng.search(SEED_PHRASE, k=10, mode="keyword"))

        # A changed shipped sample (a new sha1) is imported again.
        with open(repo / REG_ID, "a", encoding="utf-8") as fh:
            fh.write("\n第九十九条　本条例附加规定：党支部每季度开展一次廉洁谈心谈话。\n")
        changed = eng.import_dir(repo)
        assert changed.updated == [REG_ID] and not changed.added
        assert (data / REG_ID).read_bytes() == (repo / REG_ID).read_bytes()
        hits = eng.search("廉洁谈心谈话", k=3, mode="keyword")
        assert hits and hits[0]["doc_id"] == REG_ID
        assert SEED_ID not in _ids(eng)
        assert (index / "imports.json").is_file()
    finally:
        eng.close()


def test_import_keeps_a_user_file_of_the_same_name(repo: Path, tmp_path: Path) -> None:
    eng = Engine.open(tmp_path / "index", Config())
    try:
        mine = tmp_path / "mine" / SEED.name
        mine.parent.mkdir()
        mine.write_text("我自己的同名文件：支部书记述职评议安排。", "utf-8")
        eng.add([mine])  # a fresh index: the upload lands in the data folder
        data = (tmp_path / "index" / "corpus").resolve()
        assert (data / SEED.name).read_bytes() == mine.read_bytes()
        eng.import_dir(repo)
        assert (data / SEED.name).read_bytes() == mine.read_bytes()  # the user's file wins over the sample
        assert sorted(_ids(eng)) == sorted([SEED_ID, REG_ID])
    finally:
        eng.close()


def test_old_index_synced_with_the_repository_moves_to_the_data_folder(repo: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    eng = Engine.open(index, Config())
    try:
        eng.index(repo)  # what an older `make run` built: the repository corpus is the index's folder
        before = _tree(repo)
        report = eng.import_dir(repo)
        assert sorted(_ids(eng)) == sorted([SEED_ID, REG_ID])  # same documents, same ids
        assert not report.errors and eng.corpus_dir == (index / "corpus").resolve()
        eng.remove([SEED_ID])
        assert _tree(repo) == before and SEED_ID not in _ids(eng)
    finally:
        eng.close()


def test_cli_import_and_make_run_uses_it(repo: Path, tmp_path: Path) -> None:
    from indexer.cli import main

    index = tmp_path / "index"
    assert main(["--index-dir", str(index), "index", "--import", str(repo), "--json"]) == 0
    assert _tree((index / "corpus")) == _tree(repo)
    assert main(["--index-dir", str(index), "index", "--import", str(repo), str(repo)]) != 0  # both: refused
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "index --import corpus" in dry
