"""Model folders: finding a model by name or path (never downloading), its prompts and fingerprint."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any


from indexer.types import ModelError

logger = logging.getLogger(__name__)


PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_FILES = ("config.json", "modules.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf")

BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
E5_INSTRUCT_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "

NOT_FOUND_HINT = (
    "copy a sentence-transformers model folder to models/<name> or set PARTYQA_MODEL=/path/to/folder; "
    "models are never downloaded"
)

def set_offline() -> None:
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


def require_model(name: str, models_dir: str, what: str, hint: str) -> str:
    """:func:`resolve_model`, or a ModelError saying where it looked and where to put the model."""
    path = resolve_model(name, models_dir)
    if path is None:
        raise ModelError(
            f"{what} {name!r} not found (looked for a folder {name!r} and "
            f"{os.path.join(models_dir, name)!r}): {hint}"
        )
    return path
