"""`dr-panel tokens ...` (filled in by the API work)."""

from __future__ import annotations

import click


@click.group()
def tokens() -> None:
    """Personal API tokens."""
