"""The curation commands of `partyqa` (issue 26): passages, disable, enable, link, unlink, standard, feedback, audit.

    partyqa passages 基层党支部工作论文.txt [--json]      # a document's passages: pid, state, section, opening
    partyqa disable '支部工作条例示例.txt#14' ...          # never returned again (kept by content: survives re-indexing)
    partyqa enable '支部工作条例示例.txt#14' ...
    partyqa link "支委会多久开一次会" '支部工作条例示例.txt#14' # a standard question: that passage first, marked 标准答案
    partyqa unlink "支委会多久开一次会"; partyqa standard [--json]
    partyqa feedback export -o useful.jsonl              # the 有用 pairs as a `partyqa eval` file
    partyqa feedback show [--json]; partyqa audit [--limit N] [--json]
    partyqa faq import 常见问题.xlsx; partyqa faq list     # 问答对: each pair a searchable entry, its question standard
    partyqa faq edit 问答/常见问题/3 --answer "…"; partyqa faq remove 问答/常见问题/3 (or --import 常见问题)
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Iterable, Iterator

from indexer.types import PartyQAError

Opener = Callable[[argparse.Namespace], Any]  # cli._engine


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _show(args: argparse.Namespace, data: Any, lines: Iterable[str]) -> int:
    """Print ``data`` as JSON with --json, else ``lines`` (each computed as printed); exit code 0."""
    if args.json:
        _print_json(data)
    else:
        for line in lines:
            print(line)
    return 0


def _one_line(text: str, width: int = 50) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def unknown_document(doc_id: str) -> PartyQAError:
    """The error for a document id the index does not hold (bilingual, pointing to `partyqa docs`)."""
    return PartyQAError(f"未找到文档：{doc_id}（见 partyqa docs） / unknown document {doc_id!r} (see `partyqa docs`)")


def cmd_passages(args: argparse.Namespace) -> int:
    """List a document's passages with their state."""
    with args.open_engine(args) as eng:
        try:
            passages = eng.passages(args.doc)
        except KeyError:
            raise unknown_document(args.doc) from None

    def line(p: dict[str, Any]) -> str:
        mark = "停用 disabled" if p["state"] == "disabled" else ""
        std = f"  标准问题: {' | '.join(p['standard_questions'])}" if p["standard_questions"] else ""
        return f"{p['pid']}\t{mark}\t{p['section'] or '-'}\t{_one_line(p['text'])}{std}"

    return _show(args, passages, map(line, passages))


def cmd_state(args: argparse.Namespace) -> int:
    """Disable passages (never returned, never an answer sentence) or enable them again (``args.enabled``)."""
    with args.open_engine(args) as eng:
        out = eng.set_passage_enabled(args.pids, args.enabled)
    word = "已启用 enabled" if args.enabled else "已停用 disabled"
    for pid in out["changed"]:
        print(f"{word}: {pid}")
    for pid in out["unchanged"]:
        print(f"未变 unchanged: {pid}")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    """Link a standard question to a passage (``args.pid``), or remove it (``args.pid`` None: `unlink`)."""
    with args.open_engine(args) as eng:
        if args.pid is None:
            if not eng.curator.unlink_question(args.question):
                raise PartyQAError(f"没有这个标准问题：{args.question} / no such standard question: {args.question}")
            print(f"已删除 removed: {args.question}")
            return 0
        rec = eng.curator.link_question(args.question, args.pid)
    print(f"标准问题 standard question: {rec['question']} -> {rec['pid']}"
          + ("" if rec.get("model_id") else "（无语义模型：只匹配相同的问题 / no model: only the same question matches）"))
    return 0


def cmd_standard(args: argparse.Namespace) -> int:
    """List the standard questions."""
    with args.open_engine(args) as eng:
        found = eng.curator.standard_questions()
    return _show(args, found, (f"{rec['question']}\t{rec['pid'] or '（段落已不在索引中 / passage gone）'}\t"
                               f"{_one_line(rec['text'], 30)}" for rec in found))


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

    def lines() -> Iterator[str]:
        yield f"有用 useful: {summary['counts']['useful']}, 没用 not useful: {summary['counts']['not_useful']}"
        for q in summary["negative"]:
            yield f"没用 not useful\t{q['question']}\t" + ", ".join(p["pid"] for p in q["passages"])
        for u in summary["useful"]:
            yield f"有用 useful\t{u['question']}\t{u['pid']}"

    return _show(args, summary, lines())


