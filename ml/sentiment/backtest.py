"""Did daily sentiment predict the next trading day's return? Correlation and hit rate.

Alignment: a symbol's trading days ``T_0 < T_1 < ...`` are the days with a return (close to
close). Sentiment of every calendar day ``d`` with ``T_k <= d < T_(k+1)`` (the trading day and
the weekend or holiday after it) is pooled, volume-weighted, into one observation for ``T_k``,
and compared with the **next** return ``r(T_(k+1)) = close(T_(k+1)) / close(T_k) - 1``. All
those mentions are dated before ``T_(k+1)`` closes, so nothing looks ahead; mentions on the
evening of ``T_k`` after the close do see ``T_k``'s close (a real trader could act on them too).

Statistics per symbol and pooled over symbols: Pearson and Spearman correlation of sentiment
with the next return (t-based and permutation p-values), and the hit rate (sign of sentiment
vs sign of the next return) with a 95 % Wilson interval, beside two naive baselines on the same
days: momentum (tomorrow has today's sign) and always up. The verdict says "no signal" when the
hit rate's interval covers the best of them (and of a coin flip, 0.5).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from ml.sentiment.series import Series

POOLED = "ALL"
MIN_DAYS = 20  # fewer hit-rate days than this: too few to say anything
Z95 = 1.959963984540054


class DailySentiment(NamedTuple):
    """Mean score of one symbol's mentions on one UTC day."""

    symbol: str
    day: date
    mean: float
    volume: int


class Observation(NamedTuple):
    """One aligned trading day."""

    symbol: str
    day: date  # the trading day T_k the sentiment belongs to
    sentiment: float
    volume: int
    ret_today: float  # r(T_k)
    ret_next: float  # r(T_(k+1))
    next_day: date


@dataclass(frozen=True)
class Correlation:
    """A correlation with its p-values (two-sided; nan when undefined)."""

    r: float
    p_value: float  # t-based (Student's t with n - 2 degrees of freedom)
    p_permutation: float
    n: int


@dataclass(frozen=True)
class HitRate:
    """Share of correct sign calls with its 95 % Wilson interval."""

    hits: int
    n: int
    rate: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class BacktestRow:
    """One symbol (or ``ALL`` pooled)."""

    symbol: str
    days: int  # aligned days with volume >= min_volume
    pearson: Correlation
    spearman: Correlation
    hit: HitRate
    momentum: HitRate
    always_up: HitRate
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        """A flat row for a table (rates and correlations rounded to 3 places)."""
        return {
            "symbol": self.symbol,
            "days": self.days,
            "pearson": _round(self.pearson.r),
            "pearson_p": _round(self.pearson.p_value),
            "pearson_p_perm": _round(self.pearson.p_permutation),
            "spearman": _round(self.spearman.r),
            "spearman_p": _round(self.spearman.p_value),
            "hit_n": self.hit.n,
            "hit_rate": _round(self.hit.rate),
            "hit_ci": [_round(self.hit.ci_low), _round(self.hit.ci_high)],
            "momentum": _round(self.momentum.rate),
            "always_up": _round(self.always_up.rate),
            "verdict": self.verdict,
        }


@dataclass
class BacktestReport:
    """Per-symbol rows, the pooled row and what alignment dropped."""

    rows: list[BacktestRow]
    pooled: BacktestRow
    min_volume: int
    min_abs: float
    dropped: dict[str, int] = field(default_factory=dict)

    def table(self) -> str:
        """A fixed-width text table, pooled row last."""
        head = (
            f"{'symbol':<8}{'days':>6}{'pearson':>9}{'p':>7}{'p perm':>8}{'spearman':>9}{'p':>7}{'hit n':>7}"
            f"{'hit':>7}{'95% CI':>15}{'moment.':>9}{'up':>7}  verdict"
        )
        lines = [head, "-" * len(head)]
        for row in [*self.rows, self.pooled]:
            lines.append(
                f"{row.symbol:<8}{row.days:>6}{_fmt(row.pearson.r):>9}{_fmt(row.pearson.p_value):>7}"
                f"{_fmt(row.pearson.p_permutation):>8}"
                f"{_fmt(row.spearman.r):>9}{_fmt(row.spearman.p_value):>7}{row.hit.n:>7}{_fmt(row.hit.rate):>7}"
                f"{'[' + _fmt(row.hit.ci_low) + ', ' + _fmt(row.hit.ci_high) + ']':>15}"
                f"{_fmt(row.momentum.rate):>9}{_fmt(row.always_up.rate):>7}  {row.verdict}"
            )
        return "\n".join(lines)


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 3)


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3f}"


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(nan, nan)`` when ``n`` is 0)."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def hit_rate(predicted: np.ndarray, actual: np.ndarray) -> HitRate:
    """Sign agreement on rows where both signs are non-zero (no call, or no move, is no row)."""
    predicted, actual = np.sign(predicted), np.sign(actual)
    mask = (predicted != 0) & (actual != 0)
    n = int(mask.sum())
    hits = int((predicted[mask] == actual[mask]).sum())
    low, high = wilson(hits, n)
    return HitRate(hits, n, hits / n if n else math.nan, low, high)


