"""Vector index (exact cosine, numpy files) and the passage-embedding cache."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from indexer.backends.local.ann import ANN_FILE, ANN_META, AnnSettings
from indexer.backends.local.vectors import NumpyVectorIndex
from indexer.embed.cache import EmbeddingCache, embed_passages
from indexer.embed.encoders import E5Encoder, Encoder, passage_context
from indexer.types import PartyQAError, Passage

DIM = 24


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(ids: list[str], vecs: np.ndarray, q: np.ndarray, limit: int) -> list[str]:
    scores = _unit(vecs) @ (q / np.linalg.norm(q))
    order = np.argsort(-scores, kind="stable")[:limit]
    return [ids[i] for i in order]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _random_index(tmp_path: Path, rng: np.random.Generator, docs: int = 30, per_doc: int = 7):
    ids = [f"doc{d}#{o}" for d in range(docs) for o in range(per_doc)]
    vecs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    index = NumpyVectorIndex.create(tmp_path / "vec", "test-model", DIM)
    index.add(ids, vecs)
    return index, ids, vecs


def test_search_matches_brute_force(tmp_path: Path, rng: np.random.Generator) -> None:
    index, ids, vecs = _random_index(tmp_path, rng)
    assert index.count() == len(ids)
    for _ in range(20):
        q = rng.standard_normal(DIM).astype(np.float32)
        hits = index.search(q, 10)
        assert [pid for pid, _ in hits] == _brute_force(ids, vecs, q, 10)
        expected = _unit(vecs) @ (q / np.linalg.norm(q))
        for pid, score in hits:
            assert score == pytest.approx(float(expected[ids.index(pid)]), abs=1e-5)
        assert all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))


def test_search_many_equals_search(tmp_path: Path, rng: np.random.Generator) -> None:
    index, _, _ = _random_index(tmp_path, rng)
    queries = rng.standard_normal((6, DIM)).astype(np.float32)
    many = index.search_many(queries, 8)
    assert len(many) == 6
    for q, hits in zip(queries, many):
        single = index.search(q, 8)
        assert [p for p, _ in hits] == [p for p, _ in single]
        np.testing.assert_allclose([s for _, s in hits], [s for _, s in single], atol=1e-6)


def test_limits_and_empty_index(tmp_path: Path, rng: np.random.Generator) -> None:
    empty = NumpyVectorIndex.create(tmp_path / "empty", "m", DIM)
    assert empty.search(np.ones(DIM, np.float32), 5) == []
    assert empty.search_many(np.ones((2, DIM), np.float32), 5) == [[], []]
    index, ids, _ = _random_index(tmp_path, rng, docs=2, per_doc=3)
    assert len(index.search(np.ones(DIM, np.float32), 100)) == len(ids)
    assert index.search(np.ones(DIM, np.float32), 0) == []
    with pytest.raises(ValueError):
        index.search(np.ones(DIM + 1, np.float32), 3)
    with pytest.raises(ValueError):
        index.add(["x#0"], np.ones((1, DIM + 1), np.float32))
    with pytest.raises(ValueError):
        index.add(["x#0", "x#1"], np.ones((1, DIM), np.float32))


def test_add_replaces_existing_pids(tmp_path: Path, rng: np.random.Generator) -> None:
    index, ids, vecs = _random_index(tmp_path, rng)
    target = rng.standard_normal(DIM).astype(np.float32)
    index.add(["doc3#2", "new#0", "new#0"], np.vstack([target, -target, target]))
    assert index.count() == len(ids) + 1  # doc3#2 replaced, new#0 added once (last vector wins)
    hits = index.search(target, 2)
    assert {hits[0][0], hits[1][0]} == {"doc3#2", "new#0"}
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5) and hits[1][1] == pytest.approx(1.0, abs=1e-5)
    vecs = vecs.copy()
    vecs[ids.index("doc3#2")] = target
    all_ids, all_vecs = ids + ["new#0"], np.vstack([vecs, target])
    q = rng.standard_normal(DIM).astype(np.float32)
    assert [p for p, _ in index.search(q, 15)] == _brute_force(all_ids, all_vecs, q, 15)


def test_delete_docs(tmp_path: Path, rng: np.random.Generator) -> None:
    index, ids, vecs = _random_index(tmp_path, rng)
    index.add(["doc1#x#0", "doc1#x#1"], rng.standard_normal((2, DIM)).astype(np.float32))
    index.delete_docs(["doc1", "doc7", "unknown"])
    remaining = index.ids()
    assert not any(p.startswith(("doc1#", "doc7#")) and p.count("#") == 1 for p in remaining)
    assert "doc1#x#0" in remaining and "doc1#x#1" in remaining  # doc id "doc1#x" is another document
    index.delete_docs(["doc1#x"])
    keep = [i for i, p in enumerate(ids) if p.rpartition("#")[0] not in ("doc1", "doc7")]
    assert index.ids() == [ids[i] for i in keep]
    q = rng.standard_normal(DIM).astype(np.float32)
    assert [p for p, _ in index.search(q, 12)] == _brute_force([ids[i] for i in keep], vecs[keep], q, 12)
    index.add(["doc1#0"], vecs[:1])  # re-adding after a delete works
    assert index.search(vecs[0], 1)[0][0] in ("doc1#0", ids[0])


def test_save_open_round_trip_and_plain_files(tmp_path: Path, rng: np.random.Generator) -> None:
    index, ids, vecs = _random_index(tmp_path, rng)
    index.delete_docs(["doc0"])
    index.save()
    folder = tmp_path / "vec"
    raw = np.load(folder / "vectors.npy")
    raw_ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert raw.dtype == np.float32 and raw.shape == (len(ids) - 7, DIM)
    assert raw_ids == index.ids()
    assert meta["model_id"] == "test-model" and meta["dim"] == DIM and meta["count"] == len(raw_ids)
    np.testing.assert_allclose(raw, _unit(vecs[7:]), atol=1e-6)
    reopened = NumpyVectorIndex.open(folder)
    assert reopened.model_id == "test-model" and reopened.count() == index.count()
    q = rng.standard_normal(DIM).astype(np.float32)
    assert reopened.search(q, 9) == index.search(q, 9)
    assert not list(folder.glob("*.tmp"))


def test_failed_save_keeps_old_files(tmp_path: Path, rng: np.random.Generator, monkeypatch) -> None:
    index, ids, _ = _random_index(tmp_path, rng)
    index.save()
    folder = tmp_path / "vec"
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    index.add(["extra#0"], rng.standard_normal((1, DIM)).astype(np.float32))
    index.delete_docs(["doc2"])

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        index.save()
    monkeypatch.undo()
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    assert NumpyVectorIndex.open(folder).ids() == ids


def test_open_rejects_inconsistent_files(tmp_path: Path, rng: np.random.Generator) -> None:
    index, ids, _ = _random_index(tmp_path, rng, docs=3, per_doc=2)
    index.save()
    folder = tmp_path / "vec"
    (folder / "ids.json").write_text(json.dumps(ids[:-1]), encoding="utf-8")
    with pytest.raises(PartyQAError, match="re-index"):
        NumpyVectorIndex.open(folder)
    with pytest.raises(FileNotFoundError):
        NumpyVectorIndex.open(tmp_path / "nothing")
    assert NumpyVectorIndex.exists(folder) and not NumpyVectorIndex.exists(tmp_path / "nothing")


def test_exact_search_at_10k(tmp_path: Path, rng: np.random.Generator) -> None:
    vecs = rng.standard_normal((10_000, 384)).astype(np.float32)
    ids = [f"d{i // 10}#{i % 10}" for i in range(10_000)]
    index = NumpyVectorIndex.create(tmp_path / "big", "m", 384)
    index.add(ids, vecs)
    q = vecs[4321] + 0.01 * rng.standard_normal(384).astype(np.float32)
    hits = index.search(q, 20)
    assert hits[0][0] == ids[4321]
    assert [p for p, _ in hits] == _brute_force(ids, vecs, q, 20)


# --------------------------------------------------------------------------------------------- approximate (IVF)

ANN = AnnSettings(threshold=2_000, probe=0.2)


def _clustered(rng: np.random.Generator, n: int, dim: int = 32, centres: int = 60) -> np.ndarray:
    """Unit vectors around a few dozen topics, as passage embeddings are (uniform noise has no neighbours)."""
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    v = c[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return _unit(v)


def _saved_ann_index(tmp_path: Path, rng: np.random.Generator, n: int, name: str = "vec"):
    """(folder, saved index with an IVF, ids d<i//10>#<i%10>, clustered vectors) of ``n`` rows."""
    vecs = _clustered(rng, n)
    ids = [f"d{i // 10}#{i % 10}" for i in range(len(vecs))]
    index = NumpyVectorIndex.create(tmp_path / name, "m", 32, ann=ANN)
    index.add(ids, vecs)
    index.save()
    return tmp_path / name, index, ids, vecs


def _recall_at_10(approx: list[tuple[str, float]], exact: list[tuple[str, float]]) -> float:
    """Share of the approximate top 10 that scores at least the exact 10th best (tie-aware)."""
    tenth = exact[9][1]
    return sum(score >= tenth - 1e-6 for _, score in approx[:10]) / 10


def test_ann_above_threshold_keeps_exact_recall_and_true_scores(tmp_path: Path, rng: np.random.Generator) -> None:
    vecs = _clustered(rng, 4_000)
    ids = [f"d{i // 8}#{i % 8}" for i in range(len(vecs))]
    index = NumpyVectorIndex.create(tmp_path / "vec", "m", 32, ann=ANN)
    index.add(ids, vecs)
    assert not index.approximate()  # unsaved rows: exact until the IVF matches them
    index.save()
    assert (tmp_path / "vec" / ANN_FILE).is_file() and (tmp_path / "vec" / ANN_META).is_file()
    reopened = NumpyVectorIndex.open(tmp_path / "vec", ann=ANN, mmap=True)
    assert reopened.approximate()
    queries = _unit(vecs[rng.integers(0, len(vecs), 100)] + 0.3 * rng.standard_normal((100, 32)).astype(np.float32))
    approx = reopened.search_many(queries, 50)
    exact = reopened.search_many(queries, 50, exact=True)
    recall = np.mean([_recall_at_10(a, e) for a, e in zip(approx, exact)])
    assert recall >= 0.99, recall
    for q, hits in zip(queries[:10], approx[:10]):
        assert len(hits) == 50 and all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))
        for pid, score in hits:  # candidates are re-scored with the float32 rows: true cosines
            assert score == pytest.approx(float(vecs[ids.index(pid)] @ q), abs=1e-5)


