"""Chinese text rules, no I/O: analysis (segmentation, folding, synonyms), structure (headings, articles, sentences), noise, citations, versions."""
