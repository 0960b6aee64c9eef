from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Column, Enum, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency, Area
from dr_panel.roles import ROLE_LABELS, Role  # noqa: F401  (ROLE_LABELS: imported from here too)

user_areas = Table(
    "user_areas",
    db.metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("area_id", Integer, ForeignKey("areas.id", ondelete="CASCADE"), primary_key=True),
)


class User(PublicIdMixin, UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(120), nullable=False)
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
        nullable=False,
    )
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    must_change_password: Mapped[bool] = mapped_column(default=False, nullable=False)
    password_changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, nullable=False
    )
    # TOTP secret, AES-GCM encrypted and bound to this user (dr_panel.crypto).
    totp_secret_enc: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last time-step accepted: a code is good once, and never an older one after it.
    totp_last_counter: Mapped[int | None] = mapped_column(Integer)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    agency: Mapped[Agency | None] = relationship(lazy="joined")
    areas: Mapped[list[Area]] = relationship(
        secondary=user_areas, lazy="selectin", order_by=Area.name
    )

    def __repr__(self) -> str:
        return f"<User {self.uuid} {self.role.value}>"

    # Flask-Login reads these; sessions are loaded through UserSession, never by this id.
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.disabled_at is None

    def get_id(self) -> str:
        return str(self.uuid)

    @property
    def has_second_factor(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def area_ids(self) -> set[int]:
        return {a.id for a in self.areas}

    def can_work_in(self, area: Area) -> bool:
        return area.id in self.area_ids

    # Per-record rules, reached through dr_panel.security.get_or_404.
    def can_view(self, actor: User) -> bool:
        return actor.role is Role.ADMIN or actor.id == self.id

    def can_edit(self, actor: User) -> bool:
        return actor.role is Role.ADMIN


class UserSession(db.Model):  # type: ignore[name-defined,misc]
    """A signed-in browser. The cookie holds a random token; only its hash is stored, so ending
    a session here (logout, password change, account disabled) ends it everywhere at once."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(200))

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<UserSession {self.id} ended={self.ended_at is not None}>"


class ApiToken(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A personal API token. Shown once at creation; only its SHA-256 is stored. Revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # The first characters, so a person can tell their tokens apart (never enough to use one).
    prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Refused from this moment; the owner may renew a live token before it (API_TOKEN_DAYS).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why, in words for the owner: "revoked by its owner", "password changed"...
    revoked_reason: Mapped[str | None] = mapped_column(String(40))

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<ApiToken {self.uuid} revoked={self.revoked_at is not None}>"

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.expires_at

    def is_live(self, now: datetime | None = None) -> bool:
        return self.revoked_at is None and not self.is_expired(now)

    def can_view(self, actor: User) -> bool:
        return actor.id == self.user_id or actor.role is Role.ADMIN

    def can_edit(self, actor: User) -> bool:
        return self.can_view(actor)


class LinkPurpose(enum.StrEnum):
    """Why a set-your-password link was sent; each has its own lifetime (services.LINK_LIFETIME)."""

    WELCOME = "welcome"  # a new account, or one that has never signed in
    RESET = "reset"  # an admin reset the password
    FORGOT = "forgot"  # the person asked for one on the sign-in page


class PasswordLink(db.Model):  # type: ignore[name-defined,misc]
    """A single-use link, e-mailed to the person, to set their own password: nobody else ever
    holds their password. Only the SHA-256 of its token is stored; the e-mail carries the token."""

    __tablename__ = "password_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Set when used, or when a newer link, a password change or an address change replaced it.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<PasswordLink {self.id} {self.purpose} used={self.used_at is not None}>"


class PendingSignIn(db.Model):  # type: ignore[name-defined,misc]
    """A sign-in between the password and the last stage (code, enrolment, new password). The
    cookie holds only a random token; who is signing in, and where they were going, stay here."""

    __tablename__ = "pending_sign_ins"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    stage: Mapped[str] = mapped_column(String(20), nullable=False)
    next_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<PendingSignIn {self.id} {self.stage}>"
