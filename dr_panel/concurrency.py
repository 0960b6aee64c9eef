"""Optimistic locking, handled the same way by every service.

Each edited record carries a version (``version_id_col``): a service first compares the version
the form or API call was read at (its own ``Stale...`` error, which the page answers with the
person's input kept and the API with 409). Two saves racing past that check both reach the
database; the second one's UPDATE then matches no row (``StaleDataError``) or hits a unique
constraint (``IntegrityError``). ``flush_or`` turns that into the same ``Stale...`` error, so
the page keeps the input in both cases. Anything that escapes a service is answered 409 by the
app-wide handler in ``dr_panel.security`` (nothing saved, never a 500).

Not retried automatically: a conflict means the person must look at the colleague's change.
The app runs PostgreSQL at READ COMMITTED, where serialisation failures arise only as
deadlocks; references and the audit chain take their locks in one order so they do not
deadlock, and the one place a retry is safe is left to the client (the API's 409 says so).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from dr_panel.extensions import db


def flush_or(stale: Callable[[], Exception]) -> None:
    """Flush; a simultaneous writer's save (stale version, unique constraint) rolls back and
    raises the service's own stale error."""
    try:
        db.session.flush()
    except (StaleDataError, IntegrityError):
        db.session.rollback()
        raise stale() from None
