"""Cost of one upload into a large index: seconds until it is searchable by keyword, then until its vectors are
committed. Each run adds one regulation file (90 passages; all but one passage's vector in the embedding cache) to
a fresh copy of a bench index (its corpus copied too, so the bench index is left as it was).

    .venv/bin/python -m bench.upload_speed --index bench/results/work/speed-100k/index --runs 3
    .venv/bin/python bench/upload_speed.py --code /path/to/an/older/checkout --index ... --runs 3   # before/after

``--code`` puts another checkout's ``indexer`` package first on the path (this file uses only its public API).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def copy_index(index: Path, dest: Path) -> Path:
    """A copy of ``index`` whose manifest points at a copy of its corpus (symlinks kept); returns the new index."""
    from indexer import Config, Engine

    with Engine.open(index, Config.from_env(reranker="")) as eng:
        corpus, gen_dir = eng.corpus_dir, eng._state().path
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(index, dest / "index", symlinks=True)
    shutil.copytree(corpus, dest / "corpus", symlinks=True)
    manifest = dest / "index" / gen_dir.name / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["corpus_dir"] = str((dest / "corpus").resolve())
    manifest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return dest / "index"


def upload_document(corpus: Path, dest: Path, tag: str) -> Path:
    """A regulation file of the corpus with one line appended (so one passage is new to the embedding cache)."""
    source = next((p for p in sorted(corpus.rglob("*.md")) if "dangfa" in p.as_posix()), None)
    doc = dest / "upload" / "新增-中国共产党纪律处分条例.md"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text((source.read_text(encoding="utf-8") if source else "") + f"\n\n附：本文件为测试上传{tag}。",
                   encoding="utf-8")
    return doc


def run(index: Path, runs: int, work: Path) -> dict[str, Any]:
    """Median seconds to keyword-searchable and to vectors committed over ``runs`` fresh copies."""
    from indexer import Config, Engine

    keyword, vectors = [], []
    for r in range(runs):
        copy = copy_index(index, work)
        with Engine.open(copy, Config.from_env(reranker="")) as eng:
            doc = upload_document(Path(eng.corpus_dir), work, str(r))
            eng.search("党员的权利有哪些")  # a serving engine: generation open, model loaded
            t0 = time.perf_counter()
            eng.add([doc], wait=False)
            keyword.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            eng.embed_pending()
            vectors.append(time.perf_counter() - t0)
        shutil.rmtree(work, ignore_errors=True)
    return {"index": str(index), "runs": runs, "keyword_commit_s": [round(x, 2) for x in keyword],
            "vector_commit_s": [round(x, 2) for x in vectors], "median_keyword_s": round(statistics.median(keyword), 2),
            "median_vector_s": round(statistics.median(vectors), 2)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/partyqa-upload-speed"))
    ap.add_argument("--code", type=Path, help="a checkout whose indexer package to measure instead")
    args = ap.parse_args(argv)
    if args.code:
        sys.path.insert(0, str(args.code.resolve()))
    out = run(args.index.resolve(), args.runs, args.work)
    out["code"] = str(args.code or "this checkout")
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
