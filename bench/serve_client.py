"""A real `partyqa serve` subprocess on loopback, and stdlib-only calls to its JSON API.

Shared by the load benchmark (bench/bench_load.py) and the service robustness tests (tests/test_robust_service.py).
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent / "partyqa"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "indexer.cli"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 120) -> tuple[int, dict, dict]:
    """One request; returns (status, decoded JSON body, headers) for 2xx and error statuses alike."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read().decode("utf-8")), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode("utf-8")), dict(err.headers)


def search(base: str, q: str, mode: str = "hybrid", k: int = 5) -> tuple[int, dict, dict]:
    """GET /api/search."""
    return http("GET", f"{base}api/search?" + urllib.parse.urlencode({"q": q, "mode": mode, "k": k}))


def upload(base: str, name: str, data: bytes, timeout: float = 600) -> tuple[int, dict, dict]:
    """POST /api/documents with one multipart ``files`` part."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode("utf-8") + data + f"\r\n--{boundary}--\r\n".encode()
    return http("POST", f"{base}api/documents", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=timeout)


def upload_and_wait(base: str, name: str, data: bytes, timeout: float = 900) -> tuple[int, dict, dict]:
    """Upload one file (answered 202 with a job), then poll GET /api/jobs/<id> until the job is done or failed.

    Returns (the upload's status, the finished job, the 202 body); the job is the 202 body's when it was refused.
    """
    status, body, _ = upload(base, name, data, timeout=timeout)
    if status != 202:
        return status, body.get("job") or {}, body
    deadline = time.monotonic() + timeout
    job = body["job"]
    while job.get("state") not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        code, job, _ = http("GET", f"{base}api/jobs/{job['id']}")
        if code != 200:
            raise RuntimeError(f"job {body['job']['id']}: GET /api/jobs answered {code}: {job}")
    return status, job, body


class Server:
    """`partyqa serve --port 0` on 127.0.0.1; ``url`` is read from the line it prints when ready, then checked
    with /api/health. RuntimeError (with the server's log) if it does not come up within ``start_timeout``."""

    def __init__(self, index: Path, log: Path, *, threads: int | None = None, env: dict[str, str] | None = None,
                 start_timeout: float = 180):
        self.log = log
        self._log = open(log, "w", encoding="utf-8")
        extra = ["--threads", str(threads)] if threads else []
        self.proc = subprocess.Popen([*CMD, "--index-dir", str(index), "-q", "serve", "--host", "127.0.0.1",
                                      "--port", "0", *extra], stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=env if env is not None else {**os.environ, **OFFLINE})
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + start_timeout
        self.url = ""
        while not self.url:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"server did not start:\n{log.read_text('utf-8')}") from None
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            self.url = m.group(1) if m else ""
        status, health, _ = http("GET", self.url + "api/health")
        if not (status == 200 and health["status"] == "ok"):
            self.stop()
            raise RuntimeError(f"server at {self.url} is not healthy: {status} {health}")

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL if it does not stop) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self._log.close()


# A fixed mix of questions (and modes) for concurrent searching clients.
LOAD_QUESTIONS = [
    ("基层党支部如何做好监督者", "hybrid"),
    ("支部委员会由谁选举产生", "hybrid"),
    ("党员教育管理", "keyword"),
    ("党支部怎样联系职工群众", "semantic"),
    ("三会一课", "hybrid"),
    ("党支部书记的职责", "keyword"),
    ("发展党员的程序", "hybrid"),
    ("组织生活会多久开一次", "semantic"),
    ("党员的权利和义务", "hybrid"),
    ("民主评议党员", "hybrid"),
]


class SearchClients:
    """``clients`` threads searching ``url`` back to back until :meth:`stop` or ``max_requests`` searches.

    Client i asks ``questions[(i * stride + n) % len(questions)]`` for its n-th search. Each search leaves a record
    ``{t0, t1, q, mode, status, hits, error}``; a refused or reset connection is status None with the exception.
    """

    def __init__(self, url: str, clients: int, questions: list[tuple[str, str]], max_requests: int,
                 stride: int = 1):
        self.records: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._args = (url, questions, max_requests, stride)
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        for t in self._threads:
            t.start()

    def _client(self, i: int) -> None:
        url, questions, max_requests, stride = self._args
        n = 0
        while not self._stop.is_set():
            if self.count() >= max_requests:
                return
            q, mode = questions[(i * stride + n) % len(questions)]
            n += 1
            t0 = time.monotonic()
            try:
                status, body, _ = search(url, q, mode)
                rec = {"status": status, "hits": len(body.get("results", [])), "error": body.get("error")}
            except Exception as exc:  # refused / reset / timeout
                rec = {"status": None, "hits": 0, "error": repr(exc)}
            rec.update(t0=t0, t1=time.monotonic(), q=q, mode=mode)
            with self._lock:
                self.records.append(rec)

    def count(self) -> int:
        """Searches made so far."""
        with self._lock:
            return len(self.records)

    def stop(self, timeout: float = 300) -> list[dict]:
        """Stop the clients, wait for their last search, return every record."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=timeout)
        return self.records
