"""Text search in SQL: the one place that turns what a person typed into a LIKE pattern.

``%`` and ``_`` are wildcards to the database but ordinary characters to a person: ``q=_`` must
find references that contain an underscore, not every case. Every LIKE built from text the app did
not write itself goes through :func:`contains` or :func:`starts_with`, which escape the wildcards
and the escape character and pass an explicit ``ESCAPE`` clause, so SQLite and PostgreSQL agree
(PostgreSQL's default escape is a backslash, SQLite has none).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` with the escape character and LIKE's wildcards escaped, to match literally."""
    return (
        text.replace(ESCAPE, ESCAPE + ESCAPE)
        .replace("%", ESCAPE + "%")
        .replace("_", ESCAPE + "_")
    )


def contains(column: Any, text: str, *, ignore_case: bool = False) -> ColumnElement[bool]:
    """``column`` contains ``text`` literally (``ignore_case`` uses ILIKE, lower() on SQLite)."""
    pattern = f"%{escape_like(text)}%"
    if ignore_case:
        return column.ilike(pattern, escape=ESCAPE)  # type: ignore[no-any-return]
    return column.like(pattern, escape=ESCAPE)  # type: ignore[no-any-return]


def starts_with(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` begins with ``text`` literally (a reference prefix, a key id, an action)."""
    return column.like(f"{escape_like(text)}%", escape=ESCAPE)  # type: ignore[no-any-return]
