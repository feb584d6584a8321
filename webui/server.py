"""Serve the app with waitress (a production WSGI server), sharing one Engine across threads."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

logger = logging.getLogger(__name__)


def _warm_up(engine: Any, app: Any = None) -> None:
    """Load the embedding model and build the document catalogue before the first user waits for them (failures
    are only logged; the catalogue took ~0.7 s at 72k documents)."""
    try:
        engine.search("党支部", k=1, mode="hybrid")
        logger.info("model warmed up")
    except Exception as exc:  # the model may be missing; keyword search still works
        logger.warning("warm-up search failed: %s", exc)
    if app is not None:
        try:
            from .app import _state

            _state(app).catalog.get(engine)
        except Exception as exc:  # an optimisation: the first page builds it otherwise
            logger.warning("document catalogue warm-up failed: %s", exc)


class Serving:
    """What ``serve``'s ``on_ready`` receives: the port it listens on and ``close()``, which stops ``serve``."""

    def __init__(self, server: Any):
        self._server = server

    @property
    def effective_port(self) -> int:
        """The port listened on (the free one picked for ``port=0``)."""
        return int(self._server.effective_port)

    def close(self) -> None:
        """Stop serving: the listening socket and every open connection are closed in the server's own loop, so
        ``serve`` returns even while a browser holds keep-alive connections (waitress's ``close()`` alone closes
        only the listening socket, and its loop runs on as long as a connection is open)."""
        from waitress import wasyncore

        server = self._server
        try:  # run in the loop's thread: the listener, the trigger and every connection closed, the loop ends
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:  # already stopped
            logger.debug("server already closed", exc_info=True)


def serve(engine: Any, host: str = "127.0.0.1", port: int = 8000, threads: int = 4, *, warm_up: bool = True,
          on_ready: Callable[[Serving], None] | None = None) -> None:
    """Run the web UI and API at http://host:port/ until interrupted (blocks).

    ``port=0`` picks a free port; ``on_ready`` is called with a :class:`Serving` (its ``effective_port``; its
    ``close()`` stops this call), which lets tests and embedding programs run ``serve`` in a thread.
    """
    from waitress import create_server

    from .app import _state, create_app

    app = create_app(engine)
    jobs = getattr(engine, "jobs", None)  # start the job queue now: jobs a restart interrupted resume at once
    if jobs is not None:
        logger.info("job queue ready: %d active job(s)", len(jobs.list(active_only=True)))
    server = create_server(app, host=host, port=port, threads=threads, ident="PartyQA")
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{server.effective_port}/"
    if host not in ("127.0.0.1", "localhost", "::1") and not _state(app).admin_token:
        logger.warning("listening on %s without PARTYQA_ADMIN_TOKEN: anyone who can reach it may upload and delete",
                       host)
        print("警告: 未设置 PARTYQA_ADMIN_TOKEN，网络中任何人都可以上传和删除文档。", flush=True)
    if warm_up:
        threading.Thread(target=_warm_up, args=(engine, app), name="partyqa-warmup", daemon=True).start()
    print(f"PartyQA 已启动: {url}", flush=True)
    logger.info("PartyQA serving on %s with %d threads", url, threads)
    if on_ready is not None:
        on_ready(Serving(server))
    try:
        server.run()
    except KeyboardInterrupt:
        logger.info("stopped")
    except OSError:  # closed from another thread
        logger.debug("server socket closed", exc_info=True)
    finally:
        try:
            server.close()
        except Exception:  # already closed by Serving.close
            pass
        server.task_dispatcher.shutdown()  # the worker threads: pending requests are cancelled
        logger.info("stopped serving %s", url)
