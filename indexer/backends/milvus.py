"""The Milvus backend (``PARTYQA_BACKEND=milvus``): both halves in one Milvus collection, for a Milvus server
(``PARTYQA_MILVUS_URI=http://host:19530``) or Milvus Lite (a local path, ``x.db``) on one machine.

One row per passage: ``sparse`` holds our own BM25F terms, ``dense`` the encoder's unit vector.

* Keyword half: the same tokens as the local backend (our jieba analyzer with the party dictionary, sub-word
  weights, synonyms, traditional->simplified), sent as a SPARSE_FLOAT_VECTOR searched by inner product under
  SPARSE_INVERTED_INDEX. One dimension per (field, term). The document side is the saturated term frequency of
  whoosh's BM25F (K1, per-field B, the same one-byte length quantisation) with each field's average length fixed
  at the first write; the query side is weight x field boost x idf, with idf from corpus-wide document
  frequencies that PartyQA keeps in the generation (``milvus-terms.json``). So the score is the local backend's
  BM25F; Milvus's own BM25 function would compute statistics per segment in Lite (measured: rankings drift).
* Dense half: inner product on unit vectors (= cosine).
* Visibility: rows carry the generation that wrote them; the committed passage store (gen-N/, switched last by
  CURRENT) records which generation's rows each document uses (``milvus.json``), and searches drop any other row.
  Superseded rows are deleted after the switch; rows of a killed writer are deleted by the next one. So a killed
  writer never leaves a half-visible document.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from indexer.backends.base import Backend, Reader, Terms, WriteBatch
from indexer.config import Config
from indexer.embed.encoders import l2_normalize
from indexer.fsutil import write_json
from indexer.types import KeywordHit, PartyQAError, Passage

try:
    from pymilvus import DataType, MilvusClient
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise PartyQAError("Milvus 后端需要 pymilvus：请安装 pip install 'partyqa[milvus]'（本机测试另需 milvus-lite） / "
                       "the Milvus backend needs pymilvus: pip install 'partyqa[milvus]' (and milvus-lite for a local "
                       f"Milvus Lite file) ({exc})") from exc

logger = logging.getLogger(__name__)


class _QuietLiteServer(logging.Filter):
    """Milvus Lite 3.2.2 logs a server-side traceback ("Method not implemented", AllocTimestamp) at every
    create_collection; the collection is created fine, so that one record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, NotImplementedError) and "Exception calling application" in record.getMessage())


logging.getLogger("grpc._server").addFilter(_QuietLiteServer())
# Milvus Lite logs every server start/stop and faiss its CPU probing at INFO: keep the CLI's INFO output ours.
for _name in ("milvus_lite", "faiss"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

STATE_FILE = "milvus.json"
TERMS_FILE = "milvus-terms.json"
MAX_ID = 2048  # VARCHAR length of pid / doc_id / row id
INSERT_CHUNK = 1000
# Milvus caps topk at 16384.
MAX_LIMIT = 16384

_clients: dict[tuple[str, str], Any] = {}
_users: dict[tuple[str, str], int] = {}
_clients_lock = threading.Lock()


def _client(uri: str, token: str, register: bool) -> Any:
    """One MilvusClient per (uri, token) in this process (Milvus Lite allows only one process per data dir);
    ``register`` counts one more backend using it."""
    key = (uri, token)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
            except Exception as exc:
                raise _connect_error(uri, exc) from exc
            _clients[key] = client
        if register:
            _users[key] = _users.get(key, 0) + 1
        return client


def _release_client(uri: str, token: str) -> None:
    """One backend fewer uses the client; the last one closes it (and stops a Milvus Lite server, releasing the
    data dir for other processes)."""
    key = (uri, token)
    with _clients_lock:
        _users[key] = _users.get(key, 1) - 1
        client = _clients.pop(key, None) if _users[key] <= 0 else None
    if client is None:
        return
    try:
        client.close()
    except Exception:  # pragma: no cover - best effort
        logger.debug("closing Milvus client failed", exc_info=True)
    if _is_local(uri):
        try:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)
        except ImportError:  # pragma: no cover - a local path always means milvus-lite
            pass


