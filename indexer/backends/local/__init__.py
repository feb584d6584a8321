"""The local backend: a whoosh keyword index (keyword, postings) and numpy vectors (vectors, ann) in each generation."""
