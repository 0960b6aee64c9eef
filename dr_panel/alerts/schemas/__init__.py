"""The alerts (LDIS) API's bodies, queries and answers, declared once as pydantic models: the API
door (``dr_panel.alerts.api``) validates with them and the OpenAPI document is generated from
them. The answers are built here from the records, so the document cannot drift from the JSON;
the rules stay in the services (``drafting``, ``subscribers``, ``signals``, ``reports``,
``assessment``).

``base``: the field types and the answers' base; ``ldis``: signals, drug-concern reports,
assessments and an area's spike-scan settings; ``broadcast``: subscriptions and deliveries;
``drafting``: alerts and the leak gate's refusal.

A ``null`` in a body means "not given", as it always has: an optional key may be ``null``, a
required one may not (``key: required.``). Keys that a record only has in some answers (a
webhook's new secret, a report's text, an approval's delivery count) are left out when absent.
"""

from __future__ import annotations

from sqlalchemy import select

from dr_panel.extensions import db
from dr_panel.reference.models import Area


def area_codes() -> list[str]:
    """Every area's ONS code: what ``areas`` may hold (the services then keep a person to the
    areas they may reach)."""
    return list(db.session.scalars(select(Area.ons_code)))
