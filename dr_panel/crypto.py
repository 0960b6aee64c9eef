"""All of dr-panel's cryptography: the key ring, field encryption, keyed hashes.

One key per purpose, never in the database:

- ``session``: signs the Flask session cookie;
- ``csrf``: signs CSRF tokens;
- ``audit``: the HMAC chain of the audit log;
- ``blind_index``: root of the per-index HMAC keys (derived with HKDF, one per index);
- ``field``: AES-256-GCM keys for encrypted columns, each with a key id, one of them active.

Keys come from a JSON key file (``instance/keys.json`` by default, mode 0600) or from ``DR_PANEL_*``
environment variables, which win over the file. Development generates the file on first run;
production refuses to start when a key is missing, short, or shared between purposes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask

KEY_BYTES = 32
SINGLE_PURPOSES = ("session", "csrf", "audit", "blind_index")
FIELD_PREFIX = "v1"


class KeyConfigError(RuntimeError):
    """A key is missing, weak or misused. Messages name the key's purpose, never its value."""


class DecryptionError(RuntimeError):
    """A stored value failed to decrypt: wrong key, or moved to another row or column."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise KeyConfigError(f"the {what} key is not valid URL-safe base64") from None


def _check_strength(key: bytes, what: str) -> None:
    if len(key) < KEY_BYTES:
        raise KeyConfigError(f"the {what} key must be at least {KEY_BYTES} random bytes")
    if len(set(key)) < 8:
        raise KeyConfigError(f"the {what} key is not random enough")


@dataclass(frozen=True, repr=False)
class KeyRing:
    session: bytes
    csrf: bytes
    audit: bytes
    blind_index: bytes
    field_keys: dict[str, bytes] = field(default_factory=dict)
    active_field_key: str = ""

    def __repr__(self) -> str:  # never show key material
        return f"<KeyRing field_keys={sorted(self.field_keys)} active={self.active_field_key}>"

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def generate(cls) -> KeyRing:
        kid = "k1"
        return cls(
            session=secrets.token_bytes(KEY_BYTES),
            csrf=secrets.token_bytes(KEY_BYTES),
            audit=secrets.token_bytes(KEY_BYTES),
            blind_index=secrets.token_bytes(KEY_BYTES),
            field_keys={kid: secrets.token_bytes(KEY_BYTES)},
            active_field_key=kid,
        )

    def to_json(self) -> str:
        data: dict[str, object] = {p: _b64(getattr(self, p)) for p in SINGLE_PURPOSES}
        data["field"] = {
            "active": self.active_field_key,
            "keys": {kid: _b64(k) for kid, k in self.field_keys.items()},
        }
        return json.dumps({"version": 1, **data}, indent=2)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> KeyRing:
        values: dict[str, Any] = {}
        for purpose in SINGLE_PURPOSES:
            if not data.get(purpose):
                raise KeyConfigError(f"the {purpose} key is missing")
            values[purpose] = _unb64(data[purpose], purpose)
        field_data = data.get("field") or {}
        keys = {
            kid: _unb64(k, f"field ({kid})") for kid, k in (field_data.get("keys") or {}).items()
        }
        active = field_data.get("active", "")
        if not keys or active not in keys:
            raise KeyConfigError("the field encryption keys are missing, or none is marked active")
        ring = cls(field_keys=keys, active_field_key=active, **values)
        ring.check()
        return ring

    @classmethod
    def load(cls, path: Path, *, generate: bool, strict_permissions: bool) -> KeyRing:
        """Read the key file (creating it where allowed), then apply environment overrides."""
        data: dict[str, Any] = {}
        if path.exists():
            if strict_permissions and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyConfigError(
                    f"the key file {path} must be readable by its owner only (chmod 600)"
                )
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                raise KeyConfigError(f"the key file {path} is not valid JSON") from None
        elif generate and not _env_keys_present():
            ring = cls.generate()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(ring.to_json())
            return ring
        data.update(_env_overrides())
        if not data:
            raise KeyConfigError(
                f"no keys: provide the key file {path} or the DR_PANEL_*_KEY environment variables"
            )
        return cls.from_mapping(data)

    def check(self) -> None:
        """Every key strong, and no two purposes sharing a key."""
        named: list[tuple[str, bytes]] = [(p, getattr(self, p)) for p in SINGLE_PURPOSES]
        named += [(f"field ({kid})", k) for kid, k in self.field_keys.items()]
        for what, key in named:
            _check_strength(key, what)
        seen: dict[bytes, str] = {}
        for what, key in named:
            if key in seen:
                raise KeyConfigError(
                    f"the {what} key is the same as the {seen[key]} key; use one per purpose"
                )
            seen[key] = what

    # -- uses ----------------------------------------------------------------------------------

    def index_key(self, index_name: str) -> bytes:
        """A separate key for each blind index, derived from the root (CipherSweet-style)."""
        return _derive_index_key(self.blind_index, index_name)

    def audit_mac(self, message: bytes) -> str:
        return hmac.new(self.audit, message, hashlib.sha256).hexdigest()

    def encrypt(self, plaintext: str, *, table: str, column: str, record: str) -> str:
        """AES-256-GCM with a fresh nonce; the associated data binds the value to its place."""
        kid = self.active_field_key
        nonce = secrets.token_bytes(12)
        ct = _aead(self.field_keys[kid]).encrypt(
            nonce, plaintext.encode("utf-8"), _aad(table, column, record)
        )
        return f"{FIELD_PREFIX}:{kid}:{_b64(nonce + ct)}"

    def decrypt(self, stored: str, *, table: str, column: str, record: str) -> str:
        try:
            prefix, kid, body = stored.split(":", 2)
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            key = self.field_keys[kid]
        except (ValueError, KeyError, binascii.Error):
            raise DecryptionError(
                f"{table}.{column}: value is malformed or its key is unknown"
            ) from None
        if prefix != FIELD_PREFIX:
            raise DecryptionError(f"{table}.{column}: unknown format")
        try:
            return (
                _aead(key).decrypt(raw[:12], raw[12:], _aad(table, column, record)).decode("utf-8")
            )
        except Exception:  # InvalidTag: tampered, or copied from another row or column
            raise DecryptionError(
                f"{table}.{column}: value does not belong to this record"
            ) from None


@lru_cache(maxsize=64)
def _derive_index_key(root: bytes, index_name: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=None,
        info=f"dr-panel blind index: {index_name}".encode(),
    ).derive(root)


@lru_cache(maxsize=16)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def _aad(table: str, column: str, record: str) -> bytes:
    return f"dr-panel|{table}|{column}|{record}".encode()


ENV_NAMES = {p: f"DR_PANEL_{p.upper()}_KEY" for p in SINGLE_PURPOSES}


def _env_keys_present() -> bool:
    return any(os.environ.get(n) for n in ENV_NAMES.values()) or bool(
        os.environ.get("DR_PANEL_FIELD_KEYS")
    )


def _env_overrides() -> dict[str, Any]:
    """``DR_PANEL_SESSION_KEY`` etc.; ``DR_PANEL_FIELD_KEYS="k1:b64,k2:b64"`` with
    ``DR_PANEL_FIELD_KEY_ACTIVE=k2``."""
    out: dict[str, Any] = {p: os.environ[n] for p, n in ENV_NAMES.items() if os.environ.get(n)}
    raw = os.environ.get("DR_PANEL_FIELD_KEYS")
    if raw:
        keys = dict(part.split(":", 1) for part in raw.split(",") if ":" in part)
        active = os.environ.get("DR_PANEL_FIELD_KEY_ACTIVE") or sorted(keys)[-1]
        out["field"] = {"active": active, "keys": keys}
    return out


def hash_token(token: str) -> str:
    """Session and API tokens are high-entropy random strings: a plain SHA-256 is enough to
    store them so a database reader cannot replay them."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


