"""Question -> Results: query (request checks, analysis), rank (fusion, folding, highlights), fuse, highlight, rerank."""
