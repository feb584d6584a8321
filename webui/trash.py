"""The 回收站: files of deleted documents, which the engine keeps under ``<index>/removed/<stamp>/<name>``, listed
newest first and restored by queueing them as an upload."""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

MAX_LISTED = 50
_STAMP = re.compile(r"^(\d{8})-(\d{6})(?:-\d+)?$")


def _when(stamp: str) -> str:
    """``20261207-041502-123456`` → ``2026-12-07 04:15``."""
    m = _STAMP.match(stamp)
    if not m:
        return stamp
    try:
        return _dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def removed_files(index_dir: Any, indexed: Iterable[str], limit: int = MAX_LISTED) -> list[dict[str, Any]]:
    """Deleted files that can be restored, newest first, one per name; a name whose document is indexed again
    (same file name) is left out. Each entry: ``id`` (``stamp/name``), ``name``, ``deleted_at``, ``size``."""
    if not index_dir:
        return []
    root = Path(str(index_dir)) / "removed"
    if not root.is_dir():
        return []
    names = {PurePosixPath(d).name for d in indexed}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for stamp_dir in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        for path in sorted(p for p in stamp_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(stamp_dir).as_posix()
            base = PurePosixPath(rel).name
            if rel in seen or base in names:
                continue
            seen.add(rel)
            out.append({"id": f"{stamp_dir.name}/{rel}", "name": rel, "deleted_at": _when(stamp_dir.name),
                        "size": path.stat().st_size})
            if len(out) >= limit:
                return out
    return out


def removed_path(index_dir: Any, entry_id: str) -> Path | None:
    """The file of a 回收站 entry id (``stamp/name``), or None when it is not a file under ``removed/``."""
    if not index_dir or not entry_id or "\\" in entry_id or "\x00" in entry_id:
        return None
    parts = PurePosixPath(entry_id).parts
    if len(parts) < 2 or any(p in ("..", ".", "") for p in parts) or entry_id.startswith("/"):
        return None
    root = (Path(str(index_dir)) / "removed").resolve()
    path = (root / entry_id).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        return None
    return path if path.is_file() else None


def restore(engine: Any, path: Path) -> Any:
    """Queue ``path`` (a 回收站 file) as an upload under its own file name; the job that adds it back."""
    return engine.jobs.submit_add([path], names={str(path): path.name})  # copied once, into the job's spool
