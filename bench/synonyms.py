"""Query expansion by everyday words (indexer/text/data/synonyms.txt): hybrid R@1 / R@5 with and without a block.

The synonym list grew on 2026-12-08 by everyday words for what the texts say formally (员工 → 职工, 开会 → 召开 会议,
亲戚 → 亲属 …). This ranks every question of the tuning corpus of ``python -m bench.learn build`` twice, by
``indexer.search.rank.rank`` as the engine does: with the list as shipped, and with the list cut before the line that
starts the block (``--cut``, default the block's first comment line).

    python -m bench.learn build         # once: the tuning corpus (about 5 minutes)
    python -m bench.synonyms            # about 2 minutes: the changed questions' candidates are collected again

The index holds sentence windows for the candidates of the questions as first collected; a candidate that only the
other expansion brings up is scored by its passage vector alone. The report counts those candidates.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from .common import setup_logging

logger = logging.getLogger("bench.synonyms")
SETS = ("quiz", "dev", "secretary", "heldout", "heldout2", "heldout3")
OFF = ("offtopic", "offtopic4", "offtopic2", "offtopic3")
CUT = "# Everyday words for what the texts say formally"


@contextlib.contextmanager
def synonym_list(text: str) -> Iterator[None]:
    """Query expansion reads ``text`` as its synonym list while the block runs."""
    from indexer.text import analyzer

    saved = analyzer.SYNONYMS_PATH
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synonyms.txt"
        path.write_text(text, encoding="utf-8")
        analyzer.SYNONYMS_PATH = path
        analyzer.synonyms.cache_clear()
        try:
            yield
        finally:
            analyzer.SYNONYMS_PATH = saved
            analyzer.synonyms.cache_clear()


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table with the list cut before ``--cut`` and as shipped."""
    from indexer.text import analyzer

    from .fusion import open_index
    from .learn import INDEX, WORK, collect, load_items, recall_line

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, default=INDEX)
    ap.add_argument("--cut", default=CUT, help="the line (its start) the list is cut before for the comparison")
    args = ap.parse_args(argv)
    setup_logging()
    shipped = analyzer.SYNONYMS_PATH.read_text(encoding="utf-8")
    if args.cut not in shipped:
        raise SystemExit(f"no line starting {args.cut!r} in {analyzer.SYNONYMS_PATH}")
    cut = shipped[:shipped.index(args.cut)]
    eng = open_index(args.index)
    try:
        for name, text in (("without the block", cut), ("as shipped", shipped)):
            with synonym_list(text):
                items = load_items(eng._state().passages)
                # candidates are kept per question text: one store per list, so an edited list is collected anew
                collect(eng, items, WORK / f"synonyms-{hashlib.sha1(text.encode()).hexdigest()[:12]}")
                print(f"{name:18s} R@1 / R@5: {recall_line(eng, items, SETS, OFF)}", flush=True)
    finally:
        eng.close()


if __name__ == "__main__":
    main()
