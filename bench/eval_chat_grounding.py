"""Grounded answering on the ABCD store policies: retrieval, generated vs extractive answers,
"I don't know" on questions the knowledge base cannot answer, before and after the LoRA.

Runs the app's own services in this process on a fresh var dir (SQLite and the KB index in a
temporary folder; model artifacts from the usual artifacts dir, so the chat LM's one-off
conversion is reused): the ABCD guidelines become 55 articles (``apps.chat.services.demo``),
chunked and indexed with the bundled MiniLM. Questions: ``bench/data/chat_questions.jsonl``,
hand-written customer questions, each answerable one with its article (``also``: articles
with the same text) and 1-3 key facts (``"6 months | six months"``: either form counts).

Per question: retrieval hit@1 / hit@3 over distinct articles; the generated answer
(``prompting.build_messages`` over the top passages + the chat LM, greedy); the extractive
answer (``grounding.extractive_answer``); "guarded" = the generated answer where the
grounding check passes it, else the extractive one (what the pipeline is specified to do);
and the reply pipeline's own decision and final reply when ``services.reply`` exists.
Reported: share citing the right article, share with all key facts (and mean fact recall),
share of answerable questions that lose their answer ("I don't know" / hand-off), share of
unanswerable questions declined.

    TRELLIS_TORCH_THREADS=1 nice -n 10 .venv/bin/python bench/eval_chat_grounding.py --limit 20
    ... --placement both            # passages in the user turn vs the system turn
    ... --chat-lm var/artifacts/chat-lm/<version> --out after.json   # a tuned adapter
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chat_kb import QUESTIONS, kb_bench_setup, kb_demo_build  # noqa: E402

kb_bench_setup("bench-grounding-")

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from apps.chat.management.commands.kb_demo import DATASET  # noqa: E402
from apps.chat.models import Article  # noqa: E402
from apps.chat.services.index import kb_search  # noqa: E402
from apps.chat.services.prompting import MAX_PASSAGES, build_messages, cited_numbers, says_unknown  # noqa: E402
from apps.mlops.services.serving import model_get  # noqa: E402

SEARCH_DEPTH = 20  # passages searched to rank distinct articles for hit@k


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_questions(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    if limit:  # keep the set's 2:1 mix in a quick run
        answerable, unanswerable = answerable[:limit], unanswerable[: max(1, limit // 2)]
    return answerable + unanswerable


def _norm(text: str) -> str:
    text = text.replace("’", "'").replace("‘", "'").replace("**", "").lower()
    return " ".join(text.split())


def facts_found(reply: str, facts: list[str]) -> list[bool]:
    """Per key fact: is one of its ``|``-separated forms in the reply (case, spacing ignored)."""
    reply = _norm(reply)
    return [any(_norm(form) in reply for form in fact.split("|")) for fact in facts]


def ranked_articles(question: str) -> tuple[list[str], list[Any]]:
    passages = kb_search(question, SEARCH_DEPTH)
    keys = dict(Article.objects.filter(pk__in={p.article_id for p in passages}).values_list("pk", "external_id"))
    ranked: list[str] = []
    for passage in passages:
        if keys[passage.article_id] not in ranked:
            ranked.append(keys[passage.article_id])
    return ranked, passages[:MAX_PASSAGES]


async def _generate_all(lm: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
    """Greedy replies for all prompts; the LM's decode loop batches the concurrent ones."""
    gate = asyncio.Semaphore(lm.gate.max_concurrent)

    async def one(messages: list[dict[str, str]]) -> str:
        async with gate:
            return await lm.complete(messages, max_new_tokens=max_new_tokens, temperature=0.0)

    return list(await asyncio.gather(*(one(m) for m in prompts)))


def _grounding() -> Any:
    try:
        from apps.chat.services import grounding
    except ImportError:
        return None
    return grounding


