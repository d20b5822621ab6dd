"""Notebook 10, scaling the read side: where a product's events go when the queue is split.

10.1 (predict): the partition product 1's events land in, with 4 partitions.
10.2 (modify): `partition_for(product_id, partitions)`, checked against where the live relay
routed the events of twelve products.
"""

from __future__ import annotations

from typing import Any, Callable

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import number_within
from cqrs_demo.course.student_code import run
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.messaging.partitions import partition_for

NOTEBOOK = "10_scaling_the_read_side"
CHECKED_PRODUCTS = 12

FIRST_PRODUCTS_PARTITION = Exercise(
    id="10.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="Which partition does product 1 land in?",
    goal="With CQRS_PARTITIONS=4, predict the partition (0 to 3) of product 1's events, before the notebook looks "
         "for them in the queues.",
    checker=number_within(absolute=0, unit=""),
    hints=(
        "The relay takes the stream's key, the text \"product:1\", and reduces a checksum of it modulo the number "
        "of partitions.",
        "`zlib.crc32(b\"product:1\") % 4` is exactly what the relay computes.",
    ),
    wrong_answer=(partition_for("product:1", 4) + 1) % 4,
    why="The route is a pure function of the product and N: every process, on every machine, puts product 1 in "
        "the same queue, so its events stay in one line and are applied in order by that queue's one active "
        "consumer.",
)


def check_partition_function(student_partition_for: Callable[[int, int], Any], lab) -> Verdict:
    """Route twelve products' next events through the live relay, then compare with the student's function."""
    partitions = lab.stack.settings.partitions
    product_ids = list(range(1, CHECKED_PRODUCTS + 1))
    routed = lab.routed_partitions(product_ids)
    rows: list[Row] = []
    for pid in product_ids:
        ran = run(student_partition_for, pid, partitions)
        if ran.error:
            return Verdict(False, f"partition_for({pid}, {partitions}) raised {ran.error}",
                           f"partition {routed.get(pid)}", rows=tuple(rows))
        got, wanted = ran.result, routed.get(pid)
        rows.append(Row(f"product {pid}", repr(got), f"partition {wanted}", got == wanted))
    wrong = [row for row in rows if not row.ok]
    if wrong:
        first = wrong[0]
        return Verdict(False, f"{first.item}: your function says {first.answer}",
                       f"the relay put its event in {first.observed} ({len(wrong)} of {len(rows)} products differ)",
                       hint=_HINT_KEY if any(isinstance(_result(r), int) for r in wrong) else None, rows=tuple(rows))
    return Verdict(True, f"the partition of each of {len(rows)} products",
                   f"the same partitions the relay chose, found in the {partitions} queues", rows=tuple(rows))


def _result(row: Row) -> Any:
    try:
        return int(row.answer)
    except ValueError:
        return None


_HINT_KEY = ("The relay does not use the id as a number: it checksums the stream's key, the text f\"product:{id}\" "
             "encoded as UTF-8, with zlib.crc32.")


def _by_id(product_id: int, partitions: int) -> int:
    """A plausible mistake: spread by the id itself."""
    return product_id % partitions


PARTITION_FUNCTION = Exercise(
    id="10.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="Route a product as the relay does",
    goal="Write partition_for(product_id, partitions) returning the partition (0 to partitions - 1) the relay sends "
         "that product's events to. The check updates twelve products with the projectors stopped, finds each "
         "event in its partition queue, and compares.",
    checker=check_partition_function,
    hints=(
        "The route depends on the stream's key only: the text \"product:\" followed by the id.",
        "zlib.crc32 takes bytes: encode the key, take the checksum, and reduce it modulo the number of partitions.",
    ),
    wrong_answer=_by_id,
    why="Any function of the key alone keeps a product in one partition. A checksum rather than the id spreads "
        "products evenly even when ids come in patterns, and rather than Python's hash() it is the same in every "
        "process (hash() of a text is salted per process).",
)
