"""Reader of the UCI Online Retail transactions with the evaluation protocol applied.

Protocol (issue 10): purchases only; cancellations (``InvoiceNo`` starting with ``C``) and
lines with a non-positive ``Quantity`` dropped; lines without ``CustomerID`` dropped. Also
dropped: stock codes that are not products (postage ``POST``, ``DOT``, manual ``M``,
``BANK CHARGES``, ``AMAZONFEE``, ...: codes that do not start with five digits), since
"recommending" postage would inflate every recommender's hits; and repeats of one item in
one invoice (one purchase event per invoice and item). Each kept line is one ``purchase``
of weight 1 (quantities are left out: a few wholesale orders of thousands would swamp
the signal). The split date of the protocol is ``CUTOFF`` (2011-10-01 UTC).

Source: Chen, Sain, Guo (2012), UCI ML Repository id 352, CC BY 4.0; read from
``online_retail.csv.gz`` (columns InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
UnitPrice, CustomerID, Country; dates UTC ``YYYY-MM-DD HH:MM:SS``).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from ml.recommend.types import Interaction

CUTOFF = datetime(2011, 10, 1, tzinfo=UTC).timestamp()
FILE_NAME = "online_retail.csv.gz"
_PRODUCT_CODE = re.compile(r"^\d{5}")


@dataclass
class OnlineRetail:
    """The protocol's purchases and the product catalogue.

    Attributes:
        interactions: purchase events in file order.
        titles: stock code -> its most frequent description.
        prices: stock code -> its most frequent unit price.
        report: line counts kept and dropped, by rule.
    """

    interactions: list[Interaction]
    titles: dict[str, str]
    prices: dict[str, float]
    report: dict[str, int] = field(default_factory=dict)


def _open(path: Path) -> io.TextIOBase:
    if path.is_dir():
        path = path / FILE_NAME
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller's with


@lru_cache(maxsize=65_536)
def _timestamp(raw: str) -> float:
    # An invoice's lines share one date string: 541k lines, ~23k distinct dates.
    return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def _customer(raw: str) -> str:
    raw = raw.strip()
    return raw[:-2] if raw.endswith(".0") else raw


def read_online_retail(path: Path | str, *, limit: int | None = None) -> OnlineRetail:
    """Reads the file (or the dataset folder holding it) with the protocol's rules.

    Args:
        path: ``online_retail.csv.gz`` (or a plain ``.csv``), or its folder.
        limit: stop after this many lines (demo slices).

    Returns:
        Purchases, titles and the per-rule report.
    """
    report: Counter[str] = Counter()
    titles: dict[str, Counter[str]] = {}
    prices: dict[str, Counter[float]] = {}
    seen: set[tuple[str, str]] = set()
    interactions: list[Interaction] = []
    with _open(Path(path)) as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            if limit is not None and n >= limit:
                break
            report["lines"] += 1
            code = (row.get("StockCode") or "").strip().upper()
            description = (row.get("Description") or "").strip()
            if code and description:
                titles.setdefault(code, Counter())[description] += 1
            invoice = (row.get("InvoiceNo") or "").strip()
            if invoice.upper().startswith("C"):
                report["dropped_cancellation"] += 1
                continue
            try:
                quantity = float(row.get("Quantity") or 0)
                ts = _timestamp(row["InvoiceDate"])
            except (KeyError, ValueError):
                report["dropped_unreadable"] += 1
                continue
            if quantity <= 0:
                report["dropped_non_positive_quantity"] += 1
                continue
            customer = _customer(row.get("CustomerID") or "")
            if not customer or customer.upper() == "NA":
                report["dropped_no_customer"] += 1
                continue
            if not _PRODUCT_CODE.match(code):
                report["dropped_not_a_product"] += 1
                continue
            if (invoice, code) in seen:
                report["dropped_repeat_in_invoice"] += 1
                continue
            seen.add((invoice, code))
            try:
                prices.setdefault(code, Counter())[round(float(row.get("UnitPrice") or 0), 2)] += 1
            except ValueError:
                pass
            interactions.append(Interaction(user=customer, item=code, kind="purchase", ts=ts))
    report["kept"] = len(interactions)
    bought = {e.item for e in interactions}
    return OnlineRetail(
        interactions=interactions,
        titles={code: c.most_common(1)[0][0] for code, c in titles.items() if code in bought},
        prices={code: c.most_common(1)[0][0] for code, c in prices.items()},
        report=dict(report),
    )