def test_ann_probe_share_falls_with_the_square_root_of_the_lists() -> None:
    settings = AnnSettings(probe=0.4)
    assert [settings.nprobe(n) for n in (16, 100, 400)] == [7, 40, 160]  # a plain share up to 400 lists
    sizes = [400, 894, 1265, 4000, 16000]
    probes = [settings.nprobe(n) for n in sizes]
    assert probes == sorted(probes) and probes[-1] < 0.4 * sizes[-1]  # more lists searched, a smaller share
    assert settings.nprobe(1600) == 320  # 0.4 x sqrt(400 x 1600): 4x the lists, 2x the searched ones
    assert AnnSettings(probe=1.0).nprobe(1265) == 712 and AnnSettings(probe=5.0).nprobe(1265) == 1265


def test_ann_follows_adds_replacements_and_deletes(tmp_path: Path, rng: np.random.Generator) -> None:
    folder, _, ids, vecs = _saved_ann_index(tmp_path, rng, 3_000)
    trained = json.loads((folder / ANN_META).read_text())["trained_rows"]
    # a small commit: new rows, one replaced vector, one deleted document (as a write batch does)
    batch = NumpyVectorIndex.open(folder, ann=ANN)
    new = _clustered(rng, 200)
    batch.delete_docs(["d5"])
    batch.add([f"new{i // 10}#{i % 10}" for i in range(200)] + ["d7#3"], np.vstack([new, vecs[:1]]))
    batch.save()
    meta = json.loads((folder / ANN_META).read_text())
    assert meta["count"] == 3_000 - 10 + 200 and meta["trained_rows"] == trained  # updated in place, not retrained
    reader = NumpyVectorIndex.open(folder, ann=ANN, mmap=True)
    assert reader.approximate()
    for i in (0, 77, 199):  # new rows are found by their own vector
        assert reader.search(new[i], 1)[0] == (f"new{i // 10}#{i % 10}", pytest.approx(1.0, abs=1e-5))
    assert all(not pid.startswith("d5#") for pid, _ in reader.search(vecs[55], 50))
    top = dict(reader.search(vecs[0], 5))  # d7#3 now holds vecs[0]: it ties with d0#0
    assert top["d0#0"] == pytest.approx(1.0, abs=1e-5) and top["d7#3"] == pytest.approx(1.0, abs=1e-5)
    assert dict(reader.search(vecs[73], 50)).get("d7#3", 0.0) < 0.999  # its old vector is gone from the IVF


