"""One way to page through a query, for every list page."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from dr_panel.extensions import db


def paginate(stmt: Select[Any], per_page: int | None = None) -> Pagination:
    raw = request.args.get("page", "1")
    page = int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1
    return db.paginate(
        stmt,
        page=page,
        per_page=per_page or current_app.config["PAGE_SIZE"],
        error_out=False,
        count=True,
    )
