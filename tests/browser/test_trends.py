"""Trends in the browser: a lead finds the dashboard from the home page, chooses a view, gets a
bookmarkable address, sees counts only under disclosure control, the charts drawn and a CSV to
download; the coordinator of the area sees the same view exact."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from dr_panel.auth.models import Role, User
from dr_panel.extensions import db
from tests.browser.conftest import LiveApp, Pages, screenshot, sign_in
from tests.browser.test_cases import h1
from tests.trends import protection, t2_data


@pytest.mark.browser
def test_a_lead_chooses_a_view_and_never_sees_a_small_count(
    serve: Callable[..., LiveApp], pages: Pages
) -> None:
    live = serve()
    dana = live.add_user(Role.COORDINATOR, name="Dana Fielding",
                         areas=("E06000009", "E06000008"))
    lee = live.add_user(Role.LEAD, name="Lee Analyst", areas=("E06000009", "E06000008"))
    with live.app.app_context():
        t2_data.build(db.session.query(User).filter_by(email=dana.email).one())
        t2_data.load_sample_populations()
        # What the published method gives for these cases (perturbed by their cell keys, then
        # rounded): February's 12 and April's 13 show as 10 or 15, the year's 28 as 25 or 30.
        blackpool = ("E06000009",)
        expected = {m: protection.shown(areas=blackpool, **protection.month(2025, n)).text
                    for m, n in (("Feb 2025", 2), ("Apr 2025", 4))}
        expected["Total"] = protection.shown(areas=blackpool, **protection.year(2025)).text
        db.session.remove()

    lead = pages.new()
    sign_in(lead, live, lee)
    lead.get_by_role("link", name="See the trends").click()
    expect(h1(lead)).to_have_text("Trends")
    lead.get_by_label("Break down by").select_option(label="Period")
    lead.get_by_label("Periods").select_option("month")
    lead.get_by_label("From (month)").fill("2025-01")
    lead.get_by_label("To (month)").fill("2025-04")
    lead.get_by_label("Area").select_option("E06000009")
    lead.get_by_role("button", name="Show").click()
    # The choice is in the address, so the view can be bookmarked and shared.
    expect(lead).to_have_url(re.compile(r"by=period.*from=2025-01.*to=2025-04"))
    table = lead.get_by_role("table").first
    rows = {
        r.locator("th").first.inner_text(): r.locator("td").first.inner_text()
        for r in table.locator("tbody tr, tfoot tr").all()
    }
    # January's 3 overdoses are "*", March is "0"; February, April and the total are
    # perturbed and rounded. A lead sees the whole calendar year, and is told why.
    assert rows["Jan 2025"] == "*" and rows["Mar 2025"] == "0" and rows["Dec 2025"] == "0"
    assert rows["Feb 2025"] == expected["Feb 2025"] and rows["Apr 2025"] == expected["Apr 2025"]
    assert next(v for k, v in rows.items() if k.startswith("Total")) == expected["Total"]
    expect(lead.get_by_role("main")).to_contain_text("counts from 1 to 7 are shown as *")
    expect(lead.get_by_role("main")).to_contain_text("Figures cover whole calendar years")
    # The charts are drawn on the server and load as images.
    charts = lead.locator("main img")
    expect(charts.first).to_be_visible()
    assert charts.count() == 3
    # (Each image is waited for one by one: a polled predicate string would need the page's
    # content security policy to allow eval, which it rightly does not.)
    for chart in charts.all():
        expect(chart).to_have_js_property("complete", True)
        assert chart.evaluate("img => img.naturalWidth") > 0, chart.get_attribute("alt")
    screenshot(lead, "trends-lead")
    csv_link = lead.get_by_role("link", name="CSV file")
    download = lead.request.get(live.url + csv_link.get_attribute("href"))
    assert download.status == 200
    body = download.text()
    assert "Disclosure control" in body
    for raw in ("12", "13", "28"):
        assert not re.search(rf"(^|,){raw}(,|\r?$)", body, re.M), raw

    # The coordinator of both areas sees the same view exact.
    coord = pages.new()
    sign_in(coord, live, dana)
    coord.goto(lead.url)
    table = coord.get_by_role("table").first
    expect(table).to_contain_text("12")
    expect(coord.get_by_role("main")).to_contain_text("Exact counts")
    assert pages.csp_errors() == []
