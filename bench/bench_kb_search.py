"""Knowledge-base retrieval on the ABCD store policies: quality, latency, batched embedding.

Runs the app's own services in this process on a fresh embedded-default var dir (SQLite,
migrated here) with the bundled MiniLM embedder: the ABCD guidelines become 55 articles (one
per subflow, ``apps.chat.services.demo``), chunked and indexed as in production. Questions:
one hand-written customer question per subflow (below, labelled with its subflow) plus the
first customer turn of each conversation in ``abcd_sample.json`` (gold: its flow/subflow).

- Recall@1 / Recall@5: the gold article among the first 1 / 5 distinct articles of
  ``kb_search``; "flow" counts an article of the same flow as right (three return subflows
  share one text, so subflow recall has a ceiling below 1).
- Search latency p50 / p95 of ``kb_search`` (query embedding + FAISS + database), warm.
- Embedding every passage in batches of 64 against one passage per call: the ratio.

    TRELLIS_TORCH_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python bench/bench_kb_search.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TRELLIS_TORCH_THREADS", "1")
os.environ["TRELLIS_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-kb-")
os.environ["TRELLIS_ARTIFACTS_DIR"] = str(Path(os.environ["TRELLIS_VAR_DIR"]) / "artifacts")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
    os.environ.pop(name, None)

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from apps.chat.management.commands.kb_demo import DATASET  # noqa: E402
from apps.chat.models import Article, Chunk  # noqa: E402
from apps.chat.services.demo import demo_load  # noqa: E402
from apps.chat.services.index import _embedder, kb_index_build, kb_search, passage_input  # noqa: E402

# One customer question per subflow, written from the guidelines (subflow key -> question).
QUESTIONS = {
    "refund_initiate": "I want my money back for something I bought",
    "refund_update": "I asked for a refund last week, can I change how I get the money?",
    "refund_status": "Has my refund been processed yet?",
    "return_stain": "The shirt I got has a stain on it, I want to send it back",
    "return_color": "The color of the jacket is different from the picture, can I return it?",
    "return_size": "These jeans are too small, how do I return them?",
    "status_mystery_fee": "There is a strange extra fee on my order I don't recognise",
    "status_delivery_time": "When will my order arrive?",
    "status_payment_method": "Which card did I use to pay for my order?",
    "status_quantity": "I received fewer items than I ordered",
    "manage_upgrade": "Can I upgrade the shipping on my order to be faster?",
    "manage_downgrade": "I want to downgrade my order to cheaper shipping",
    "manage_create": "I'd like to add another item to my existing order",
    "manage_cancel": "Please cancel my order",
    "recover_username": "I forgot my username",
    "recover_password": "I can't remember my password",
    "reset_2fa": "I lost my phone and can't get the two-factor code to log in",
    "credit_card": "The site keeps saying my credit card is invalid",
    "shopping_cart": "Items I add don't show up in my cart",
    "search_results": "The search on your website isn't returning anything",
    "slow_speed": "Your website is loading really slowly",
    "status_service_added": "A subscription service was added to my account that I didn't want",
    "status_service_removed": "My premium service was removed from my account, why?",
    "status_shipping_question": "I have a question about the shipping on my account",
    "status_credit_missing": "The store credit I was promised is missing from my account",
    "manage_change_address": "I moved and need to change the address on my account",
    "manage_change_name": "I need to update the name on my account",
    "manage_change_phone": "How do I change my phone number on file?",
    "manage_payment_method": "I want to change the payment method on my account",
    "bad_price_competitor": "Another store sells the same boots for less, can you match it?",
    "bad_price_yesterday": "The price dropped the day after I bought it",
    "out_of_stock_general": "Why is everything I want out of stock?",
    "out_of_stock_one_item": "The one item I need is out of stock, when will it be back?",
    "promo_code_invalid": "My promo code isn't working at checkout",
    "promo_code_out_of_date": "My coupon code says it has expired",
    "mistimed_billing_already_returned": "I was charged for an item I already returned",
    "mistimed_billing_never_bought": "I was billed for something I never bought",
    "status": "Where is my package? I want to check the shipping status",
    "manage": "I need to change the shipping address of an order that hasn't shipped",
    "missing": "My package arrived but an item is missing from the box",
    "cost": "How much does shipping cost?",
    "boots": "Are your boots waterproof?",
    "shirt": "Will the shirt shrink in the wash?",
    "jeans": "What's the inseam length on these jeans?",
    "jacket": "Does the jacket come with a hood?",
    "pricing": "Do you offer price matching or discounts?",
    "membership": "What are the benefits of gold membership?",
    "timing": "How long does it take for an order to ship?",
    "policy": "What is your general store policy on returns and exchanges?",
    "status_active": "Is my premium subscription still active?",
    "status_due_amount": "How much do I owe for my subscription?",
    "status_due_date": "When is my subscription payment due?",
    "manage_pay_bill": "I want to pay my subscription bill now",
    "manage_extension": "Can I get an extension on my subscription payment?",
    "manage_dispute_bill": "I think my subscription bill is wrong and want to dispute it",
}


def _questions() -> list[tuple[str, str, str]]:
    """(question, flow, subflow) pairs: the hand-written ones and the sample conversations'."""
    by_subflow = {a.split(":")[2]: a.split(":")[1] for a in Article.objects.values_list("external_id", flat=True)}
    pairs = [(q, by_subflow[s], s) for s, q in QUESTIONS.items()]
    for convo in json.loads((DATASET / "abcd_sample.json").read_text(encoding="utf-8")):
        first = next((text for who, text in convo["original"] if who == "customer"), "")
        scenario = convo["scenario"]
        if len(first.split()) >= 3:  # "HEY HO!" names no problem
            pairs.append((first, scenario["flow"], re.sub(r"_\d+$", "", scenario["subflow"])))
    return pairs


