"""Case pages (intake, list, detail, reveal)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cases", __name__)
