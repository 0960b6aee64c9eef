"""No one sees another's password (issue 13, finding 2): links e-mailed to the person, forgot my
password, announcements of new access to identifiers, and the pre-sign-in state kept server-side.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.sessions import SecureCookieSessionInterface

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import PasswordLink, Role, User
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from tests.auth.support import body_of, link_messages, link_token_for
from tests.conftest import PASSWORD, totp_code

NEW_PASSWORD = "quiet harbour kestrel 93"
# What the admin pages used to show: four groups of six hex digits.
OLD_TEMPORARY = re.compile(rb"[0-9a-f]{6}(-[0-9a-f]{6}){3}")


def audits(action: str) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            db.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
    )


def choose(client: Any, token: str, password: str = NEW_PASSWORD) -> Any:
    return client.post(f"/password/{token}", data={"password": password, "confirm": password})


@pytest.fixture
def admin_client(app: Any, create_user: Any, login: Any) -> Any:
    client = app.test_client()
    client.admin = create_user(Role.ADMIN, areas=("E06000009", "E06000008"))
    login(client, client.admin)
    return client


def new_account(admin_client: Any, email: str, role: str = "coordinator", **extra: Any) -> Any:
    data = {"display_name": "Casey Ward", "email": email, "role": role, "areas": ["E06000009"]}
    data.update(extra)
    return admin_client.post("/admin/users/new", data=data, follow_redirects=True)


# -- the attack: an admin makes a coordinator and signs in as it -----------------------------------


def test_admin_who_creates_a_coordinator_never_holds_anything_to_sign_in_with(
    app: Any, admin_client: Any
) -> None:
    seen = [new_account(admin_client, "casey.ward@example.org").data]
    user = db.session.scalar(db.select(User).where(User.email == "casey.ward@example.org"))
    seen.append(admin_client.get(f"/admin/users/{user.uuid}").data)
    seen.append(admin_client.get("/admin/users").data)
    seen.append(
        admin_client.post(f"/admin/users/{user.uuid}/reset-password", follow_redirects=True).data
    )
    everything = b"".join(seen)
    assert not OLD_TEMPORARY.search(everything)
    token = link_token_for("casey.ward@example.org")
    assert token.encode() not in everything
    # Whatever the admin tries from what they were shown, the account does not open.
    attacker = app.test_client()
    for guess in {*re.findall(rb"<code[^>]*>([^<]+)<", everything), b"", PASSWORD.encode()}:
        response = attacker.post(
            "/login", data={"email": user.email, "password": guess.decode() or "x"}
        )
        assert response.status_code == 200 and b"is not right" in response.data
    assert attacker.get("/cases").status_code == 302
    # The link lives only in the person's mail, and both links went there, not to the admin.
    mails = link_messages("casey.ward@example.org")
    assert len(mails) == 2 and not link_messages(admin_client.admin.email)


def test_a_link_works_once(app: Any, admin_client: Any) -> None:
    new_account(admin_client, "casey.ward@example.org")
    token = link_token_for("casey.ward@example.org")
    person = app.test_client()
    assert choose(person, token).location == "/"
    again = choose(app.test_client(), token, "another quiet harbour 77")
    assert again.status_code == 410 and b"already been used" in again.data
    assert b"ask for a new link" in again.data
    # Only the first password was set.
    fresh = app.test_client()
    response = fresh.post(
        "/login", data={"email": "casey.ward@example.org", "password": NEW_PASSWORD}
    )
    assert response.location == "/"
    refused = audits("account.password_link_refused")[-1]
    assert refused.outcome is Outcome.DENIED and '"used"' in refused.details


def test_a_link_expires_after_24_hours_for_a_new_account(app: Any, admin_client: Any) -> None:
    new_account(admin_client, "casey.ward@example.org")
    link = db.session.scalars(db.select(PasswordLink)).one()
    assert (
        timedelta(hours=23, minutes=59) < link.expires_at - link.created_at <= timedelta(hours=24)
    )
    link.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = choose(app.test_client(), link_token_for("casey.ward@example.org"))
    assert response.status_code == 410 and b"This link has expired" in response.data
    assert db.session.scalar(db.select(User.password_changed_at).where(User.id == link.user_id))


def test_an_unknown_link_is_not_found_and_audited(client: Any) -> None:
    response = client.get("/password/" + "a" * 52)
    assert response.status_code == 404 and b"not valid" in response.data
    assert audits("account.password_link_refused")[-1].details == '{"reason":"unknown"}'


def test_only_a_hash_of_the_link_is_stored(app: Any, admin_client: Any) -> None:
    new_account(admin_client, "casey.ward@example.org")
    token = link_token_for("casey.ward@example.org")
    link = db.session.scalars(db.select(PasswordLink)).one()
    assert token not in link.token_hash and token not in repr(link)
    for entry in db.session.scalars(db.select(AuditEntry)):
        assert token not in (entry.details or "")


def test_a_weak_password_is_refused_and_the_link_still_works(app: Any, admin_client: Any) -> None:
    new_account(admin_client, "casey.ward@example.org")
    token = link_token_for("casey.ward@example.org")
    person = app.test_client()
    weak = choose(person, token, "password1234")
    assert weak.status_code == 200 and b"common or leaked" in weak.data
    mismatch = person.post(
        f"/password/{token}", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"}
    )
    assert b"The two passwords are different" in mismatch.data
    assert choose(person, token).location == "/"


def test_the_link_is_the_password_stage_only_the_second_factor_still_follows(
    app_factory: Any,
) -> None:
    app = app_factory(REQUIRE_2FA=True)
    with app.app_context():
        from dr_panel.auth import services

        admin, _ = services.create_user(
            services.AccountDetails("root@example.org", "Root Admin", Role.ADMIN, ["E06000009"]),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        services.create_user(
            services.AccountDetails(
                "casey@example.org", "Casey Ward", Role.COORDINATOR, ["E06000009"]
            ),
            password=None,
            by=admin,
        )
        db.session.commit()
        person = app.test_client()
        response = choose(person, link_token_for("casey@example.org"))
        assert response.location == "/login/enrol"
        assert person.get("/cases").location.startswith("/login")


def test_a_person_with_a_second_factor_is_asked_for_a_code_after_the_link(
    app: Any, create_user: Any
) -> None:
    user = create_user(Role.COORDINATOR, totp=True)
    client = app.test_client()
    client.post("/password/forgot", data={"email": user.email})
    response = choose(client, link_token_for(user.email))
    assert response.location == "/login/code"
    assert client.post("/login/code", data={"code": totp_code(user)}).location == "/"


def test_a_new_link_or_password_retires_the_old_links(app: Any, create_user: Any) -> None:
    user = create_user(Role.LEAD)
    client = app.test_client()
    client.post("/password/forgot", data={"email": user.email})
    first = link_token_for(user.email)
    client.post("/password/forgot", data={"email": user.email})
    second = link_token_for(user.email)
    assert first != second
    assert choose(app.test_client(), first).status_code == 410
    assert choose(app.test_client(), second).location == "/"


def test_the_e_mail_carries_only_the_link(app: Any, admin_client: Any) -> None:
    new_account(admin_client, "casey.ward@example.org")
    user = db.session.scalar(db.select(User).where(User.email == "casey.ward@example.org"))
    message = link_messages("casey.ward@example.org")[0]
    text = message.subject + body_of(message)
    for secret in (str(user.uuid), user.email, admin_client.admin.email, str(user.id) + "/"):
        assert secret not in text
    body = body_of(message)
    assert "24 hours" in body and "works once" in body


def test_once_sent_the_outbox_keeps_no_live_link(app: Any, admin_client: Any) -> None:
    """A copy of the database, or a backup, must not hold a link that signs someone in: the
    outbox erases such a message's body once the mail server has taken it (the folder transport
    stands for the person's mailbox here)."""
    from dr_panel.mail import services as mail

    new_account(admin_client, "casey.ward@example.org")
    mail.deliver()
    db.session.expire_all()
    message = link_messages("casey.ward@example.org")[0]
    assert message.sent_at is not None
    token = link_token_for("casey.ward@example.org")  # from the mailbox
    assert message.body_text == mail.ERASED_BODY and message.body_html is None
    assert token not in message.subject + message.body_text