# -- the app's key ring, following the key file -------------------------------------------------

log = logging.getLogger(__name__)


def key_file(app: Flask) -> Path:
    return Path(app.config["KEYS_FILE"])


_RELOAD_LOCK = threading.Lock()


def current(app: Flask) -> KeyRing:
    """The app's key ring, reloaded first if the key file changed: every reader outside a
    request (the mail and broadcast workers, the retention job, ``dr-panel worker``) calls this
    once a round, and every request once (``before_request``), so a key added or retired by
    ``dr-panel keys`` in another process is followed without a restart. One ``stat()``; the key
    commands replace the file atomically, so a reader never sees half of it. A file that fails
    to load keeps the ring in use (logged, without key material)."""
    path = key_file(app)
    try:
        seen: int | None = path.stat().st_mtime_ns
    except OSError:
        seen = None
    if seen is None or seen == app.extensions.get("dr_panel.keys_mtime"):
        return app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]
    with _RELOAD_LOCK:  # one reload when threads (web requests, worker) notice together
        if seen != app.extensions.get("dr_panel.keys_mtime"):
            try:
                new = KeyRing.load(
                    path, generate=False, strict_permissions=app.config["ENV_NAME"] == "production"
                )
            except KeyConfigError as err:
                log.error("the key file changed but does not load (%s); keeping the keys in use",
                          err)
            else:
                app.extensions["dr_panel.keys"] = new
                log.info("key file changed: keys reloaded (field keys %s, active %s)",
                         sorted(new.field_keys), new.active_field_key)
            app.extensions["dr_panel.keys_mtime"] = seen
    return app.extensions["dr_panel.keys"]  # type: ignore[no-any-return]


def reload_ring(app: Flask) -> KeyRing:
    """Load the ring again from the key file into this running app (the app caches it)."""
    new = KeyRing.load(
        key_file(app), generate=False, strict_permissions=app.config["ENV_NAME"] == "production"
    )
    app.extensions["dr_panel.keys"] = new
    app.extensions["dr_panel.keys_mtime"] = key_file(app).stat().st_mtime_ns
    return new
