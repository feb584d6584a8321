"""Time from the index step of `make run` to the library searchable by keyword and by meaning (issue 24).

    .venv/bin/python -m bench.ready                    # the shipped corpus with its vectors: what `make run` does
    .venv/bin/python -m bench.ready --no-shipped       # the same files without corpus/.vectors: every passage encoded
    .venv/bin/python -m bench.ready --no-wait          # `index --no-wait`: the server's background embedder finishes

Runs the two commands of `make run` on a fresh index folder (no embedding cache) -- `partyqa index --import DIR`,
then `partyqa serve` -- and polls the server. Times are seconds from the start of the index step:

- ``keyword_stage``: the index step printed 可检索 keyword-ready (searchable by keyword in that process);
- ``index_done``: the index step returned (`make run` starts the server only then);
- ``server_up``: `partyqa serve` answered /api/health;
- ``served_keyword``: the server answered a keyword search with hits;
- ``semantic``: the server answered a semantic search with hits and ``/api/health`` listed no pending passage
  (with ``--timeout``: a run not there in time records ``pending_at_stop``, ``passages_per_s`` and
  ``semantic_estimate`` instead).

Writes ``bench/results/ready[-variant].json`` and prints it. The machine's load average is recorded beside the
times: on the shared 2-core machine other processes slow the encoding down several times.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .common import RESULTS, ROOT, write_json
from .serve_client import CMD, OFFLINE, Server, http, search

PROBE = "党员有哪些权利"  # answered by 党章第四条 once the library is in
POLL_S = 0.25


def _hits(base: str, mode: str) -> int:
    status, body, _ = search(base, PROBE, mode=mode)
    return len(body.get("results") or []) if status == 200 else 0


def measure(corpus: Path, shipped: bool = True, wait: bool = True, timeout: float = 1800.0) -> dict[str, Any]:
    """Run `make run`'s index and serve steps on a fresh index and return the times (seconds) described above."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYQA_")}
    env.update(OFFLINE, PYTHONPATH=str(ROOT))
    out: dict[str, Any] = {"shipped_vectors": shipped, "wait": wait, "load_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="partyqa-ready-") as tmp:
        work = Path(tmp)
        source = corpus
        if not shipped:  # the same files without their vectors
            source = work / "corpus"
            shutil.copytree(corpus, source, ignore=shutil.ignore_patterns(".vectors"))
        index = work / "index"
        cmd = [*CMD, "--index-dir", str(index), "index", "--import", str(source)] + ([] if wait else ["--no-wait"])
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen: dict[str, float] = {}

        def watch() -> None:  # the stage lines on stderr (tqdm redraws with \r: read characters)
            assert proc.stderr is not None
            line = ""
            while ch := proc.stderr.read(1):
                line = "" if ch in "\r\n" else line + ch
                if "keyword-ready" in line and "keyword_stage" not in seen:
                    seen["keyword_stage"] = time.monotonic() - t0

        reader = threading.Thread(target=watch, daemon=True)
        reader.start()
        stdout, _ = proc.communicate(timeout=timeout)
        reader.join(timeout=5)
        out["index_done"] = time.monotonic() - t0
        if proc.returncode != 0:
            raise SystemExit(f"index step failed ({proc.returncode}): {stdout}")
        out["keyword_stage"] = seen.get("keyword_stage")
        out["index_report"] = stdout.strip().splitlines()[-1] if stdout.strip() else ""
        server = Server(index, work / "serve.log", env=env)
        try:
            out["server_up"] = time.monotonic() - t0
            deadline = t0 + timeout
            while time.monotonic() < deadline and "served_keyword" not in out:
                if _hits(server.url, "keyword"):
                    out["served_keyword"] = time.monotonic() - t0
                else:
                    time.sleep(POLL_S)
            first: tuple[float, int] | None = None
            while "semantic" not in out:
                _, health, _ = http("GET", server.url + "api/health")
                now, pending = time.monotonic(), int(health.get("pending_vectors") or 0)
                out["documents"], out["passages"] = health.get("documents"), health.get("passages")
                first = first or (now, pending)
                if pending == 0 and _hits(server.url, "semantic"):
                    out["semantic"] = now - t0
                elif now >= deadline:  # not there yet: how far it got, and when it would get there at that rate
                    done = first[1] - pending
                    rate = done / (now - first[0]) if now > first[0] else 0.0
                    out.update(stopped_at=now - t0, pending_at_stop=pending, passages_per_s=round(rate, 2),
                               semantic_estimate=(now - t0 + pending / rate) if rate else None)
                    break
                else:
                    time.sleep(POLL_S)
        finally:
            server.stop()
    out["load_after"] = list(os.getloadavg())
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and write bench/results/ready*.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(ROOT / "corpus"))
    ap.add_argument("--no-shipped", action="store_true", help="copy the corpus without its .vectors folder")
    ap.add_argument("--no-wait", action="store_true", help="index --no-wait; the server embeds in the background")
    ap.add_argument("--timeout", type=float, default=1800.0, help="stop after this many seconds; a run that is not "
                    "fully semantic by then records its progress and rate (semantic_estimate)")
    ap.add_argument("--out", default=None, help="result file (default bench/results/ready[-variant].json)")
    args = ap.parse_args(argv)
    result = measure(Path(args.corpus).resolve(), shipped=not args.no_shipped, wait=not args.no_wait,
                     timeout=args.timeout)
    variant = "".join(s for s, on in (("-no-shipped", args.no_shipped), ("-no-wait", args.no_wait)) if on)
    path = Path(args.out) if args.out else RESULTS / f"ready{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, result)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
