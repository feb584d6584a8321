"""Two processes using the query encoder at once (a server answering while `partyqa add` embeds in a shell):
question latency in one, passages a second in the other, with and without the machine-wide model lock
(:class:`indexer.embed.threads.MachineModelLock`), and each alone for reference.

    .venv/bin/python -m bench.two_processes --seconds 20 --out bench/results/full/two-processes.json

Questions: the 200 of ``bench.speed``, in a loop; passages: 350-character slices of party-docs (needs
../shared/bench), in slices as an upload embeds them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import latency_summary, loadavg, machine, now_iso, setup_logging, skip_without_shared

ROOT = Path(__file__).resolve().parents[1]


def _child(role: str, seconds: float, lock: bool) -> dict[str, Any]:
    """Run in a child process: ask questions or embed passages for ``seconds``; report what was done."""
    from indexer.embed import threads
    from indexer.embed.encoders import E5Encoder

    from .encoder_engines import passage_sample
    from .speed import query_set

    if not lock:
        threads.MachineModelLock.wanted = staticmethod(lambda n: False)  # type: ignore[method-assign]
    enc = E5Encoder()
    enc.encode_queries(["预热用的问题"])
    questions, passages = (query_set(200), []) if role == "questions" else ([], passage_sample(40))
    print("ready", flush=True)
    sys.stdin.readline()  # both children start together
    # one clock for the phase's end and the time worked (the inputs are ready before it starts: a passage sample
    # read after the deadline was set made the time worked 0.999 s of a 1 s phase)
    t0 = time.monotonic()
    end = t0 + seconds
    if role == "questions":
        times, i = [], 0
        while time.monotonic() < end:
            t = time.perf_counter()
            enc.encode_queries([questions[i % len(questions)]])
            times.append(time.perf_counter() - t)
            i += 1
        return {"questions": len(times), **latency_summary(times)}
    done = 0
    while time.monotonic() < end:
        enc.encode_passages(passages[done % 40: done % 40 + 2])
        done += 2
    elapsed = time.monotonic() - t0
    return {"passages": done, "passages_per_second": round(done / elapsed, 2), "seconds": round(elapsed, 3)}


def _spawn(role: str, seconds: float, lock: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.two_processes", "--child", role, "--seconds", str(seconds),
                             "--lock", "1" if lock else "0"], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def phase(roles: list[str], seconds: float, lock: bool) -> dict[str, Any]:
    """Start the children, wait until their models are loaded, let them run together, collect their reports."""
    procs = {role: _spawn(role, seconds, lock) for role in roles}
    for p in procs.values():
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    out = {}
    for role, p in procs.items():
        stdout, _ = p.communicate(timeout=seconds * 20 + 120)
        out[role] = json.loads(stdout.strip().splitlines()[-1])
    return out


def run(seconds: float) -> dict[str, Any]:
    """Each alone, then both at once without and with the lock."""
    load0 = loadavg()
    res = {"alone_questions": phase(["questions"], seconds, True)["questions"],
           "alone_passages": phase(["passages"], seconds, True)["passages"],
           "together_unlocked": phase(["questions", "passages"], seconds, False),
           "together_locked": phase(["questions", "passages"], seconds, True)}
    return {"when": now_iso(), "machine": machine(), "seconds": seconds, "loadavg_before": load0,
            "loadavg_after": loadavg(), **res}


def main() -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", choices=("questions", "passages"), help=argparse.SUPPRESS)
    ap.add_argument("--lock", default="1", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.seconds, args.lock == "1")), flush=True)
        return 0
    setup_logging()
    if skip_without_shared("two-process encoder bench"):
        return 0
    res = run(args.seconds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in res.items() if k not in ("machine",)}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
