"""Findings and learning: factors per domain scored like the child-death form, missed
opportunities, preventability, learning points tagged with seeded themes; text encrypted at rest;
a stale save refused with the input kept."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.extensions import db
from dr_panel.reviews import findings as fd
from tests.cases.test_intake import create


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009",))


@pytest.fixture
def ready_case(coordinator: Any) -> Any:
    case = create(coordinator)
    workflow.move(case, "review", by=coordinator)
    workflow.move(case, "ready", by=coordinator)
    db.session.commit()
    return case


def version_on(html: str) -> str:
    match = re.search(r'name="version" type="hidden" value="(\d+)"', html)
    assert match, "no version field on the page"
    return match.group(1)


def form_data(version: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": version,
        "missed_opportunities": "",
        "preventability": "not_known",
        "learning_point": "",
    }
    for d in fd.Domain:
        data[f"{d.value}_description"] = ""
        data[f"{d.value}_score"] = ""
    data.update(extra)
    return data


def test_themes_are_seeded(app: Any) -> None:
    codes = db.session.scalars(select(fd.Theme.code)).all()
    assert len(codes) == 10 and "no_naloxone" in codes and "prison_release" in codes
    assert fd.ensure_themes() == 0  # idempotent


def test_the_migration_seeds_the_same_themes(tmp_path: Any) -> None:
    from flask_migrate import upgrade

    from dr_panel import create_app
    from tests.conftest import make_config

    url = f"sqlite:///{tmp_path / 'seeded.sqlite3'}"
    migrated = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=url))
    with migrated.app_context():
        upgrade(revision="0007_findings")
        rows = db.session.execute(text("SELECT code, name FROM themes ORDER BY id")).all()
        assert [tuple(r) for r in rows] == fd.SEED_THEMES
        db.session.remove()
        db.engine.dispose()


def test_save_and_read_back_encrypted_at_rest_and_audited(
    app: Any, client: Any, coordinator: Any, ready_case: Any, create_user: Any, login: Any
) -> None:
    member = create_user(Role.PANEL_MEMBER, agency="POLICE", areas=("E06000009",))
    login(client, member)
    url = f"/cases/{ready_case.uuid}/findings"
    page = client.get(url)
    assert page.status_code == 200
    version = version_on(page.get_data(as_text=True))
    assert version == "0"
    response = client.post(
        url,
        data=form_data(
            version,
            person_description="Released from prison three weeks before",
            person_score="may_have_contributed",
            person_modifiable="y",
            service_provision_description="No naloxone kit given on release",
            service_provision_score="fully_explains",
            missed_opportunities="Probation did not refer to treatment",
            preventability="potentially_preventable",
            learning_point="Give naloxone to everyone leaving prison",
            themes=["prison_release", "no_naloxone"],
        ),
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    html = client.get(url).get_data(as_text=True)
    for shown in (
        "Released from prison three weeks before",
        "May have contributed",
        "Modifiable",
        "No naloxone kit given on release",
        "Fully explains",
        "Probation did not refer to treatment",
        "Potentially preventable",
        "Give naloxone to everyone leaving prison",
        "Recent prison release",
        "No naloxone at the scene",
    ):
        assert shown in html, shown
    assert version_on(html) == "1"

    view = fd.findings_of(ready_case)
    assert [f.factor.is_modifiable for f in view.factors[fd.Domain.PERSON]] == [True]
    assert view.factors[fd.Domain.FAMILY_SOCIAL] == []
    (point,) = view.learning_points
    assert {t.code for t in point.point.themes} == {"prison_release", "no_naloxone"}
    tagged = db.session.execute(text("SELECT count(*) FROM learning_point_themes")).scalar_one()
    assert tagged == 2

    stored = " ".join(
        str(v)
        for sql in (
            "SELECT missed_opportunities_enc FROM case_reviews",
            "SELECT description_enc FROM case_factors",
            "SELECT text_enc FROM learning_points",
        )
        for v in db.session.execute(text(sql)).scalars()
    )
    for secret in ("Probation", "prison", "naloxone", "Released"):
        assert secret not in stored
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "case.findings_saved")
    ).one()
    details = json.loads(entry.details or "{}")
    assert details["factors_added"] == 2 and details["themes_tagged"] == 2
    assert "naloxone" not in str(entry.details) and "Probation" not in str(entry.details)


def test_a_stale_save_is_refused_and_the_input_kept(
    app: Any, coordinator: Any, ready_case: Any, create_user: Any, login: Any
) -> None:
    member = create_user(Role.PANEL_MEMBER, agency="POLICE", areas=("E06000009",))
    url = f"/cases/{ready_case.uuid}/findings"
    first, second = app.test_client(), app.test_client()
    login(first, coordinator)
    login(second, member)
    v1 = version_on(first.get(url).get_data(as_text=True))
    v2 = version_on(second.get(url).get_data(as_text=True))
    saved = first.post(url, data=form_data(v1, missed_opportunities="GP letter not followed up"))
    assert saved.status_code == 302
    refused = second.post(
        url,
        data=form_data(
            v2,
            missed_opportunities="Housing did not pass on the eviction",
            wider_environment_description="New supply of nitazenes locally",
            wider_environment_score="may_have_contributed",
        ),
    )
    assert refused.status_code == 409
    html = refused.get_data(as_text=True)
    assert "Someone else saved these findings after you opened them" in html
    assert "Housing did not pass on the eviction" in html  # their input, kept
    assert "New supply of nitazenes locally" in html
    assert "GP letter not followed up" in html  # what is saved now, to merge with
    assert db.session.scalar(select(func.count()).select_from(fd.Factor)) == 0
    # After merging, the save goes through (the page now carries the current version).
    retry = second.post(
        url, data=form_data(version_on(html), missed_opportunities="GP letter; housing")
    )
    assert retry.status_code == 302
    assert fd.findings_of(ready_case).missed_opportunities == "GP letter; housing"


def test_a_factor_needs_a_score_and_themes_need_a_learning_point(
    app: Any, client: Any, coordinator: Any, ready_case: Any, login: Any
) -> None:
    login(client, coordinator)
    url = f"/cases/{ready_case.uuid}/findings"
    response = client.post(url, data=form_data("0", person_description="Alone at home"))
    assert response.status_code == 400
    assert "Score the factor in the person" in response.get_data(as_text=True)
    response = client.post(url, data=form_data("0", themes=["using_alone"]))
    assert response.status_code == 400
    assert "Write the learning point" in response.get_data(as_text=True)
    assert fd.review_of(ready_case) is None


def test_findings_wait_until_the_case_is_ready_for_panel(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    case = create(coordinator)
    login(client, coordinator)
    url = f"/cases/{case.uuid}/findings"
    page = client.get(url).get_data(as_text=True)
    assert "Findings are recorded once a case is ready for panel" in page
    assert 'name="missed_opportunities"' not in page
    refused = client.post(url, data=form_data("0", missed_opportunities="Too early"))
    assert refused.status_code == 302
    assert "ready for panel" in client.get(refused.location).get_data(as_text=True)
    assert fd.review_of(case) is None
    with pytest.raises(fd.FindingsError):
        fd.save_findings(
            case,
            fd.FindingsInput("x", fd.Preventability.NOT_KNOWN),
            by=coordinator,
            expected_version=0,
        )


@pytest.mark.parametrize("role", [Role.LEAD, Role.AGENCY_CONTRIBUTOR, Role.ADMIN])
def test_leads_contributors_and_admins_are_refused(
    app: Any, client: Any, ready_case: Any, create_user: Any, login: Any, role: Role
) -> None:
    login(client, create_user(role))
    url = f"/cases/{ready_case.uuid}/findings"
    assert client.get(url).status_code == 403
    assert client.post(url, data=form_data("0")).status_code == 403


def test_out_of_area_is_not_found(
    app: Any, client: Any, ready_case: Any, create_user: Any, login: Any
) -> None:
    login(client, create_user(Role.PANEL_MEMBER, agency="POLICE", areas=("E06000008",)))
    url = f"/cases/{ready_case.uuid}/findings"
    assert client.get(url).status_code == 404
    assert client.post(url, data=form_data("0", missed_opportunities="x")).status_code == 404
    assert fd.review_of(ready_case) is None


def test_the_case_page_links_to_findings(
    app: Any, client: Any, coordinator: Any, ready_case: Any, login: Any
) -> None:
    login(client, coordinator)
    html = client.get(f"/cases/{ready_case.uuid}").get_data(as_text=True)
    assert f"/cases/{ready_case.uuid}/findings" in html
