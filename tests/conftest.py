"""Shared test fixtures: paths to the seed corpus and the (optional) third-party bench data."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "基层党支部工作论文.txt"
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PARTY_DOCS = SHARED_BENCH / "party-docs"


def require_party_docs() -> Path:
    """Return ../shared/bench/party-docs or skip the test with a clear message."""
    if not (PARTY_DOCS / "corpus.jsonl").exists():
        pytest.skip("../shared/bench/party-docs is absent: real-document tests need the shared bench data beside the project")
    return PARTY_DOCS


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The seed essay as committed in corpus/."""
    return SEED


def make_corpus(dest: Path, party_docs: list[str] | None = None) -> Path:
    """A small corpus dir: the seed essay, the regulation fixture, and optional files from party-docs."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED, dest / SEED.name)
    shutil.copy(ROOT / "tests" / "fixtures" / "regulation_sample.txt", dest / "支部工作条例示例.txt")
    for rel in party_docs or []:
        src = require_party_docs() / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
    return dest
