"""SKUs for products a notebook cell creates, so that running the cell again creates another product.

SKUs are unique, so a cell that creates "MUG-BLUE" is refused with 409 the second time it runs.
`unused_sku(stack, "MUG-BLUE")` is "MUG-BLUE" while no product has it, then "MUG-BLUE-2",
"MUG-BLUE-3", ...: the first run reads as the text says, and a re-run carries on with a new product.
"""

from __future__ import annotations

import sqlalchemy as sa

from cqrs_demo.write.schema import products


def unused_sku(stack, sku: str) -> str:
    with stack.engine.connect() as conn:
        taken = set(conn.scalars(sa.select(products.c.sku).where(
            sa.or_(products.c.sku == sku, products.c.sku.startswith(f"{sku}-", autoescape=True)))))
    if sku not in taken:
        return sku
    number = 2
    while f"{sku}-{number}" in taken:
        number += 1
    return f"{sku}-{number}"
