"""The admin's account form answers garbage with its errors, never a 500 (issue 13: an invalid
role with an agency answered 500), and saves nothing half-way."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage

ROLES = [r.value for r in Role]
VALUE = st.one_of(
    st.sampled_from(ROLES + ["", "ADMIN", "root", "0", "None", "coordinator ", "\x00", "%"]),
    st.sampled_from(["POLICE", "TREATMENT", "E06000009", "E06000008", "nobody@example.org"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=5),
)
FIELDS = ["display_name", "email", "role", "agency", "areas"]
BODY = st.lists(st.tuples(st.sampled_from(FIELDS), VALUE), max_size=12)


def _counts() -> tuple[int, int]:
    return (
        db.session.scalar(db.select(db.func.count()).select_from(User)),
        db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)),
    )


def test_an_invalid_role_with_an_agency_is_a_clear_error(
    app: Any, create_user: Any, login: Any
) -> None:
    client = app.test_client()
    login(client, create_user(Role.ADMIN))
    before = _counts()
    response = client.post(
        "/admin/users/new",
        data={
            "display_name": "A",
            "email": "a@example.org",
            "role": "root",
            "agency": "POLICE",
            "areas": ["E06000009"],
        },
    )
    assert response.status_code == 200
    assert b"Choose one of the options listed for role" in response.data
    assert _counts() == before


def test_garbage_in_the_account_form_never_answers_500(
    app: Any, create_user: Any, login: Any
) -> None:
    client = app.test_client()
    admin = create_user(Role.ADMIN)
    login(client, admin)
    target = create_user(Role.LEAD)

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=BODY, edit=st.booleans())
    def check(body: list[tuple[str, str]], edit: bool) -> None:
        url = f"/admin/users/{target.uuid}" if edit else "/admin/users/new"
        before = _counts()
        response = client.post(url, data=MultiDict(body))
        assert response.status_code in (200, 302), response.status_code
        if response.status_code == 200:  # the form again, with its errors: nothing saved
            assert b"error-summary" in response.data or b"There is a problem" in response.data
            assert _counts() == before
        db.session.rollback()

    check()
