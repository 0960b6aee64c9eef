"""Bulk import of notifications from CSV (filled in by the import work)."""

from __future__ import annotations

import click
from flask import Blueprint

bp = Blueprint("imports", __name__, url_prefix="/cases/import")


@click.group("import")
def import_group() -> None:
    """Bulk import from files."""