def cmd_faq(args: argparse.Namespace) -> int:
    """问答对: import a file (csv / xlsx / jsonl), list the entries, edit one, or remove entries."""
    from indexer import faq

    wanted = {"import": "FILE", "edit": "ID"}.get(args.action)
    if wanted and len(args.items) != 1:
        raise PartyQAError(f"用法 usage: partyqa faq {args.action} {wanted}")
    with args.open_engine(args) as eng:
        if args.action == "import":
            out = faq.import_faq(eng, args.items[0], wait=not args.no_wait)
            return _show(args, out, [f"已导入 imported: {len(out['entries'])} 个问答对 pairs from {out['file']}"
                                     f"（{faq.FAQ_PREFIX}/{out['import']}/…；标准问题 standard questions: "
                                     f"{out['linked']}）"])
        if args.action == "edit":
            entry = faq.edit_entry(eng, args.items[0], args.question, args.answer, args.source,
                                   wait=not args.no_wait)
            return _show(args, entry, [f"已修改 edited: {entry['doc_id']}\t{entry['question']}\t"
                                       f"{_one_line(entry['answer'])}"])
        if args.action == "remove":
            if not args.items and not args.import_name:
                raise PartyQAError("请给出问答对编号或 --import 名称 / give entry ids or --import NAME")
            gone = faq.remove_entries(eng, args.items, args.import_name)
            return _show(args, gone, (f"已删除 removed: {d}" for d in gone))
        found = faq.list_entries(eng, args.import_name)
    return _show(args, found, (f"{e['doc_id']}\t{e['question']}\t{_one_line(e['answer'], 40)}"
                               + (f"\t来源 {e['source']}" if e["source"] else "") for e in found))


def cmd_audit(args: argparse.Namespace) -> int:
    """Print the audit log, newest first."""
    with args.open_engine(args) as eng:
        entries = eng.curator.audit(args.limit)

    def line(e: dict[str, Any]) -> str:
        target = e.get("target")
        target = target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)
        return (f"{e.get('at')}\t{e.get('who')}\t{e.get('action')}\t{e.get('result')}\t{_one_line(target, 80)}"
                + (f"\tjob {e['job']}" if e.get("job") else ""))

    return _show(args, entries, map(line, entries))


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

    for name, enabled, text in (("disable", False, "disable passages: never returned, never an answer (survives "
                                                   "re-indexing)"),
                                ("enable", True, "enable disabled passages again")):
        p = parser(name, help=text)
        p.add_argument("pids", nargs="+", metavar="PID")
        p.set_defaults(func=cmd_state, enabled=enabled)

    p = parser("link", help="link a standard question (标准问题) to a passage: it comes first for the question "
               "and close paraphrases")
    p.add_argument("question")
    p.add_argument("pid", metavar="PID")
    p.set_defaults(func=cmd_link)

    p = parser("unlink", help="remove a standard question")
    p.add_argument("question")
    p.set_defaults(func=cmd_link, pid=None)

    p = parser("standard", help="list the standard questions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_standard)

    p = parser("feedback", help="feedback given on results: `show`, or `export -o FILE` (the useful pairs as a "
               "`partyqa eval` file)")
    p.add_argument("action", choices=["show", "export"])
    p.add_argument("-o", "--output", help="export: the jsonl file to write")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_feedback)

    p = parser("faq", help="问答对 (FAQ entries): `import FILE` (csv / xlsx / jsonl of question, answer, optional "
               "source: each pair a searchable entry 问答/<file>/<n> whose question is a standard question; again: "
               "replaces the file's entries), `list`, `edit ID --question/--answer/--source`, `remove ID...` (or "
               "`remove --import NAME`)")
    p.add_argument("action", choices=["import", "list", "edit", "remove"])
    p.add_argument("items", nargs="*", metavar="FILE|ID", help="import: the file; edit: one entry id; remove: ids")
    p.add_argument("--import", dest="import_name", metavar="NAME", help="list / remove: the entries of this import")
    p.add_argument("--question", help="edit: the new question")
    p.add_argument("--answer", help="edit: the new answer")
    p.add_argument("--source", help="edit: the new source")
    p.add_argument("--no-wait", action="store_true", help="return once the change is searchable by keyword")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_faq)

    p = parser("audit", help="the audit log of writes (who, what, when, which job), newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit)
