"""One command's journey through every hop, with the timestamps recorded where each hop happens.

- sent: the client, just before the request;
- received: the command service, when the request arrived (stored on the outbox row);
- committed: PostgreSQL, the outbox row's clock as the transaction's last statement;
- published: the relay, as it handed the event to RabbitMQ (a message header);
- delivered: the projector, when RabbitMQ gave it the message;
- applied: the projector, when MongoDB accepted the change;
- visible: the client, when the query service first answered with the new version.
All processes run on one machine, so their clocks agree to well under a millisecond.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import pandas as pd
import sqlalchemy as sa

from cqrs_demo.lab.client import Exchange, WorkbenchClient
from cqrs_demo.polling import wait_until
from cqrs_demo.read import projection
from cqrs_demo.write.event_log import committed_events

HOPS = ["sent", "received", "committed", "published", "delivered", "applied", "visible"]


def timestamp(value) -> pd.Timestamp:
    """A UTC timestamp from a datetime, an ISO string or epoch seconds (stores differ in what they return)."""
    if isinstance(value, (int, float)):
        return pd.Timestamp(value, unit="s", tz="UTC")
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def wait_visible(client: WorkbenchClient, kind: str, doc_id: int, version: int, timeout: float = 10.0) -> float:
    """Epoch seconds at which the query service first served `version` (or newer)."""
    read = client.product if kind == "product" else client.order

    def visible_at() -> float | None:
        exchange = read(doc_id, min_version=version)  # the query service itself waits for the version
        if exchange.status == 200 or (exchange.status == 404 and kind == "product"):
            return time.time()
        return None

    return wait_until(visible_at, timeout, interval=0, what=f"{kind} {doc_id} v{version} to be visible")


def trace(stack, client: WorkbenchClient, exchange: Exchange, kind: str = "product") -> pd.DataFrame:
    """The timeline of the command that produced `exchange` (the response carries id, version, position)."""
    body = exchange.body
    visible_at = wait_visible(client, kind, body["id"], body["version"])
    events = committed_events()
    with stack.engine.connect() as conn:
        row = conn.execute(sa.select(events).where(events.c.position == body["position"])).one()
    doc = stack.read_db[projection.PRODUCTS if kind == "product" else projection.ORDERS].find_one({"_id": body["id"]})
    recorded = doc.get("trace", {}) if doc and doc.get("version") == body["version"] else {}
    stamps = {
        "sent": exchange.sent_at,
        "received": row.received_at,
        "committed": row.committed_at,
        "published": recorded.get("published_at"),
        "delivered": recorded.get("delivered_at"),
        "applied": recorded.get("projected_at"),
        "visible": visible_at,
    }
    frame = pd.DataFrame(
        [{"hop": hop, "at": timestamp(stamps[hop]) if stamps[hop] is not None else pd.NaT} for hop in HOPS]
    )
    start = frame.at[0, "at"]
    frame["ms_since_sent"] = (frame["at"] - start).dt.total_seconds() * 1000
    frame["ms_from_previous"] = frame["ms_since_sent"].diff().fillna(0.0)
    return frame.set_index("hop")


def plot(frame: pd.DataFrame, title: str = "One command, hop by hop"):
    """A Gantt-style chart: one bar per hop, from the previous hop to this one, in milliseconds."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    hops = list(frame.index)[1:]
    starts = frame["ms_since_sent"].shift(1).iloc[1:]
    widths = frame["ms_from_previous"].iloc[1:]
    ax.barh(hops, widths, left=starts, color="#4c78a8")
    for hop, start, width in zip(hops, starts, widths):
        ax.text(start + width, hop, f" {width:.1f} ms", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the client sent the command")
    ax.set_title(title)
    fig.tight_layout()
    return fig
