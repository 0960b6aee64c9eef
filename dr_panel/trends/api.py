"""The JSON API of trends: counts and rates, disclosure-controlled.

=====  ==============  ======================================================================
GET    /trends         lead, coordinator: counts and rates of their areas, with the
                       dashboard's rules and disclosure control (each query audited)
=====  ==============  ======================================================================

Registered under ``/api/v1`` by ``dr_panel.api.v1``; shared HTTP helpers in ``dr_panel.webapi``;
the query and the answer are ``dr_panel.trends.schemas``. The figures come from the same
``queries.parse_query`` and ``queries.run`` as the dashboard, so a figure reads the same on the
page and in the API.
"""

from __future__ import annotations

from flask import Response, request

from dr_panel.audit.services import record
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.security import roles
from dr_panel.trends import queries
from dr_panel.trends.routes import audit_foreign_areas
from dr_panel.trends.schemas import TrendParams, TrendResult
from dr_panel.webapi import BAD_QUERY, answer, blueprint, invalid, me

api = blueprint("trends", __name__, "", "Trends")

# The parameters given once at most (``area`` may repeat); the query model sees one value only.
SINGLE = [f.alias or name for name, f in TrendParams.model_fields.items() if name != "area"]


@api.before_request
def _before_the_query_is_read() -> Response | None:
    """Asking for an area outside one's grants is a refused access: audited (ASVS V7) even when
    the request is refused for another parameter too. A parameter given twice is refused, not
    half-read."""
    audit_foreign_areas(request.args, me())
    twice = [n for n in SINGLE if len(request.args.getlist(n)) > 1]
    if twice:
        return invalid({n: f"Give {n} once." for n in twice}, BAD_QUERY)
    return None


@api.get(
    "/trends",
    operation_id="getTrends",
    summary="Counts and rates per 100,000 (with 95% confidence intervals) of the events in your "
    "areas, by up to two dimensions, with disclosure control: for leads, 1-7 is '*' and other "
    "counts are rounded to 5; coordinators see exact counts of their own areas. Each request is "
    "audited.",
    responses={200: TrendResult},
)
@roles(Role.LEAD, Role.COORDINATOR)
def trends(query: TrendParams) -> Response:
    """The figures, already protected for you; each query is audited (figures leaving)."""
    user = me()
    asked, errors = queries.parse_query(query.args(), user=user)
    if not errors:
        try:
            table = queries.run(asked, user)
        except queries.QueryError as err:
            errors = {err.field: str(err)}
    if errors:
        db.session.rollback()
        return invalid(errors, BAD_QUERY)
    record(
        "trends.query",
        actor=user,
        details={"via": "api", **asked.args(), "areas": list(asked.area_codes),
                 "exact": table.exact},
    )
    db.session.commit()
    return answer(TrendResult.of(asked, table).body())
