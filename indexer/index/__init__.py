"""Writing and keeping the index: generations (gen-N folders, CURRENT), sync (what changed in the corpus), writer (the one commit path), backlog (vectors embedded behind the keyword commit)."""
