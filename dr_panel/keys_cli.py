"""`dr-panel keys ...`: field-key rotation (filled in by the key-rotation work)."""

from __future__ import annotations

import click


@click.group()
def keys() -> None:
    """Encryption keys: add a field key, rotate to it, verify, retire the old one."""
