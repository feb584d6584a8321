"""Courtesy around a question (indexer.text.courtesy): what greetings and thanks cost, and what stripping them gives back.

Every question of the paraphrase sets and the quiz is asked three ways over the tuning corpus of ``python -m
bench.learn build``, ranked by ``indexer.search.rank.rank`` as the engine ranks:

* **plain**: as written;
* **wrapped, kept**: wrapped in a greeting and thanks (the wrappers below, written before the stripping rules),
  searched as typed -- the engine before the stripping;
* **wrapped, stripped**: the same wrapped questions through today's analysis.

One wrapper of the six ("我是一名基层党务工作者，想问一下：") says who is asking; by design it is not stripped.

    python -m bench.learn build      # once: the tuning corpus (about 5 minutes)
    python -m bench.courtesy         # about 2 minutes: encodes the wrapped questions twice

The index holds sentence windows only for the candidates the plain questions read; a candidate that only a wrapped
question brings up is scored by its passage vector alone. The report counts those candidates.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
from pathlib import Path
from typing import Iterator, Sequence

from .common import setup_logging

logger = logging.getLogger("bench.courtesy")
SETS = ("quiz", "dev", "secretary", "heldout", "heldout2", "heldout3")
PREFIXES = ("您好，请问", "老师您好，想咨询一下：", "请问一下，", "我是一名基层党务工作者，想问一下：", "各位领导好，", "")
SUFFIXES = ("谢谢！", "麻烦解答一下，谢谢。", "求解答", "在线等，急！", "", "谢谢您的解答！")


def wrap(text: str, i: int) -> str:
    """The ``i``-th question wrapped: prefixes in turn, suffixes in turn every second question."""
    return PREFIXES[i % len(PREFIXES)] + text + SUFFIXES[(i // 2) % len(SUFFIXES)]


@contextlib.contextmanager
def courtesy_kept() -> Iterator[None]:
    """Analysis as before the stripping: the question is searched as typed."""
    from indexer.text import courtesy

    saved = courtesy.strip_courtesy
    courtesy.strip_courtesy = lambda q: q
    try:
        yield
    finally:
        courtesy.strip_courtesy = saved


def main(argv: Sequence[str] | None = None) -> None:
    """Print R@1 / R@5 per set for plain, wrapped-kept and wrapped-stripped questions."""
    from indexer.text.courtesy import strip_courtesy

    from .fusion import open_index
    from .learn import INDEX, WORK, collect, load_items, recall_line

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, default=INDEX)
    args = ap.parse_args(argv)
    setup_logging()
    eng = open_index(args.index)
    try:
        items = [it for it in load_items(eng._state().passages) if it.set in SETS]
        changed = [it.text for it in items if strip_courtesy(it.text) != it.text]
        print(f"{len(items)} questions; stripping changes {len(changed)} of them as written: {changed}")
        collect(eng, items, WORK / "learn")
        wrapped = []
        for i, it in enumerate(items):
            w = copy.copy(it)
            w.text = wrap(it.text, i)
            wrapped.append(w)
        kept = [copy.copy(w) for w in wrapped]
        with courtesy_kept():
            collect(eng, kept, WORK / "courtesy-kept")
        collect(eng, wrapped, WORK / "courtesy-stripped")
        for name, its in (("plain", items), ("wrapped, kept", kept), ("wrapped, stripped", wrapped)):
            print(f"{name:18s} R@1 / R@5: {recall_line(eng, its, SETS)}")
    finally:
        eng.close()


if __name__ == "__main__":
    main()
