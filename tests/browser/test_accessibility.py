"""Every kind of page, as each role sees it with the demo's data, checked by axe-core (the
``axe-playwright-python`` package's bundled copy, run inside Debian chromium) against the WCAG
2.0, 2.1 and 2.2 A and AA rules it can test: names and labels, headings and landmarks, table
headers, ARIA, and colour contrast as rendered. What axe cannot judge (whether a label makes
sense, keyboard order) the other browser tests walk by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page
from sqlalchemy import select

from dr_panel import demo
from dr_panel.alerts.models import Channel, Delivery
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.browser.conftest import LiveApp, Pages, sign_in

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
DEMO_AREAS = ("E06000009", "E06000008", "E10000017")

PUBLIC = ["/login", "/report-a-drug-concern"]
# Lists and forms by role, then the first detail page each list links to.
PAGES: dict[Role, list[str]] = {
    Role.COORDINATOR: [
        "/", "/cases", "/cases/new", "/meetings", "/actions", "/ldis/queue", "/ldis/signals",
        "/ldis/reports", "/ldis/alerts", "/ldis/signal-settings", "/ldis/subscribers",
        "/ldis/subscribers/new", "/ldis/reports/new", "/trends/", "/trends/extract",
    ],
    Role.LEAD: ["/", "/trends/", "/trends/populations", "/ldis/alerts"],
    Role.PANEL_MEMBER: ["/", "/cases", "/ldis/alerts", "/ldis/reports/new"],
    Role.AGENCY_CONTRIBUTOR: ["/", "/requests", "/notify"],
    Role.ADMIN: ["/", "/admin/users", "/admin/areas", "/admin/audit"],
}
FOLLOW: list[tuple[str, str]] = [  # (list page, link name pattern) for the coordinator
    ("/ldis/queue", r"^Signal:"),
    ("/ldis/reports", r"^DC-"),
    ("/ldis/alerts", r"^LDIS-"),
    ("/ldis/signal-settings", r"^Change"),
    ("/ldis/subscribers", r"."),
    ("/cases", r"^(NFO|DRD)-"),
]


def violations(page: Page, axe: Axe) -> list[str]:
    page.wait_for_load_state("networkidle")
    result = axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA},
                                    "resultTypes": ["violations"]})
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at "
        f"{[n['target'] for n in v['nodes']][:3]}"
        for v in result.response["violations"]
    ]


@pytest.mark.browser
def test_every_page_meets_the_wcag_aa_rules_axe_can_check(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    with live.app.app_context():
        demo.load()
        delivery = db.session.scalars(
            select(Delivery).where(Delivery.channel == Channel.EMAIL).order_by(Delivery.id)
        ).first()
        assert delivery is not None
        public = [*PUBLIC, f"/ldis/ack/{delivery.uuid}"]  # the page an alert e-mail links to
        db.session.remove()
    axe = Axe()
    found: list[str] = []
    checked = 0
    anonymous = pages.new()
    for path in public:
        anonymous.goto(live.url + path)
        found += violations(anonymous, axe)
        checked += 1
    for role, paths in PAGES.items():
        person: Any = live.add_user(role, areas=DEMO_AREAS)
        page = pages.new()
        sign_in(page, live, person)
        for path in paths:
            page.goto(live.url + path)
            assert page.url.endswith(path) or path == "/", (role, path, page.url)
            found += violations(page, axe)
            checked += 1
        if role is Role.COORDINATOR:
            for listing, pattern in FOLLOW:
                page.goto(live.url + listing)
                page.get_by_role("main").get_by_role("link", name=re.compile(pattern)).last.click()
                page.wait_for_load_state()
                assert page.url != live.url + listing, listing
                found += violations(page, axe)
                checked += 1
    assert checked == len(public) + sum(map(len, PAGES.values())) + len(FOLLOW)
    assert found == []
