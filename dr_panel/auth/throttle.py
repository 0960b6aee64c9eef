"""Sign-in back-off that slows a guesser without ever locking the owner out (NIST SP 800-63B
5.2.2).

Failures are counted per (account, client) pair: the first ``LOGIN_BACKOFF_FREE`` cost nothing,
then each one makes that pair wait twice as long as the last (2 s, 4 s, 8 s... up to 15 minutes)
before it may try again. A wait holds even for the right password, so guessing from one client
is slowed to a few tries an hour; another client (the owner's own) is not slowed by it.

Across all clients, ``LOGIN_ACCOUNT_CEILING`` failures on one account within
``LOGIN_ACCOUNT_CEILING_DAYS`` e-mail the owner once (through the outbox; the message names no
address, client or count of guesses beyond the ceiling) and from then on no pair has free
failures: a fresh client gets one try, then waits. The owner is not locked: their first try
from their own client is answered at once, and the roles that reach identifiers need the second
factor anyway. We chose this over locking the account because a lock is a denial of service any
stranger can cause.

The account is named by a hash of the address typed, known or not, and the client by a hash of
its address, so unknown accounts are throttled exactly like real ones and the storage holds no
identifier. Counts live in the limiter's storage (``dr_panel.throttling``): Redis when
configured, so every process and machine counts together.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.auth.models import User
from dr_panel.throttling import client_key, pseudonym, storage

log = logging.getLogger("dr_panel.auth")
PREFIX = "dr-panel:signin:"


def now() -> int:
    """Whole seconds since the epoch (a function, so tests can move the clock)."""
    return int(time.time())


def account_key(email: str) -> str:
    return pseudonym("account:" + email.strip().lower())


@dataclass(frozen=True)
class SignInAttempt:
    """One account (as typed) from one client."""

    account: str
    client: str

    @classmethod
    def of(cls, email: str) -> SignInAttempt:
        return cls(account_key(email), client_key())

    @property
    def _pair(self) -> str:
        return f"{PREFIX}pair:{self.account}:{self.client}"

    @property
    def _wait(self) -> str:
        return f"{PREFIX}wait:{self.account}:{self.client}"

    @property
    def _total(self) -> str:
        return f"{PREFIX}account:{self.account}"

    @property
    def _told(self) -> str:
        return f"{PREFIX}told:{self.account}"

    def wait_seconds(self) -> int:
        """How long this pair must still wait before its next try (0: it may try now)."""
        not_before = int(storage().get(self._wait) or 0)
        return max(0, not_before - now())

    def failed(self, owner: User | None) -> int:
        """Count a failure; return the wait it earns. ``owner`` is the account when it exists
        (for the ceiling's e-mail), else None: the count is the same either way."""
        cfg = current_app.config
        store = storage()
        failures = store.incr(self._pair, int(cfg["LOGIN_BACKOFF_RESET_HOURS"]) * 3600)
        total = store.incr(self._total, int(cfg["LOGIN_ACCOUNT_CEILING_DAYS"]) * 86400)
        ceiling = int(cfg["LOGIN_ACCOUNT_CEILING"])
        free = int(cfg["LOGIN_BACKOFF_FREE"]) if total < ceiling else 0
        if total >= ceiling and owner is not None:
            self._tell_owner(owner)
        if failures < max(free, 1):
            return 0
        delay = min(
            int(cfg["LOGIN_BACKOFF_BASE_SECONDS"]) * 2 ** (failures - max(free, 1)),
            int(cfg["LOGIN_BACKOFF_CAP_SECONDS"]),
        )
        store.clear(self._wait)
        store.incr(self._wait, delay + 1, amount=now() + delay)
        return delay

    def succeeded(self) -> None:
        """The owner got in from here: this pair starts afresh (the account's total does not,
        so signing in between guesses does not reset an attacker's count)."""
        store = storage()
        store.clear(self._pair)
        store.clear(self._wait)

    def _tell_owner(self, owner: User) -> None:
        """Once per ceiling period: the e-mail goes with this request's commit."""
        days = int(current_app.config["LOGIN_ACCOUNT_CEILING_DAYS"])
        if storage().incr(self._told, days * 86400) != 1:
            return
        from dr_panel.mail import services as mail

        ceiling = int(current_app.config["LOGIN_ACCOUNT_CEILING"])
        text = (
            f"There have been {ceiling} or more failed attempts to sign in to your dr-panel "
            f"account in the last {days} days. Someone may be trying to guess your password.\n\n"
            "Your account is not locked, and you can sign in as usual. If these attempts were "
            "not yours, change your password (Account, then Change password) to a long one you "
            "use nowhere else, make sure two-step verification is on, and tell your system "
            "administrator.\n"
        )
        mail.queue(owner.email, "dr-panel: many failed sign-in attempts", text,
                   kind="auth.signin_ceiling")
        record("auth.signin_ceiling", outcome=Outcome.FAILURE, actor=owner,
               details={"ceiling": ceiling, "days": days})
        log.warning("sign-in ceiling reached on an account; its owner is e-mailed")
