"""Field-key rotation: add a key, re-encrypt every value under it, verify, retire the old key.

Every encrypted column is listed once in ``ENCRYPTED_COLUMNS``; rotation, verification and the
"is this key still used?" check all walk that list, so a new encrypted column is one line there
(``tests/test_keys.py`` fails while a ``*_enc`` column is missing from it).

Rotation is resumable by construction. Each run selects the values whose key id is not the active
one (``NOT LIKE 'v1:<active>:%'``), so values already done are never selected again and a run that
was interrupted simply carries on where it stopped. Each batch is its own transaction. A row is
written only if its value is still the one that was read (``WHERE id = :id AND col = :old``), so a
change made while rotating is never overwritten; such rows are counted and picked up by the next
run. Reads keep working throughout: every value names its key id, and old keys stay in the ring
until they are retired.

The running app caches the key ring at start-up (``app.extensions["dr_panel.keys"]``). The
commands that change the key file reload it into that app; every other process follows the file
through ``current(app)``: each request calls it, and so does each round of a background worker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import ColumnElement, Table, func, not_, select, update

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.crypto import (
    FIELD_PREFIX,
    KEY_BYTES,
    DecryptionError,
    KeyConfigError,
    KeyRing,
    key_file,
    reload_ring,
)
from dr_panel.extensions import db
from dr_panel.search import starts_with

log = logging.getLogger("dr_panel.keys")

Progress = Callable[[int], None]
KID_RE = re.compile(r"k(\d+)")
ENV_FIELD_VARS = ("DR_PANEL_FIELD_KEYS", "DR_PANEL_FIELD_KEY_ACTIVE")
MAX_LISTED = 100  # failures kept for the report; all are counted


class KeyAdminError(RuntimeError):
    """A key command refused or failed. Messages name key ids and columns, never values."""


@dataclass(frozen=True)
class EncryptedColumn:
    """One encrypted column: where it lives and what its associated data binds it to."""

    table: str
    column: str
    record_column: str = "uuid"  # bound into the associated data as the record
    aad_column: str = ""  # the column name bound into the associated data; default: no "_enc"

    @property
    def aad(self) -> str:
        return self.aad_column or self.column.removesuffix("_enc")

    @property
    def label(self) -> str:
        return f"{self.table}.{self.aad}"


ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("persons", "name_enc"),
    EncryptedColumn("persons", "dob_enc"),
    EncryptedColumn("persons", "nhs_number_enc"),
    EncryptedColumn("persons", "address_enc"),
    EncryptedColumn("persons", "postcode_enc"),
    EncryptedColumn("users", "totp_secret_enc", aad_column="totp_secret"),
    EncryptedColumn("case_events", "reason_enc"),
    EncryptedColumn("info_requests", "note_enc"),
    EncryptedColumn("info_requests", "risks_enc"),
    EncryptedColumn("info_requests", "services_enc"),
    EncryptedColumn("info_requests", "safeguarding_enc"),
    EncryptedColumn("info_requests", "chronology_enc"),
    EncryptedColumn("meeting_items", "minutes_enc", record_column="id"),
    EncryptedColumn("actions", "description_enc"),
    EncryptedColumn("actions", "not_accepted_reason_enc"),
    EncryptedColumn("actions", "evidence_enc"),
    EncryptedColumn("safety_plans", "risks_enc"),
    EncryptedColumn("safety_plans", "protective_enc"),
    EncryptedColumn("case_reviews", "missed_opportunities_enc"),
    EncryptedColumn("case_factors", "description_enc"),
    EncryptedColumn("learning_points", "text_enc"),
    EncryptedColumn("subscribers", "secret_enc"),
    EncryptedColumn("subscribers", "previous_secret_enc"),
    EncryptedColumn("drug_reports", "content_enc"),
    EncryptedColumn("drug_reports", "reporter_contact_enc"),
    EncryptedColumn("drug_reports", "held_enc"),
    EncryptedColumn("outbox_messages", "to_address_enc"),
    EncryptedColumn("assessments", "notes_enc"),
    EncryptedColumn("assessments", "rationale_enc"),
)


def ring() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def kid_of(stored: str) -> str | None:
    """The key id a stored value names (``v1:<kid>:<b64>``), or None when malformed."""
    parts = stored.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == FIELD_PREFIX else None


def _table(spec: EncryptedColumn) -> Table:
    return db.metadata.tables[spec.table]  # type: ignore[no-any-return]


def _prefix(kid: str) -> str:
    return f"{FIELD_PREFIX}:{kid}:"


def _under(spec: EncryptedColumn, kid: str) -> ColumnElement[bool]:
    """Values stored under key ``kid``: ``col LIKE 'v1:<kid>:%'`` (wildcards in ids escaped)."""
    return starts_with(_table(spec).c[spec.column], _prefix(kid))


def _has_value(col: Any) -> ColumnElement[bool]:
    """NULL, or empty where the retention schedule erased a NOT NULL column, holds no value."""
    return col.isnot(None) & (col != "")  # type: ignore[no-any-return]


def _not_under(spec: EncryptedColumn, kid: str) -> ColumnElement[bool]:
    col = _table(spec).c[spec.column]
    return _has_value(col) & not_(_under(spec, kid))


def _count(spec: EncryptedColumn, where: ColumnElement[bool]) -> int:
    return db.session.scalar(select(func.count()).select_from(_table(spec)).where(where)) or 0


def pending(kid: str | None = None) -> dict[str, int]:
    """Per column, how many values are not yet under ``kid`` (default: the active key)."""
    kid = kid or ring().active_field_key
    return {spec.label: _count(spec, _not_under(spec, kid)) for spec in ENCRYPTED_COLUMNS}


def usage(kid: str) -> dict[str, int]:
    """Per column, how many values are still stored under ``kid`` (the check before retiring)."""
    return {spec.label: _count(spec, _under(spec, kid)) for spec in ENCRYPTED_COLUMNS}


def total_values() -> int:
    return sum(
        _count(spec, _has_value(_table(spec).c[spec.column])) for spec in ENCRYPTED_COLUMNS
    )


# -- rotation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A value that failed to decrypt: which column and record (a UUID), never the value."""

    column: str
    record: str
    reason: str