def correlation(
    x: np.ndarray, y: np.ndarray, *, rank: bool = False, permutations: int = 1000, seed: int = 0
) -> Correlation:
    """Pearson (or Spearman with ``rank``) correlation, t-based and permutation p-values.

    The permutation p-value shuffles ``y`` ``permutations`` times and counts shuffles at least
    as extreme, ``(count + 1) / (permutations + 1)``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(math.nan, math.nan, math.nan, n)
    if rank:
        x, y = stats.rankdata(x), stats.rankdata(y)
    xs = (x - x.mean()) / x.std()
    ys = (y - y.mean()) / y.std()
    r = float(np.clip(np.mean(xs * ys), -1.0, 1.0))
    if abs(r) < 1:
        t = r * math.sqrt((n - 2) / (1 - r * r))
        p = float(2 * stats.t.sf(abs(t), n - 2))
    else:
        p = 0.0
    p_perm = math.nan
    if permutations > 0:
        rng = np.random.default_rng(seed)
        extreme, chunk = 0, max(1, min(permutations, 2_000_000 // n))  # <= ~16 MB per chunk
        done = 0
        while done < permutations:
            k = min(chunk, permutations - done)
            shuffled = rng.permuted(np.broadcast_to(ys, (k, n)), axis=1)
            extreme += int((np.abs(shuffled @ xs / n) >= abs(r) - 1e-12).sum())
            done += k
        p_perm = (extreme + 1) / (permutations + 1)
    return Correlation(r, p, p_perm, n)


def daily_from_series(symbol: str, series: Series) -> list[DailySentiment]:
    """The non-empty buckets of a daily series as ``DailySentiment``."""
    if series.width != 86_400:
        raise ValueError(f"daily sentiment needs 1 d buckets, got {series.width} s")
    return [DailySentiment(symbol, b.start.date(), b.sum_score / b.n, b.n) for b in series.buckets(nonempty=True)]


def align(
    sentiment: Iterable[DailySentiment],
    returns: Mapping[str, Sequence[tuple[date, float]]],
    *,
    max_gap_days: int = 7,
) -> tuple[list[Observation], dict[str, int]]:
    """Pools each trading day's sentiment (weekend included) and pairs it with the next return.

    Args:
        sentiment: daily means per symbol.
        returns: symbol -> ``(trading day, return)`` in date order.
        max_gap_days: a next trading day further than this after ``T_k`` means missing prices;
            such days are dropped.

    Returns:
        Observations in (symbol, day) order and the counts of dropped sentiment days by reason.
    """
    pooled: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    dropped: dict[str, int] = defaultdict(int)
    days_of = {s: [d for d, _ in rs] for s, rs in returns.items()}
    for item in sentiment:
        if item.volume <= 0 or not math.isfinite(item.mean):
            dropped["empty_or_invalid"] += 1
            continue
        days = days_of.get(item.symbol)
        if not days:
            dropped["no_prices"] += 1
            continue
        k = bisect.bisect_right(days, item.day) - 1
        if k < 0:
            dropped["before_prices"] += 1
            continue
        if k + 1 >= len(days):
            dropped["no_next_return"] += 1
            continue
        if days[k + 1] - days[k] > timedelta(days=max_gap_days):
            dropped["price_gap"] += 1
            continue
        acc = pooled[(item.symbol, k)]
        acc[0] += item.mean * item.volume
        acc[1] += item.volume
    out = []
    for (symbol, k), (total, volume) in sorted(pooled.items()):
        rs = returns[symbol]
        out.append(Observation(symbol, rs[k][0], total / volume, int(volume), rs[k][1], rs[k + 1][1], rs[k + 1][0]))
    return out, dict(dropped)


def _verdict(hit: HitRate, baselines: Sequence[HitRate], pearson: Correlation) -> str:
    if hit.n < MIN_DAYS:
        return f"too few days (< {MIN_DAYS})"
    # A coin flip (0.5) is the floor: "always up" below 0.5 must not make noise look good.
    best = max([0.5] + [b.rate for b in baselines if b.n and not math.isnan(b.rate)])
    if hit.ci_low > best:
        return f"signal: hit rate above the best baseline {best:.3f}"
    if hit.ci_high < best:
        return f"no signal: below the best baseline {best:.3f}"
    note = f"; correlation p={pearson.p_value:.3g}" if pearson.p_value < 0.05 else ""
    return f"no signal (95% CI covers the best baseline {best:.3f}){note}"


def evaluate_observations(
    symbol: str, obs: Sequence[Observation], *, min_volume: int, min_abs: float, permutations: int, seed: int
) -> BacktestRow:
    """One table row from aligned observations (filters applied here)."""
    kept = [o for o in obs if o.volume >= min_volume]
    s = np.array([o.sentiment for o in kept], dtype=np.float64)
    nxt = np.array([o.ret_next for o in kept], dtype=np.float64)
    today = np.array([o.ret_today for o in kept], dtype=np.float64)
    calls = np.abs(s) >= min_abs
    hit = hit_rate(s[calls], nxt[calls])
    # Baselines on exactly the days the sentiment made a call.
    momentum = hit_rate(today[calls], nxt[calls])
    always_up = hit_rate(np.ones(int(calls.sum())), nxt[calls])
    pearson = correlation(s, nxt, permutations=permutations, seed=seed)
    spearman = correlation(s, nxt, rank=True, permutations=permutations, seed=seed)
    return BacktestRow(
        symbol, len(kept), pearson, spearman, hit, momentum, always_up, _verdict(hit, [momentum, always_up], pearson)
    )


def backtest(
    sentiment: Iterable[DailySentiment],
    returns: Mapping[str, Sequence[tuple[date, float]]],
    *,
    min_volume: int = 1,
    min_abs: float = 0.0,
    permutations: int = 1000,
    seed: int = 0,
    max_gap_days: int = 7,
) -> BacktestReport:
    """Per-symbol and pooled correlation and hit rate of sentiment against the next return.

    Args:
        sentiment: daily mean score and volume per (symbol, day).
        returns: symbol -> ``(trading day, close-to-close return)`` in date order.
        min_volume: trading days with fewer mentions are left out of every statistic.
        min_abs: the hit rate counts only days with ``|sentiment| >= min_abs`` (a call);
            correlations use every day with enough volume.
        permutations: shuffles for the permutation p-values (0 skips them).
        seed: seeds the shuffles.
        max_gap_days: see ``align``.

    Returns:
        The report; ``rows`` are the symbols with at least one observation, by symbol.
    """
    if isinstance(min_volume, bool) or not isinstance(min_volume, int) or min_volume < 1:
        raise ValueError(f"min_volume must be a whole number >= 1, got {min_volume!r}")
    if not (isinstance(min_abs, int | float) and 0 <= min_abs <= 1):
        raise ValueError(f"min_abs must be a number in [0, 1], got {min_abs!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 0:
        raise ValueError(f"permutations must be a whole number >= 0, got {permutations!r}")
    observations, dropped = align(sentiment, returns, max_gap_days=max_gap_days)
    by_symbol: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_symbol[o.symbol].append(o)

    def row(symbol: str, obs: Sequence[Observation]) -> BacktestRow:
        return evaluate_observations(
            symbol, obs, min_volume=min_volume, min_abs=float(min_abs), permutations=permutations, seed=seed
        )

    rows = [row(symbol, by_symbol[symbol]) for symbol in sorted(by_symbol)]
    pooled = row(POOLED, observations)
    return BacktestReport(rows, pooled, min_volume, float(min_abs), dropped)
