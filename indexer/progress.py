"""Progress bars on stderr for long command-line runs (tqdm, imported only when a bar is shown)."""
from __future__ import annotations

import sys
from typing import Any, Iterable, Sequence, TypeVar

T = TypeVar("T")


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, leave: bool = True) -> Any | None:
    """A tqdm bar counting to ``total`` (``.update(n)``, ``.close()``), or None when disabled or nothing to count."""
    if not enabled or total <= 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave)


def progress_iter(items: Sequence[T], desc: str, unit: str, enabled: bool = True, minimum: int = 1) -> Iterable[T]:
    """``items``, with a tqdm bar when enabled and there are at least ``minimum`` of them."""
    if not enabled or len(items) < minimum:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, file=sys.stderr)
