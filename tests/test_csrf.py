"""CSRF is enforced on every state change when on (the suite otherwise runs with it off)."""

from __future__ import annotations

from typing import Any

from dr_panel.auth import services
from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from tests.conftest import PASSWORD, csrf_token_from


def test_posts_without_a_token_are_refused_and_change_nothing(app_factory: Any) -> None:
    app = app_factory(WTF_CSRF_ENABLED=True)
    with app.app_context():
        admin, _ = services.create_user(
            services.AccountDetails(
                email="admin@example.org",
                display_name="Ada Admin",
                role=Role.ADMIN,
                area_codes=["E06000009"],
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        target, _ = services.create_user(
            services.AccountDetails(
                email="target@example.org",
                display_name="Tara Get",
                role=Role.LEAD,
                area_codes=["E06000009"],
            ),
            password=PASSWORD,
            by=None,
            must_change=False,
        )
        db.session.commit()
        client = app.test_client()

        # Even the sign-in form needs its token.
        refused = client.post("/login", data={"email": admin.email, "password": PASSWORD})
        assert refused.status_code == 400 and b"nothing was saved" in refused.data
        token = csrf_token_from(client.get("/login").data)
        assert (
            client.post(
                "/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": token}
            ).status_code
            == 302
        )

        disable = f"/admin/users/{target.uuid}/disable"
        assert client.post(disable).status_code == 400
        assert client.post(disable, data={"csrf_token": "forged"}).status_code == 400
        assert db.session.get(User, target.id).disabled_at is None

        page = client.get(f"/admin/users/{target.uuid}")
        response = client.post(disable, data={"csrf_token": csrf_token_from(page.data)})
        assert response.status_code == 302
        db.session.expire_all()
        assert db.session.get(User, target.id).disabled_at is not None

        # Signing out is a POST with a token too: a link on another site cannot sign you out.
        assert client.post("/logout").status_code == 400
        assert client.get("/").status_code == 200
