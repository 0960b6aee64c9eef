"""When to try again after a failure, for everything dr-panel retries.

One rule, ``Backoff``: the wait after the n-th failed try is ``first * factor ** (n - 1)``
seconds, at most ``cap``, with jitter so that what failed together does not retry together;
after ``give_up_after`` failed tries there is no next try. One setting, ``RETRY`` (``config``),
holds each channel's numbers, because the channels need different ones:

- ``mail``: the e-mail outbox (``dr_panel.mail.outbox``): 1, 5, 25 minutes, then every
  2 hours, up to a tenth more at random; never gives up (the message waits in the outbox).
- ``alert_email`` and ``webhook``: alert deliveries (``dr_panel.alerts.broadcast``): 30 s
  doubling up to 6 hours, full jitter (a random wait up to that); an e-mail gives up after 8
  tries, a webhook when its endpoint is disabled (``WEBHOOK_MAX_FAILURES``).
- ``job``: a failed scheduled job (``dr_panel.runtime.jobs``): 5 minutes, so it never spins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from flask import Flask, current_app

from dr_panel.errors import StartupError

Channel = Literal["mail", "alert_email", "webhook", "job"]
CHANNELS: tuple[Channel, ...] = ("mail", "alert_email", "webhook", "job")
Jitter = Literal["none", "tenth", "full"]
JITTERS: tuple[Jitter, ...] = ("none", "tenth", "full")
_EXTENSION = "dr_panel.retry"
# Channels that never give up by count, and what ends their retries instead.
_ENDS_ELSEWHERE: dict[Channel, str] = {
    "mail": "a message waits in the outbox until the server takes it",
    "webhook": "an endpoint is disabled after WEBHOOK_MAX_FAILURES consecutive failures",
    "job": "a failed job is tried again until its period ends",
}
# Past this many failures the wait is the cap however the numbers are set (no float overflow).
_MOST_DOUBLINGS = 64


@dataclass(frozen=True)
class Backoff:
    """One channel's retry schedule; ``failures`` counts the failed tries so far (1 after the
    first)."""

    first: float  # seconds to wait after the first failure
    factor: float = 1.0  # each further wait is this many times the one before
    cap: float | None = None  # no wait is longer (seconds)
    jitter: Jitter = "none"
    give_up_after: int | None = None  # failed tries after which there is no next try

    def ceiling(self, failures: int) -> float:
        """The wait in seconds before jitter."""
        wait = self.first * self.factor ** (min(max(failures, 1), _MOST_DOUBLINGS) - 1)
        return wait if self.cap is None else min(self.cap, wait)

    def delay(self, failures: int) -> timedelta:
        """The wait before the next try. ``full``: a random wait from 0 to the ceiling;
        ``tenth``: the ceiling and up to a tenth more, in whole seconds."""
        ceiling = self.ceiling(failures)
        if self.jitter == "full":
            return timedelta(seconds=secrets.SystemRandom().uniform(0, ceiling))
        if self.jitter == "tenth":
            return timedelta(seconds=ceiling + secrets.randbelow(int(ceiling) // 10 + 1))
        return timedelta(seconds=ceiling)

    def gives_up(self, failures: int) -> bool:
        return self.give_up_after is not None and failures >= self.give_up_after

    def next_try(self, failures: int, now: datetime) -> datetime | None:
        """When to try again after ``failures`` failed tries, or None: give up."""
        return None if self.gives_up(failures) else now + self.delay(failures)

    @classmethod
    def of(cls, channel: str, numbers: Any) -> Backoff:
        """A channel's entry of the ``RETRY`` setting, checked: ``ValueError`` says what to fix."""
        where = f"RETRY[{channel!r}]"
        if not isinstance(numbers, dict):
            raise ValueError(f"{where} must be a JSON object, like {{\"first\": 60}}.")
        unknown = sorted(set(numbers) - {"first", "factor", "cap", "jitter", "give_up_after"})
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {', '.join(unknown)}; use first, "
                             "factor, cap, jitter or give_up_after.")
        first = _number(numbers.get("first"))
        if first is None or first <= 0:
            raise ValueError(f"{where}: first must be a number of seconds above 0.")
        factor = _number(numbers.get("factor", 1))
        if factor is None or factor < 1:
            raise ValueError(f"{where}: factor must be a number of 1 or more.")
        cap = _number(numbers.get("cap"))
        if "cap" in numbers and numbers["cap"] is not None and (cap is None or cap < first):
            raise ValueError(f"{where}: cap must be a number of seconds, at least first.")
        jitter = numbers.get("jitter", "none")
        if jitter not in JITTERS:
            raise ValueError(f"{where}: jitter must be one of {', '.join(JITTERS)}.")
        give_up = numbers.get("give_up_after")
        if give_up is not None and (_number(give_up) is None or not isinstance(give_up, int)
                                    or give_up < 1):
            raise ValueError(f"{where}: give_up_after must be a whole number of tries, 1 or "
                             "more, or null (never give up).")
        return cls(first, factor, cap, jitter, give_up)


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def init_app(app: Flask) -> None:
    """Check the ``RETRY`` setting once, at start-up: a bad entry refuses to start."""
    setting = app.config.get("RETRY") or {}
    try:
        missing = [c for c in CHANNELS if c not in setting]
        if missing:
            raise ValueError(f"RETRY has no entry for {', '.join(missing)}.")
        schedules = {channel: Backoff.of(channel, setting[channel]) for channel in CHANNELS}
        for channel in _ENDS_ELSEWHERE:
            if schedules[channel].give_up_after is not None:
                raise ValueError(f"RETRY[{channel!r}]: give_up_after must be null: "
                                 f"{_ENDS_ELSEWHERE[channel]}.")
    except ValueError as err:
        raise StartupError(f"dr-panel cannot start: {err}") from None
    app.extensions[_EXTENSION] = schedules


def schedule(channel: Channel, app: Flask | None = None) -> Backoff:
    """The retry schedule of ``channel`` in ``app`` (default: the current app)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    schedules: dict[str, Backoff] = app.extensions[_EXTENSION]
    return schedules[channel]
