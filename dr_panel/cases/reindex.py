"""Filling the detector's blind indexes for people stored before they existed.

A migration cannot compute a keyed HMAC (the key is outside the database), so an existing
database runs ``dr-panel alerts reindex-names`` once: each person's name and address decrypted
once, in memory, to set ``persons.bi_name`` and the name and address tokens. Each batch is its
own transaction and selects only people still missing them, so an interrupted run carries on
where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exists, func, insert, or_, select

from dr_panel.crypto import DecryptionError
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from dr_panel.privacy import tokens as tk


def _has_tokens() -> object:
    from dr_panel.cases.models import Person
    from dr_panel.privacy.models import PersonToken

    return exists().where(PersonToken.person_id == Person.id)


def _missing() -> object:
    from dr_panel.cases.models import Person

    return Person.name_enc.is_not(None) & (Person.name_enc != "") & or_(
        Person.bi_name.is_(None), ~_has_tokens()  # type: ignore[operator]
    )


def names_to_index() -> int:
    """How many people still lack their name index or their tokens."""
    from dr_panel.cases.models import Person

    return db.session.scalar(
        select(func.count()).select_from(Person).where(_missing())  # type: ignore[arg-type]
    ) or 0


def reindex_names(batch_size: int = 500, progress: Callable[[int], None] | None = None) -> int:
    """Set ``bi_name`` and the name and address tokens of everyone missing them; returns how
    many people were indexed. Audited (a count, no identifier)."""
    from dr_panel.audit.services import record
    from dr_panel.cases.models import Person
    from dr_panel.privacy.models import PersonToken

    ring = ident.keys()
    done = 0
    last_id = 0
    while True:
        people = db.session.execute(
            select(Person.id, Person.uuid, Person.name_enc, Person.address_enc, Person.bi_name,
                   _has_tokens())  # type: ignore[call-overload]
            .where(_missing(), Person.id > last_id)  # type: ignore[arg-type]
            .order_by(Person.id)
            .limit(batch_size)
        ).all()
        if not people:
            break
        rows = []
        for pid, puuid, name_enc, address_enc, bi_name, has_tokens in people:
            who = ident.Identity(
                full_name=_decrypt(ring, name_enc, "name", puuid) or "",
                address=_decrypt(ring, address_enc, "address", puuid),
            )
            made = [] if has_tokens else [
                {"person_id": pid, "kind": kind, "bi": bi}
                for kind, bi in tk.person_tokens(who, ring)
            ]
            new_bi_name = ident.name_index(who.full_name, ring) if bi_name is None else None
            if new_bi_name is not None:
                db.session.execute(
                    Person.__table__.update().where(Person.id == pid).values(bi_name=new_bi_name)
                )
            if made or new_bi_name is not None:
                done += 1
            rows += made
        if rows:
            db.session.execute(insert(PersonToken.__table__), rows)
        last_id = people[-1][0]
        db.session.commit()
        if progress:
            progress(len(people))
    record("alerts.names_reindexed", actor_label="cli", details={"persons": done})
    db.session.commit()
    return done


def _decrypt(ring: object, stored: str | None, column: str, puuid: object) -> str | None:
    if not stored:
        return None
    try:
        return ring.decrypt(  # type: ignore[attr-defined,no-any-return]
            stored, table="persons", column=column, record=str(puuid)
        )
    except DecryptionError:
        return None
