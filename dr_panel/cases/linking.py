"""The linking rule, for a batch of notifications or one identity: candidates are the stored
persons sharing a blind index (one indexed query for a whole batch), decrypted only as far as
``identity.compare`` needs, judged in id order (new persons of the same batch after every
stored one): the first "linked" wins, else the first "suggested" is offered to the coordinator,
else a new person."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter
from typing import Any

from dr_panel.cases.models import MatchStatus, Person
from dr_panel.crypto import KeyRing
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident

persons_t = Person.__table__


class _StoredIdentity:
    """A stored person's identifiers for the linking rule, each decrypted (as
    ``identity.unseal`` does) the first time it is read. ``identity.compare`` reads the NHS
    number and the date of birth before the name, so the many candidates that are only
    blind-index collisions are ruled out without decrypting their names."""

    __slots__ = ("_ring", "_uuid", "_to_uuid", "_stored", "_plain", "_record")

    def __init__(
        self,
        ring: KeyRing,
        raw_uuid: Any,
        to_uuid: Callable[[Any], Any] | None,
        stored: dict[str, str | None],
    ) -> None:
        self._ring = ring
        self._uuid = raw_uuid
        self._to_uuid = to_uuid
        self._stored = stored
        self._plain: dict[str, Any] = {}
        self._record: str | None = None

    def __repr__(self) -> str:  # never show the values
        return "<StoredIdentity>"

    def _get(self, column: str) -> str | None:
        stored = self._stored[column]
        if not stored:
            return None
        if self._record is None:
            raw = self._uuid
            if isinstance(raw, str) and len(raw) == 32:  # SQLite keeps the hex digits
                h = raw.lower()
                self._record = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"  # str(UUID)
            else:
                self._record = str(self._to_uuid(raw) if self._to_uuid else raw)
        return self._ring.decrypt(stored, table="persons", column=column, record=self._record)

    @property
    def full_name(self) -> str:
        if "name" not in self._plain:
            self._plain["name"] = self._get("name") or ""
        return self._plain["name"]  # type: ignore[no-any-return]

    @property
    def dob(self) -> date | None:
        if "dob" not in self._plain:
            value = self._get("dob")
            self._plain["dob"] = date.fromisoformat(value) if value else None
        return self._plain["dob"]  # type: ignore[no-any-return]

    @property
    def nhs_number(self) -> str | None:
        if "nhs_number" not in self._plain:
            self._plain["nhs_number"] = self._get("nhs_number")
        return self._plain["nhs_number"]  # type: ignore[no-any-return]


class Candidate:
    """A person a notification may be about: one already stored, or one that an earlier row of
    this intake is creating. Holds identifiers in memory only while its batch is processed."""

    __slots__ = ("id", "identity", "cases", "order", "bi_nhs", "bi_name_dob", "values")

    def __init__(
        self,
        order: int,
        identity: ident.Identity | _StoredIdentity,
        bi_nhs: int | None,
        bi_name_dob: int | None,
        id_: int | None = None,
        values: tuple[Any, ...] | None = None,
    ) -> None:
        self.id = id_
        self.order = order  # the linking order: by id; new persons after every stored one
        self.identity = identity
        self.bi_nhs = bi_nhs
        self.bi_name_dob = bi_name_dob
        self.values = values  # the prepared row of a person still to be written
        # (case type, ISO event date) -> where it is: ("row", n) or ("case", reference, area id)
        self.cases: dict[tuple[str, str], tuple[Any, ...]] = {}


def judge(
    identity: ident.Identity, candidates: Iterable[Candidate], verdict: Callable[..., str]
) -> tuple[Candidate | None, Candidate | None]:
    """The linking rule over candidates in linking order: (the first linked, the first
    suggested)."""
    suggested = None
    for p in candidates:
        v = verdict(identity, p)
        if v == "linked":
            return p, None
        if v == "suggested" and suggested is None:
            suggested = p
    return None, suggested


def _candidate_sql(dialect: Any, n_nhs: int, n_name_dob: int) -> str:
    """One statement, two indexed IN lists (SQLite and PostgreSQL both use each index).
    Written out rather than compiled: SQLAlchemy renders thousands of expanding parameters
    slower than the query runs. Only names from the model, and placeholders."""
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    cols = ", ".join(
        quote(c)
        for c in ("id", "uuid", "name_enc", "dob_enc", "nhs_number_enc", "bi_nhs", "bi_name_dob")
    )
    where = []
    if n_nhs:
        where.append(f"{quote('bi_nhs')} IN ({', '.join([mark] * n_nhs)})")
    if n_name_dob:
        where.append(f"{quote('bi_name_dob')} IN ({', '.join([mark] * n_name_dob)})")
    table = dialect.identifier_preparer.format_table(persons_t)
    return f"SELECT {cols} FROM {table} WHERE {' OR '.join(where)}"  # noqa: S608


def stored_candidates(
    nhs: Sequence[int], name_dob: Sequence[int], ring: KeyRing
) -> dict[int, Candidate]:
    """Every stored person sharing a blind index with the given ones, to be decrypted as far
    as the linking rule needs (never their address or postcode)."""
    if not nhs and not name_dob:
        return {}
    conn = db.session.connection()
    dialect = conn.dialect
    to_uuid = persons_t.c.uuid.type.dialect_impl(dialect).result_processor(dialect, None)
    sql = _candidate_sql(dialect, len(nhs), len(name_dob))
    people: dict[int, Candidate] = {}
    for pid, puuid, name_enc, dob_enc, nhs_enc, bi_nhs, bi_name_dob in conn.exec_driver_sql(
        sql, (*nhs, *name_dob)
    ).fetchall():
        who = _StoredIdentity(
            ring, puuid, to_uuid, {"name": name_enc, "dob": dob_enc, "nhs_number": nhs_enc}
        )
        people[pid] = Candidate(pid, who, bi_nhs, bi_name_dob, id_=pid)
    return people


def verdict(identity: ident.Identity, p: Candidate) -> str:
    """``identity.compare`` against a candidate, stored or new."""
    return ident.compare(identity, p.identity)  # type: ignore[arg-type]


@dataclass
class Match:
    person: Person | None
    status: MatchStatus


def find_match(identity: ident.Identity) -> Match:
    """The person a notification about ``identity`` would be linked to (or suggested for)
    now, by the engine's rule; for lookups."""
    nhs_bi = ident.nhs_index(identity.nhs_number)
    name_bi = ident.name_dob_index(identity.full_name, identity.dob)
    found = stored_candidates(
        [nhs_bi] if nhs_bi is not None else [],
        [name_bi] if name_bi is not None else [],
        ident.keys(),
    )
    candidates = sorted(
        (
            p for p in found.values()
            if (nhs_bi is not None and p.bi_nhs == nhs_bi)
            or (name_bi is not None and p.bi_name_dob == name_bi)
        ),
        key=attrgetter("order"),
    )  # fmt: skip
    linked, suggested = judge(identity, candidates, verdict)
    if linked is not None:
        return Match(db.session.get(Person, linked.id), MatchStatus.LINKED)
    if suggested is not None:
        return Match(db.session.get(Person, suggested.id), MatchStatus.SUGGESTED)
    return Match(None, MatchStatus.NONE)
