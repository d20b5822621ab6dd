"""A chaos run from a notebook: a short one, its table, and the first events that went wrong.

`run(seconds=20, seed=1)` is `cqrs-demo chaos` (see `cqrs_demo.chaos`) in the notebook's own
namespace; its result has `.passed`, `.frame()` (the table) and `.examples()` (the first
offending events, for a message saying exactly what went wrong, when something did).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cqrs_demo.chaos import run as chaos_run
from cqrs_demo.chaos.verdict import Verdict


@dataclass
class ChaosResult:
    verdict: Verdict

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def failures(self) -> list[str]:
        return self.verdict.failures

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.verdict.rows(), columns=["what", "count"]).set_index("what")

    def examples(self) -> pd.DataFrame:
        return pd.DataFrame(self.verdict.evidence.examples)

    def __str__(self) -> str:
        return self.verdict.table()


def run(seconds: float = 20, seed: int = 1, label: str = "nb_chaos", **settings) -> ChaosResult:
    """A chaos run of `seconds` with the faults of `seed`; `settings` switch a guarantee off."""
    return ChaosResult(chaos_run.run(seconds, seed, label=label, **settings))
