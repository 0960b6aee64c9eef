"""Field encryption: AES-256-GCM, bound to its table, column and record."""

from __future__ import annotations

import base64

import pytest

from dr_panel.crypto import DecryptionError, KeyRing


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


def test_round_trip_with_unicode(ring: KeyRing) -> None:
    stored = ring.encrypt("Siân O'Brien-Smith", table="persons", column="name", record="r1")
    assert "Siân" not in stored and stored.startswith("v1:k1:")
    assert ring.decrypt(stored, table="persons", column="name", record="r1") == "Siân O'Brien-Smith"


def test_fresh_nonce_each_time(ring: KeyRing) -> None:
    a = ring.encrypt("same", table="t", column="c", record="r")
    b = ring.encrypt("same", table="t", column="c", record="r")
    assert a != b


@pytest.mark.parametrize(
    "where",
    [
        {"table": "persons", "column": "name", "record": "r2"},  # copied to another row
        {"table": "persons", "column": "dob", "record": "r1"},  # to another column
        {"table": "users", "column": "name", "record": "r1"},  # to another table
    ],
)
def test_a_value_moved_elsewhere_does_not_decrypt(ring: KeyRing, where: dict[str, str]) -> None:
    stored = ring.encrypt("9990000018", table="persons", column="name", record="r1")
    with pytest.raises(DecryptionError) as err:
        ring.decrypt(stored, **where)
    assert "9990000018" not in str(err.value)


def test_tampered_or_unknown_key_fails(ring: KeyRing) -> None:
    stored = ring.encrypt("x", table="t", column="c", record="r")
    prefix, kid, body = stored.split(":")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[14] ^= 0x01  # one bit of the ciphertext
    flipped = f"{prefix}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(DecryptionError):
        ring.decrypt(flipped, table="t", column="c", record="r")
    with pytest.raises(DecryptionError):
        ring.decrypt(stored.replace(":k1:", ":k7:"), table="t", column="c", record="r")


def test_blind_index_keys_differ_per_index(ring: KeyRing) -> None:
    assert ring.index_key("nhs_number") != ring.index_key("surname_dob")
    assert ring.index_key("nhs_number") == ring.index_key("nhs_number")
    assert ring.blind_index not in (ring.index_key("nhs_number"), ring.index_key("surname_dob"))
