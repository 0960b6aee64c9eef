"""The Atom feed and the CAP documents: public alerts for anyone, restricted ones only with an
API token in the header; the feed parses with feedparser and links each entry to its CAP."""

from __future__ import annotations

from typing import Any

import feedparser
import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import drafting as dr
from dr_panel.alerts.models import AlertVersion, Scope
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.auth.tokens import create_token, revoke_token
from dr_panel.extensions import db
from tests.alerts.drafting_helpers import CLEAN, draft_input, drafted, issued, valid_cap


@pytest.fixture
def alerts(create_user: Any) -> dict[str, Any]:
    d, s = create_user(Role.COORDINATOR), create_user(Role.COORDINATOR)
    public = issued(d, s, scope=Scope.PUBLIC)
    restricted = issued(d, s, content={**CLEAN, "title": "Restricted: pink powder"})
    # An update of the public one, issued last, so it heads the feed.
    dr.start_update(public, by=d)
    dr.edit_draft(public, draft_input(scope=Scope.PUBLIC, note="Now seen in Blackburn."), by=d,
                  expected_revision=None)
    dr.submit(public, by=d, expected_revision=None)
    dr.approve(public, by=s, expected_revision=None)
    db.session.commit()
    pending = drafted(d, scope=Scope.PUBLIC, content={**CLEAN, "title": "Not approved yet"})
    return {"public": public, "restricted": restricted, "pending": pending, "drafter": d}


def parse(data: bytes) -> Any:
    feed = feedparser.parse(data)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def test_the_public_feed_lists_public_versions_newest_first(
    app: Flask, alerts: dict[str, Any]
) -> None:
    response = app.test_client().get("/feeds/alerts.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = parse(response.data)
    public = alerts["public"]
    v1, v2 = public.versions
    assert [e.id for e in feed.entries] == [f"urn:uuid:{v2.uuid}", f"urn:uuid:{v1.uuid}"]
    assert feed.entries[0].title.startswith("Update: Drug alert: ")
    assert "Now seen in Blackburn." in feed.entries[0].summary
    links = {(lk.rel, lk.type): lk.href for lk in feed.entries[1].links}
    assert links[("alternate", "application/cap+xml")].endswith(f"/feeds/cap/{v1.uuid}.xml")
    assert links[("alternate", "text/html")].endswith(f"/ldis/alerts/{public.uuid}#v1")
    assert b"pink powder" not in response.data and b"Not approved yet" not in response.data


def test_each_entry_links_to_a_valid_cap_document(app: Flask, alerts: dict[str, Any]) -> None:
    client = app.test_client()
    feed = parse(client.get("/feeds/alerts.atom").data)
    for entry in feed.entries:
        href = next(lk.href for lk in entry.links if lk.type == "application/cap+xml")
        response = client.get(href.removeprefix("http://127.0.0.1:5000"))
        assert response.status_code == 200
        assert response.mimetype == "application/cap+xml"
        valid_cap(response.data)


def test_restricted_entries_need_a_token_in_the_header(
    app: Flask, alerts: dict[str, Any]
) -> None:
    _, token = create_token(alerts["drafter"], "Partner system", by=None)
    db.session.commit()
    client = app.test_client()
    feed = parse(client.get("/feeds/alerts.atom",
                            headers={"Authorization": f"Bearer {token}"}).data)
    titles = [e.title for e in feed.entries]
    assert len(titles) == 3 and any("pink powder" in t for t in titles)
    assert not any("Not approved yet" in t for t in titles)
    # In the URL it is refused, and the answer says to revoke it.
    in_url = client.get(f"/feeds/alerts.atom?token={token}")
    assert in_url.status_code == 400 and b"Revoke this token" in in_url.data
    assert token.encode() not in in_url.data


def test_a_revoked_token_is_told_so(app: Flask, alerts: dict[str, Any]) -> None:
    made, token = create_token(alerts["drafter"], "Old feed", by=None)
    revoke_token(made, by=None)
    db.session.commit()
    response = app.test_client().get(
        "/feeds/alerts.atom", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_restricted_cap_document_is_404_without_a_token_and_audited(
    app: Flask, alerts: dict[str, Any], create_user: Any
) -> None:
    version = alerts["restricted"].current
    client = app.test_client()
    assert client.get(f"/feeds/cap/{version.uuid}.xml").status_code == 404
    refused = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "access.denied")
    ).all()
    assert any(str(e.object_uuid) == str(version.uuid) for e in refused)
    # Someone signed in elsewhere, with a token, still cannot read it.
    outsider = create_user(Role.COORDINATOR, areas=("E06000008",))
    _, other = create_token(outsider, "Elsewhere", by=None)
    _, mine = create_token(alerts["drafter"], "Mine", by=None)
    db.session.commit()
    assert client.get(f"/feeds/cap/{version.uuid}.xml",
                      headers={"Authorization": f"Bearer {other}"}).status_code == 404
    ok = client.get(f"/feeds/cap/{version.uuid}.xml",
                    headers={"Authorization": f"Bearer {mine}"})
    assert ok.status_code == 200
    assert b"<scope>Restricted</scope>" in ok.data
    valid_cap(ok.data)


def test_drafts_and_unknown_versions_have_no_cap_document(
    app: Flask, alerts: dict[str, Any]
) -> None:
    pending: AlertVersion = alerts["pending"].draft
    client = app.test_client()
    assert client.get(f"/feeds/cap/{pending.uuid}.xml").status_code == 404
    assert client.get("/feeds/cap/not-a-uuid.xml").status_code == 404