# -- forgot my password -------------------------------------------------------------------------


def _forgot(app: Any, email: str) -> tuple[int, str, bytes]:
    client = app.test_client()
    response = client.post("/password/forgot", data={"email": email})
    page = client.get(response.location).data if response.location else response.data
    page = re.sub(rb'name="csrf_token"[^>]*>', b"", page)
    return response.status_code, response.location, page


def test_forgot_password_answers_the_same_for_known_unknown_and_disabled_accounts(
    app: Any, create_user: Any
) -> None:
    known = create_user(Role.COORDINATOR, email="known@example.org")
    disabled = create_user(Role.LEAD, email="gone@example.org")
    disabled.disabled_at = utcnow()
    db.session.commit()
    answers = {
        email: _forgot(app, email)
        for email in ("known@example.org", "nobody@example.org", "gone@example.org")
    }
    assert len(set(answers.values())) == 1, "the answer tells who has an account"
    status, location, page = answers["known@example.org"]
    assert status == 302 and b"If that address has a dr-panel account" in page
    assert b"known@example.org" not in page
    # Only the live account was mailed; every request is audited, saying which it was.
    assert link_messages(known.email) and not link_messages(disabled.email)
    assert not link_messages("nobody@example.org")
    kinds = [e.details for e in audits("account.password_link_requested")]
    assert kinds == ['{"account":"known"}', '{"account":"unknown"}', '{"account":"disabled"}']


