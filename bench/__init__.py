"""PartyQA benchmarks: retrieval quality against peer baselines and speed, reproducible with ``python -m bench.run``."""