def test_ann_files_only_at_or_above_threshold(tmp_path: Path, rng: np.random.Generator) -> None:
    vecs = _clustered(rng, 2_100)
    ids = [f"d{i // 10}#{i % 10}" for i in range(len(vecs))]
    folder = tmp_path / "vec"
    index = NumpyVectorIndex.create(folder, "m", 32, ann=ANN)
    index.add(ids[:1_500], vecs[:1_500])
    index.save()
    assert not (folder / ANN_FILE).exists() and not index.approximate()
    index.add(ids[1_500:], vecs[1_500:])
    index.save()
    assert (folder / ANN_FILE).exists() and index.approximate()
    index.delete_docs([f"d{d}" for d in range(30)])  # 1,800 rows: below the threshold again
    index.save()
    assert not (folder / ANN_FILE).exists() and not (folder / ANN_META).exists()
    assert not NumpyVectorIndex.open(folder, ann=ANN).approximate()
    off = NumpyVectorIndex.open(folder, ann=AnnSettings(threshold=0))
    off.add(ids[:300], vecs[:300])
    off.save()
    assert not (folder / ANN_FILE).exists()  # threshold 0 = always exact


def test_stale_ann_files_are_ignored(tmp_path: Path, rng: np.random.Generator) -> None:
    folder, index, ids, vecs = _saved_ann_index(tmp_path, rng, 2_500)
    stale = (folder / ANN_FILE).read_bytes(), (folder / ANN_META).read_bytes()
    index.delete_docs(["d0", "d1"])
    index.add(["x#0"], vecs[:1])
    index.save()
    (folder / ANN_FILE).write_bytes(stale[0])  # an ANN of other rows (e.g. a torn copy)
    (folder / ANN_META).write_bytes(stale[1])
    reader = NumpyVectorIndex.open(folder, ann=ANN)
    assert not reader.approximate()
    q = vecs[123]
    assert reader.search(q, 20) == reader.search_many(q.reshape(1, -1), 20, exact=True)[0]
    reader.add(["y#0"], vecs[1:2])
    reader.save()  # the next write rebuilds it
    assert NumpyVectorIndex.open(folder, ann=ANN).approximate()


