"""The admin's account, area and agency pages: validation that says how to fix, nothing half-saved,
every change audited."""

from __future__ import annotations

from typing import Any

import pytest

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from dr_panel.reference.models import Agency, Area
from tests.auth.support import link_token_for
from tests.conftest import PASSWORD


@pytest.fixture
def admin_client(app: Any, create_user: Any, login: Any) -> Any:
    client = app.test_client()
    client.admin = create_user(Role.ADMIN, areas=("E06000009", "E06000008"))
    login(client, client.admin)
    return client


def count_users() -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(User))


def test_create_account_e_mails_the_person_a_link_and_shows_the_admin_no_password(
    app: Any, admin_client: Any
) -> None:
    response = admin_client.post(
        "/admin/users/new",
        data={
            "display_name": "Rowan Field",
            "email": "Rowan.Field@Example.org",
            "role": "panel_member",
            "agency": "POLICE",
            "areas": ["E06000009"],
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert b"e-mailed them a link to choose their own password" in response.data
    assert b"temporary-password" not in response.data
    user = db.session.scalar(db.select(User).where(User.email == "rowan.field@example.org"))
    assert user.agency.code == "POLICE" and not user.must_change_password
    assert [a.ons_code for a in user.areas] == ["E06000009"]
    entry = db.session.scalars(
        db.select(AuditEntry)
        .where(AuditEntry.action == "account.created")
        .order_by(AuditEntry.seq.desc())
    ).first()
    assert entry.object_uuid == str(user.uuid) and entry.actor_uuid == admin_client.admin.uuid
    token = link_token_for("rowan.field@example.org")
    assert token.encode() not in response.data and token not in (entry.details or "")
    # The new person opens the link, chooses a password, and is signed in.
    newcomer = app.test_client()
    response = newcomer.post(
        f"/password/{token}",
        data={"password": "quiet harbour kestrel 93", "confirm": "quiet harbour kestrel 93"},
    )
    assert response.location == "/"


@pytest.mark.parametrize(
    "data,message",
    [
        (
            {"display_name": "", "email": "a@example.org", "role": "lead", "areas": ["E06000009"]},
            b"Enter the person&#39;s name",
        ),
        (
            {
                "display_name": "A",
                "email": "not-an-address",
                "role": "lead",
                "areas": ["E06000009"],
            },
            b"Enter an e-mail address in the form name@example.org",
        ),
        (
            {"display_name": "A", "email": "a@example.org", "role": "lead"},
            b"Grant at least one area",
        ),
        (
            {
                "display_name": "A",
                "email": "a@example.org",
                "role": "agency_contributor",
                "areas": ["E06000009"],
            },
            b"must belong to an agency",
        ),
        (
            {
                "display_name": "A",
                "email": "a@example.org",
                "role": "wizard",
                "areas": ["E06000009"],
            },
            b"Choose one of the options listed for role",
        ),
        (
            {"display_name": "A", "email": "a@example.org", "role": "lead", "areas": ["E09999999"]},
            b"E09999999 is not one of the areas listed",
        ),
    ],
)
def test_bad_input_says_how_to_fix_and_saves_nothing(
    admin_client: Any, data: dict[str, Any], message: bytes
) -> None:
    before = count_users()
    response = admin_client.post("/admin/users/new", data=data)
    assert response.status_code == 200
    assert b"There is a problem" in response.data and message in response.data
    assert count_users() == before


def test_duplicate_email_is_refused(admin_client: Any, create_user: Any) -> None:
    existing = create_user(Role.LEAD)
    before = count_users()
    response = admin_client.post(
        "/admin/users/new",
        data={
            "display_name": "Dup",
            "email": existing.email.upper(),
            "role": "lead",
            "areas": ["E06000009"],
        },
    )
    assert b"already exists" in response.data and count_users() == before


def test_edit_access_and_areas(admin_client: Any, create_user: Any) -> None:
    user = create_user(Role.LEAD, areas=("E06000009",))
    response = admin_client.post(
        f"/admin/users/{user.uuid}",
        data={
            "display_name": "New Name",
            "email": user.email,
            "role": "coordinator",
            "areas": ["E06000009", "E06000008"],
        },
    )
    assert response.status_code == 302
    db.session.refresh(user)
    assert (
        user.role is Role.COORDINATOR and len(user.areas) == 2 and user.display_name == "New Name"
    )


def test_admin_cannot_demote_or_disable_themselves(admin_client: Any) -> None:
    me = admin_client.admin
    response = admin_client.post(
        f"/admin/users/{me.uuid}",
        data={
            "display_name": me.display_name,
            "email": me.email,
            "role": "lead",
            "areas": ["E06000009"],
        },
    )
    assert b"cannot remove your own administrator role" in response.data
    response = admin_client.post(f"/admin/users/{me.uuid}/disable", follow_redirects=True)
    assert b"You cannot disable your own account" in response.data
    db.session.refresh(me)
    assert me.role is Role.ADMIN and me.disabled_at is None


def test_disable_enable_and_reset_password(app: Any, admin_client: Any, create_user: Any) -> None:
    user = create_user(Role.LEAD)
    response = admin_client.post(f"/admin/users/{user.uuid}/disable", follow_redirects=True)
    assert b"account is disabled" in response.data
    assert (
        app.test_client()
        .post("/login", data={"email": user.email, "password": PASSWORD})
        .status_code
        == 200
    )
    admin_client.post(f"/admin/users/{user.uuid}/enable")
    response = admin_client.post(f"/admin/users/{user.uuid}/reset-password", follow_redirects=True)
    assert b"e-mailed them a link to choose a new one" in response.data
    token = link_token_for(user.email)
    assert token.encode() not in response.data
    fresh = app.test_client()
    # The old password no longer works; the link does.
    assert fresh.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 200
    assert (
        fresh.post(
            f"/password/{token}",
            data={"password": "quiet harbour kestrel 93", "confirm": "quiet harbour kestrel 93"},
        ).location
        == "/"
    )
    actions = db.session.scalars(
        db.select(AuditEntry.action)
        .where(AuditEntry.object_uuid == str(user.uuid))
        .order_by(AuditEntry.seq)
    ).all()
    assert actions[-6:] == [
        "account.disabled", "account.enabled", "account.password_reset",
        "account.password_link_sent", "account.password_changed", "account.password_set_by_link",
    ]


def test_user_list_filters(admin_client: Any, create_user: Any) -> None:
    create_user(Role.LEAD, email="leader@example.org")
    create_user(Role.COORDINATOR, email="coord@example.org")
    page = admin_client.get("/admin/users?role=lead").get_data(as_text=True)
    assert "leader@example.org" in page and "coord@example.org" not in page
    page = admin_client.get("/admin/users?q=COORD").get_data(as_text=True)
    assert "coord@example.org" in page and "leader@example.org" not in page


def test_areas_and_agencies_are_managed_with_clear_messages(admin_client: Any) -> None:
    response = admin_client.post("/admin/areas/new", data={"ons_code": "blackpool", "name": "X"})
    assert b"the 9-character ONS code" in response.data
    response = admin_client.post(
        "/admin/areas/new", data={"ons_code": "e06000009", "name": "Again"}
    )
    assert b"already an area with the code E06000009" in response.data
    response = admin_client.post(
        "/admin/areas/new",
        data={
            "ons_code": "e10000017",
            "name": "Lancashire",
            "network": "Pan-Lancashire",
            "is_active": "y",
        },
    )
    assert response.status_code == 302
    assert (
        db.session.scalar(db.select(Area).where(Area.ons_code == "E10000017")).name == "Lancashire"
    )

    response = admin_client.post(
        "/admin/agencies/new", data={"code": "nw ambulance", "name": "N", "sector": "ambulance"}
    )
    assert b"2 to 20 capital letters" in response.data
    response = admin_client.post(
        "/admin/agencies/new",
        data={"code": "nwas", "name": "NWAS", "sector": "ambulance", "is_active": "y"},
    )
    assert response.status_code == 302
    agency = db.session.scalar(db.select(Agency).where(Agency.code == "NWAS"))
    response = admin_client.post(
        f"/admin/agencies/{agency.uuid}",
        data={"code": "NWAS", "name": "North West Ambulance Service", "sector": "ambulance"},
    )
    db.session.refresh(agency)
    assert agency.name == "North West Ambulance Service" and agency.is_active is False


def test_audit_log_filters_and_validation(admin_client: Any, create_user: Any, app: Any) -> None:
    victim = create_user(Role.LEAD)
    app.test_client().post("/login", data={"email": victim.email, "password": "nope"})
    page = admin_client.get("/admin/audit?action=auth.login_failed").get_data(as_text=True)
    assert victim.email in page and "<code>account.created</code>" not in page
    page = admin_client.get("/admin/audit?outcome=failure").get_data(as_text=True)
    assert "<code>auth.login_failed</code>" in page
    page = admin_client.get(f"/admin/audit?record={victim.uuid}").get_data(as_text=True)
    assert "<code>account.created</code>" in page and "<code>auth.login_failed</code>" not in page
    page = admin_client.get("/admin/audit?record=123").get_data(as_text=True)
    assert "A record id looks like" in page
    page = admin_client.get("/admin/audit?since=2026-05-02&until=2026-05-01").get_data(as_text=True)
    assert "The end date is before the start date" in page
    page = admin_client.get("/admin/audit?since=yesterday").get_data(as_text=True)
    assert "Not a valid date value" in page
