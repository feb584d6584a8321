"""The engine's curation calls (issue 26): a document's passages with their state, disabling and enabling passages,
standard questions, feedback and the audit log -- each write audited with its user (:mod:`indexer.index.journal`)
and stored as a generation (:mod:`indexer.index.curation`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from indexer.index import curation, journal
from indexer.index.generations import Snapshot

if TYPE_CHECKING:
    from indexer.embed.encoders import Encoder
    from indexer.index.writer import Writer

logger = logging.getLogger(__name__)


class Curator:
    """Curation of one index directory, over the engine's writer and its current generation."""

    def __init__(self, root: Path, writer: "Writer", state: Callable[[], Snapshot], encoder: Callable[[], "Encoder"]):
        self.root = root
        self._writer = writer
        self._state = state
        self._encoder = encoder

    def generation(self) -> Snapshot:
        """The committed generation curation reads (the newest a writer committed)."""
        return self._state()

    # ------------------------------------------------------------------ passages
    def passages(self, doc_id: str) -> list[dict[str, Any]]:
        """A document's passages in order: pid, ordinal, section, citation, text, offsets, content key, ``state``
        (``enabled`` / ``disabled``) and linked standard questions; KeyError for an unknown document."""
        return curation.document_passages(self._state(), doc_id)

    def set_passage_enabled(self, pids: Sequence[str], enabled: bool, who: str | None = None,
                            job: str | None = None) -> dict[str, list[str]]:
        """Disable or enable passages (by pid; kept by content); ``{"changed", "unchanged"}``. Audited."""
        pids = list(pids)
        with journal.audited(self.root, "enable" if enabled else "disable", pids, who=who, job=job) as end:
            out = curation.set_enabled(self._writer, pids, enabled, who or journal.current_actor())
            end["changed"] = out["changed"]
        return out

    def disabled(self) -> list[dict[str, Any]]:
        """Every disabled passage (also those whose document is not indexed now: ``pid`` None)."""
        return curation.disabled_list(self._state())

    # ------------------------------------------------------------------ standard questions
    def link_question(self, question: str, pid: str, who: str | None = None,
                      job: str | None = None) -> dict[str, Any]:
        """Link a standard question (标准问题) to a passage: searches for it, or a close paraphrase of it, return the
        passage first, marked ``standard_answer``. Audited."""
        question = curation.check_question(question)
        vector, model_id = self._question_vector(question)
        with journal.audited(self.root, "link", {"question": question, "pid": pid}, who=who, job=job):
            return curation.link(self._writer, question, pid, who or journal.current_actor(), vector, model_id)

    def link_questions(self, pairs: Sequence[tuple[str, str]], who: str | None = None, job: str | None = None,
                       replace_docs: str | None = None) -> list[dict[str, Any]]:
        """Link several (question, pid) at once, in one generation (all or none; e.g. an imported 问答对 file);
        ``replace_docs``: drop the links to documents whose id starts with it first."""
        questions = [curation.check_question(q) for q, _ in pairs]
        vectors, model_id = self.question_vectors(questions)
        items = [(q, pid, v) for q, (_, pid), v in zip(questions, pairs, vectors)]
        with journal.audited(self.root, "link", {"questions": len(items)}, who=who, job=job):
            return curation.link_many(self._writer, items, who or journal.current_actor(), model_id, replace_docs)

    def unlink_question(self, question: str, who: str | None = None) -> bool:
        """Remove a standard question; False when it was not linked. Audited."""
        with journal.audited(self.root, "unlink", {"question": question}, who=who) as end:
            end["removed"] = curation.unlink(self._writer, question)
        return end["removed"]

    def standard_questions(self) -> list[dict[str, Any]]:
        """The linked questions, with the pid each passage has now (None when it is gone)."""
        return curation.standard_list(self._state())

    def _question_vector(self, question: str) -> tuple[list[float] | None, str | None]:
        """The question's e5 query vector (for paraphrase matching); (None, None) when no model can be loaded."""
        vectors, model_id = self.question_vectors([question])
        return vectors[0], model_id

    def question_vectors(self, questions: Sequence[str]) -> tuple[list[list[float] | None], str | None]:
        """The questions' e5 query vectors; Nones when no model can be loaded (then only the same question
        matches, paraphrases need the model)."""
        try:
            enc = self._encoder()
            return [[float(x) for x in row] for row in enc.encode_queries(list(questions))], enc.model_id
        except Exception as exc:
            logger.warning("%d standard question(s) linked without a vector (paraphrases will not match): %s",
                           len(questions), exc)
            return [None] * len(questions), None

    # ------------------------------------------------------------------ feedback and audit
    def add_feedback(self, question: str, pid: str, useful: bool, mode: str | None = None,
                     who: str | None = None) -> dict[str, Any]:
        """Store one 有用 / 没用 judgement of a result in ``<index>/feedback.jsonl`` (never sent anywhere)."""
        passage = self._state().passages.get(str(pid))
        return journal.add_feedback(self.root, question, pid, useful, mode, passage, who)

    def feedback(self) -> dict[str, Any]:
        """Questions with negative feedback and the passages marked useful (:func:`journal.feedback_summary`)."""
        return journal.feedback_summary(self.root)

    def export_feedback(self, dest: str | Path) -> int:
        """Write the useful (question, passage) pairs as a `partyqa eval` file; returns how many."""
        return journal.write_eval_file(self.root, Path(dest))

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit log, newest first (:func:`journal.read_audit`)."""
        return journal.read_audit(self.root, limit)