@dataclass
class RotationResult:
    active: str
    rotated: Counter[str] = field(default_factory=Counter)  # old key id -> values moved
    changed_meanwhile: int = 0  # rows written by someone else while we worked: run again
    failed: int = 0  # values that did not decrypt (the first MAX_LISTED are in ``problems``)
    problems: list[Problem] = field(default_factory=list)
    batches: int = 0
    remaining: int = 0  # values still not under the active key when the run ended

    @property
    def total_rotated(self) -> int:
        return sum(self.rotated.values())

    def audit_details(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "rotated": self.total_rotated,
            "from": dict(sorted(self.rotated.items())),
            "changed_meanwhile": self.changed_meanwhile,
            "failed": self.failed,
            "batches": self.batches,
            "remaining": self.remaining,
        }


def rotate(
    *, batch_size: int = 500, progress: Progress | None = None, max_batches: int | None = None
) -> RotationResult:
    """Re-encrypt every value not under the active key, one committed batch at a time.

    ``max_batches`` stops early (the run is then resumable like an interrupted one). Whatever
    happens, the run is audited as ``keys.rotated`` with its counts.
    """
    if batch_size < 1:
        raise KeyAdminError("The batch size must be at least 1.")
    keyring = ring()
    result = RotationResult(active=keyring.active_field_key)
    try:
        for spec in ENCRYPTED_COLUMNS:
            last_id = 0
            while max_batches is None or result.batches < max_batches:
                rows = _select_batch(spec, keyring.active_field_key, last_id, batch_size)
                if not rows:
                    break
                moved, changed, problems = _rotate_batch(spec, rows, keyring)
                db.session.commit()
                # Counted once committed, so an interrupted batch is not counted.
                result.rotated.update(moved)
                result.changed_meanwhile += changed
                result.failed += len(problems)
                _keep(result.problems, problems)
                result.batches += 1
                last_id = rows[-1][0]
                if progress is not None:
                    progress(len(rows))
        result.remaining = sum(pending(result.active).values())
    except BaseException:  # interrupted or crashed: what was committed stays; audit the run
        db.session.rollback()
        _audit_safely("keys.rotated", Outcome.FAILURE, {**result.audit_details(), "stopped": True})
        raise
    outcome = Outcome.SUCCESS if not result.failed else Outcome.FAILURE
    record("keys.rotated", outcome=outcome, actor_label="cli", details=result.audit_details())
    db.session.commit()
    log.info(
        "field keys: %d values re-encrypted under %s in %d batches (%d changed meanwhile, "
        "%d failed)",
        result.total_rotated,
        result.active,
        result.batches,
        result.changed_meanwhile,
        result.failed,
    )
    return result


