"""The `partyqa` command line: split, index, add, remove, docs, ask, batch, eval, serve."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from indexer.cli_curation import add_commands as add_curation_commands, unknown_document
from indexer.config import Config
from indexer.progress import progress_iter
from indexer.questions import read_questions
from indexer.search.metrics import recall_mrr
from indexer.search.query import MODES
from indexer.types import PartyQAError

logger = logging.getLogger("partyqa")

HIT_CSV_FIELDS = ["question", "answer_found", "confidence", "rank", "citation", "doc_id", "title", "section", "status",
                  "version_label", "score", "keyword_rank", "semantic_rank", "terms", "best_sentence", "text", "start",
                  "end"]


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _engine(args: argparse.Namespace, create: bool = False):
    from indexer.engine import Engine

    index_dir = Path(args.config.index_dir)
    if not create and not (index_dir / "CURRENT").exists() and not any(index_dir.glob("gen-*")):
        raise PartyQAError(f"no index at {index_dir.resolve()}: build one with `partyqa --index-dir {index_dir} "
                           f"index CORPUS_DIR` (or set PARTYQA_INDEX_DIR)")
    return Engine.open(index_dir, args.config)


# ------------------------------------------------------------------ commands
def cmd_split(args: argparse.Namespace) -> int:
    """Print the cleaned passages of one file, without building any index."""
    from indexer.ingest.files import load_file_checked
    from indexer.ingest.prepare import prepare

    out = []
    raws, problems = load_file_checked(args.file, max_bytes=int(args.config.max_file_mb * 1024 * 1024))
    for problem in problems:
        print(f"  ! {args.file}: {problem} (line skipped)", file=sys.stderr)
    for raw in raws:
        doc, passages = prepare(raw)
        out.extend(passages)
    if args.json:
        print(_json([{"pid": p.pid, **p.to_dict()} for p in out]))
    else:
        for p in out:
            print(f"[{p.ordinal}] {p.doc_id} | {p.section or '(无章节)'} | {p.start}-{p.end} | {len(p.text)}字")
            print(p.text)
            print()
    return 0


def _print_report(report, as_json: bool) -> int:
    d = report.to_dict()
    if as_json:
        print(_json(d))
    else:
        print(f"新增 added: {len(d['added'])}  更新 updated: {len(d['updated'])}  删除 removed: {len(d['removed'])}  "
              f"未变 unchanged: {len(d['unchanged'])}  编码段落 encoded: {d['passages_encoded']}  "
              f"错误 errors: {len(d['errors'])}")
        if d.get("passages_retokenized"):
            print(f"重新分词 re-tokenized: {d['passages_retokenized']} passages (the analyzer changed)")
        if d.get("passages_pending"):
            print(f"待语义索引 pending embeddings: {d['passages_pending']} passages (searchable by keyword now; "
                  f"finished by a running server or the next `partyqa index`)")
        for e in d["errors"]:
            print(f"  ! {e['path']}: {e['reason']}", file=sys.stderr)
    return 1 if d["errors"] and not (d["added"] or d["updated"] or d["unchanged"]) else 0


STAGE_TEXT = {"reading": "读取文档 reading …", "keyword-ready": "可检索 keyword-ready: searchable by keyword",
              "embedding": "语义索引 embedding (semantic search catches up) …", "done": "完成 done"}


def _stages(args: argparse.Namespace):
    """A callback printing the write's stages to stderr (none with -q or --json)."""
    if args.quiet or getattr(args, "json", False):
        return None
    return lambda stage: print(STAGE_TEXT.get(stage, stage), file=sys.stderr, flush=True)


def _write_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {"progress": not args.quiet, "wait": not args.no_wait, "stages": _stages(args)}


def cmd_index(args: argparse.Namespace) -> int:
    """Sync the index with a corpus directory (then encode every pending passage, unless --no-wait)."""
    if args.rebuild:
        from indexer.engine import Engine

        eng, report = Engine.rebuild(args.config.index_dir, args.corpus_dir, args.config, progress=not args.quiet)
        eng.close()
        return _print_report(report, args.json)
    if args.import_dir:
        if args.corpus_dir:
            raise PartyQAError("--import 与 CORPUS_DIR 只能给一个 / give either --import DIR or CORPUS_DIR, not both")
        with _engine(args, create=True) as eng:  # the engine's writes are audited (as "local")
            return _print_report(eng.import_dir(args.import_dir, **_write_opts(args)), args.json)
    if not args.corpus_dir:
        raise PartyQAError("give the corpus directory to index: partyqa index CORPUS_DIR (or --import DIR)")
    with _engine(args, create=True) as eng:
        report = eng.index(args.corpus_dir, **_write_opts(args))
        return _print_report(report, args.json)


