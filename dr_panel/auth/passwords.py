"""Passwords per NIST SP 800-63B: 12 to 128 characters, any characters, no composition rules,
checked against a blocklist of common and breached passwords, context words and trivial patterns;
stored as argon2id, rehashed on sign-in when the parameters change."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

# A real hash of a random string: verifying against it when the account does not exist makes a
# failed sign-in take the same time either way (no account enumeration by timing).
_DUMMY_PASSWORD = "not-a-real-password-used-only-for-timing"  # noqa: S105


def hasher() -> PasswordHasher:
    cfg = current_app.config
    return _hasher(cfg["ARGON2_TIME_COST"], cfg["ARGON2_MEMORY_COST"], cfg["ARGON2_PARALLELISM"])


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def normalise(password: str) -> str:
    """NFKC, as SP 800-63B asks, so the same password typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return hasher().hash(normalise(password))


def verify_password(stored: str | None, password: str) -> bool:
    h = hasher()
    try:
        return h.verify(stored or _dummy_hash(), normalise(password)) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    cache = current_app.extensions.setdefault("dr_panel.dummy_hash", {})
    key = (current_app.config["ARGON2_TIME_COST"], current_app.config["ARGON2_MEMORY_COST"])
    if key not in cache:
        cache[key] = hasher().hash(_DUMMY_PASSWORD)
    return cache[key]  # type: ignore[no-any-return]


def needs_rehash(stored: str) -> bool:
    return hasher().check_needs_rehash(stored)


@lru_cache(maxsize=1)
def blocklist() -> frozenset[str]:
    """About 30,000 of the most common passwords from leaked corpora (shipped with zxcvbn)."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, *, context: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with a new password, each message saying how to fix it. Empty means fine."""
    cfg = current_app.config
    lo, hi = cfg["PASSWORD_MIN_LENGTH"], cfg["PASSWORD_MAX_LENGTH"]
    pw = normalise(password)
    if len(pw) < lo:
        return [
            f"Use at least {lo} characters. A few unrelated words make a long password "
            "that is easy to remember."
        ]
    if len(pw) > hi:
        return [f"Use at most {hi} characters."]
    lowered = pw.casefold()
    if lowered in blocklist() or lowered.strip("0123456789!@#$%^&*.?") in blocklist():
        return ["This password is on a list of common or leaked passwords. Choose another."]
    if len(set(lowered)) <= 3:
        return ["This password repeats too few characters. Choose something less predictable."]
    words = [w.casefold() for w in context if w and len(w) >= 4]
    if any(w in lowered for w in words + ["drpanel", "dr-panel"]):
        return [
            "Do not use your name, e-mail address or the name of this service in your password."
        ]
    # zxcvbn scores guessability (dictionary words, keyboard walks, sequences, dates).
    result = zxcvbn(pw[:72], user_inputs=words)  # zxcvbn scores at most 72 characters
    if result["score"] < 3:
        hint = result["feedback"].get("warning") or "It would be easy to guess."
        return [f"{hint.rstrip('.')}. Add another word or two that are not obviously related."]
    return []
