"""What a read of a product answered, told in the words of notebook 05: fresh, stale, gone or behind.

A query service answer is judged against the version the command service returned for the
write: `200` with that version (or a newer one) is *new*, `200` with an older one is *old* (a
stale read), `404` means no such product in the read model, and `503 read_model_behind` is the
query service declining to answer with stale data (`min_version`).
"""

from __future__ import annotations

import pandas as pd

from cqrs_demo.lab.client import Exchange

OUTCOMES = ("200 new", "200 old", "404", "503")


def read_outcome(answer: Exchange, written_version: int) -> str:
    """One of `OUTCOMES` for this answer, or its bare status when it is none of them."""
    if answer.status == 200:
        return "200 new" if answer.body.get("version", 0) >= written_version else "200 old"
    if answer.status == 503 and isinstance(answer.body, dict) and answer.body.get("error") == "read_model_behind":
        return "503"
    return str(answer.status)


def read_outcomes(reads: dict[str, Exchange], written_version: int) -> pd.DataFrame:
    """One row per read: its status, the version it showed, its Retry-After, and its outcome."""
    rows = {
        name: {
            "status": answer.status,
            "version shown": answer.body.get("version") if answer.status == 200 else None,
            "Retry-After": answer.headers.get("Retry-After"),
            "answered after (ms)": round(answer.elapsed_ms),
            "outcome": read_outcome(answer, written_version),
        }
        for name, answer in reads.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"written: version {written_version}")