def test_forgot_password_does_not_lock_the_person_out(app: Any, create_user: Any) -> None:
    """A stranger asking for a link must not stop the real password working."""
    user = create_user(Role.LEAD)
    app.test_client().post("/password/forgot", data={"email": user.email})
    response = app.test_client().post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.location == "/"


def test_forgot_password_is_throttled_per_address(app: Any, create_user: Any) -> None:
    user = create_user(Role.LEAD)
    statuses = [
        app.test_client().post("/password/forgot", data={"email": user.email}).status_code
        for _ in range(6)
    ]
    assert statuses == [302] * 5 + [429]
    assert len(link_messages(user.email)) == 5
    # Unknown addresses are throttled the same way: the limit does not tell them apart.
    statuses = [
        app.test_client().post("/password/forgot", data={"email": "x@example.org"}).status_code
        for _ in range(6)
    ]
    assert statuses == [302] * 5 + [429]


def test_forgot_password_form_errors_are_clear(client: Any) -> None:
    response = client.post("/password/forgot", data={"email": ""})
    assert response.status_code == 200 and b"Enter your e-mail address" in response.data
    assert b"Forgotten your password?" in client.get("/login").data


# -- announcing access to identifiers ------------------------------------------------------------


def announcements() -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            db.select(OutboxMessage)
            .where(OutboxMessage.kind == "account.access_announced")
            .order_by(OutboxMessage.id)
        )
    )


def test_granting_a_coordinator_role_is_announced_to_that_areas_coordinators(
    admin_client: Any, create_user: Any
) -> None:
    here = create_user(Role.COORDINATOR, areas=("E06000009",), email="here@example.org")
    create_user(Role.COORDINATOR, areas=("E06000008",), email="elsewhere@example.org")
    new_account(admin_client, "casey.ward@example.org")
    sent = announcements()
    assert [m.to_address for m in sent] == [here.email]
    assert "Blackpool" in sent[0].body_text and "casey.ward@example.org" not in sent[0].body_text
    entry = audits("account.access_announced")[-1]
    assert '"told":1' in entry.details and entry.actor_uuid == admin_client.admin.uuid


