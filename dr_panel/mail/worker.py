"""Who delivers the outbox in this process: after any request that queued mail (once the
response has gone), and a background thread for ``dr-panel start`` that also runs other
outboxes' jobs (the alert broadcast, the schedule). ``dr-panel worker`` and cron call
``dr_panel.mail.outbox`` themselves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, Response, current_app

from dr_panel.errors import StartupError
from dr_panel.mail import outbox

log = logging.getLogger("dr_panel.mail")

TRANSPORTS = ("folder", "smtp")
_STATE_KEY = "dr_panel.mail"

Job = Callable[[Flask], object]


@dataclass
class _MailState:
    again: threading.Event = field(default_factory=threading.Event)
    worker: MailWorker | None = None
    hooked: bool = False
    # Other outboxes delivered by the same background worker, after the mail (alert broadcast).
    jobs: list[Job] = field(default_factory=list)


def _state(app: Flask) -> _MailState:
    return app.extensions.setdefault(_STATE_KEY, _MailState())  # type: ignore[no-any-return]


def init_app(app: Flask) -> None:
    """Check the mail settings and deliver after any request that queued mail. Idempotent."""
    state = _state(app)
    if state.hooked:
        return
    kind = app.config.get("MAIL_TRANSPORT")
    if kind not in TRANSPORTS:
        raise StartupError(
            f"dr-panel cannot start: MAIL_TRANSPORT must be one of {', '.join(TRANSPORTS)}; "
            f"got {kind!r}."
        )
    if kind == "smtp" and not app.config.get("MAIL_SERVER"):
        log.warning("MAIL_TRANSPORT is smtp but MAIL_SERVER is not set: mail will queue unsent")
    app.after_request(_after_request)
    state.hooked = True


def deliver_soon(app: Flask, limit: int = 100) -> None:
    """Deliver unless a run is already going in this process, in which case that run goes round
    once more before it stops. Never raises: errors are logged by type."""
    state = _state(app)
    lock = outbox.delivery_lock(app)
    state.again.set()
    while state.again.is_set() and lock.acquire(blocking=False):
        try:
            state.again.clear()
            with app.app_context():
                outbox.deliver_locked(app, limit)
        except Exception as err:  # never into a request or the worker
            log.error("mail delivery failed (%s); queued mail waits for the next run",
                      type(err).__name__)
        finally:
            lock.release()


def _after_request(response: Response) -> Response:
    """The view has committed by now. Delivery runs once the response has been sent (the WSGI
    server closes it), in a fresh application context and database session, so the person who
    caused the mail never waits for the SMTP server; errors are logged, never raised."""
    if not outbox.delivery_requested() or not current_app.config["MAIL_SEND_AFTER_REQUEST"]:
        return response
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    response.call_on_close(lambda: _deliver_after_response(app))
    return response


def _deliver_after_response(app: Flask) -> None:
    worker = _state(app).worker
    if worker is not None and worker.is_alive():
        worker.wake()
        return
    deliver_soon(app)


class MailWorker:
    """A daemon thread delivering every ``interval`` seconds, and at once when woken."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dr-panel-mail", daemon=True)

    def start(self) -> MailWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # a wake during the run below makes one more run
            deliver_soon(self.app)
            for job in list(_state(self.app).jobs):
                job(self.app)  # each job logs its own errors and never raises
            self._wake.wait(self.interval)

    def wake(self) -> None:
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


def add_job(app: Flask, job: Job) -> None:
    """Have the background worker also run ``job(app)`` each round, after the mail (another
    outbox: the alert broadcast). ``job`` must log its errors and never raise."""
    state = _state(app)
    if job not in state.jobs:
        state.jobs.append(job)


def start_worker(app: Flask, interval: float = 30) -> MailWorker:
    """Start (or return the running) background delivery thread for ``app``."""
    state = _state(app)
    if state.worker is not None and state.worker.is_alive():
        return state.worker
    state.worker = MailWorker(app, interval).start()
    return state.worker


def running_worker(app: Flask) -> MailWorker | None:
    """The background thread started for ``app``, if any (to stop it)."""
    return _state(app).worker
