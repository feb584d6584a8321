"""Reading question files (txt, csv, jsonl) for `partyqa batch` / `eval` and the web batch upload."""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from indexer.types import PartyQAError

logger = logging.getLogger("partyqa")


def read_questions(path: str | Path) -> list[dict[str, Any]]:
    """Questions from txt (one per line), csv (a `question` column) or jsonl (`question` or `q`); keeps other fields."""
    from indexer.ingest.decode import decode_bytes

    p = Path(path)
    text = decode_bytes(p.read_bytes(), str(p))
    suffix = p.suffix.lower()
    rows: list[dict[str, Any]] = []
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PartyQAError(f"{p}：第 {n} 行不是有效的 JSON / {p}: line {n}: invalid JSON ({exc.msg})") from None
            q = obj.get("question") if isinstance(obj, dict) else None
            q = q if q is not None else (obj.get("q") if isinstance(obj, dict) else None)
            if not isinstance(q, str) or not q.strip():
                raise PartyQAError(f"{p}：第 {n} 行缺少 question（或 q）文本字段 / {p}: line {n}: needs a 'question' "
                                  f"or 'q' text field")
            rows.append({**obj, "question": q})
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "question" not in [f.strip().lower() for f in reader.fieldnames]:
            raise PartyQAError(f"{p}：CSV 文件需要 question 列 / {p}: CSV needs a 'question' column "
                              f"(found: {reader.fieldnames})")
        key = next(f for f in reader.fieldnames if f.strip().lower() == "question")
        for row in reader:
            if (row.get(key) or "").strip():
                rows.append({**row, "question": row[key].strip()})
    else:
        rows = [{"question": line.strip()} for line in text.splitlines() if line.strip()]
    return rows