def _select_batch(
    spec: EncryptedColumn, active: str, after_id: int, size: int
) -> list[tuple[int, Any, str]]:
    """The next rows (by id, after ``after_id``) whose value is not under the active key. Paging
    by id means a value that cannot be rotated (fails to decrypt, or changed meanwhile) is
    passed over in this run rather than selected again forever."""
    t = _table(spec)
    stmt = (
        select(t.c.id, t.c[spec.record_column], t.c[spec.column])
        .where(_not_under(spec, active), t.c.id > after_id)
        .order_by(t.c.id)
        .limit(size)
    )
    return [(row[0], row[1], row[2]) for row in db.session.execute(stmt)]


def _rotate_batch(
    spec: EncryptedColumn, rows: list[tuple[int, Any, str]], keyring: KeyRing
) -> tuple[Counter[str], int, list[Problem]]:
    """Decrypt each value with the key it names, encrypt it under the active key, and write it
    only if the row still holds the value read (optimistic: a concurrent write wins)."""
    t = _table(spec)
    col = t.c[spec.column]
    moved: Counter[str] = Counter()
    changed = 0
    problems: list[Problem] = []
    for row_id, record_id, old in rows:
        where = {"table": spec.table, "column": spec.aad, "record": str(record_id)}
        try:
            plain = keyring.decrypt(old, **where)
        except DecryptionError as err:
            problems.append(Problem(spec.label, str(record_id), _reason(err)))
            continue
        new = keyring.encrypt(plain, **where)
        done = db.session.execute(
            update(t).where(t.c.id == row_id, col == old).values({spec.column: new})
        )
        # SQLAlchemy types Session.execute as Result; an UPDATE's is a CursorResult, with rowcount
        if done.rowcount == 1:  # type: ignore[attr-defined]
            moved[kid_of(old) or "?"] += 1
        else:
            changed += 1
    return moved, changed, problems


def _keep(listed: list[Problem], more: list[Problem]) -> None:
    listed.extend(more[: max(0, MAX_LISTED - len(listed))])


def _reason(err: DecryptionError) -> str:
    """The part of the message after "table.column: " (the message never holds a value)."""
    return str(err).split(": ", 1)[-1]


def _audit_safely(action: str, outcome: Outcome, details: dict[str, Any]) -> None:
    try:
        record(action, outcome=outcome, actor_label="cli", details=details)
        db.session.commit()
    except Exception as err:  # the database may be what failed: keep the original error
        db.session.rollback()
        log.error("could not audit %s: %s", action, type(err).__name__)


# -- verification -------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    active: str
    by_key: Counter[str] = field(default_factory=Counter)  # key id -> values that decrypt
    by_column: dict[str, Counter[str]] = field(default_factory=dict)
    failed: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first MAX_LISTED failures

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def checked(self) -> int:
        return sum(self.by_key.values()) + self.failed

    @property
    def not_active(self) -> int:
        """Values that decrypt but are under an older key."""
        return sum(n for kid, n in self.by_key.items() if kid != self.active)


