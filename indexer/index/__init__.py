"""Committed index states: generations (gen-N folders, CURRENT), sync (what changed in the corpus)."""