def cmd_add(args: argparse.Namespace) -> int:
    """Copy files into the corpus and index them (keyword first; waits for the vectors unless --no-wait)."""
    with _engine(args, create=True) as eng:
        report = eng.add(args.paths, **_write_opts(args))
        code = _print_report(report, args.json)
        return 1 if report.errors else code


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove documents from the index."""
    with _engine(args) as eng:
        removed = eng.remove(args.doc_ids)
        missing = [d for d in args.doc_ids if d not in removed]
        for d in removed:
            print(f"已删除 removed: {d}")
        for d in missing:
            print(f"未找到 not found: {d}", file=sys.stderr)
        return 1 if missing else 0


def cmd_docs(args: argparse.Namespace) -> int:
    """List indexed documents."""
    with _engine(args) as eng:
        docs = eng.documents()
        if args.json:
            print(_json(docs))
        else:
            for d in docs:
                print(f"{d['doc_id']}\t{d['kind']}\t{d['passages']}段\t{d['added_at']}\t{d['title']}")
            print(f"共 {len(docs)} 篇文档 / {len(docs)} documents", file=sys.stderr)
    return 0


def _marks(rec: dict[str, Any], current: str, historical: str, status: str) -> str:
    """The marks printed after a hit's or a folded passage's source: its version (现行 / 历史版本), then its status
    when it is 已修订 or 已废止 (``status`` formatted with it)."""
    mark = {"current": current, "historical": historical}.get(rec.get("version_status") or "", "")
    if rec.get("status") in ("已修订", "已废止"):
        mark += status.format(rec["status"])
    return mark


def _print_hits(question: str, hits: Any) -> None:
    print(f"问题: {question}")
    message = getattr(hits, "message", None)  # issue 23: e.g. an article the named regulation does not have
    if message:
        print(f"  {message}")
    elif not hits:
        print("  没有找到相关段落 / no matching passage")
    elif not hits.answer_found:
        print("  未找到直接回答，以下是最接近的段落 / no direct answer; the nearest passages follow")
    for h in hits:
        kr = h["keyword_rank"] if h["keyword_rank"] is not None else "-"
        sr = h["semantic_rank"] if h["semantic_rank"] is not None else "-"
        print(f"\n#{h['rank']}  {h['title']}  ›  {h['section'] or '(正文)'}   [score {h['score']:.4f} | 关键词 {kr} | 语义 {sr}]")
        if h.get("citation"):
            print(f"  出处: {h['citation']}{_marks(h, '  [现行]', '  [历史版本]', '  [{}]')}")
        print(f"  {'答' if hits.answer_found else '最接近的句子'}: {h['best_sentence']}")
        for other in h.get("also_in") or []:
            mark = _marks(other, "（现行）", "（历史版本）", "[{}]")
            print(f"  另见: {other['title']} › {other['section'] or '(正文)'}{mark}")
        print(f"  段落: {h['text']}")
        for ref in h.get("references") or []:
            print(f"  引用: {ref['text']} → {ref['citation']}")
        if h["terms"]:
            print(f"  匹配词: {' '.join(h['terms'])}")
        print(f"  位置: {h['doc_id']} [{h['start']}:{h['end']}]")


META_LABELS = (("title", "标题"), ("official_title", "全称"), ("issuer", "发布机关"), ("published", "发布日期"),
               ("effective", "施行日期"), ("version", "版本"), ("status", "状态"), ("category", "类别"),
               ("superseded_by", "修订为"))


def cmd_meta(args: argparse.Namespace) -> int:
    """Show a document's metadata, or correct its title, category, 发布/施行 dates or status."""
    from indexer.index.metadata import EDITABLE

    changes: dict[str, Any] = {f: getattr(args, f) for f in EDITABLE if getattr(args, f) is not None}
    changes.update({f: None for f in args.reset or []})
    with _engine(args) as eng:
        try:
            shown = eng.set_metadata(args.doc_id, **changes) if changes else eng.metadata(args.doc_id)
        except KeyError:
            raise unknown_document(args.doc_id) from None
    if args.json:
        print(_json({"doc_id": args.doc_id, **shown}))
        return 0
    print(args.doc_id)
    for key, label in META_LABELS:
        mark = "  （人工修改 corrected）" if key in shown["edited"] else ""
        print(f"  {label} {key}: {shown.get(key) or '—'}{mark}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question."""
    with _engine(args) as eng:
        hits = eng.search(args.question, k=args.k, mode=args.mode, docs=args.doc, category=args.category,
                          **_knobs(args))
        if args.json:
            print(_json({"question": args.question, "mode": args.mode, **hits.envelope(),
                         "semantic_share": getattr(hits, "semantic_share", None), "docs": args.doc,
                         **({"category": args.category} if args.category else {}), "results": hits}))
        else:
            _print_hits(args.question, hits)
    return 0


def _knobs(args: argparse.Namespace) -> dict[str, float]:
    """The retrieval-test knobs given on the command line (``--semantic-weight``, ``--min-confidence``)."""
    found = {"semantic_weight": getattr(args, "semantic_weight", None),
             "min_confidence": getattr(args, "min_confidence", None)}
    return {name: value for name, value in found.items() if value is not None}


def _safe_search_many(eng, questions: list[str], k: int, mode: str, batch: int = 32,
                      docs: Sequence[str] | None = None,
                      category: Sequence[str] | None = None, knobs: dict[str, float] | None = None
                      ) -> list[dict[str, Any]]:
    """Search in batches; a bad question (empty, too long) gets an error entry instead of stopping the batch.

    Each entry is ``{"question", "answer_found", "confidence", "results"}``. Unknown ``docs`` stop the batch (a
    QueryError from the engine's own check, raised before any question is searched).
    """
    from indexer.types import QueryError

    knobs = knobs or {}
    if docs or category or knobs:  # validates the filters and knobs, searches nothing
        eng.search_many([], k=k, mode=mode, docs=docs, category=category, **knobs)
    out: list[dict[str, Any]] = []
    for i in range(0, len(questions), batch):
        chunk = questions[i:i + batch]
        try:
            results = eng.search_many(chunk, k=k, mode=mode, docs=docs, category=category, **knobs)
            out.extend({"question": q, **r.envelope(), "results": r} for q, r in zip(chunk, results))
        except QueryError:
            for q in chunk:
                try:
                    r = eng.search(q, k=k, mode=mode, docs=docs, category=category, **knobs)
                    out.append({"question": q, **r.envelope(), "results": r})
                except QueryError as exc:
                    out.append({"question": q, "answer_found": False, "confidence": None, "results": [],
                                "error": str(exc)})
    return out


def cmd_batch(args: argparse.Namespace) -> int:
    """Answer a file of questions; write jsonl or csv."""
    rows = read_questions(args.file)
    with _engine(args) as eng:
        items = _progress_batches(eng, [r["question"] for r in rows], args.k, args.mode, not args.quiet, args.doc,
                                  args.category, _knobs(args))
    fh = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        if args.format == "csv":
            writer = csv.DictWriter(fh, fieldnames=HIT_CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for item in items:
                for h in item["results"]:
                    writer.writerow({**h, "question": item["question"], "answer_found": item["answer_found"],
                                     "confidence": item["confidence"], "terms": " ".join(h["terms"])})
        else:
            for item in items:
                fh.write(_json(item) + "\n")
    finally:
        if fh is not sys.stdout:
            fh.close()
    errors = [i for i in items if "error" in i]
    for i in errors:
        print(f"  ! {i['question'][:40]}: {i['error']}", file=sys.stderr)
    print(f"{len(items)} 个问题已完成 / questions answered" + (f" → {args.output}" if args.output else ""),
          file=sys.stderr)
    return 0


def _progress_batches(eng, questions: list[str], k: int, mode: str, progress: bool,
                      docs: Sequence[str] | None = None,
                      category: Sequence[str] | None = None, knobs: dict[str, float] | None = None
                      ) -> list[dict[str, Any]]:
    batch = 32
    chunks = [questions[i:i + batch] for i in range(0, len(questions), batch)]
    out: list[dict[str, Any]] = []
    for chunk in progress_iter(chunks, "检索 searching", "batch", progress, minimum=2):
        out.extend(_safe_search_many(eng, chunk, k, mode, batch, docs, category, knobs))
    return out


def evaluate(eng, rows: Sequence[dict[str, Any]], k: int = 10, modes: Iterable[str] = ("keyword", "semantic", "hybrid")) -> dict[str, dict[str, float]]:
    """Recall@1/5/10 and MRR@10 per mode; a hit is right when it matches gold_doc and/or contains gold_text."""
    def correct(hit: dict, row: dict) -> bool:
        if row.get("gold_doc") and hit["doc_id"] != row["gold_doc"]:
            return False
        if row.get("gold_text") and row["gold_text"] not in hit["text"]:
            return False
        return True

    questions = [r["question"] for r in rows]
    table: dict[str, dict[str, float]] = {}
    for mode in modes:
        results = _safe_search_many(eng, questions, max(k, 10), mode)
        ranks = [next((h["rank"] for h in item["results"] if correct(h, row)), None)
                 for row, item in zip(rows, results)]
        table[mode] = {"n": len(ranks), **recall_mrr(ranks)}
    return table


def cmd_eval(args: argparse.Namespace) -> int:
    """Print Recall@1/5/10 and MRR@10 for each mode on a jsonl of questions with gold_doc / gold_text."""
    rows = read_questions(args.file)
    rows = [r for r in rows if r.get("gold_doc") or r.get("gold_text")]
    if not rows:
        raise PartyQAError(f"{args.file}: no line has gold_doc or gold_text")
    with _engine(args) as eng:
        modes = [args.mode] if args.mode else ["keyword", "semantic", "hybrid"]
        table = evaluate(eng, rows, k=args.k, modes=modes)
    if args.json:
        print(_json(table))
    else:
        print(f"{'mode':<10} {'n':>5} {'R@1':>7} {'R@5':>7} {'R@10':>7} {'MRR@10':>7}")
        for mode, m in table.items():
            print(f"{mode:<10} {m['n']:>5} {m['R@1']:>7.3f} {m['R@5']:>7.3f} {m['R@10']:>7.3f} {m['MRR@10']:>7.3f}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the web UI and HTTP API with waitress."""
    from webui.server import serve

    from webui.auth import check_bind

    check_bind(args.host, args.allow_anonymous_writes, args.config.admin_token)  # issue 26: no open writes on a LAN
    eng = _engine(args, create=True)
    try:
        eng.jobs  # resume spooled jobs and pending embeddings (of a killed server or `add --no-wait`) now
        serve(eng, host=args.host, port=args.port, threads=args.threads)
    finally:
        eng.close()
    return 0


NO_WAIT_HELP = ("return once the documents are searchable by keyword; their embeddings are then finished by a "
                "running `partyqa serve` or the next `partyqa index`")


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `partyqa`."""
    def global_opts(p: argparse.ArgumentParser, defaults: bool) -> None:
        # Accepted before or after the command: `partyqa --index-dir X ask ...` and `partyqa ask ... --index-dir X`.
        d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
        p.add_argument("--index-dir", default=d(None), help="index directory (env PARTYQA_INDEX_DIR, default ./index)")
        p.add_argument("--model", default=d(None), help="embedding model: 'e5' (bundled default) or a "
                       "sentence-transformers folder or a folder name under models/ (env PARTYQA_MODEL)")
        p.add_argument("--reranker", default=d(None), help="optional CrossEncoder folder (env PARTYQA_RERANKER)")
        p.add_argument("-v", "--verbose", action="store_true", default=d(False), help="debug logging")
        p.add_argument("-q", "--quiet", action="store_true", default=d(False), help="no progress bars, warnings only")

    parser = argparse.ArgumentParser(prog="partyqa", description="PartyQA 党建问答检索 — local hybrid search over "
                                     "Chinese party-building documents")
    global_opts(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    global_opts(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True)
    _add = sub.add_parser

    def add_parser(name: str, **kw: object) -> argparse.ArgumentParser:
        return _add(name, parents=[common], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]

    p = sub.add_parser("split", help="print the cleaned passages of one file (no index)")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("index", help="sync the index with a corpus directory (and finish pending embeddings)")
    p.add_argument("corpus_dir", nargs="?", help="the corpus directory (with --rebuild: default the remembered one)")
    p.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    p.add_argument("--rebuild", action="store_true", help="discard the index (e.g. a damaged one) and build it "
                   "again from the corpus; cached embeddings are reused")
    p.add_argument("--import", dest="import_dir", metavar="DIR", help="copy the files of DIR not imported before "
                   "into the index's data folder (<index>/corpus or PARTYQA_CORPUS_DIR; DIR is only read), then "
                   "sync the index with that folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("add", help="copy files into the corpus and index them")
    p.add_argument("paths", nargs="+")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-wait", action="store_true", help=NO_WAIT_HELP)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("remove", help="remove documents by doc id")
    p.add_argument("doc_ids", nargs="+")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("docs", help="list indexed documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_docs)

    def search_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("-k", type=int, default=None, help="results per question (default 5)")
        p.add_argument("--mode", choices=list(MODES), default=None)
        p.add_argument("--doc", action="append", default=None, metavar="DOC_ID",
                       help="search only this document (repeatable; see `partyqa docs`)")
        p.add_argument("--category", action="append", default=None, metavar="CATEGORY",
                       help="search only documents of this category, e.g. 党章党规 (repeatable)")
        p.add_argument("--semantic-weight", type=float, default=None, metavar="W",
                       help="retrieval test: the semantic share of hybrid fusion for every question, 0-1 (default: "
                            "chosen per question)")
        p.add_argument("--min-confidence", type=float, default=None, metavar="C",
                       help="retrieval test: answer_found is false below this confidence, 0-1 (default "
                            "PARTYQA_MIN_CONFIDENCE)")

    p = sub.add_parser("meta", help="show or correct a document's title, category, dates and status")
    p.add_argument("doc_id", help="the document id (see `partyqa docs`)")
    p.add_argument("--title", help="标题: the title the library shows")
    p.add_argument("--category", help="类别, e.g. 党章党规 / 学习材料 / 本单位制度")
    p.add_argument("--published", help="发布日期: 2018-08-18 (or 2018-08, 2018)")
    p.add_argument("--effective", help="施行日期: 2018-10-01 (or 2018-10, 2018)")
    p.add_argument("--status", help="状态: 现行 / 已修订 / 已废止")
    p.add_argument("--reset", action="append", metavar="FIELD",
                   choices=["title", "category", "published", "effective", "status"],
                   help="back to the file's own value of FIELD (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_meta)

    p = sub.add_parser("ask", help="answer one question")
    p.add_argument("question")
    search_opts(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("batch", help="answer questions from a txt/csv/jsonl file")
    p.add_argument("file")
    search_opts(p)
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("-o", "--output", help="output file (default stdout)")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("eval", help="Recall@1/5/10 and MRR@10 per mode on questions with gold_doc/gold_text")
    p.add_argument("file")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--mode", choices=list(MODES), default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", help="serve the web UI and HTTP API")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; 0.0.0.0 must be explicit)")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--allow-anonymous-writes", action="store_true", help="serve a non-loopback address without "
                   "any token (anyone who can reach it may upload, delete and edit)")
    p.set_defaults(func=cmd_serve)
    add_curation_commands(sub, _engine)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `partyqa` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("jieba", "pypdf", "urllib3", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    overrides: dict[str, Any] = {"index_dir": args.index_dir, "model": args.model, "reranker": args.reranker}
    for name in ("host", "port"):
        overrides[name] = getattr(args, name, None)
    args.config = Config.from_env(**overrides)
    if getattr(args, "k", None) is None and args.command in ("ask", "batch"):
        args.k = args.config.k
    if getattr(args, "mode", None) is None and args.command in ("ask", "batch"):
        args.mode = args.config.mode
    if args.command == "serve":
        args.host, args.port = args.config.host, args.config.port
    try:
        return args.func(args)
    except PartyQAError as exc:
        print(f"错误 error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"错误 error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("已中断 interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
