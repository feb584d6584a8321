"""The curation commands of `partyqa` (issue 26): passages, disable, enable, link, unlink, standard, feedback, audit.

    partyqa passages 基层党支部工作论文.txt [--json]      # a document's passages: pid, state, section, opening
    partyqa disable '支部工作条例示例.txt#14' ...          # never returned again (kept by content: survives re-indexing)
    partyqa enable '支部工作条例示例.txt#14' ...
    partyqa link "支委会多久开一次会" '支部工作条例示例.txt#14' # a standard question: that passage first, marked 标准答案
    partyqa unlink "支委会多久开一次会"; partyqa standard [--json]
    partyqa feedback export -o useful.jsonl              # the 有用 pairs as a `partyqa eval` file
    partyqa feedback show [--json]; partyqa audit [--limit N] [--json]
    partyqa faq import 常见问题.xlsx; partyqa faq list     # 问答对: each pair a searchable entry, its question standard
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from indexer.types import PartyQAError

Opener = Callable[[argparse.Namespace], Any]  # cli._engine


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _one_line(text: str, width: int = 50) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def cmd_passages(args: argparse.Namespace) -> int:
    """List a document's passages with their state."""
    with args.open_engine(args) as eng:
        try:
            passages = eng.passages(args.doc)
        except KeyError:
            raise PartyQAError(f"未找到文档：{args.doc}（见 partyqa docs） / unknown document {args.doc!r} (see "
                               f"`partyqa docs`)") from None
    if args.json:
        _print_json(passages)
        return 0
    for p in passages:
        mark = "停用 disabled" if p["state"] == "disabled" else ""
        std = f"  标准问题: {' | '.join(p['standard_questions'])}" if p["standard_questions"] else ""
        print(f"{p['pid']}\t{mark}\t{p['section'] or '-'}\t{_one_line(p['text'])}{std}")
    return 0


