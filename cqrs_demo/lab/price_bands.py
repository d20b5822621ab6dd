"""Products per price band: the read view exercise 04.2 asks the student to build from events.

The view holds one document per product that exists, `{"_id": product id, "band": ...}`; how
many products each band holds is then a count over it. The same question asked of the write
model is a `GROUP BY` over the products table (`counts_from_rows`), which is what the view
must agree with.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

BANDS = ("under 10", "10 to 20", "20 and over")

COUNTS_FROM_ROWS_SQL = """
    SELECT CASE WHEN price < 10 THEN 'under 10' WHEN price < 20 THEN '10 to 20' ELSE '20 and over' END AS band,
           count(*) AS products
    FROM products GROUP BY band
"""


def price_band(price) -> str:
    """The band of a price given as the events carry it ("9.50"), or as a Decimal or int."""
    amount = Decimal(str(price))
    if amount < 10:
        return BANDS[0]
    if amount < 20:
        return BANDS[1]
    return BANDS[2]


def counts_from_view(view) -> pd.Series:
    """Products per band, counted in the view (a MongoDB collection)."""
    return pd.Series({band: view.count_documents({"band": band}) for band in BANDS}, name="in the view")


def counts_from_rows(stack) -> pd.Series:
    """Products per band, from the write model's rows (the answer the view must agree with)."""
    rows = stack.sql(COUNTS_FROM_ROWS_SQL).set_index("band")["products"]
    return pd.Series({band: int(rows.get(band, 0)) for band in BANDS}, name="GROUP BY in PostgreSQL")
