"""An alert's delivery list shows a coordinator only the subscribers of their own areas (issue 13,
finding 5): a network-wide alert also reaches other areas' subscribers, who are counted, not
named, on the page and in the API."""

from __future__ import annotations

from typing import Any

from flask import Flask

from dr_panel.alerts import broadcast
from dr_panel.alerts.models import Channel
from dr_panel.auth.tokens import create_token
from dr_panel.extensions import db
from tests.alerts.support import make_alert, make_subscriber

THEIRS = ("Darwen hostel outreach", "darwen.hostel@example.org", "Darwen hospital system",
          "https://alerts.darwen-hospital.example.org/in")


def _network_alert(user: Any) -> Any:
    """An alert of Blackpool's, reaching the whole Pan-Lancashire network: one Blackpool
    subscriber, one shared by both areas, and two of Blackburn with Darwen's only."""
    make_subscriber(email="outreach@example.org", name="Blackpool outreach")
    make_subscriber(email="shared@example.org", name="Pan-Lancashire pharmacies",
                    areas=("E06000009", "E06000008"))
    make_subscriber(email=THEIRS[1], name=THEIRS[0], areas=("E06000008",))
    make_subscriber(Channel.WEBHOOK, url=THEIRS[3], name=THEIRS[2], areas=("E06000008",))
    version = make_alert(user)
    assert broadcast.queue_deliveries(version) == 4
    db.session.commit()
    return version.alert


def _bearer(user: Any) -> dict[str, str]:
    _, plaintext = create_token(user, "test", by=user)
    db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


def test_the_page_names_only_subscribers_of_my_areas(app: Flask, client: Any, create_user: Any,
                                                     login: Any) -> None:
    mine = create_user(areas=("E06000009",))
    alert = _network_alert(mine)
    login(client, mine)
    page = client.get(f"/ldis/alerts/{alert.uuid}/deliveries")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Blackpool outreach" in html and "Pan-Lancashire pharmacies" in html
    for secret in THEIRS:
        assert secret not in html
    assert "And 2 more deliveries to subscribers elsewhere in the network" in html
    assert "<td>4</td>" in html  # the counts by version cover the whole network
    # Filtered: the count of the others follows the filter.
    webhooks_only = client.get(f"/ldis/alerts/{alert.uuid}/deliveries?channel=webhook")
    text = webhooks_only.get_data(as_text=True)
    assert "No deliveries to subscribers of your areas match these filters." in text
    assert ">1 delivery to subscribers elsewhere" in text and THEIRS[2] not in text


def test_a_coordinator_of_both_areas_sees_everyone(app: Flask, client: Any, create_user: Any,
                                                   login: Any) -> None:
    both = create_user(areas=("E06000009", "E06000008"))
    alert = _network_alert(both)
    login(client, both)
    html = client.get(f"/ldis/alerts/{alert.uuid}/deliveries").get_data(as_text=True)
    assert THEIRS[0] in html and THEIRS[2] in html
    assert 'data-testid="deliveries-elsewhere"' not in html


def test_the_api_lists_only_my_areas_and_counts_the_rest(app: Flask, client: Any,
                                                          create_user: Any) -> None:
    mine = create_user(areas=("E06000009",))
    alert = _network_alert(mine)
    answer = client.get(f"/api/v1/alerts/{alert.uuid}/deliveries", headers=_bearer(mine))
    assert answer.status_code == 200
    body = answer.get_json()
    assert sorted(d["subscriber_name"] for d in body["items"]) == [
        "Blackpool outreach", "Pan-Lancashire pharmacies"]
    assert body["total"] == 2 and body["elsewhere"] == 2
    assert body["counts"][0]["total"] == 4
    for secret in THEIRS:
        assert secret not in answer.get_data(as_text=True)
    hooks = client.get(f"/api/v1/alerts/{alert.uuid}/deliveries?channel=webhook",
                       headers=_bearer(mine)).get_json()
    assert hooks["items"] == [] and hooks["elsewhere"] == 1

    both = create_user(areas=("E06000009", "E06000008"))
    everyone = client.get(f"/api/v1/alerts/{alert.uuid}/deliveries",
                          headers=_bearer(both)).get_json()
    assert everyone["total"] == 4 and everyone["elsewhere"] == 0