def test_search_pids_is_exact_and_fills_limit(tmp_path: Path, rng: np.random.Generator) -> None:
    folder, index, ids, vecs = _saved_ann_index(tmp_path, rng, 2_200)
    wanted = [p for p in ids if p.startswith(("d3#", "d150#"))] + ["unknown#1"]
    q = vecs[900]
    hits = index.search_pids(q, wanted, 15)[0]
    assert len(hits) == 15
    assert [p for p, _ in hits] == _brute_force(wanted[:-1], vecs[[ids.index(p) for p in wanted[:-1]]], q, 15)


# --------------------------------------------------------------------------------------------- cache


class CountingEncoder(Encoder):
    """A deterministic fake encoder (vector derived from the text's hash) that counts what it encodes."""

    def __init__(self, model_id: str = "fake/1", dim: int = DIM):
        self.model_id = model_id
        self.dim = dim
        self.encoded: list[str] = []

    def _vec(self, text: str) -> np.ndarray:
        seed = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def _encode_query_batch(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self._vec("q:" + t) for t in texts])

    def _encode_passage_batch(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return np.vstack([self._vec(t) for t in texts])


def _items(n: int, prefix: str = "p") -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        text = f"{prefix} passage {i}"
        out.append((hashlib.sha1(text.encode()).hexdigest(), text))
    return out


def test_cache_avoids_re_encoding_and_persists(tmp_path: Path) -> None:
    enc = CountingEncoder()
    items = _items(10)
    first = embed_passages(enc, EmbeddingCache(tmp_path / "cache", enc.model_id), items, batch_size=4)
    assert len(enc.encoded) == 10
    np.testing.assert_allclose(first, enc.encode_passages([t for _, t in items]), atol=1e-6)
    enc.encoded.clear()
    again = embed_passages(enc, EmbeddingCache(tmp_path / "cache", enc.model_id), items, batch_size=4)
    assert enc.encoded == []
    np.testing.assert_array_equal(again, first)
    more = items[3:5] + _items(3, "new")
    out = embed_passages(enc, EmbeddingCache(tmp_path / "cache", enc.model_id), more, batch_size=4)
    assert sorted(enc.encoded) == sorted(t for _, t in _items(3, "new"))
    np.testing.assert_array_equal(out[:2], first[3:5])


def test_duplicates_in_one_batch_are_encoded_once(tmp_path: Path) -> None:
    enc = CountingEncoder()
    items = _items(3)
    batch = [items[0], items[1], items[0], items[2], items[1]]
    out = embed_passages(enc, EmbeddingCache(tmp_path, enc.model_id), batch, batch_size=2)
    assert sorted(enc.encoded) == sorted(t for _, t in items)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[4])
    enc.encoded.clear()
    embed_passages(enc, None, batch)  # no cache: still deduplicated within the call
    assert len(enc.encoded) == 3


