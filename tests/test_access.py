"""Every endpoint, for anonymous visitors and every role, answers as this matrix says.

The matrix is the reviewed specification of who may reach what. A new route that is not in it
fails ``test_every_endpoint_is_in_the_matrix``; a route whose guard disagrees with it fails the
walk. Records are addressed with random UUIDs, so an allowed role gets 404, never 403.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.security import roles

PUBLIC = "public"
SIGNED_IN = "signed_in"
ADMIN = frozenset({Role.ADMIN})

MATRIX: dict[str, Any] = {
    "static": PUBLIC,
    "main.healthz": PUBLIC,
    "main.readyz": PUBLIC,
    "auth.login": PUBLIC,
    "auth.login_code": PUBLIC,
    "auth.login_enrol": PUBLIC,
    "auth.login_new_password": PUBLIC,
    "auth.forgot_password": PUBLIC,
    "auth.set_password": PUBLIC,
    "main.home": SIGNED_IN,
    "auth.account": SIGNED_IN,
    "auth.change_password": SIGNED_IN,
    "auth.two_factor": SIGNED_IN,
    "auth.end_other_sessions": SIGNED_IN,
    "auth.logout": SIGNED_IN,
    "admin.users": ADMIN,
    "admin.new_user": ADMIN,
    "admin.edit_user": ADMIN,
    "admin.disable_user": ADMIN,
    "admin.enable_user": ADMIN,
    "admin.reset_password": ADMIN,
    "admin.reset_second_factor": ADMIN,
    "admin.areas": ADMIN,
    "admin.edit_area": ADMIN,
    "admin.agencies": ADMIN,
    "admin.edit_agency": ADMIN,
    "audit.log": ADMIN,
    # -- cases
    "cases.list_cases": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "cases.view_case": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "cases.reveal_case": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "cases.view_person": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "cases.new_case": frozenset({Role.COORDINATOR}),
    "cases.edit_case": frozenset({Role.COORDINATOR}),
    "cases.decide_match": frozenset({Role.COORDINATOR}),
    "cases.move_case": frozenset({Role.COORDINATOR}),
    "reviews.send": frozenset({Role.COORDINATOR}),
    "reviews.view_request": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "reviews.my_requests": frozenset({Role.AGENCY_CONTRIBUTOR}),
    "reviews.answer_request": frozenset({Role.AGENCY_CONTRIBUTOR}),
    "reviews.meetings": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "reviews.new_meeting": frozenset({Role.COORDINATOR}),
    "reviews.meeting": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "reviews.accept": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "reviews.agenda": frozenset({Role.COORDINATOR}),
    "reviews.members": frozenset({Role.COORDINATOR}),
    "reviews.attendance": frozenset({Role.COORDINATOR}),
    "reviews.minutes": frozenset({Role.COORDINATOR}),
    "reviews.meeting_pack": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "reviews.findings": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "cases.notify": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}),
    "reviews.add_action": frozenset({Role.COORDINATOR}),
    "reviews.actions": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}),
    "reviews.action": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}),
    "reviews.safety_plan": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "reviews.safety_plans": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    # -- retention: the subject-access export (retention/routes.py)
    "retention.subject_access": frozenset({Role.COORDINATOR}),
    # -- imports (bulk import)
    "imports.upload": frozenset({Role.COORDINATOR}),
    "imports.template": frozenset({Role.COORDINATOR}),
    # -- api (JSON API v1 and token pages)
    "api.openapi": PUBLIC,
    "api.cases.list_cases": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.cases.create_case": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.cases.get_case": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.cases.list_transitions": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.cases.move_case": frozenset({Role.COORDINATOR}),
    "api.reviews.case_requests": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.reviews.send_requests": frozenset({Role.COORDINATOR}),
    "api.reviews.my_requests": frozenset({Role.AGENCY_CONTRIBUTOR}),
    "api.reviews.save_return": frozenset({Role.AGENCY_CONTRIBUTOR}),
    "api.reviews.case_actions": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.reviews.add_action": frozenset({Role.COORDINATOR}),
    "api.reviews.list_actions": frozenset(
        {Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}
    ),
    "api.reviews.update_action": frozenset(
        {Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}
    ),
    "api.reviews.case_findings": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.reviews.save_findings": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.reviews.case_safety_plan": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    "api.reviews.save_safety_plan": frozenset({Role.COORDINATOR, Role.PANEL_MEMBER}),
    # -- trends: charts, downloads and the record-level extract (trends/downloads.py)
    "trends_files.chart": frozenset({Role.LEAD, Role.COORDINATOR}),
    "trends_files.export": frozenset({Role.LEAD, Role.COORDINATOR}),
    "trends_files.extract": frozenset({Role.LEAD, Role.COORDINATOR}),
    # -- trends: the dashboard, populations and the API (trends/routes.py)
    "trends.dashboard": frozenset({Role.LEAD, Role.COORDINATOR}),
    "trends.populations": frozenset({Role.LEAD, Role.ADMIN}),
    "api.trends.trends": frozenset({Role.LEAD, Role.COORDINATOR}),
    # -- alerts: signals, drug-concern reports, the queue and assessment (alerts/routes.py)
    "alerts.queue": frozenset({Role.COORDINATOR}),
    "alerts.signals": frozenset({Role.COORDINATOR}),
    "alerts.signal": frozenset({Role.COORDINATOR}),
    "alerts.signal_chart": frozenset({Role.COORDINATOR}),
    "alerts.assess_signal": frozenset({Role.COORDINATOR}),
    "alerts.reports": frozenset({Role.COORDINATOR}),
    "alerts.report": frozenset({Role.COORDINATOR}),
    "alerts.assess_report": frozenset({Role.COORDINATOR}),
    "alerts.new_report": frozenset(
        {Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.LEAD}
    ),
    "drug_concern.public_report": PUBLIC,
    "api.alerts.list_signals": frozenset({Role.COORDINATOR}),
    "api.alerts.get_signal": frozenset({Role.COORDINATOR}),
    "api.alerts.list_reports": frozenset({Role.COORDINATOR}),
    "api.alerts.get_report": frozenset({Role.COORDINATOR}),
    "api.alerts.create_report": frozenset(
        {Role.COORDINATOR, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR, Role.LEAD}
    ),
    "api.alerts.create_assessment": frozenset({Role.COORDINATOR}),
    # -- alerts: the broadcast (alerts/broadcast_routes.py)
    "alerts.signal_settings": frozenset({Role.COORDINATOR}),
    "alerts.edit_signal_settings": frozenset({Role.COORDINATOR}),
    "alerts.reset_signal_settings": frozenset({Role.COORDINATOR}),
    "alerts.subscribers": frozenset({Role.COORDINATOR}),
    "alerts.new_subscriber": frozenset({Role.COORDINATOR}),
    "alerts.subscriber": frozenset({Role.COORDINATOR}),
    "alerts.disable_subscriber": frozenset({Role.COORDINATOR}),
    "alerts.enable_subscriber": frozenset({Role.COORDINATOR}),
    "alerts.rotate_secret": frozenset({Role.COORDINATOR}),
    "alerts.deliveries": frozenset({Role.COORDINATOR}),
    "alerts.ack": PUBLIC,
    "api.alerts.list_signal_settings": frozenset({Role.COORDINATOR}),
    "api.alerts.get_signal_settings": frozenset({Role.COORDINATOR}),
    "api.alerts.update_signal_settings": frozenset({Role.COORDINATOR}),
    "api.alerts.reset_signal_settings": frozenset({Role.COORDINATOR}),
    "api.alerts.list_subscriptions": frozenset({Role.COORDINATOR}),
    "api.alerts.create_subscription": frozenset({Role.COORDINATOR}),
    "api.alerts.get_subscription": frozenset({Role.COORDINATOR}),
    "api.alerts.update_subscription": frozenset({Role.COORDINATOR}),
    "api.alerts.delete_subscription": frozenset({Role.COORDINATOR}),
    "api.alerts.rotate_subscription_secret": frozenset({Role.COORDINATOR}),
    "api.alerts.alert_deliveries": frozenset({Role.COORDINATOR}),
    # -- alerts: drafting, approval, the archive, CAP and Atom (alerts/drafting_routes.py, feeds.py)
    "alerts.archive": frozenset(
        {Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}
    ),
    "alerts.alert_page": frozenset(
        {Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}
    ),
    "alerts.new_draft": frozenset({Role.COORDINATOR}),
    "alerts.edit_draft": frozenset({Role.COORDINATOR}),
    "alerts.draft_page": frozenset({Role.COORDINATOR, Role.LEAD}),
    "alerts.submit": frozenset({Role.COORDINATOR}),
    "alerts.approve": frozenset({Role.COORDINATOR, Role.LEAD}),
    "alerts.update": frozenset({Role.COORDINATOR}),
    "alerts.cancel": frozenset({Role.COORDINATOR}),
    "alerts.discard": frozenset({Role.COORDINATOR}),
    "feeds.alerts_atom": PUBLIC,
    "feeds.cap": PUBLIC,
    "api.alerts.list_alerts": frozenset(
        {Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}
    ),
    "api.alerts.get_alert": frozenset(
        {Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR}
    ),
    "api.alerts.create_alert": frozenset({Role.COORDINATOR}),
    "api.alerts.submit_alert": frozenset({Role.COORDINATOR}),
    "api.alerts.approve_alert": frozenset({Role.COORDINATOR, Role.LEAD}),
    "api.alerts.update_alert": frozenset({Role.COORDINATOR}),
    "api.alerts.cancel_alert": frozenset({Role.COORDINATOR}),
    "api_tokens.index": SIGNED_IN,
    "api_tokens.create": SIGNED_IN,
    "api_tokens.revoke": SIGNED_IN,
    "api_tokens.renew": SIGNED_IN,
}

# Blueprints whose routes accept an API token (dr_panel.security.CREDENTIALS): the API, and the
# feeds (GET only). Every other route answers a token 401.
TOKEN_BLUEPRINTS = ("api", "feeds")

# Requests that end the session go last, so the walk keeps its sign-in until the end.
LAST = ("auth.end_other_sessions", "auth.logout")


def requests_for(app: Flask) -> list[tuple[str, str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        args = {name: str(uuid.uuid4()) for name in rule.arguments}
        url = rule.build(args, append_unknown=False)[1]  # type: ignore[index]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):  # type: ignore[operator]
            out.append((rule.endpoint, method, url))
    return sorted(out, key=lambda r: (r[0] in LAST, LAST.index(r[0]) if r[0] in LAST else 0))


def test_every_endpoint_is_in_the_matrix(app: Flask) -> None:
    missing = sorted({r.endpoint for r in app.url_map.iter_rules()} - set(MATRIX))
    assert not missing, f"add these endpoints to MATRIX with their access rule: {missing}"
    stale = sorted(set(MATRIX) - {r.endpoint for r in app.url_map.iter_rules()})
    assert not stale, f"these MATRIX entries have no route any more: {stale}"


def test_anonymous_reaches_only_public_endpoints(app: Flask, client: Any) -> None:
    for endpoint, method, url in requests_for(app):
        response = client.open(url, method=method)
        # /readyz answers 503 here by design: the suite's database is made by create_all, not
        # migrated to head (tests/runtime/test_health.py covers both answers).
        ready_probe = endpoint == "main.readyz" and response.status_code == 503
        assert response.status_code < 500 or ready_probe, (endpoint, method)
        if MATRIX[endpoint] == PUBLIC:
            assert response.status_code not in (401, 403), (endpoint, method, response.status_code)
        elif url.startswith("/api/"):  # the API answers 401 problem details, not a redirect
            assert response.status_code == 401, (endpoint, method, response.status_code)
            assert response.mimetype == "application/problem+json", (endpoint, method)
        else:
            assert response.status_code == 302, (endpoint, method, response.status_code)
            assert "/login" in response.location, (endpoint, method)


def _bearer(user: Any) -> dict[str, str]:
    from dr_panel.auth.tokens import create_token

    _, plaintext = create_token(user, "matrix", by=user)
    db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def test_each_role_reaches_exactly_its_endpoints(
    app: Flask, any_role: Role, create_user: Any, login: Any
) -> None:
    """Pages with the role's browser session; the API with the role's token (and no cookie)."""
    client, program = app.test_client(), app.test_client()
    user = create_user(any_role)
    headers = _bearer(user)
    assert login(client, user).status_code == 302
    for endpoint, method, url in requests_for(app):
        expected = MATRIX[endpoint]
        if url.startswith("/api/"):
            response = program.open(url, method=method, headers=headers)
        else:
            response = client.open(url, method=method)
        ready_probe = endpoint == "main.readyz" and response.status_code == 503  # not migrated
        assert response.status_code < 500 or ready_probe, (endpoint, method)
        allowed = expected in (PUBLIC, SIGNED_IN) or any_role in expected
        if allowed:
            assert response.status_code not in (401, 403), (endpoint, method, response.status_code)
            if expected == SIGNED_IN or expected != PUBLIC:
                assert "/login?" not in (response.location or ""), (endpoint, method)
        else:
            assert response.status_code == 403, (endpoint, method, response.status_code)
            assert b"You do not have access" in response.data


def test_refusals_are_audited(app: Flask, client: Any, create_user: Any, login: Any) -> None:
    from dr_panel.audit.models import AuditEntry

    user = create_user(Role.LEAD)
    login(client, user)
    assert client.get("/admin/users").status_code == 403
    entry = db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry.action == "access.denied"
    assert entry.actor_uuid == user.uuid
    assert '"admin.users"' in entry.details


def test_a_view_without_an_access_rule_is_refused_to_everyone(
    app: Flask, create_user: Any, login: Any
) -> None:
    @app.route("/undeclared")
    def undeclared() -> str:
        return "should never be served"

    @app.route("/declared")
    @roles(Role.ADMIN)
    def declared() -> str:
        return "admins only"

    client = app.test_client()
    login(client, create_user(Role.ADMIN, areas=("E06000009", "E06000008")))
    assert client.get("/undeclared").status_code == 403
    assert client.get("/declared").status_code == 200


@pytest.mark.parametrize("path", ["/admin/users/{}", "/admin/areas/{}", "/admin/agencies/{}"])
def test_unknown_or_malformed_record_ids_answer_404(
    app: Flask, client: Any, create_user: Any, login: Any, path: str
) -> None:
    login(client, create_user(Role.ADMIN))
    assert client.get(path.format(uuid.uuid4())).status_code == 404
    assert client.get(path.format("1")).status_code == 404
    assert client.get(path.format("'; drop table users; --")).status_code == 404


# -- credentials: a token is for the API only, the cookie is for pages only ------------------------


def test_a_valid_token_authenticates_no_page(app: Flask, any_role: Role, create_user: Any) -> None:
    """An attacker holding only a token tries every page (account, second factor, sessions,
    token and admin pages, sign-out, public pages too): each answers 401, never 200 or 500."""
    user = create_user(any_role)
    headers = _bearer(user)
    client = app.test_client()
    for endpoint, method, url in requests_for(app):
        if endpoint.split(".")[0] in TOKEN_BLUEPRINTS:
            continue
        response = client.open(url, method=method, headers=headers, data={"code": "123456"})
        assert response.status_code == 401, (endpoint, method, response.status_code)
        assert response.mimetype == "application/problem+json", (endpoint, method)
        assert "Bearer" in response.headers["WWW-Authenticate"], (endpoint, method)
    # The scheme is case-insensitive: a lower-case one is no way round.
    lower = {"Authorization": headers["Authorization"].replace("Bearer", "bearer")}
    assert client.get("/account", headers=lower).status_code == 401
    assert client.post("/logout", headers=headers).status_code == 401


def test_a_token_on_a_page_is_audited_against_its_owner(
    app: Flask, create_user: Any
) -> None:
    from dr_panel.audit.models import AuditEntry

    user = create_user(Role.COORDINATOR)
    headers = _bearer(user)
    assert app.test_client().get("/account/two-factor", headers=headers).status_code == 401
    entry = db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry.action == "access.denied" and entry.actor_uuid == user.uuid
    assert "api token on a page" in entry.details
    assert headers["Authorization"][11:] not in entry.details


def test_the_session_cookie_authenticates_no_api_route(
    app: Flask, create_user: Any, login: Any
) -> None:
    """The API takes tokens only: a signed-in browser gets 401 on every route that is not
    public, so no page on another site can act through it."""
    client = app.test_client()
    assert login(client, create_user(Role.COORDINATOR)).status_code == 302
    assert client.get("/account").status_code == 200  # the cookie is good for pages
    for endpoint, method, url in requests_for(app):
        if not url.startswith("/api/") or MATRIX[endpoint] == PUBLIC:
            continue
        response = client.open(url, method=method, json={})
        assert response.status_code == 401, (endpoint, method, response.status_code)
        assert "cookie" in response.get_json()["detail"], (endpoint, method)


def test_routes_that_take_both_credentials_change_nothing(app: Flask) -> None:
    """The feeds accept a token or the cookie, so they must stay read-only (GET)."""
    from dr_panel.security import CREDENTIALS

    both = {name for name, c in CREDENTIALS.items() if c.token and c.cookie}
    assert both == {"feeds"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in both:
            assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule  # type: ignore[operator]
