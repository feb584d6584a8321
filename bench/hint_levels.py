"""The results page's graded answer marks (issue 25 §1, webui.pages.HINT_LEVELS): does a lower card's mark level
follow how often that card holds the gold answer?

The shipped library (corpus/, its vectors from corpus/.vectors, the real model for the questions) answers each
question with 5 hits; every card below the top is counted by the level its own ``confidence`` gives
(:func:`webui.pages.hint_level`, the default answer threshold as floor) and whether its text holds the question's
``gold_text``. Most gold passages are in ../shared/bench party-docs, not the shipped library, so the shares are
small; what matters is that they fall with the level. Bounds chosen on the tuning sets (dev, secretary), reported
on the held-out sets::

    .venv/bin/python -m bench.hint_levels dev secretary
    .venv/bin/python -m bench.hint_levels heldout heldout2 heldout3
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .common import BENCH, ROOT


def main(argv: list[str] | None = None) -> int:
    """Print, per mode and level, the lower cards and the share holding the gold answer."""
    from indexer import Config, Engine
    from webui.pages import hint_level

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="question sets: bench/<name>_questions.jsonl")
    args = ap.parse_args(argv)
    questions = [json.loads(line) for name in args.sets
                 for line in (BENCH / f"{name}_questions.jsonl").read_text("utf-8").splitlines() if line.strip()]
    config = Config()
    with tempfile.TemporaryDirectory() as tmp, Engine.open(Path(tmp) / "index", config) as eng:
        eng.import_dir(ROOT / "corpus")
        for mode in ("hybrid", "keyword"):
            counts: dict[str, list[int]] = {}
            for q, res in zip(questions, eng.search_many([q["question"] for q in questions], k=5, mode=mode)):
                gold = q.get("gold_text") or ""
                for hit in res[1:]:
                    level = hint_level(hit.get("confidence"), config.min_confidence)
                    row = counts.setdefault(str(level or "none"), [0, 0])
                    row[0] += 1
                    row[1] += bool(gold) and gold in hit["text"]
            for level in ("3", "2", "1", "none"):
                n, gold_n = counts.get(level, [0, 0])
                print(f"{mode:8} level {level:4} cards {n:4}  holding the gold answer {gold_n:3} "
                      f"({gold_n / n if n else 0:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
