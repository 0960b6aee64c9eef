"""One way to page through a query, for every list page."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from dr_panel.extensions import db
from dr_panel.forms import whole_number


def paginate(stmt: Select[Any], per_page: int | None = None) -> Pagination:
    page = whole_number(request.args.get("page"), default=1) or 1
    page = page if page < 1_000_000 else 1
    return db.paginate(
        stmt,
        page=page,
        per_page=per_page or current_app.config["PAGE_SIZE"],
        error_out=False,
        count=True,
    )