def _cmd_state(args: argparse.Namespace, enabled: bool) -> int:
    from indexer.index.curation import CurationError

    with args.open_engine(args) as eng:
        try:
            out = eng.set_passage_enabled(args.pids, enabled)
        except CurationError as exc:
            raise PartyQAError(str(exc)) from None
    word = "已启用 enabled" if enabled else "已停用 disabled"
    for pid in out["changed"]:
        print(f"{word}: {pid}")
    for pid in out["unchanged"]:
        print(f"未变 unchanged: {pid}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    """Disable passages: never returned, never an answer sentence."""
    return _cmd_state(args, False)


def cmd_enable(args: argparse.Namespace) -> int:
    """Enable disabled passages again."""
    return _cmd_state(args, True)


def cmd_link(args: argparse.Namespace) -> int:
    """Link a standard question to a passage."""
    from indexer.index.curation import CurationError

    with args.open_engine(args) as eng:
        try:
            rec = eng.curator.link_question(args.question, args.pid)
        except CurationError as exc:
            raise PartyQAError(str(exc)) from None
    print(f"标准问题 standard question: {rec['question']} -> {rec['pid']}"
          + ("" if rec.get("model_id") else "（无语义模型：只匹配相同的问题 / no model: only the same question matches）"))
    return 0


def cmd_unlink(args: argparse.Namespace) -> int:
    """Remove a standard question."""
    with args.open_engine(args) as eng:
        removed = eng.curator.unlink_question(args.question)
    if not removed:
        raise PartyQAError(f"没有这个标准问题：{args.question} / no such standard question: {args.question}")
    print(f"已删除 removed: {args.question}")
    return 0


def cmd_standard(args: argparse.Namespace) -> int:
    """List the standard questions."""
    with args.open_engine(args) as eng:
        found = eng.curator.standard_questions()
    if args.json:
        _print_json(found)
    else:
        for rec in found:
            print(f"{rec['question']}\t{rec['pid'] or '（段落已不在索引中 / passage gone）'}\t{_one_line(rec['text'], 30)}")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Export the useful pairs as an eval file, or show the feedback summary."""
    with args.open_engine(args) as eng:
        if args.action == "export":
            if not args.output:
                raise PartyQAError("请用 -o 指定输出文件 / give the output file with -o")
            n = eng.curator.export_feedback(args.output)
            print(f"{n} 条有用的问答对 useful pairs -> {args.output}（partyqa eval {args.output}）", file=sys.stderr)
            return 0
        summary = eng.curator.feedback()
    if args.json:
        _print_json(summary)
        return 0
    print(f"有用 useful: {summary['counts']['useful']}, 没用 not useful: {summary['counts']['not_useful']}")
    for q in summary["negative"]:
        print(f"没用 not useful\t{q['question']}\t" + ", ".join(p["pid"] for p in q["passages"]))
    for u in summary["useful"]:
        print(f"有用 useful\t{u['question']}\t{u['pid']}")
    return 0


def cmd_faq(args: argparse.Namespace) -> int:
    """Import a 问答对 file (csv / xlsx / jsonl), or list the FAQ entries."""
    from indexer.faq import FAQ_PREFIX, import_faq

    with args.open_engine(args) as eng:
        if args.action == "import":
            if not args.file:
                raise PartyQAError("请给出问答对文件 / give the question-answer file: partyqa faq import FILE")
            out = import_faq(eng, args.file, wait=not args.no_wait)
            if args.json:
                _print_json(out)
            else:
                print(f"已导入 imported: {len(out['entries'])} 个问答对 pairs from {out['file']}（{FAQ_PREFIX}/…；"
                      f"标准问题 standard questions: {out['linked']}）")
            return 0
        docs = [d for d in eng.documents() if d["doc_id"].startswith(FAQ_PREFIX + "/")]
    if args.json:
        _print_json([{"doc_id": d["doc_id"], "question": d["title"]} for d in docs])
    else:
        for d in docs:
            print(f"{d['doc_id']}\t{d['title']}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the audit log, newest first."""
    with args.open_engine(args) as eng:
        entries = eng.curator.audit(args.limit)
    if args.json:
        _print_json(entries)
    else:
        for e in entries:
            target = e.get("target")
            target = target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)
            print(f"{e.get('at')}\t{e.get('who')}\t{e.get('action')}\t{e.get('result')}\t{_one_line(target, 80)}"
                  + (f"\tjob {e['job']}" if e.get("job") else ""))
    return 0


def add_commands(sub: Any, open_engine: Opener) -> None:
    """Add the curation commands to `partyqa`'s subparsers; ``open_engine(args)`` opens the index."""
    def parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, **kw)
        p.set_defaults(open_engine=open_engine)
        return p

    p = parser("passages", help="list a document's passages with their state (enabled / disabled)")
    p.add_argument("doc", metavar="DOC_ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_passages)

    p = parser("disable", help="disable passages: never returned, never an answer (survives re-indexing)")
    p.add_argument("pids", nargs="+", metavar="PID")
    p.set_defaults(func=cmd_disable)

    p = parser("enable", help="enable disabled passages again")
    p.add_argument("pids", nargs="+", metavar="PID")
    p.set_defaults(func=cmd_enable)

    p = parser("link", help="link a standard question (标准问题) to a passage: it comes first for the question "
               "and close paraphrases")
    p.add_argument("question")
    p.add_argument("pid", metavar="PID")
    p.set_defaults(func=cmd_link)

    p = parser("unlink", help="remove a standard question")
    p.add_argument("question")
    p.set_defaults(func=cmd_unlink)

    p = parser("standard", help="list the standard questions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_standard)

    p = parser("feedback", help="feedback given on results: `show`, or `export -o FILE` (the useful pairs as a "
               "`partyqa eval` file)")
    p.add_argument("action", choices=["show", "export"])
    p.add_argument("-o", "--output", help="export: the jsonl file to write")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_feedback)

    p = parser("faq", help="问答对: `import FILE` (csv/xlsx/jsonl with question, answer, optional source: each pair a "
               "searchable entry 问答/<file>/<n> whose question is a standard question), or `list`")
    p.add_argument("action", choices=["import", "list"])
    p.add_argument("file", nargs="?")
    p.add_argument("--no-wait", action="store_true", help="return once the entries are searchable by keyword")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_faq)

    p = parser("audit", help="the audit log of writes (who, what, when, which job), newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)
