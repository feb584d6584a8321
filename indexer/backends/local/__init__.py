"""The local backend: a whoosh keyword index (keyword; its scores, tokenize_pool, postings) and numpy vectors (vectors, ann) in each generation."""