def verify(*, progress: Progress | None = None, batch_size: int = 1000) -> VerifyResult:
    """Decrypt every encrypted value (in memory only) and count them per key id."""
    keyring = ring()
    result = VerifyResult(active=keyring.active_field_key)
    for spec in ENCRYPTED_COLUMNS:
        t = _table(spec)
        col = t.c[spec.column]
        per_column: Counter[str] = Counter()
        last_id = 0
        while True:
            rows = db.session.execute(
                select(t.c.id, t.c[spec.record_column], col)
                .where(_has_value(col), t.c.id > last_id)
                .order_by(t.c.id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            for _row_id, record_id, stored in rows:
                try:
                    keyring.decrypt(
                        stored, table=spec.table, column=spec.aad, record=str(record_id)
                    )
                except DecryptionError as err:
                    result.failed += 1
                    _keep(result.problems, [Problem(spec.label, str(record_id), _reason(err))])
                    continue
                kid = kid_of(stored) or "?"
                result.by_key[kid] += 1
                per_column[kid] += 1
            last_id = rows[-1][0]
            if progress is not None:
                progress(len(rows))
        result.by_column[spec.label] = per_column
    record(
        "keys.verified",
        outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
        actor_label="cli",
        details={
            "active": result.active,
            "by_key": dict(sorted(result.by_key.items())),
            "failed": result.failed,
        },
    )
    db.session.commit()
    return result


# -- the key file -------------------------------------------------------------------------------


def _refuse_env_keys(doing: str) -> None:
    if any(os.environ.get(name) for name in ENV_FIELD_VARS):
        raise KeyAdminError(
            f"The field keys come from the environment (DR_PANEL_FIELD_KEYS), so dr-panel cannot "
            f"{doing} for you. Change DR_PANEL_FIELD_KEYS and DR_PANEL_FIELD_KEY_ACTIVE yourself "
            f"(keys as k1:<base64>,k2:<base64>, 32 random bytes each) and restart every process."
        )


def _read_key_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise KeyAdminError(
            f"There is no key file at {path}. Field keys from the environment are changed "
            f"there (DR_PANEL_FIELD_KEYS, DR_PANEL_FIELD_KEY_ACTIVE)."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise KeyAdminError(f"The key file {path} is not valid JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("field"), dict):
        raise KeyAdminError(f"The key file {path} has no field keys section.")
    return data


def _write_key_file(path: Path, text: str) -> None:
    """Atomically: a new file (mode 0600) beside the old one, synced, then renamed over it."""
    target = path.resolve()
    fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _replace_key_file(app: Flask, path: Path, old_text: str, data: dict[str, Any]) -> KeyRing:
    """Write the new key file and load it; if it does not load, put the old one back."""
    _write_key_file(path, json.dumps(data, indent=2))
    try:
        return reload_ring(app)
    except KeyConfigError as err:
        _write_key_file(path, old_text)
        reload_ring(app)
        raise KeyAdminError(
            f"The changed key file did not load ({err}); the old one was put back."
        ) from None


def _next_kid(field_data: dict[str, Any]) -> str:
    """k1, k2, ...: one more than any id in use or ever retired, so no id is used twice."""
    seen = list(field_data.get("keys") or {}) + list(field_data.get("retired") or [])
    numbers = [int(m.group(1)) for kid in seen if (m := KID_RE.fullmatch(kid))]
    return f"k{max(numbers, default=0) + 1}"


def add_field_key(app: Flask) -> tuple[str, str]:
    """Generate a new field key, make it active in the key file and in this app.
    Returns (new key id, previously active key id)."""
    _refuse_env_keys("add a field key")
    path = key_file(app)
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    data = _read_key_file(path)
    field_data = data["field"]
    previous = str(field_data.get("active", ""))
    kid = _next_kid(field_data)
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    field_data.setdefault("keys", {})[kid] = key
    field_data["active"] = kid
    record(
        "keys.field_key_added",
        actor_label="cli",
        details={"key_id": kid, "previous_active": previous},
    )
    try:
        _replace_key_file(app, path, old_text, data)
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    log.info("field keys: added %s and made it active (was %s)", kid, previous)
    return kid, previous


def retire_field_key(app: Flask, kid: str) -> None:
    """Remove a field key from the key file, once it is not active and no value uses it."""
    _refuse_env_keys("retire a field key")
    path = key_file(app)
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    data = _read_key_file(path)
    field_data = data["field"]
    keys = field_data.get("keys") or {}
    if kid not in keys:
        known = ", ".join(sorted(keys)) or "none"
        raise KeyAdminError(f"There is no field key {kid} in the key file (it has: {known}).")
    if kid == field_data.get("active") or kid == app.extensions["dr_panel.keys"].active_field_key:
        raise KeyAdminError(
            f"{kid} is the active field key: new values are encrypted with it. Add a new key "
            f"(dr-panel keys add-field-key) and rotate to it first."
        )
    in_use = {label: n for label, n in usage(kid).items() if n}
    if in_use:
        where = ", ".join(f"{label}: {n}" for label, n in in_use.items())
        raise KeyAdminError(
            f"{sum(in_use.values())} values are still encrypted with {kid} ({where}). "
            f"Run dr-panel keys rotate first; retiring it now would lose them."
        )
    del keys[kid]
    field_data["retired"] = sorted(set(field_data.get("retired") or []) | {kid})
    record("keys.retired", actor_label="cli", details={"key_id": kid})
    try:
        _replace_key_file(app, path, old_text, data)
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    log.info("field keys: retired %s", kid)
