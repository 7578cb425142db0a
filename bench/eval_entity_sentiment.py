"""Entity-level sentiment on hand-labelled multi-company headlines, and linking quality.

    TRELLIS_TORCH_THREADS=1 python bench/eval_entity_sentiment.py [--train-rows 1500] [--valid-rows 500]

Data: ``ml/sentiment/data/multi_company_headlines.jsonl`` (headlines naming 2-3 watched
companies, each with its own gold label negative / neutral / positive) and the demo
watchlist ``ml/sentiment/data/demo_watchlist.json``.

Scorer: a few-shot classifier (``ml.classify.FewShotClassifier``: logistic regression on
frozen MiniLM embeddings) trained here on a stratified sample of
twitter_financial_news_sentiment train (bearish / bullish / neutral, read as negative /
positive / neutral); its weighted F1 on part of the valid split is printed for context.

Compared, per entity (accuracy and macro-F1 over the three labels):
  whole          the whole headline's score copied to every entity (baseline)
  clause         the clause around the entity's mentions (regex boundaries + spaCy parse)
  clause-noparse the same without the dependency parse
  target         the headline with the entity marked $TARGET and the others $OTHER
"Mixed" rows are the entities of headlines whose entities have different gold labels,
where only an entity-level method can be right for all of them.

Linking: precision and recall of the linked symbols per headline against the gold keys;
and on real (lower-cased, tokenised) StockNet tweets of one month, how often a tweet's own
ticker is linked (recall only: other tickers a tweet names are not labelled).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.datasets import DATASETS, SENTIMENT_DIR, read_labelled_csv  # noqa: E402

DATA = REPO / "ml" / "sentiment" / "data"
POLARITY = {"bearish": "negative", "bullish": "positive", "neutral": "neutral"}
LABELS = ["negative", "neutral", "positive"]


def stratified_sample(rows: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` rows with the label shares of ``rows`` (all of them when ``n`` >= len)."""
    if n >= len(rows):
        return list(rows)
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for group in by_label.values():
        rng.shuffle(group)
        out += group[: max(1, round(n * len(group) / len(rows)))]
    rng.shuffle(out)
    return out


