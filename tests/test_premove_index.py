"""An index built by the release before the issue-20 layout (commit 3c4ef62) opens and answers identically.

tests/fixtures/premove/ holds that index (the seed essay and the regulation fixture, vectors from the hashing
stand-in encoder of bench/common.py so that no model is needed) and the answers the old code gave
(answers.json), both written by tests/fixtures/premove/build.py run in a checkout of 3c4ef62.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.common import HashEncoder
from indexer import Config, Engine

PREMOVE = Path(__file__).resolve().parent / "fixtures" / "premove"
EXPECTED = json.loads((PREMOVE / "answers.json").read_text("utf-8"))
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
    want = {k: v for k, v in EXPECTED["_stats"].items() if k not in PATH_KEYS}
    assert {k: v for k, v in stats.items() if k not in PATH_KEYS} == want
    assert stats["analyzer_current"] is True  # same tokenization: the keyword half is not rebuilt
    assert old_index.documents() == EXPECTED["_documents"]


@pytest.mark.parametrize("key", sorted(k for k in EXPECTED if not k.startswith("_")))
def test_premove_index_answers_identically(old_index: Engine, key: str) -> None:
    mode, question = key.split("|", 1)
    docs = None
    if mode.endswith("+docs"):
        mode, docs = mode.removesuffix("+docs"), ["支部工作条例示例.txt"]
    r = old_index.search(question, k=5, mode=mode, docs=docs)
    got = json.loads(json.dumps({"hits": list(r), **r.envelope(), "doc_counts": r.doc_counts}, ensure_ascii=False,
                                default=str))
    assert got == EXPECTED[key]
