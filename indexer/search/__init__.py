"""Question -> Results: query (the request checks, analysis once), searcher (both halves, then rank), rank, fuse, highlight, rerank, metrics."""
