"""Where to put ``TRELLIS_CHAT_MIN_PASSAGE_SCORE``: the best passage's score for questions the
ABCD knowledge base answers vs questions it cannot (``bench/data/chat_questions.jsonl``), with
the bundled MiniLM, and what each threshold would do to both groups. Also how often the intent
model abstains on each group (the pipeline's second "unknown" signal).

    TRELLIS_TORCH_THREADS=1 nice -n 10 .venv/bin/python bench/calibrate_chat_min_score.py

Runs on a fresh temporary var dir (SQLite, KB index), like eval_chat_grounding.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chat_kb import QUESTIONS, kb_bench_setup, kb_demo_build  # noqa: E402

kb_bench_setup("bench-min-score-")

import json  # noqa: E402
import statistics  # noqa: E402
from collections import Counter  # noqa: E402

from django.conf import settings  # noqa: E402

from apps.chat.services.decision import IntentGuess, decide  # noqa: E402
from apps.chat.services.index import kb_search  # noqa: E402
from apps.mlops.services.serving import model_get  # noqa: E402

THRESHOLDS = [0.2, 0.25, 0.28, 0.3, 0.32, 0.35, 0.4, 0.45, 0.5]


def _summary(scores: list[float]) -> str:
    q = statistics.quantiles(scores, n=10)
    median = statistics.median(scores)
    return f"min {min(scores):.3f}  p10 {q[0]:.3f}  median {median:.3f}  p90 {q[-1]:.3f}  max {max(scores):.3f}"


def main() -> None:
    kb_demo_build()
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    intent = model_get("intent")
    predictions = intent.predict([r["question"] for r in rows])
    best: dict[bool, list[float]] = {True: [], False: []}
    abstained = {True: 0, False: 0}
    decisions: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    threshold_now = settings.TRELLIS_CHAT_MIN_PASSAGE_SCORE
    for row, prediction in zip(rows, predictions, strict=True):
        passages = kb_search(row["question"], 3)
        best[row["answerable"]].append(passages[0].score if passages else 0.0)
        abstained[row["answerable"]] += bool(prediction.abstained)
        guess = IntentGuess(prediction.label, prediction.confidence, prediction.abstained)
        decision = decide(text=row["question"], passages=passages, intent=guess, min_score=threshold_now)
        if decision.options and os.environ.get("SHOW_TIES"):
            print("tie:", row["question"], [(p.article_title, p.score) for p in passages[:2]], row.get("article"))
        decisions[row["answerable"]][f"{decision.kind}:{decision.handoff_reason or decision.why.split(' ')[0]}"] += 1
    print(f"questions: {len(best[True])} answerable, {len(best[False])} not (intent model {intent.version})")
    print(f"best passage, answerable:   {_summary(best[True])}")
    print(f"best passage, unanswerable: {_summary(best[False])}")
    for group in (True, False):
        print(f"intent abstained, {'answerable' if group else 'unanswerable'}: {abstained[group]}/{len(best[group])}")
    print("threshold  answerable kept  unanswerable declined")
    for threshold in THRESHOLDS:
        kept = sum(s >= threshold for s in best[True]) / len(best[True])
        declined = sum(s < threshold for s in best[False]) / len(best[False])
        print(f"{threshold:9.2f}  {kept:15.2f}  {declined:21.2f}")
    print(f"decisions at TRELLIS_CHAT_MIN_PASSAGE_SCORE={threshold_now} (first turn, no route intents):")
    for group in (True, False):
        print(f"  {'answerable' if group else 'unanswerable'}: {dict(decisions[group].most_common())}")


if __name__ == "__main__":
    main()