def _ranked_articles(question: str) -> list[str]:
    seen: list[str] = []
    for passage in kb_search(question, 30):
        if passage.article_id not in seen:
            seen.append(passage.article_id)
    keys = dict(Article.objects.filter(pk__in=seen).values_list("pk", "external_id"))
    return [keys[pk] for pk in seen]


def main() -> None:
    logging.disable(logging.INFO)
    if not (DATASET / "guidelines.json").is_file():
        print(f"no ABCD data set at {DATASET}: nothing to measure")
        return
    from ml.devices import configure_threads

    configure_threads()
    call_command("migrate", verbosity=0)
    demo_load(DATASET, queue_index=False)
    started = time.perf_counter()
    kb_index_build()
    build_s = time.perf_counter() - started
    pairs = _questions()

    hits1 = hits5 = flow1 = flow5 = 0
    misses = []
    for question, flow, subflow in pairs:
        ranked = _ranked_articles(question)
        gold = f"abcd:{flow}:{subflow}"
        hits1 += ranked[:1] == [gold]
        hits5 += gold in ranked[:5]
        flow1 += bool(ranked) and ranked[0].split(":")[1] == flow
        flow5 += any(r.split(":")[1] == flow for r in ranked[:5])
        if ranked[:1] != [gold]:
            misses.append((question, subflow, ranked[0] if ranked else "-"))

    latencies = []
    for question, _, _ in pairs * 3:
        t = time.perf_counter()
        kb_search(question, 5)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()

    embedder = _embedder()
    chunks = list(Chunk.objects.select_related("article").order_by("pk"))
    texts = [passage_input(c.article.title, c.heading, c.text) for c in chunks]
    t = time.perf_counter()
    embedder.embed(texts, batch_size=64)
    batched = time.perf_counter() - t
    t = time.perf_counter()
    for text in texts:
        embedder.embed([text], batch_size=1)
    single = time.perf_counter() - t

    n = len(pairs)
    rows = [
        ("articles / passages", f"{Article.objects.count()} / {len(chunks)}"),
        ("index build (chunk + embed + write)", f"{build_s:.1f} s"),
        ("questions", f"{n} ({len(QUESTIONS)} hand-written, {n - len(QUESTIONS)} from abcd_sample.json)"),
        ("Recall@1 subflow article", f"{hits1 / n:.3f}"),
        ("Recall@5 subflow article", f"{hits5 / n:.3f}"),
        ("Recall@1 same flow", f"{flow1 / n:.3f}"),
        ("Recall@5 same flow", f"{flow5 / n:.3f}"),
        ("kb_search latency p50", f"{statistics.median(latencies):.1f} ms"),
        ("kb_search latency p95", f"{latencies[int(0.95 * (len(latencies) - 1))]:.1f} ms"),
        ("embed passages, batch 64", f"{batched:.2f} s ({len(texts) / batched:.0f}/s)"),
        ("embed passages, one per call", f"{single:.2f} s ({len(texts) / single:.0f}/s)"),
        ("batched speed-up (same run)", f"{single / batched:.1f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'measure':<{width}}  value\n{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\nTop-1 misses ({len(misses)}):")
    for question, gold, got in misses:
        print(f"  {gold:<34} got {got.split(':', 1)[1]:<42} {question[:60]}")


if __name__ == "__main__":
    main()