def stocknet_recall(linker: Any, month: str, per_symbol: int = 20) -> None:
    """Real tweets: how often a StockNet tweet's own ticker is linked (lower-cased text, cashtags)."""
    from datetime import date

    from ml.sentiment.stocknet import iter_tweets

    first = date.fromisoformat(f"{month}-01")
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    symbols = {e.symbol for e in linker.entities}
    picked: dict[str, list[str]] = defaultdict(list)
    for tweet in iter_tweets(DATASETS / "stocknet_tweets_prices", start=first, end=after, symbols=symbols):
        if len(picked[tweet.symbol]) < per_symbol:
            picked[tweet.symbol].append(tweet.text)
    pairs = [(symbol, text) for symbol, texts in sorted(picked.items()) for text in texts]
    started = time.perf_counter()
    found = linker.link_many([text for _, text in pairs])
    seconds = time.perf_counter() - started
    hits = sum(symbol in {m.symbol for m in mentions} for (symbol, _), mentions in zip(pairs, found, strict=True))
    others = sum(
        len({m.symbol for m in mentions} - {symbol}) for (symbol, _), mentions in zip(pairs, found, strict=True)
    )
    print(
        f"  StockNet {month}: {len(pairs)} tweets of {len(picked)} watched tickers (<= {per_symbol} each): "
        f"own ticker linked in {hits / max(len(pairs), 1):.3f}, {others / max(len(pairs), 1):.2f} other "
        f"watched tickers per tweet; {len(pairs) / max(seconds, 1e-9):.0f} tweets/s linking only"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=1500, help="few-shot training rows (stratified sample)")
    parser.add_argument("--valid-rows", type=int, default=500, help="valid rows for the classifier's own wF1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stocknet-month", default="2015-06", help="YYYY-MM of StockNet tweets for linking recall")
    args = parser.parse_args()

    from ml import devices
    from ml.classify import FewShotClassifier
    from ml.defaults import embedder_weights
    from ml.embeddings import Embedder
    from ml.metrics import classification_report
    from ml.sentiment.entities import EntityLinker, load_watchlist
    from ml.sentiment.targets import Method, entity_scores_many, top_label

    devices.configure_threads()
    rows = [json.loads(line) for line in (DATA / "multi_company_headlines.jsonl").read_text().splitlines() if line]
    texts = [row["text"] for row in rows]
    gold = [row["entities"] for row in rows]

    started = time.perf_counter()
    linker = EntityLinker(load_watchlist(DATA / "demo_watchlist.json"))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    linked = linker.analyse_many(texts, parse=True)
    link_s = time.perf_counter() - started

    true_pos = sum(len(set(g) & set(x.symbols)) for g, x in zip(gold, linked, strict=True))
    predicted = sum(len(set(x.symbols)) for x in linked)
    relevant = sum(len(g) for g in gold)
    print(
        f"linking: {len(rows)} headlines, {relevant} gold entities; spaCy load {load_s:.2f}s, "
        f"link+parse {link_s:.2f}s ({len(rows) / link_s:.0f} headlines/s)"
    )
    print(f"  precision {true_pos / max(predicted, 1):.3f}  recall {true_pos / max(relevant, 1):.3f}")
    for g, x, text in zip(gold, linked, texts, strict=True):
        if set(g) != set(x.symbols):
            print(f"  mismatch: {text!r}: gold {sorted(g)} linked {sorted(x.symbols)}")

    stocknet_recall(linker, args.stocknet_month)

    started = time.perf_counter()
    train = stratified_sample(read_labelled_csv(SENTIMENT_DIR / "sent_train.csv"), args.train_rows, args.seed)
    embedder = Embedder(embedder_weights())
    classifier = FewShotClassifier.fit(embedder, [t for t, _ in train], [label for _, label in train], seed=args.seed)
    train_s = time.perf_counter() - started
    valid = stratified_sample(read_labelled_csv(SENTIMENT_DIR / "sent_valid.csv"), args.valid_rows, args.seed)
    valid_pred = [p.label for p in classifier.predict([t for t, _ in valid])]
    valid_report = classification_report([label for _, label in valid], valid_pred, classifier.labels)
    print(
        f"\nscorer: few-shot on {len(train)} tweets in {train_s:.1f}s (embedder load included); "
        f"valid wF1 {valid_report['weighted_f1']:.3f} on {len(valid)} rows"
    )

    def predict(batch: list[str]) -> list[dict[str, float]]:
        return [{POLARITY[k]: v for k, v in p.probs.items()} for p in classifier.predict(batch)]

    mixed = [len(set(g.values())) > 1 for g in gold]
    methods: list[tuple[str, Method, bool]] = [
        ("whole (baseline)", "whole", True),
        ("clause", "clause", True),
        ("clause-noparse", "clause", False),
        ("target", "target", True),
    ]
    table: list[dict[str, Any]] = []
    for name, method, parse in methods:
        started = time.perf_counter()
        scores = entity_scores_many(
            texts,
            [x.mentions for x in linked],
            predict,
            method,
            docs=[x.doc if parse else None for x in linked],
        )
        seconds = time.perf_counter() - started
        y_true, y_pred, m_true, m_pred = [], [], [], []
        for g, s, is_mixed in zip(gold, scores, mixed, strict=True):
            for symbol, label in g.items():
                guess = top_label(s[symbol]) if symbol in s else "unlinked"
                y_true.append(label)
                y_pred.append(guess)
                if is_mixed:
                    m_true.append(label)
                    m_pred.append(guess)
        full = classification_report(y_true, y_pred, LABELS)
        part = classification_report(m_true, m_pred, LABELS)
        table.append(
            {
                "method": name,
                "acc": full["accuracy"],
                "f1": full["macro_f1"],
                "n": len(y_true),
                "mixed_acc": part["accuracy"],
                "mixed_f1": part["macro_f1"],
                "mixed_n": len(m_true),
                "seconds": seconds,
            }
        )

    base = table[0]
    print(
        f"\n{'method':<18}{'accuracy':>9}{'macro-F1':>10}{'mixed acc':>11}{'mixed F1':>10}"
        f"{'acc/base':>10}{'scoring s':>11}"
    )
    for row in table:
        print(
            f"{row['method']:<18}{row['acc']:>9.3f}{row['f1']:>10.3f}{row['mixed_acc']:>11.3f}"
            f"{row['mixed_f1']:>10.3f}{row['acc'] / max(base['acc'], 1e-9):>10.2f}{row['seconds']:>11.2f}"
        )
    print(
        f"({base['n']} entities in {len(rows)} headlines; mixed: {base['mixed_n']} entities in "
        f"{sum(mixed)} headlines whose entities differ in gold label)"
    )


if __name__ == "__main__":
    main()
