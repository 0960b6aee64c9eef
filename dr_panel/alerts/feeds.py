"""The Atom feed of issued alert versions and their CAP 1.2 documents (blueprint ``feeds``).

=====  ===========================  =============================================================
GET    /feeds/alerts.atom           public: public-scope versions; with a valid API token
                                    (``Authorization: Bearer``) or a session, also the
                                    restricted versions that person may read
GET    /feeds/cap/<uuid>.xml        public for a public-scope issued version; a restricted one
                                    only with a token (or session) whose person may read it
=====  ===========================  =============================================================

Choices: a restricted CAP document asked for without a token, or with one whose person may not
read it, answers 404, exactly as a version that does not exist (we do not confirm it exists),
and the refusal is audited. A token that is not valid (revoked, mistyped) answers 401, so a
partner system notices instead of silently receiving the public entries only. Tokens are read
only from the header: a token in the query string is refused (400) and never logged. A signed-in
browser session counts as well as a token, so the CAP links on the archive pages work. Drafts
and versions awaiting approval are never in a feed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 -- building XML only, never parsing input
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from dr_panel.alerts import cap
from dr_panel.alerts.drafting import content_of
from dr_panel.alerts.models import AlertVersion, MsgType, Scope
from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record_now
from dr_panel.auth.models import User
from dr_panel.auth.tokens import TOKEN_REFUSALS
from dr_panel.dbtypes import parse_uuid
from dr_panel.extensions import db
from dr_panel.security import problem, public

bp = Blueprint("feeds", __name__, url_prefix="/feeds")

ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml"
FEED_LIMIT = 200


def _bad_credentials() -> Response | None:
    """401 for a token sent but not valid; 400 for a token in the URL."""
    if any(k.lower() in ("token", "access_token", "api_token") for k in request.args):
        return problem(
            400,
            "Tokens go in a header",
            "Never put an API token in a URL: send it as 'Authorization: Bearer <token>'. "
            "Revoke this token now, as it may have been logged on the way.",
        )
    header = request.headers.get("Authorization", "")
    if header and not current_user.is_authenticated:
        check = g.get("token_check")  # why the loader refused it, as the API would say
        why = TOKEN_REFUSALS.get(getattr(check, "refusal", None) or "unknown",
                                 TOKEN_REFUSALS["unknown"])
        response = problem(
            401,
            "The API token is not valid",
            why + " Or leave the header out for the public alerts only.",
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="dr-panel"'
        return response
    return None


def _reader() -> User | None:
    return current_user if current_user.is_authenticated else None


def readable(version: AlertVersion, user: User | None) -> bool:
    """Whether this requester may have the version's CAP document (issued versions only)."""
    if version.issued_at is None:
        return False
    if version.scope is Scope.PUBLIC:
        return True
    return user is not None and version.alert.can_read(user)


def _atom(tag: str) -> str:
    """Atom's elements are written unqualified under the root's ``xmlns``: ElementTree cannot
    combine a default namespace with unqualified attributes (rel, type, href)."""
    return tag


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, _atom(tag), attrs)
    if text is not None:
        child.text = text
    return child


def _iso(version: AlertVersion) -> str:
    assert version.issued_at is not None
    return version.issued_at.isoformat(timespec="seconds")


def feed_versions(user: User | None, limit: int = FEED_LIMIT) -> list[AlertVersion]:
    """Issued versions this requester may read, newest first."""
    query = (
        select(AlertVersion)
        .where(AlertVersion.issued_at.is_not(None))
        .order_by(AlertVersion.issued_at.desc(), AlertVersion.id.desc())
    )
    if user is None:
        query = query.where(AlertVersion.scope == Scope.PUBLIC).limit(limit)
        return list(db.session.scalars(query))
    found: list[AlertVersion] = []
    for version in db.session.scalars(query):  # restricted ones need the alert's rule
        if readable(version, user):
            found.append(version)
            if len(found) >= limit:
                break
    return found


PREFIX = {MsgType.ALERT: "", MsgType.UPDATE: "Update: ", MsgType.CANCEL: "Cancelled: "}


def feed_document(versions: list[AlertVersion]) -> bytes:
    from dr_panel.mail.services import link

    root = ET.Element(_atom("feed"), xmlns=ATOM)
    self_url = link("feeds.alerts_atom")
    _sub(root, "id", self_url)
    _sub(root, "title", "Drug alerts: local drug information system")
    _sub(root, "subtitle", "Issued alerts, updates and cancellations. Each entry links to its "
         "CAP 1.2 document.")
    newest = versions[0].issued_at if versions else None
    _sub(root, "updated", newest.isoformat(timespec="seconds") if newest else
         "1970-01-01T00:00:00+00:00")
    _sub(root, "link", rel="self", type=ATOM_TYPE, href=self_url)
    author = _sub(root, "author")
    _sub(author, "name", "dr-panel local drug information system")
    for version in versions:
        content = content_of(version)
        alert = version.alert
        entry = _sub(root, "entry")
        _sub(entry, "id", cap.identifier(version))
        title = content["title"] or alert.reference
        _sub(entry, "title", f"{PREFIX[version.msg_type]}{version.level.label}: {title}")
        _sub(entry, "updated", _iso(version))
        _sub(entry, "published", _iso(version))
        _sub(entry, "link", rel="alternate", type=cap.CONTENT_TYPE, href=cap.cap_url(version))
        _sub(entry, "link", rel="alternate", type="text/html", href=cap.page_url(version))
        _sub(entry, "category", term=version.level.value, label=version.level.label)
        _sub(entry, "category", term=f"scope:{version.scope.value}")
        for area in version.areas or [alert.area]:
            _sub(entry, "category", term=f"ONS:{area.ons_code}", label=area.name)
        summary = content["note"] if version.msg_type is not MsgType.ALERT else ""
        summary = summary or content["substance"] or content["signs_of_harm"] or title
        _sub(entry, "summary", summary, type="text")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@bp.get("/alerts.atom")
@public
def alerts_atom() -> Any:
    refused = _bad_credentials()
    if refused is not None:
        return refused
    body = feed_document(feed_versions(_reader()))
    return current_app.response_class(body, mimetype=ATOM_TYPE)


@bp.get("/cap/<uuid>.xml", endpoint="cap")
@public
def cap_document(uuid: str) -> Any:
    refused = _bad_credentials()
    if refused is not None:
        return refused
    value = parse_uuid(uuid)
    version = (
        db.session.scalar(select(AlertVersion).where(AlertVersion.uuid == value))
        if value else None
    )
    if version is None or version.issued_at is None:
        raise NotFound()
    if not readable(version, _reader()):
        record_now(
            "access.denied",
            outcome=Outcome.DENIED,
            object_type="alert_versions",
            object_uuid=version.uuid,
            details={"endpoint": request.endpoint, "method": request.method,
                     "why": "restricted scope"},
        )
        raise NotFound()
    return current_app.response_class(cap.document(version), mimetype=cap.CONTENT_TYPE)
