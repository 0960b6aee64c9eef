"""One retry rule and one setting (``dr_panel.retry``, ``RETRY``): an operator can tune a
channel from the environment, a wrong entry stops start-up saying what to fix, and each
channel keeps the schedule its tests rely on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask

from config import load_config
from dr_panel import StartupError, retry
from dr_panel.dbtypes import utcnow


def test_the_environment_changes_one_channel_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETRY", '{"webhook": {"cap": 3600}}')
    setting = load_config("testing").RETRY
    assert setting["webhook"] == {"first": 30, "factor": 2, "cap": 3600, "jitter": "full"}
    assert setting["mail"] == {"first": 60, "factor": 5, "cap": 7200, "jitter": "tenth"}
    monkeypatch.delenv("RETRY")
    assert load_config("testing").RETRY["webhook"]["cap"] == 6 * 3600


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"first": 0}, "first must be a number of seconds above 0"),
        ({"first": 60, "factor": 0.5}, "factor must be a number of 1 or more"),
        ({"first": 60, "cap": 30}, "cap must be a number of seconds, at least first"),
        ({"first": 60, "jitter": "some"}, "jitter must be one of none, tenth, full"),
        ({"first": 60, "tries": 3}, "unknown key"),
        ({"first": 60, "give_up_after": 3}, "give_up_after must be null"),
        ("60", "must be a JSON object"),
    ],
)
def test_a_wrong_retry_entry_refuses_to_start(
    app_factory: Callable[..., Flask], entry: object, says: str
) -> None:
    setting = load_config("testing").RETRY | {"mail": entry}
    with pytest.raises(StartupError, match=r"RETRY\['mail'\].*" + says):
        app_factory(RETRY=setting)


def test_a_missing_channel_refuses_to_start(app_factory: Callable[..., Flask]) -> None:
    setting = {k: v for k, v in load_config("testing").RETRY.items() if k != "job"}
    with pytest.raises(StartupError, match="RETRY has no entry for job"):
        app_factory(RETRY=setting)


def test_an_alert_email_gives_up_after_eight_tries_and_mail_never(app: Flask) -> None:
    now = utcnow()
    alert_email = retry.schedule("alert_email")
    assert alert_email.next_try(7, now) is not None
    assert alert_email.next_try(8, now) is None
    later = retry.schedule("mail").next_try(1000, now)
    assert later is not None and timedelta(hours=2) <= later - now <= timedelta(hours=2.2)


def test_a_failed_job_waits_five_minutes(app: Flask) -> None:
    assert retry.schedule("job").delay(1) == timedelta(minutes=5)
    assert retry.schedule("job").delay(3) == timedelta(minutes=5)
