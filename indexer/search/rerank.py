"""Optional second-stage reranking with a local sentence-transformers CrossEncoder folder (strictly offline)."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from indexer.config import Config
from indexer.embed.models import set_offline, is_model_dir, require_model
from indexer.types import ModelError

logger = logging.getLogger(__name__)

RERANKER_HINT = (
    "copy a sentence-transformers CrossEncoder folder (e.g. bge-reranker-base) to models/<name> or set "
    "PARTYQA_RERANKER=/path/to/folder; leave PARTYQA_RERANKER empty to turn reranking off; "
    "models are never downloaded"
)


class CrossEncoderReranker:
    """Scores (question, passage) pairs with a local CrossEncoder on CPU; higher is more relevant."""

    def __init__(self, model_dir: str | Path, max_length: int | None = 512):
        path = Path(os.path.abspath(Path(model_dir).expanduser()))
        if not is_model_dir(path):
            raise ModelError(f"{path}: not a CrossEncoder model folder (no config.json or modules.json); {RERANKER_HINT}")
        self.path = path
        self.model_id = f"ce:{path.name}"
        self._lock = threading.Lock()
        set_offline()
        try:
            from sentence_transformers import CrossEncoder

            self._model: Any = CrossEncoder(str(path), device="cpu", local_files_only=True, max_length=max_length)
        except Exception as exc:  # noqa: BLE001 - any load failure becomes a user-facing ModelError
            raise ModelError(f"{path}: could not load the CrossEncoder reranker: {exc}") from exc
        logger.info("loaded reranker %s", path)

    def rerank(self, question: str, texts: Sequence[str], batch_size: int = 16) -> list[float]:
        """One relevance score per text, in the order given."""
        if not texts:
            return []
        pairs = [(question, t) for t in texts]
        with self._lock:
            scores = self._model.predict(pairs, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores.reshape(len(texts), -1)[:, -1]]


def load_reranker(cfg: Config) -> CrossEncoderReranker | None:
    """The reranker cfg.reranker names (a folder path or a name under cfg.models_dir), or None when it is empty."""
    name = (cfg.reranker or "").strip()
    if not name:
        return None
    return CrossEncoderReranker(require_model(name, cfg.models_dir, "reranker", RERANKER_HINT))