def test_cache_files_are_plain_and_keyed_by_model(tmp_path: Path) -> None:
    enc = CountingEncoder("fake/one")
    items = _items(5)
    vecs = embed_passages(enc, EmbeddingCache(tmp_path, enc.model_id), items)
    (folder,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    keys = (folder / "keys.txt").read_text(encoding="ascii").split()
    raw = np.fromfile(folder / "vecs.f32", dtype="<f4").reshape(-1, DIM)
    assert keys == [h for h, _ in items]
    np.testing.assert_array_equal(raw, vecs)
    other = CountingEncoder("fake/two")
    embed_passages(other, EmbeddingCache(tmp_path, other.model_id), items)
    assert len(other.encoded) == 5  # another model never reuses these vectors
    with pytest.raises(ValueError, match="fake/one"):
        embed_passages(other, EmbeddingCache(tmp_path, "fake/one"), items)


def test_cache_recovers_from_interrupted_write(tmp_path: Path) -> None:
    enc = CountingEncoder()
    items = _items(6)
    first = embed_passages(enc, EmbeddingCache(tmp_path, enc.model_id), items[:4])
    (folder,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    with open(folder / "vecs.f32", "ab") as fh:  # a vector row written, its key never was, plus a torn row
        fh.write(np.ones(DIM + 3, dtype="<f4").tobytes())
    with open(folder / "keys.txt", "ab") as fh:
        fh.write(b"deadbeef")  # torn key line without newline
    enc.encoded.clear()
    cache = EmbeddingCache(tmp_path, enc.model_id)
    assert len(cache) == 4
    out = embed_passages(enc, cache, items)
    assert sorted(enc.encoded) == sorted(t for _, t in items[4:])
    np.testing.assert_array_equal(out[:4], first)
    enc.encoded.clear()
    reopened = EmbeddingCache(tmp_path, enc.model_id)
    np.testing.assert_array_equal(embed_passages(enc, reopened, items), out)
    assert enc.encoded == []


@pytest.mark.slow
def test_real_e5_second_run_encodes_nothing(tmp_path: Path) -> None:
    passages = [
        Passage("d1", "支部工作条例", "第三章 组织设置", "党支部委员会会议一般每月召开1次。", 0, 17, 0),
        Passage("d1", "支部工作条例", "第三章 组织设置", "党员大会一般每季度召开1次。", 17, 30, 1),
        Passage("d2", "党费收缴", "", "党员应按月交纳党费。", 0, 10, 0),
    ]
    items = [(p.content_hash(), passage_context(p.title, p.section, p.text)) for p in passages]
    enc = E5Encoder()
    first = embed_passages(enc, EmbeddingCache(tmp_path, enc.model_id), items, batch_size=2)
    assert first.shape == (3, 384)
    np.testing.assert_allclose(first, enc.encode_passages([t for _, t in items]), atol=1e-5)

    calls: list[int] = []
    original = enc._encode_passage_batch

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return original(texts)

    enc._encode_passage_batch = counting  # type: ignore[method-assign]
    second = embed_passages(enc, EmbeddingCache(tmp_path, enc.model_id), items, batch_size=2)
    assert calls == []
    np.testing.assert_array_equal(second, first)


def test_vector_search_runs_on_one_blas_thread_and_restores_it(tmp_path: Path, rng: np.random.Generator,
                                                               monkeypatch) -> None:
    """BLAS is held to one thread during the product (idle BLAS threads spin and slow the encoder beside it)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def numpy_blas() -> list[int]:  # other BLAS builds (torch, scipy) may be loaded too; numpy's does the product
        return [m["num_threads"] for m in threadpoolctl.threadpool_info()
                if m["user_api"] == "blas" and "numpy" in m["filepath"]]

    before = numpy_blas()
    if not before:
        pytest.skip("numpy's BLAS is not visible to threadpoolctl")
    index = NumpyVectorIndex.create(tmp_path / "v", "m", 16)
    index.add([f"d#{i}" for i in range(50)], rng.standard_normal((50, 16)).astype(np.float32))
    seen: list[list[int]] = []
    real_matmul = np.ascontiguousarray

    def spy(a, *args, **kwargs):
        seen.append(numpy_blas())
        return real_matmul(a, *args, **kwargs)

    monkeypatch.setattr(np, "ascontiguousarray", spy)
    hits = index.search_many(rng.standard_normal((2, 16)).astype(np.float32), 3)
    monkeypatch.undo()
    assert [len(h) for h in hits] == [3, 3]
    assert seen and all(n == 1 for counts in seen for n in counts)
    assert numpy_blas() == before


def test_local_reader_searches_the_ivf_and_filters_exactly(tmp_path: Path, rng: np.random.Generator,
                                                          monkeypatch) -> None:
    """The local backend's reader (settings from PARTYQA_ANN_*) uses the saved IVF; a doc filter still fills k."""
    from indexer.backends.local.backend import LocalReader
    from indexer.backends.local.keyword import WhooshKeywordIndex

    monkeypatch.setenv("PARTYQA_ANN_THRESHOLD", "2000")
    monkeypatch.setenv("PARTYQA_ANN_PROBE", "0.25")
    WhooshKeywordIndex.create(tmp_path / "keyword").close()
    _, _, ids, vecs = _saved_ann_index(tmp_path, rng, 2_400, name="vectors")
    by_doc: dict[str, list[str]] = {}
    for pid in ids:
        by_doc.setdefault(pid.rpartition("#")[0], []).append(pid)
    reader = LocalReader(tmp_path, 5.0, by_doc)
    try:
        assert reader.vectors.approximate() and reader.vectors.ann_settings.probe == 0.25
        queries = vecs[[5, 500, 1500]]
        for q, hits in zip(queries, reader.vector_search_many(queries, 10)):
            assert hits[0][1] == pytest.approx(1.0, abs=1e-5) and len(hits) == 10
        only = reader.vector_search_many(queries[:1], 12, docs={"d7", "d100"})[0]
        assert len(only) == 12 and {p.rpartition("#")[0] for p, _ in only} == {"d7", "d100"}
    finally:
        reader.close()


def test_failed_save_with_ann_keeps_old_files(tmp_path: Path, rng: np.random.Generator, monkeypatch) -> None:
    """A save that fails while writing the IVF leaves every old file (IVF included) and a usable index."""
    from indexer.backends.local.ann import AnnIndex

    folder, index, ids, vecs = _saved_ann_index(tmp_path, rng, 2_300)
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    index.delete_docs(["d1"])
    index.add(["x#0"], vecs[:1])

    def broken(self):
        raise OSError("disk full")

    monkeypatch.setattr(AnnIndex, "to_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        index.save()
    monkeypatch.undo()
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    reopened = NumpyVectorIndex.open(folder, ann=ANN)
    assert reopened.approximate() and reopened.ids() == ids
    index.save()  # the same instance saves fine afterwards, its IVF rebuilt or updated from the files
    again = NumpyVectorIndex.open(folder, ann=ANN)
    assert again.approximate() and "x#0" in again.ids() and not any(p.startswith("d1#") for p in again.ids())
    assert again.search(vecs[0], 2)[0][1] == pytest.approx(1.0, abs=1e-5)


def test_local_reader_warms_the_keyword_half_only_at_a_start(tmp_path: Path, rng: np.random.Generator) -> None:
    """The first reader of an index in a process warms its keyword half (and saves the scores); the next
    generation's reader, opened while the previous one is still open (a write), only re-scores the terms the
    previous reader held; once all are closed, a new one (a restart) warms again."""
    from indexer.backends.local.backend import WARM_DIR, LocalReader
    from indexer.backends.local.keyword import WhooshKeywordIndex

    for gen, extra in (("gen-1", 0), ("gen-2", 1)):
        with WhooshKeywordIndex.create(tmp_path / gen / "keyword") as kw:
            kw.add([Passage("d", "标题", "", "党支部 学习 党章" * 50, 0, 10, i) for i in range(300 + extra)])
        NumpyVectorIndex.create(tmp_path / gen / "vectors", "m", DIM).save()
    first = LocalReader(tmp_path / "gen-1", 5.0, {})
    assert first.warming is not None
    first.warming.join()
    hot = first.keyword.hot_terms()
    assert first.keyword._state._terms.size >= 300 and hot  # 党支部 etc.: 300 postings each
    saved = {p.name for p in (tmp_path / WARM_DIR).iterdir()}
    second = LocalReader(tmp_path / "gen-2", 5.0, {})
    assert second.warming is not None and second.warming.name == "partyqa-keyword-rewarm"
    second.warming.join()
    assert set(second.keyword.hot_terms()) == set(hot)
    assert {p.name for p in (tmp_path / WARM_DIR).iterdir()} == saved  # a re-warm saves nothing
    first.close()
    second.close()
    third = LocalReader(tmp_path / "gen-2", 5.0, {})
    assert third.warming is not None and third.warming.name == "partyqa-keyword-warm"
    third.warming.join()
    third.close()


def test_open_reader_shares_an_unchanged_index_across_generations(tmp_path: Path, rng: np.random.Generator) -> None:
    """A generation whose vector files are hard links of the previous one's (a keyword-only commit) gets the same
    rows, ids and IVF without reading them again, and keeps searching approximately after the older folder is
    deleted; a generation with rewritten files is read afresh."""
    import os
    import shutil

    folder, index, ids, vecs = _saved_ann_index(tmp_path, rng, 2_300)
    first = NumpyVectorIndex.open_reader(folder, ann=ANN)
    linked = tmp_path / "gen-next"
    shutil.copytree(folder, linked, copy_function=os.link)
    second = NumpyVectorIndex.open_reader(linked, ann=ANN)
    assert second._ids is first._ids and second._saved_ann() is first._saved_ann() is not None
    shutil.rmtree(folder)  # the older generation is garbage-collected
    third = NumpyVectorIndex.open_reader(shutil.copytree(linked, tmp_path / "gen-3", copy_function=os.link), ann=ANN)
    for reader in (second, third):
        assert reader.approximate()
        assert reader.search(vecs[7], 1)[0] == (ids[7], pytest.approx(1.0, abs=1e-5))
    changed = NumpyVectorIndex.open(linked, ann=ANN)
    changed.delete_docs(["d0"])
    changed.save()  # new files (temp + rename): new inodes
    fresh = NumpyVectorIndex.open_reader(linked, ann=ANN)
    assert fresh._ids is not first._ids and not any(p.startswith("d0#") for p in fresh.ids())
    assert fresh.approximate() and NumpyVectorIndex.count_at(linked) == fresh.count() == len(ids) - 10
