"""Backtest on StockNet: does daily tweet sentiment predict the next trading day's return?

Sentiment source (no Django): a classifier trained here on twitter_financial_news_sentiment
train (bearish / neutral / bullish), either

- ``fewshot`` (default): the repo's ``FewShotClassifier``, a logistic head on frozen MiniLM
  embeddings (the demo model of the app), trained on ``--train-rows`` rows; or
- ``tfidf``: word and character n-gram TF-IDF + logistic regression (scikit-learn), fast
  enough to score the whole stream on a CPU.

Its quality is measured on the dataset's valid split first. It then scores a uniform random
sample of ``--tweets`` StockNet tweets (2014-2015, 87 tickers; each distinct text once), builds
daily (UTC) series per symbol with ``ml.sentiment.series``, aligns them with the next trading
day's adjusted-close return and prints ``ml.sentiment.backtest``'s table: Pearson / Spearman
correlation, hit rate with its 95 % Wilson interval, the momentum and always-up baselines.

    TRELLIS_TORCH_THREADS=1 python bench/backtest_stocknet.py [--tweets 20000] [--train-rows 1500]
    TRELLIS_TORCH_THREADS=1 python bench/backtest_stocknet.py --model tfidf --tweets 0   # all tweets

Scoring stops at ``--budget-s`` (default 270 s from the start) so the run stays within about
5 minutes on a busy machine; the tweets scored by then are still a uniform random sample
(a prefix of a random order), and the output says how many were scored.

Data: StockNet (Xu & Cohen, ACL 2018, MIT) and Twitter Financial News Sentiment (MIT), read
from ``TRELLIS_DATASETS`` (default ``../shared/datasets``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from bench.datasets import DATASETS, SENTIMENT_DIR, read_labelled_csv  # noqa: E402
from ml.metrics import classification_report  # noqa: E402
from ml.sentiment.backtest import DailySentiment, backtest, daily_from_series  # noqa: E402
from ml.sentiment.series import bucketize  # noqa: E402
from ml.sentiment.stocknet import Tweet, daily_returns, iter_tweets, read_prices  # noqa: E402

STOCKNET = DATASETS / "stocknet_tweets_prices"
COLUMNS = ("bearish", "neutral", "bullish")  # -> negative, neutral, positive for the series
Scorer = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, 3) probabilities in COLUMNS order


def stratified(rows: list[tuple[str, str]], limit: int, seed: int) -> list[tuple[str, str]]:
    """At most ``limit`` rows keeping the label mix (all rows when limit is 0)."""
    if not limit or limit >= len(rows):
        return rows
    rng = random.Random(seed)
    by_label: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_label[row[1]].append(row)
    out = []
    for label_rows in by_label.values():
        rng.shuffle(label_rows)
        out += label_rows[: max(1, round(limit * len(label_rows) / len(rows)))]
    return out


def train_fewshot(train: list[tuple[str, str]], seed: int) -> Scorer:
    from ml.classify import FewShotClassifier
    from ml.registry import default_registry

    embedder = default_registry().get("embedder")
    clf = FewShotClassifier.fit(embedder, [t for t, _ in train], [y for _, y in train], seed=seed)
    order = [clf.labels.index(name) for name in COLUMNS]
    return lambda texts: clf.predict_proba(list(texts), batch_size=64)[:, order]


def train_tfidf(train: list[tuple[str, str]], seed: int) -> Scorer:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True),
    )
    model = make_pipeline(
        features, LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=seed)
    )
    model.fit([t for t, _ in train], [y for _, y in train])
    order = [list(model.classes_).index(name) for name in COLUMNS]
    return lambda texts: model.predict_proba(list(texts))[:, order]


def score_in_random_order(
    tweets: list[Tweet], scorer: Scorer, deadline: float, chunk: int = 1000
) -> tuple[list[Tweet], np.ndarray, int]:
    """Scores tweets (in the given random order) a chunk at a time until ``deadline``.

    The tweets scored are a prefix of a random order, so a run cut short by the deadline
    still scores a uniform random sample. Each distinct text is scored once.

    Returns:
        The scored tweets, their ``(n, 3)`` probabilities, and how many distinct texts ran.
    """
    seen: dict[str, np.ndarray] = {}
    done = 0
    while done < len(tweets) and (done == 0 or time.perf_counter() < deadline):
        part = tweets[done : done + chunk]
        todo = list(dict.fromkeys(t.text for t in part if t.text not in seen))
        if todo:
            seen.update(zip(todo, scorer(todo), strict=True))
        done += len(part)
    scored = tweets[:done]
    probs = np.stack([seen[t.text] for t in scored]) if scored else np.empty((0, 3))
    return scored, probs, len(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["fewshot", "tfidf"], default="fewshot")
    parser.add_argument("--tweets", type=int, default=20_000, help="uniform sample size; 0 = every tweet")
    parser.add_argument("--train-rows", type=int, default=1500, help="stratified cap of the train split; 0 = all")
    parser.add_argument("--valid-rows", type=int, default=400, help="valid rows for the quality check; 0 = all")
    parser.add_argument("--min-volume", type=int, default=1, help="mentions a trading day needs")
    parser.add_argument("--min-abs", type=float, default=0.0, help="|sentiment| a day needs to count as a call")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--budget-s", type=float, default=270.0, help="stop scoring after this much wall time (the rest is cheap)"
    )
    parser.add_argument(
        "--all-symbols", action="store_true", help="print every symbol, not only those with enough days"
    )
    args = parser.parse_args()
    timings: dict[str, float] = {}

    started = begun = time.perf_counter()
    report: Counter[str] = Counter()
    tweets = list(iter_tweets(STOCKNET, report=report))
    # A random order: its first --tweets are the sample, and any prefix is a uniform sample too.
    random.Random(args.seed).shuffle(tweets)
    tweets = tweets[: args.tweets or None]
    returns = daily_returns(read_prices(STOCKNET))
    timings["read StockNet"] = time.perf_counter() - started
    print(f"StockNet: {dict(report)}; sampled {len(tweets)} tweets, prices for {len(returns)} symbols")

    started = time.perf_counter()
    train = stratified(read_labelled_csv(SENTIMENT_DIR / "sent_train.csv"), args.train_rows, args.seed)
    scorer = (train_fewshot if args.model == "fewshot" else train_tfidf)(train, args.seed)
    timings[f"train {args.model} ({len(train)} rows)"] = time.perf_counter() - started

    started = time.perf_counter()
    valid = stratified(read_labelled_csv(SENTIMENT_DIR / "sent_valid.csv"), args.valid_rows, args.seed)
    probs = scorer([t for t, _ in valid])
    quality = classification_report([y for _, y in valid], [COLUMNS[i] for i in probs.argmax(axis=1)], COLUMNS)
    print(
        f"sentiment model {args.model}: valid weighted F1 {quality['weighted_f1']:.3f}, "
        f"accuracy {quality['accuracy']:.3f} on {len(valid)} rows"
    )
    timings[f"quality check ({len(valid)} valid rows)"] = time.perf_counter() - started

    started = time.perf_counter()
    sampled = len(tweets)
    tweets, tweet_probs, distinct = score_in_random_order(tweets, scorer, begun + args.budget_s)
    seconds = time.perf_counter() - started
    timings[f"score {distinct} distinct texts ({distinct / seconds:.0f}/s)"] = seconds
    labels = Counter(COLUMNS[i] for i in tweet_probs.argmax(axis=1))
    cut = (
        f" (the {args.budget_s:.0f} s budget stopped it at {len(tweets)} of {sampled})" if len(tweets) < sampled else ""
    )
    print(f"scored {len(tweets)} tweets{cut}; labels: {dict(labels)}")

    started = time.perf_counter()
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tweets):
        by_symbol[t.symbol].append(i)
    daily: list[DailySentiment] = []
    for symbol, idx in by_symbol.items():
        stamps = np.array([tweets[i].created_at.timestamp() for i in idx])
        daily += daily_from_series(symbol, bucketize(stamps, tweet_probs[idx], "1d", name=symbol))
    result = backtest(
        daily, returns, min_volume=args.min_volume, min_abs=args.min_abs, permutations=args.permutations, seed=args.seed
    )
    timings["series + backtest"] = time.perf_counter() - started

    shown = [r for r in result.rows if args.all_symbols or not r.verdict.startswith("too few")]
    result.rows = shown
    print(
        f"\n{len(daily)} symbol-days with sentiment; dropped at alignment: {result.dropped}; "
        f"min_volume {args.min_volume}, min_abs {args.min_abs}"
    )
    print(result.table())
    verdicts = Counter(r.verdict.split(" (")[0].split(":")[0] for r in shown)
    print(
        f"verdicts of the {len(shown)} symbols shown: {dict(verdicts)}; by chance alone about "
        f"{0.025 * len(shown):.1f} would read 'signal' (each interval misses high 2.5 % of the time)"
    )
    print("\n" + "\n".join(f"{name:<48}{value:8.1f} s" for name, value in timings.items()))
    print(f"{'total':<48}{sum(timings.values()):8.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
