"""NIST SP 800-63B password rules, with messages that say how to fix the password."""

from __future__ import annotations

from typing import Any

import pytest

from dr_panel.auth.passwords import hash_password, normalise, problems, verify_password


@pytest.mark.parametrize(
    "password,message",
    [
        ("short pw 1", "at least 12 characters"),
        ("x" * 129, "at most 128 characters"),
        ("password1234", "common or leaked"),
        ("qwertyuiop123", "common or leaked"),
        ("aaaaaaaaaaaaaaaa", "repeats too few characters"),
        ("jane.doe-is-my-secret", "your name, e-mail address"),
        ("dr-panel rocks 2026", "name of this service"),
        ("abcdefghijklmnop", "Add another word or two"),
    ],
)
def test_weak_passwords_are_refused_with_a_fix(app: Any, password: str, message: str) -> None:
    found = problems(password, context=("jane.doe@example.org", "jane.doe", "Jane", "Doe"))
    assert found and message in found[0]


@pytest.mark.parametrize(
    "password",
    [
        "plum orchard lantern 47 drift",
        "correct horse battery staple",
        "Ça va? Très bien, merci 9!",  # any characters, spaces included
        "the pünktlich ferry leaves wharf nine at dawn; " * 2 + "bring soup and a torch!!",  # 118
    ],
)
def test_good_passwords_pass_without_composition_rules(app: Any, password: str) -> None:
    assert problems(password) == []


def test_unicode_is_normalised_so_the_same_password_matches(app: Any) -> None:
    composed, decomposed = "caf\u00e9 window kettle 7", "cafe\u0301 window kettle 7"
    stored = hash_password(composed)
    assert verify_password(stored, decomposed)
    assert normalise(composed) == normalise(decomposed)


def test_hash_is_argon2id_and_wrong_password_fails(app: Any) -> None:
    stored = hash_password("plum orchard lantern 47 drift")
    assert stored.startswith("$argon2id$")
    assert not verify_password(stored, "plum orchard lantern 47 drif")
    assert not verify_password(None, "anything at all here")
    assert not verify_password("not-a-hash", "anything at all here")


def test_production_parameters_meet_owasp(app_factory: Any) -> None:
    from config import ProductionConfig

    cfg = ProductionConfig()
    # OWASP: argon2id with m >= 19 MiB, t >= 2, p = 1 (or stronger); we use RFC 9106's low-memory.
    assert cfg.ARGON2_MEMORY_COST >= 19456 and cfg.ARGON2_TIME_COST >= 2
