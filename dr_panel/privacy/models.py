"""The name and address tokens of stored people (``dr_panel.privacy.tokens``)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.extensions import db


class PersonToken(db.Model):  # type: ignore[name-defined,misc]
    """One keyed-HMAC token of a person's name or address. Written at intake (form, API, bulk)
    and by ``dr-panel alerts reindex-names``; removed with the person or their identifiers."""

    __tablename__ = "person_tokens"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # tokens.KINDS
    bi: Mapped[int] = mapped_column(Integer, primary_key=True)

    __table_args__ = (Index("ix_person_tokens_kind_bi", "kind", "bi"),)

    def __repr__(self) -> str:
        return f"<PersonToken {self.kind}>"