async def _pipeline_all(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | str:
    """Each question through ``services.reply.reply_events`` in its own conversation."""
    try:
        from apps.chat.services import reply as reply_service
        from apps.chat.services.conversations import conversation_start, customer_message_add
    except ImportError as exc:
        return f"reply pipeline not available ({exc})"
    from asgiref.sync import sync_to_async

    results = []
    for row in rows:
        conversation, _ = await sync_to_async(conversation_start)(route=None, customer=None, origin="")
        message, _ = await sync_to_async(customer_message_add)(conversation, row["question"], client_id=None)
        final: Any = None
        handed_off = False
        async for event in reply_service.reply_events(conversation, message):
            if type(event).__name__ in ("ReplyFinished", "HandedOff"):
                final = event.message
                handed_off = handed_off or type(event).__name__ == "HandedOff"
        results.append(
            {
                "decision": getattr(final, "decision", "") or ("handoff" if handed_off else ""),
                "text": getattr(final, "text", "") if final is not None else "",
                "generator": getattr(final, "generator", "") if final is not None else "",
                "handed_off": handed_off,
            }
        )
    return results


def _cites_right(reply: str, passages: list[Any], gold: set[str], keys: dict[int, str]) -> bool:
    return any(1 <= n <= len(passages) and keys[passages[n - 1].article_id] in gold for n in cited_numbers(reply))


def _summarise(rows: list[dict[str, Any]], mode: str, *, citations: bool) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"] and mode in r]
    unanswerable = [r for r in rows if not r["answerable"] and mode in r]
    out: dict[str, Any] = {"mode": mode, "answerable": len(answerable), "unanswerable": len(unanswerable)}
    if answerable:
        out["facts_all"] = sum(all(r[mode]["facts"]) for r in answerable) / len(answerable)
        out["facts_mean"] = sum(sum(r[mode]["facts"]) / len(r[mode]["facts"]) for r in answerable) / len(answerable)
        out["lost"] = sum(r[mode]["declined"] for r in answerable) / len(answerable)
        if citations:
            out["cites_right"] = sum(r[mode]["cites_right"] for r in answerable) / len(answerable)
        grounded = [r[mode]["grounded"] for r in answerable if r[mode].get("grounded") is not None]
        if grounded:
            out["grounded"] = sum(grounded) / len(grounded)
    if unanswerable:
        out["declined_unanswerable"] = sum(r[mode]["declined"] for r in unanswerable) / len(unanswerable)
    return out


def _judge(row: dict[str, Any], reply: str, passages: list[Any], keys: dict[int, str], *, declined: bool) -> dict:
    gold = {row.get("article", ""), *row.get("also", [])}
    return {
        "reply": reply,
        "facts": facts_found(reply, row.get("facts", [])),
        "declined": declined,
        "cites_right": _cites_right(reply, passages, gold, keys) if row["answerable"] else False,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--limit", type=int, help="first N answerable and N/2 unanswerable questions (quick runs)")
    parser.add_argument(
        "--placement", choices=("user", "system", "both"), default="user", help="where the passages go in the prompt"
    )
    parser.add_argument("--chat-lm", type=Path, help="chat-lm artifact folder to evaluate (default: the bundled one)")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--no-generate", action="store_true", help="retrieval and extractive answers only")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the reply pipeline's run")
    parser.add_argument("--out", type=Path, help="write the figures and every answer as JSON")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    if not (DATASET / "guidelines.json").is_file():
        print(f"no ABCD data set at {DATASET}: nothing to measure")
        return 0
    from ml.devices import configure_threads

    configure_threads()
    kb_demo_build()
    _log("knowledge base indexed")
    keys = dict(Article.objects.values_list("pk", "external_id"))
    rows = load_questions(args.questions, args.limit)
    embedder = model_get("embedder")
    grounding = _grounding()

    started = time.perf_counter()
    contexts = []
    for row in rows:
        ranked, passages = ranked_articles(row["question"])
        gold = {row.get("article", ""), *row.get("also", [])}
        row["retrieved"] = ranked[:3]
        row["hit1"] = bool(ranked[:1]) and ranked[0] in gold
        row["hit3"] = bool(gold & set(ranked[:3]))
        contexts.append(passages)
        if grounding is not None:
            text = grounding.extractive_answer(row["question"], passages, embedder=embedder)
            row["extractive"] = _judge(row, text, passages, keys, declined=not text.strip() or says_unknown(text))
    timings = {"retrieval_and_extractive_s": time.perf_counter() - started}
    _log(f"retrieval and extractive answers for {len(rows)} questions")

    placements = ("user", "system") if args.placement == "both" else (args.placement,)
    lm = None
    if not args.no_generate:
        from ml.registry import default_registry

        lm = default_registry().load_artifact(args.chat_lm) if args.chat_lm else model_get("chat-lm")
        for placement in placements:
            started = time.perf_counter()
            prompts = [
                build_messages(row["question"], passages, placement=placement)
                for row, passages in zip(rows, contexts, strict=True)
            ]
            replies = asyncio.run(_generate_all(lm, prompts, args.max_new_tokens))
            timings[f"generate_{placement}_s"] = time.perf_counter() - started
            _log(f"generated {len(replies)} replies, passages in the {placement} turn")
            for row, passages, reply in zip(rows, contexts, replies, strict=True):
                judged = _judge(row, reply, passages, keys, declined=says_unknown(reply))
                if grounding is not None and row["answerable"]:
                    judged["grounded"] = bool(grounding.grounding_check(reply, passages, embedder=embedder).grounded)
                row[f"generated_{placement}"] = judged
                if grounding is not None and placement == placements[0]:
                    keep = judged["declined"] or judged.get("grounded", True)
                    guarded = judged if keep else dict(row["extractive"])
                    if not row["answerable"] and not judged["declined"]:
                        checked = grounding.grounding_check(reply, passages, embedder=embedder).grounded
                        guarded = judged if checked else dict(row["extractive"])
                    row["guarded"] = guarded

    pipeline: list[dict[str, Any]] | str = "not run (--no-generate, --no-pipeline or --chat-lm)"
    if lm is not None and not (args.no_pipeline or args.chat_lm):  # the pipeline serves the promoted chat LM
        pipeline = asyncio.run(_pipeline_all(rows))
        _log("pipeline done")
    if isinstance(pipeline, list):
        for row, result, passages in zip(rows, pipeline, contexts, strict=True):
            declined = result["decision"] in ("handoff", "unknown") or says_unknown(result["text"])
            row["pipeline"] = {**_judge(row, result["text"], passages, keys, declined=declined), **result}

    answerable = [r for r in rows if r["answerable"]]
    report: dict[str, Any] = {
        "questions": {"answerable": len(answerable), "unanswerable": len(rows) - len(answerable)},
        "chat_lm": str(args.chat_lm or "bundled default") if lm is not None else None,
        "chat_lm_version": getattr(lm, "version", None),
        "retrieval": {
            "hit@1": sum(r["hit1"] for r in answerable) / len(answerable),
            "hit@3": sum(r["hit3"] for r in answerable) / len(answerable),
        },
        "modes": [],
        "pipeline": pipeline if isinstance(pipeline, str) else "run",
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    modes = [(f"generated_{p}", True) for p in placements if lm is not None]
    modes += [("extractive", False), ("guarded", False), ("pipeline", True)]
    report["modes"] = [_summarise(rows, m, citations=c) for m, c in modes if any(m in r for r in rows)]
    _print(report)
    if args.out:
        report["rows"] = rows
        args.out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


def _print(report: dict[str, Any]) -> None:
    q = report["questions"]
    print(f"\nquestions: {q['answerable']} answerable, {q['unanswerable']} unanswerable; chat LM: {report['chat_lm']}")
    print(f"retrieval hit@1 {report['retrieval']['hit@1']:.3f}  hit@3 {report['retrieval']['hit@3']:.3f}")
    columns = ("cites_right", "facts_all", "facts_mean", "grounded", "lost", "declined_unanswerable")
    print(f"\n{'answer':<16}" + "".join(f"{re.sub('_', ' ', c):>22}" for c in columns))
    for mode in report["modes"]:
        cells = "".join(f"{mode[c]:>22.3f}" if c in mode else f"{'-':>22}" for c in columns)
        print(f"{mode['mode']:<16}{cells}")
    if isinstance(report["pipeline"], str) and report["pipeline"] != "run":
        print(f"\npipeline: {report['pipeline']}")
    print(f"timings: {report['timings_s']}")


if __name__ == "__main__":
    sys.exit(main())
