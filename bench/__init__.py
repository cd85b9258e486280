"""Benchmarks: ``make bench`` (or ``python -m bench [name …] [--quick]``) runs them and prints each figure beside a
baseline measured in the same run, as a ratio. Budgets live here, never in timed tests.

A benchmark is a module ``bench/<name>.py`` with ``DESCRIPTION`` and ``run(quick: bool) -> list[Figure]``.
"""

from dataclasses import dataclass


@dataclass
class Figure:
    benchmark: str
    metric: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline
