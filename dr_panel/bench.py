"""`dr-panel bench` (filled in by the benchmark work)."""

from __future__ import annotations

import click


@click.command()
def bench() -> None:
    """Benchmark intake, lookup and the case list at a chosen size."""
