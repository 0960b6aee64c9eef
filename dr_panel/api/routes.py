"""JSON API v1 routes (filled in by the API work)."""

from __future__ import annotations

from flask import Blueprint

from dr_panel.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # bearer tokens, not cookies: no CSRF exposure
