from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db


class OutboxMessage(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One e-mail waiting to go, or gone. ``dedupe_key`` makes queuing the same message twice
    (a chase for the same request on the same day, say) a no-op."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # A recipient whose address is itself personal data (a public reporter) is kept only
    # encrypted, bound to this message, in ``to_address_enc``, and erased once sent; its
    # ``to_address`` is NULL. Staff and subscribers' work addresses stay in ``to_address``.
    to_address: Mapped[str | None] = mapped_column(String(254))
    to_address_enc: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False,
                                                 index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(200))

    @property
    def is_private_recipient(self) -> bool:
        """Sent, or to be sent, to a public reporter: the address is never shown."""
        return self.to_address is None

    @property
    def recipient_label(self) -> str:
        """The recipient as lists and logs may show it."""
        return "(a public reporter)" if self.to_address is None else self.to_address

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.uuid} {self.kind} sent={self.sent_at is not None}>"
