from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ml.recommend.online_retail import CUTOFF, read_online_retail

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6.0,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,2.0,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6.0,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
    "C536379,71053,WHITE METAL LANTERN,-1.0,2010-12-01 09:41:00,3.39,14527,United Kingdom",
    "536380,22961,JAM MAKING SET PRINTED,-24.0,2010-12-01 09:45:00,1.45,17809,United Kingdom",
    "536381,22139,RETROSPOT TEA SET,1.0,2011-10-02 10:00:00,4.95,,United Kingdom",
    "536382,POST,POSTAGE,1.0,2011-10-03 10:00:00,18.0,12583,France",
    "536383,22139,RETROSPOT TEA SET,1.0,2011-10-04 10:00:00,4.95,12583,France",
]


def test_protocol_rules(tmp_path):
    path = tmp_path / "online_retail.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(HEADER + "\n".join(ROWS) + "\n")
    data = read_online_retail(tmp_path)
    assert [(e.user, e.item) for e in data.interactions] == [("17850", "85123A"), ("17850", "71053"),
                                                            ("12583", "22139")]
    assert all(e.kind == "purchase" for e in data.interactions)
    assert data.interactions[-1].ts > CUTOFF > data.interactions[0].ts
    assert data.report == {"lines": 8, "dropped_repeat_in_invoice": 1, "dropped_cancellation": 1,
                           "dropped_non_positive_quantity": 1, "dropped_no_customer": 1, "dropped_not_a_product": 1,
                           "kept": 3}
    assert data.titles == {"85123A": "WHITE HANGING HEART T-LIGHT HOLDER", "71053": "WHITE METAL LANTERN",
                           "22139": "RETROSPOT TEA SET"}


REAL = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "uci_online_retail"


@pytest.mark.skipif(not (REAL / "online_retail.csv.gz").is_file(), reason="Online Retail dataset not present")
def test_reads_the_real_file_head():
    data = read_online_retail(REAL, limit=5000)
    assert data.report["lines"] == 5000
    assert data.report["kept"] > 3000 and data.titles["85123A"] == "WHITE HANGING HEART T-LIGHT HOLDER"
