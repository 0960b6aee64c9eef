"""Anchors of the audit chain's head, kept where the database owner cannot silently rewrite them.

The HMAC chain shows an entry changed, inserted or deleted in the middle of the log, but not
the newest entries deleted (or every entry): what is left is still a valid chain. An anchor is
one signed JSON line naming the head at a moment (sequence number, entry hash, time), appended
to ``AUDIT_ANCHOR_FILE`` (default ``<instance>/audit-anchors.log``, opened ``O_APPEND``) and,
when ``AUDIT_ANCHOR_EMAIL`` is set, e-mailed there through the outbox. ``check`` then finds any
anchored entry missing or different, so truncation shows.

Choices: the line is signed with a key derived from the audit key (HMAC with a fixed label), so
anchors cannot be confused with entry hashes, and an anchor edited by hand fails its signature.
Each line also carries the signature of the line before it, so a line removed from the middle
of the file shows. An anchor of an unchanged head is not written again. ``anchor_now`` refuses
to anchor a log that no longer holds its last anchored entry: that is tampering to report, not a
new head to bless. Anchoring is not itself audited (an entry per anchor would always leave a new
head behind); the file is its record. Anchors carry no identifier: seq, hash and time only.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from dr_panel.audit.models import AuditEntry
from dr_panel.crypto import KeyRing
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db

log = logging.getLogger("dr_panel.audit")

ANCHOR_LABEL = b"dr-panel audit anchor v1"
TAIL_BYTES = 8192  # more than one line: enough to find the last one


class AnchorError(RuntimeError):
    """Anchoring refused: the log no longer holds what was anchored. Names seqs, never data."""


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str  # ISO 8601 UTC
    prev: str  # the previous line's signature ("" for the first)
    mac: str = ""

    def body(self) -> bytes:
        fields = {"seq": self.seq, "hash": self.hash, "at": self.at, "prev": self.prev}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        data = {"v": 1, "seq": self.seq, "hash": self.hash, "at": self.at, "prev": self.prev}
        return json.dumps({**data, "mac": self.mac}, separators=(",", ":")) + "\n"


def anchor_key(keys: KeyRing) -> bytes:
    """A key of its own for anchors, derived from the audit key."""
    return hmac.new(keys.audit, ANCHOR_LABEL, hashlib.sha256).digest()


def _sign(anchor: Anchor, keys: KeyRing) -> str:
    return hmac.new(anchor_key(keys), anchor.body(), hashlib.sha256).hexdigest()


def _keys() -> KeyRing:
    return current_app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def anchor_path() -> Path:
    configured = current_app.config.get("AUDIT_ANCHOR_FILE") or ""
    if configured:
        return Path(configured)
    return Path(current_app.config["INSTANCE_PATH"]) / "audit-anchors.log"


def _parse(raw: str) -> Anchor | None:
    try:
        data = json.loads(raw)
        return Anchor(
            seq=int(data["seq"]),
            hash=str(data["hash"]),
            at=str(data["at"]),
            prev=str(data["prev"]),
            mac=str(data["mac"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _last_line(fd: int) -> str:
    size = os.fstat(fd).st_size
    start = max(0, size - TAIL_BYTES)
    data = os.pread(fd, size - start, start).decode("utf-8", "replace")
    lines = [line for line in data.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _head() -> tuple[int, str] | None:
    row = db.session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return (int(row[0]), str(row[1])) if row else None


def _hash_at(seq: int) -> str | None:
    return db.session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq))


def anchor_now() -> Anchor | None:
    """Append a signed anchor of the chain's head (and e-mail it when configured). Returns the
    anchor written, or None when there was nothing new to anchor. Raises ``AnchorError`` when
    the last anchored entry is gone or changed."""
    keys = _keys()
    path = anchor_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another worker on this machine waits its turn
        reader = os.open(path, os.O_RDONLY)
        try:
            last = _parse(_last_line(reader)) if os.fstat(reader).st_size else None
        finally:
            os.close(reader)
        head = _head()
        if last is not None:
            held = _hash_at(last.seq)
            if held != last.hash:
                log.error("audit anchor: anchored entry #%d is missing or changed", last.seq)
                raise AnchorError(
                    f"The audit log no longer holds entry #{last.seq} as anchored at "
                    f"{last.at}: run dr-panel audit verify."
                )
            if head is not None and head == (last.seq, last.hash):
                return None
        if head is None:
            return None
        anchor = Anchor(
            seq=head[0],
            hash=head[1],
            at=utcnow().isoformat(timespec="seconds"),
            prev=last.mac if last else "",
        )
        anchor = Anchor(**{**anchor.__dict__, "mac": _sign(anchor, keys)})
        os.write(fd, anchor.line().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _email(anchor)
    log.info("audit anchored at #%d", anchor.seq)
    return anchor


def _email(anchor: Anchor) -> None:
    """Queue the anchor to the admin's address: seq, hash prefix and time, no identifiers. The
    time is in words: the outbox refuses dates written in numbers (they may be a birth date)."""
    to = current_app.config.get("AUDIT_ANCHOR_EMAIL") or ""
    if not to:
        return
    from dr_panel.mail.services import queue

    when = datetime.fromisoformat(anchor.at).strftime("%-d %B %Y at %H:%M:%S UTC")
    queue(
        to,
        f"dr-panel audit anchor #{anchor.seq}",
        (
            f"On {when} the audit log's newest entry was #{anchor.seq}, whose hash begins "
            f"{anchor.hash[:16]}.\n\nKeep this message apart from the server: if entries up to "
            f"#{anchor.seq} are ever missing, or that entry's hash differs, the log was cut. "
            f"`dr-panel audit verify` checks the anchor file against the log."
        ),
        kind="audit_anchor",
        dedupe_key=f"audit-anchor:{anchor.seq}:{anchor.hash[:16]}",
    )
    db.session.commit()


# -- checking -----------------------------------------------------------------------------------


@dataclass
class AnchorReport:
    """What the anchors say about the log. ``problems`` make ``audit verify`` fail."""

    files: list[str] = field(default_factory=list)
    anchors: int = 0
    last_seq: int | None = None
    last_at: str | None = None
    problems: list[str] = field(default_factory=list)
    unanchored: int = 0  # entries after the last anchor
    missing_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read(path: Path, keys: KeyRing, report: AnchorReport) -> list[tuple[Anchor, int]]:
    found: list[tuple[Anchor, int]] = []
    prev = ""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            anchor = _parse(raw)
            if anchor is None or not hmac.compare_digest(_sign(anchor, keys), anchor.mac):
                report.problems.append(
                    f"line {number} of {path} fails its signature (edited by hand, or "
                    f"written with another audit key)"
                )
                prev = anchor.mac if anchor else ""
                continue
            if anchor.prev != prev:
                report.problems.append(
                    f"the anchor before line {number} of {path} was removed or replaced"
                )
            prev = anchor.mac
            found.append((anchor, number))
    return found


def check(paths: Iterable[Path] | None = None) -> AnchorReport:
    """Compare the log with every anchor: an anchored seq missing, or holding another hash,
    is a problem (truncation, the newest entries deleted, the log emptied or replaced)."""
    keys = _keys()
    report = AnchorReport()
    anchors: list[tuple[Anchor, Path, int]] = []
    for path in list(paths) if paths else [anchor_path()]:
        report.files.append(str(path))
        if not path.exists():
            report.missing_files.append(str(path))
            continue
        anchors.extend((a, path, n) for a, n in _read(path, keys, report))
    report.anchors = len(anchors)
    seqs = sorted({a.seq for a, _, _ in anchors})
    held: dict[int, str] = {}
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        held.update(
            (int(s), str(h))
            for s, h in db.session.execute(
                select(AuditEntry.seq, AuditEntry.entry_hash).where(AuditEntry.seq.in_(chunk))
            )
        )
    missing = sorted({(a.seq, a.at) for a, _, _ in anchors if a.seq not in held})
    if missing:
        first, last = missing[0], missing[-1]
        which = (
            f"entry #{first[0]}, anchored at {first[1]}, is"
            if len(missing) == 1
            else f"entries #{first[0]} to #{last[0]}, anchored from {first[1]} to {last[1]}, are"
        )
        report.problems.append(
            f"{which} missing: the log was truncated or its newest entries deleted"
        )
    for anchor, _path, _number in anchors:
        if anchor.seq in held and held[anchor.seq] != anchor.hash:
            report.problems.append(
                f"entry #{anchor.seq} differs from its anchor of {anchor.at}: it was replaced"
            )
    if anchors:
        newest = max(anchors, key=lambda item: (item[0].seq, item[0].at))[0]
        report.last_seq, report.last_at = newest.seq, newest.at
    head = _head()
    report.unanchored = max(0, (head[0] if head else 0) - (report.last_seq or 0))
    return report