def _is_local(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


def _connect_error(uri: str, exc: Exception) -> PartyQAError:
    text = str(exc)
    local = _is_local(uri)
    # Milvus Lite 3.2.2 says only "Open local milvus failed" when another process holds the data dir.
    if local and (Path(uri).exists() or re.search(r"lock|already|in use", text, re.I)):
        return PartyQAError(
            f"Milvus Lite 数据目录 {uri} 打不开，通常是另一个进程正在使用它（同一时间只能有一个进程打开，例如正在运行的 "
            f"partyqa serve）：请先停止那个进程，或改用 Milvus 服务器（PARTYQA_MILVUS_URI=http://主机:19530） / cannot "
            f"open the Milvus Lite data dir {uri}, usually because another process has it open (only one process at a "
            f"time, e.g. a running `partyqa serve`): stop that process first, or use a Milvus server "
            f"(PARTYQA_MILVUS_URI=http://host:19530) ({text})")
    return PartyQAError(f"无法连接 Milvus（{uri}）：{text} / cannot connect to Milvus at {uri}: {text}")


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return default


# --------------------------------------------------------------------------------------------- keyword statistics


class KeywordModel:
    """BM25F as sparse vectors: the (field, term) dimensions, document frequencies and field lengths of a corpus."""

    def __init__(self, state: Mapping[str, Any] | None = None):
        from indexer.backends.local.scores import FIELD_B, FIELD_BOOSTS, K1

        self.k1 = K1
        self.field_b = dict(FIELD_B)
        self.boosts = dict(FIELD_BOOSTS)
        state = state or {}
        self.n = int(state.get("n", 0))
        self.avgfl: dict[str, float] = dict(state.get("avgfl", {}))
        self.dims: dict[str, dict[str, int]] = {f: {} for f in self.boosts}
        self.df: list[int] = []
        self.names: list[tuple[str, str]] = []
        for field, term, df in state.get("terms", []):
            self.dims[field][term] = len(self.names)
            self.names.append((field, term))
            self.df.append(int(df))

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready dict (dimension = position in ``terms``)."""
        return {"n": self.n, "avgfl": self.avgfl,
                "terms": [[f, t, df] for (f, t), df in zip(self.names, self.df)]}

    @staticmethod
    def _fields(p: Passage) -> dict[str, Counter]:
        from indexer.text.analyzer import tokenize

        return {"text": Counter(tokenize(p.text or "")), "section": Counter(tokenize(p.section or "")),
                "title": Counter(tokenize(p.title or ""))}

    def count(self, passages: Sequence[Passage], sign: int) -> list[dict[str, Counter]]:
        """Add (sign=1) or remove (sign=-1) passages from the statistics; returns their field term counts."""
        tokens = [self._fields(p) for p in passages]
        for fields in tokens:
            for field, tf in fields.items():
                for term in tf:
                    dim = self.dims[field].get(term)
                    if dim is None:
                        if sign < 0:
                            continue
                        dim = self.dims[field][term] = len(self.names)
                        self.names.append((field, term))
                        self.df.append(0)
                    self.df[dim] = max(0, self.df[dim] + sign)
        self.n = max(0, self.n + sign * len(passages))
        if sign > 0 and not self.avgfl and tokens:
            # Fixed at the first write: documents written later keep comparable weights (see module docstring).
            self.avgfl = {f: max(sum(sum(t[f].values()) for t in tokens) / len(tokens), 1.0) for f in self.boosts}
        return tokens

    def doc_vector(self, fields: Mapping[str, Counter]) -> dict[int, float]:
        """The passage side: per (field, term), BM25's saturated tf with whoosh's length quantisation."""
        from whoosh.util.numeric import byte_to_length, length_to_byte

        out: dict[int, float] = {}
        for field, tf in fields.items():
            if not tf:
                continue
            length = byte_to_length(length_to_byte(sum(tf.values())))
            b, k1 = self.field_b[field], self.k1
            norm = k1 * ((1 - b) + b * length / (self.avgfl.get(field) or 1.0))
            for term, f in tf.items():
                dim = self.dims[field].get(term)
                if dim is not None:
                    out[dim] = f * (k1 + 1) / (f + norm)
        return out

    def query_vector(self, terms: Terms) -> dict[int, float]:
        """The question side: term weight x field boost x idf (whoosh's idf: log(N / (df + 1)) + 1)."""
        out: dict[int, float] = {}
        for term, weight in terms:
            for field, boost in self.boosts.items():
                dim = self.dims[field].get(term)
                if dim is not None and self.df[dim] > 0:
                    out[dim] = out.get(dim, 0.0) + weight * boost * (math.log(self.n / (self.df[dim] + 1)) + 1)
        return out

    def term_of(self, dim: int) -> str:
        """The term of a dimension."""
        return self.names[dim][1]


# --------------------------------------------------------------------------------------------- reading


def _strings(items: Iterable[str]) -> str:
    """A list of string literals for a filter expression (JSON quoting; Milvus Lite has no filter templates)."""
    return json.dumps(sorted(items), ensure_ascii=False)


def _visible_filter(doc_gen: Mapping[str, int]) -> str:
    """A filter expression for exactly the rows the committed generation uses (grouped by writing generation)."""
    groups = _by_gen(doc_gen, doc_gen)
    if not groups:
        return "gen < 0"
    return " or ".join(f"(gen == {g} and doc_id in {_strings(docs)})" for g, docs in sorted(groups.items()))


class MilvusReader(Reader):
    """Searches of one committed generation over the collection it names."""

    def __init__(self, backend: "MilvusBackend", gen_dir: Path, number: int):
        self.backend = backend
        self.number = number
        state = _read_json(gen_dir / STATE_FILE, None)
        if state is None:
            raise FileNotFoundError(f"{gen_dir / STATE_FILE} is missing")
        self.collection: str | None = state.get("collection")
        self._model_id: str = state.get("model_id") or ""
        self.doc_gen: dict[str, int] = state.get("doc_gen", {})
        self.model = KeywordModel(_read_json(gen_dir / TERMS_FILE, {}))
        self._count: int | None = None
        self._newer: bool | None = None
        if self.collection:
            backend.ensure_loaded(self.collection)

    def _base_filter(self, docs: Collection[str] | None) -> str:
        parts = []
        # Rows newer than this generation (a write in progress, or left by a killed writer) are dropped after the
        # search anyway (_visible); filtering them out in Milvus as well keeps them from crowding the candidate
        # list, but costs ~5 ms per dense search at 10k rows in Lite (21 vs 14 ms), so it is only done when such
        # rows can exist: on a server (other processes may write), during a write here, or after a killed one.
        if self.backend.remote or self.backend.writing or self._newer_rows():
            parts.append(f"gen <= {self.number}")
        if docs is not None:
            parts.append(f"doc_id in {_strings(docs)}")
        return " and ".join(parts)

    def _newer_rows(self) -> bool:
        if self._newer is None:
            res = self.backend.client.query(self.collection, filter=f"gen > {self.number}",
                                            output_fields=["count(*)"])
            self._newer = int(res[0]["count(*)"]) > 0
        return self._newer

    def _visible(self, entity: Mapping[str, Any]) -> bool:
        return self.doc_gen.get(entity["doc_id"]) == entity["gen"]

    def keyword_search_many(self, queries: Sequence[Terms], limit: int,
                            docs: Collection[str] | None = None) -> list[list[KeywordHit]]:
        """Sparse inner-product search: our BM25F scores; matched terms from the rows' own sparse vectors."""
        out: list[list[KeywordHit]] = [[] for _ in queries]
        if not self.collection or limit <= 0:
            return out
        vectors = [self.model.query_vector(q) for q in queries]
        todo = [i for i, v in enumerate(vectors) if v]
        if not todo:
            return out
        expr = self._base_filter(docs)
        res = self.backend.client.search(
            self.collection, data=[vectors[i] for i in todo], anns_field="sparse", limit=min(limit + 16, MAX_LIMIT),
            filter=expr, output_fields=["pid", "doc_id", "gen", "sparse"],
            search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})
        for i, hits in zip(todo, res):
            words = [t for t, _ in queries[i]]
            row: list[KeywordHit] = []
            for h in hits:
                e = h["entity"]
                if not self._visible(e):
                    continue
                present = {self.model.term_of(int(d)) for d, v in e["sparse"].items() if v > 0 and int(d) in vectors[i]}
                row.append(KeywordHit(pid=e["pid"], score=float(h["distance"]), terms=[w for w in words if w in present]))
            # Equal scores in the order of the local backend's tie-break is not knowable here; keep Milvus's order
            # but make it deterministic.
            row.sort(key=lambda kh: -kh.score)
            out[i] = row[:limit]
        return out

    def vector_search_many(self, matrix: np.ndarray, limit: int,
                           docs: Collection[str] | None = None) -> list[list[tuple[str, float]]]:
        """Dense inner-product search on unit vectors (= cosine)."""
        qs = l2_normalize(matrix)
        if not self.collection or limit <= 0 or not self.doc_gen:
            return [[] for _ in range(qs.shape[0])]
        expr = self._base_filter(docs)
        res = self.backend.client.search(
            self.collection, data=qs.tolist(), anns_field="dense", limit=min(limit + 16, MAX_LIMIT), filter=expr,
            output_fields=["pid", "doc_id", "gen"], search_params={"metric_type": "IP"})
        return [[(h["entity"]["pid"], float(h["distance"])) for h in hits if self._visible(h["entity"])][:limit]
                for hits in res]

    def _rows(self) -> int:
        if self._count is None:
            if not self.collection or not self.doc_gen:
                self._count = 0
            else:
                res = self.backend.client.query(self.collection, filter=_visible_filter(self.doc_gen),
                                                output_fields=["count(*)"])
                self._count = int(res[0]["count(*)"])
        return self._count

    def keyword_count(self) -> int:
        """Visible rows (each row holds both halves)."""
        return self._rows()

    def vector_count(self) -> int:
        """Visible rows (each row holds both halves)."""
        return self._rows()

    @property
    def model_id(self) -> str:
        """The encoder the dense vectors came from."""
        return self._model_id


# --------------------------------------------------------------------------------------------- writing


class MilvusBatch(WriteBatch):
    """Rows of generation ``number`` are inserted with ``gen = number``; deletions wait for the commit."""

    def __init__(self, backend: "MilvusBackend", base: Path, tmp: Path, number: int):
        self.backend = backend
        self.base = base
        self.tmp = tmp
        self.number = number
        self.state: dict[str, Any] = _read_json(tmp / STATE_FILE, {"collection": None, "doc_gen": {}})
        self.model = KeywordModel(_read_json(tmp / TERMS_FILE, {}))
        self.old_collection: str | None = self.state.get("collection")
        self.collection: str | None = self.old_collection
        self.created: str | None = None
        self.fields: dict[str, dict[str, Counter]] = {}  # pid -> field term counts of rows to write
        self.drop: set[str] = set()
        self.rewritten_docs: set[str] = set()
        self._base_passages: dict[str, Passage] | None = None
        self.by_pid: dict[str, Passage] = {}

    def _base(self) -> dict[str, Passage]:
        """The committed generation's passages as its keyword statistics counted them: under their document's
        corrected title where a person set one (the passage store keeps the file's title)."""
        if self._base_passages is None:
            from indexer.index.metadata import keyword_passages

            found: list[Passage] = []
            path = self.base / "passages.jsonl"
            if path.is_file():
                with open(path, encoding="utf-8") as fh:
                    found = [Passage.from_dict(json.loads(line)) for line in fh if line.strip()]
            manifest = _read_json(self.base / "manifest.json", {"documents": {}})
            self._base_passages = {p.pid: p for p in keyword_passages(found, manifest)}
        return self._base_passages

    def keyword(self, drop_docs: Collection[str], passages: Sequence[Passage], rebuild: bool = False,
                new_pids: bool = False) -> None:
        """Update the term statistics and compute the new rows' term counts (rows are written with vectors;
        ``new_pids`` changes nothing here: rows are upserted by pid)."""
        self.drop |= set(drop_docs)
        if rebuild:
            self.model = KeywordModel({})
        else:
            gone = [p for p in self._base().values() if p.doc_id in self.drop]
            self.model.count(gone, -1)
        for p, fields in zip(passages, self.model.count(list(passages), +1)):
            self.fields[p.pid] = fields
        self.by_pid.update((p.pid, p) for p in passages)

    def vectors(self, drop_docs: Collection[str], pids: Sequence[str], vectors: np.ndarray, model_id: str,
                rebuild: bool = False) -> None:
        """Insert one row per written passage: its sparse terms and its dense vector."""
        client = self.backend.client
        self.drop |= set(drop_docs)
        base = self._base()
        passages: dict[str, Passage] = {**{pid: base[pid] for pid in pids if pid in base},
                                        **self.by_pid}
        dense: dict[str, np.ndarray] = dict(zip(pids, l2_normalize(vectors))) if len(pids) else {}
        if rebuild:
            name = self.backend.collection_name(model_id)
            if name != self.old_collection:
                self.backend.create_collection(name, int(vectors.shape[1]))
                self.created = name
            self.collection = name
            self.state["model_id"] = model_id
            self.state["dim"] = int(vectors.shape[1])
        for pid in pids:  # a passage with a new vector but old tokens (new model): same terms, recounted
            if pid not in self.fields and pid in passages:
                self.fields[pid] = KeywordModel._fields(passages[pid])
        missing = [pid for pid in self.fields if pid not in dense]
        if missing:  # re-tokenized passages keep their vectors: read them from the rows in use
            dense.update(self._stored_dense(missing))
        rows = []
        doc_gen = self.state.setdefault("doc_gen", {})
        for pid, fields in self.fields.items():
            p = passages.get(pid) or base[pid]
            rows.append({"id": f"{self.number}:{pid}", "pid": pid, "doc_id": p.doc_id, "gen": self.number,
                         "sparse": self.model.doc_vector(fields) or {0: 0.0}, "dense": dense[pid].tolist()})
            self.rewritten_docs.add(p.doc_id)
        for doc_id in self.drop:
            doc_gen.pop(doc_id, None)
        for doc_id in self.rewritten_docs:
            doc_gen[doc_id] = self.number
        for start in range(0, len(rows), INSERT_CHUNK):
            client.insert(self.collection, rows[start:start + INSERT_CHUNK])

    def _stored_dense(self, pids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        doc_gen = self.state.get("doc_gen", {})
        for start in range(0, len(pids), INSERT_CHUNK):
            chunk = list(pids[start:start + INSERT_CHUNK])
            res = self.backend.client.query(self.collection, filter=f"pid in {_strings(chunk)}",
                                            output_fields=["pid", "doc_id", "gen", "dense"])
            for r in res:
                if doc_gen.get(r["doc_id"]) == r["gen"]:
                    out[r["pid"]] = np.asarray(r["dense"], dtype=np.float32)
        return out

    def prepare_commit(self, n_passages: int, n_vectors: int | None = None) -> None:
        """Flush the inserted rows, write milvus.json and the term statistics, and check the row count."""
        if self.collection:
            self.backend.client.flush(self.collection)  # unflushed rows search ~30x slower (measured in Lite)
        cleanup = sorted(self.drop | self.rewritten_docs)
        self.state.update({"collection": self.collection, "cleanup": {"docs": cleanup, "gen": self.number},
                           "drop_collections": [self.old_collection] if self.created and self.old_collection else []})
        write_json(self.tmp / TERMS_FILE, self.model.to_state())
        write_json(self.tmp / STATE_FILE, self.state)
        if self.collection:
            self.backend.ensure_loaded(self.collection)
            reader = MilvusReader(self.backend, self.tmp, self.number)
            n_rows = reader.keyword_count()
        else:
            n_rows = 0
        if n_rows != n_passages:
            raise RuntimeError(f"inconsistent Milvus write: {n_rows} visible rows, {n_passages} passages")

    def abort(self) -> None:
        """Delete the rows this batch inserted (and a collection it created); readers never saw them."""
        self.backend.writing = False
        try:
            if self.created:
                self.backend.client.drop_collection(self.created)
            elif self.collection:
                self.backend.client.delete(self.collection, filter=f"gen >= {self.number}")
        except Exception:  # the next writer deletes them anyway (rows newer than the committed generation)
            logger.warning("could not delete the rows of an aborted write; the next write will", exc_info=True)


class MilvusBackend(Backend):
    """Passages' sparse BM25 terms and dense vectors in a Milvus (or Milvus Lite) collection."""

    name = "milvus"
    # A row holds a passage's sparse terms and its dense vector together: writes embed before the commit.
    keyword_first = False

    def __init__(self, root: Path, config: Config):
        super().__init__(root, config)
        uri = config.milvus_uri or str(Path(root) / "milvus.db")
        if _is_local(uri):
            uri = str(Path(uri).expanduser().resolve())
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        self.token = config.milvus_token
        prefix = re.sub(r"[^A-Za-z0-9_]", "_", config.milvus_collection or "partyqa")
        if not re.match(r"[A-Za-z_]", prefix):
            prefix = "p_" + prefix
        self.prefix = f"{prefix}_{hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:10]}"
        self._loaded: set[str] = set()
        self._lock = threading.Lock()
        self._registered = False
        self.remote = not _is_local(uri)
        self.writing = False  # a write batch of this process is open (its rows are not committed yet)
        self.client  # connect now: a Lite file held by another process is reported at open, not at first search

    @property
    def client(self) -> Any:
        """The shared MilvusClient (reconnected after :meth:`close`)."""
        with self._lock:
            register, self._registered = not self._registered, True
        return _client(self.uri, self.token, register)

    def collection_name(self, model_id: str) -> str:
        """This index directory's collection for vectors of ``model_id``."""
        return f"{self.prefix}_{hashlib.sha1(model_id.encode()).hexdigest()[:8]}"

    def create_collection(self, name: str, dim: int) -> None:
        """A fresh collection (an existing one of that name is an orphan of a killed writer: dropped)."""
        client = self.client
        if client.has_collection(name):
            client.drop_collection(name)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID + 24)
        schema.add_field("pid", DataType.VARCHAR, max_length=MAX_ID)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=MAX_ID)
        schema.add_field("gen", DataType.INT64)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        index = client.prepare_index_params()
        index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        # Exact search (FLAT) keeps results equal to the local backend; a cluster would use HNSW (docs/SCALING.md).
        index.add_index(field_name="dense", index_type=self.dense_index, metric_type="IP")
        client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        with self._lock:
            self._loaded.add(name)

    @property
    def dense_index(self) -> str:
        """FLAT (exact) on Milvus Lite; HNSW on a server."""
        return "HNSW" if self.remote else "FLAT"

    def ensure_loaded(self, name: str) -> None:
        """load_collection once per process (needed after reopening a collection)."""
        with self._lock:
            if name in self._loaded:
                return
        self.client.load_collection(name)
        with self._lock:
            self._loaded.add(name)

    def _own_collections(self) -> list[str]:
        return [c for c in self.client.list_collections() if c.startswith(self.prefix + "_")]

    def create_empty(self, gen_dir: Path) -> None:
        """A new (or rebuilt) index starts with none of this directory's collections."""
        for name in self._own_collections():
            self.client.drop_collection(name)
        write_json(gen_dir / STATE_FILE, {"collection": None, "model_id": "", "doc_gen": {}})
        write_json(gen_dir / TERMS_FILE, KeywordModel().to_state())

    def open_reader(self, gen_dir: Path, number: int, by_doc: Mapping[str, Sequence[str]]) -> MilvusReader:
        """A reader of generation ``number``."""
        return MilvusReader(self, gen_dir, number)

    def begin(self, base: Path, tmp_dir: Path, number: int) -> MilvusBatch:
        """Finish the last commit's clean-up and delete rows of writers killed before their commit."""
        self.committed(base, number - 1)
        state = _read_json(base / STATE_FILE, {})
        if state.get("collection"):
            self.client.delete(state["collection"], filter=f"gen > {number - 1}")
        for name in self._own_collections():  # a collection a killed writer created for a new model
            if name != state.get("collection"):
                self.client.drop_collection(name)
        self.writing = True
        return MilvusBatch(self, base, tmp_dir, number)

    def committed(self, gen_dir: Path, number: int) -> None:
        """Delete rows the committed generation no longer uses (idempotent: re-run by the next writer)."""
        self.writing = False
        state = _read_json(gen_dir / STATE_FILE, {})
        for name in state.get("drop_collections", []):
            if self.client.has_collection(name):
                self.client.drop_collection(name)
        cleanup = state.get("cleanup") or {}
        docs, collection = cleanup.get("docs") or [], state.get("collection")
        if not docs or not collection:
            return
        doc_gen = state.get("doc_gen", {})
        gone = [d for d in docs if d not in doc_gen]
        kept = [d for d in docs if d in doc_gen]
        for start in range(0, max(len(gone), len(kept)), INSERT_CHUNK):
            if gone[start:start + INSERT_CHUNK]:
                self.client.delete(collection, filter=f"doc_id in {_strings(gone[start:start + INSERT_CHUNK])}")
            for g, group in _by_gen(kept[start:start + INSERT_CHUNK], doc_gen).items():
                self.client.delete(collection, filter=f"doc_id in {_strings(group)} and gen != {g}")

    def close(self) -> None:
        """Close the connection (Milvus Lite: releases the data dir for other processes)."""
        with self._lock:
            registered, self._registered = self._registered, False
            self._loaded.clear()
        if registered:
            _release_client(self.uri, self.token)


def _by_gen(docs: Iterable[str], doc_gen: Mapping[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for d in docs:
        out.setdefault(int(doc_gen[d]), []).append(d)
    return out