def test_adding_an_area_or_changing_role_or_address_is_announced(
    admin_client: Any, create_user: Any
) -> None:
    create_user(Role.COORDINATOR, areas=("E06000009",), email="here@example.org")
    there = create_user(Role.COORDINATOR, areas=("E06000008",), email="there@example.org")
    lead = create_user(Role.LEAD, areas=("E06000009",), email="lee@example.org")
    base = {"display_name": "Lee", "email": lead.email, "areas": ["E06000009"]}
    # A lead reaches no identifiers: no announcement.
    admin_client.post(f"/admin/users/{lead.uuid}", data={**base, "role": "lead"})
    assert announcements() == []
    admin_client.post(
        f"/admin/users/{lead.uuid}", data={**base, "role": "panel_member", "agency": "POLICE"}
    )
    assert [m.to_address for m in announcements()] == ["here@example.org"]
    admin_client.post(
        f"/admin/users/{lead.uuid}",
        data={
            **base,
            "role": "panel_member",
            "agency": "POLICE",
            "areas": ["E06000009", "E06000008"],
        },
    )
    assert [m.to_address for m in announcements()][-1:] == [there.email]
    # The admin points the account at their own mailbox: announced, and the person's
    # unused links stop working.
    app = admin_client.application
    app.test_client().post("/password/forgot", data={"email": lead.email})
    token = link_token_for(lead.email)
    admin_client.post(
        f"/admin/users/{lead.uuid}",
        data={
            **base,
            "email": "admins-other@example.org",
            "role": "panel_member",
            "agency": "POLICE",
            "areas": ["E06000009", "E06000008"],
        },
    )
    assert len(announcements()) == 4 and "new e-mail address" in announcements()[-1].body_text
    assert choose(app.test_client(), token).status_code == 410


def test_with_no_coordinator_in_the_area_the_other_admins_are_told(
    admin_client: Any, create_user: Any
) -> None:
    other = create_user(Role.ADMIN, email="other-admin@example.org")
    new_account(admin_client, "casey.ward@example.org")
    assert [m.to_address for m in announcements()] == [other.email]


# -- the sign-in in progress lives server-side ---------------------------------------------------


def _cookie_payload(app: Any, client: Any) -> tuple[dict[str, Any], str]:
    cookie = client.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    assert cookie is not None
    data = SecureCookieSessionInterface().get_signing_serializer(app).loads(cookie.value)
    return data, cookie.value


def test_the_pre_sign_in_cookie_holds_no_e_mail_or_id(app: Any, create_user: Any) -> None:
    user = create_user(Role.COORDINATOR, totp=True, email="casey@example.org")
    client = app.test_client()
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}).location == (
        "/login/code"
    )
    data, raw = _cookie_payload(app, client)
    flat = repr(data)
    for secret in (user.email, "casey", str(user.uuid), user.uuid.hex):
        assert secret not in flat and secret not in raw
    assert set(data) <= {"pending", "_flashes", "csrf_token"}
    assert isinstance(data["pending"], str) and len(data["pending"]) >= 40
    assert user.id not in [v for v in data.values() if isinstance(v, int)]
    # The token alone is what signs in: it still works, and a forged one does not.
    with client.session_transaction() as sess:
        sess["pending"] = "x" * 43
    assert client.post("/login/code", data={"code": totp_code(user)}).location == "/login"


def test_a_finished_sign_in_leaves_no_pending_row(app: Any, create_user: Any, login: Any) -> None:
    from dr_panel.auth.models import PendingSignIn

    user = create_user(Role.COORDINATOR, totp=True)
    client = app.test_client()
    assert login(client, user).location == "/"
    assert db.session.scalar(db.select(db.func.count()).select_from(PendingSignIn)) == 0


# -- the operator's CLI ---------------------------------------------------------------------------


def test_cli_can_create_an_account_with_a_link_instead_of_a_password(app: Any, runner: Any) -> None:
    from dr_panel.cli import main

    args = ["users", "create", "--email", "op@example.org", "--role", "lead", "--area",
            "E06000009", "--send-link"]  # fmt: skip
    result = runner.invoke(main, args, input="")
    assert result.exit_code == 0, result.output
    token = link_token_for("op@example.org")
    assert token not in result.output and "outbox" in result.output
    assert choose(app.test_client(), token).location == "/"
