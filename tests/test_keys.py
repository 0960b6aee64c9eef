"""Field-key rotation: `dr-panel keys add-field-key | rotate | verify | retire`.

The issue's test: key rotation on a few thousand records loses nothing, and an interrupted
rotation resumes. Reads keep working in the middle, and the old key can then be retired.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import stat
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from dr_panel import keys as service
from dr_panel.audit.models import AuditEntry
from dr_panel.audit.services import verify as verify_audit
from dr_panel.auth import services as accounts
from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Person
from dr_panel.cli import main
from dr_panel.extensions import db
from dr_panel.privacy import identity

PERSONS = 2500


def nhs_number(rng: random.Random) -> str:
    while True:
        body = "999" + "".join(rng.choice("0123456789") for _ in range(6))
        check = 11 - sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            return body + str(0 if check == 11 else check)


def make_persons(n: int, seed: int = 7) -> dict[uuid.UUID, identity.Identity]:
    """n persons sealed under the active key; some without NHS number, address or DOB."""
    rng = random.Random(seed)
    made: dict[uuid.UUID, identity.Identity] = {}
    persons = []
    for i in range(n):
        who = identity.Identity(
            full_name=f"Testperson{i} Surname{rng.randrange(10_000)}",
            dob=date(1960, 1, 1) + timedelta(days=rng.randrange(15_000)) if i % 11 else None,
            nhs_number=nhs_number(rng) if i % 4 else None,
            address=f"{i} Example Street, Testtown" if i % 3 else None,
            postcode=f"FY{1 + i % 4} {rng.randrange(1, 10)}AB" if i % 3 else None,
        )
        person = Person(uuid=uuid.uuid4())
        identity.seal(person, who)
        persons.append(person)
        made[person.uuid] = who
    db.session.add_all(persons)
    db.session.commit()
    return made


def read_all(ring: Any = None) -> dict[uuid.UUID, identity.Identity]:
    db.session.expire_all()
    return {p.uuid: identity.unseal(p, ring) for p in db.session.scalars(select(Person))}


def same(a: dict[uuid.UUID, identity.Identity], b: dict[uuid.UUID, identity.Identity]) -> bool:
    return {k: dataclasses.asdict(v) for k, v in a.items()} == {
        k: dataclasses.asdict(v) for k, v in b.items()
    }


def key_file(app: Flask) -> dict[str, Any]:
    return json.loads(Path(app.config["KEYS_FILE"]).read_text(encoding="utf-8"))


def totp_secret(user: User) -> str | None:
    db.session.refresh(user)
    return accounts._user_secret(user)


def all_key_material(app: Flask) -> list[str]:
    ring = app.extensions["dr_panel.keys"]
    raw = [ring.session, ring.csrf, ring.audit, ring.blind_index, *ring.field_keys.values()]
    return [base64.urlsafe_b64encode(k).decode() for k in raw]


@pytest.fixture
def populated(app: Flask, create_user: Callable[..., User]) -> tuple[dict, User]:
    people = make_persons(PERSONS)
    user = create_user(Role.COORDINATOR, totp=True)
    return people, user


def test_rotation_of_thousands_loses_nothing_and_an_interrupted_run_resumes(
    app: Flask,
    app_factory: Callable[..., Flask],
    runner: Any,
    populated: tuple[dict, User],
    monkeypatch: pytest.MonkeyPatch,
    login: Callable[..., Any],
) -> None:
    people, user = populated
    secret = user.totp_secret_plain  # type: ignore[attr-defined]
    values = service.total_values()
    assert values > 3 * PERSONS  # name always, most of the rest, and the TOTP secret
    outputs: list[str] = []

    # 1. A new key, active at once in the file and in the running app.
    result = runner.invoke(main, ["keys", "add-field-key"])
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    assert "Added field key k2" in result.output
    data = key_file(app)
    assert data["field"]["active"] == "k2" and set(data["field"]["keys"]) == {"k1", "k2"}
    assert stat.S_IMODE(Path(app.config["KEYS_FILE"]).stat().st_mode) == 0o600
    assert app.extensions["dr_panel.keys"].active_field_key == "k2"
    assert service.pending() == {
        "persons.name": PERSONS,
        "persons.dob": service.usage("k1")["persons.dob"],
        "persons.nhs_number": service.usage("k1")["persons.nhs_number"],
        "persons.address": service.usage("k1")["persons.address"],
        "persons.postcode": service.usage("k1")["persons.postcode"],
        "users.totp_secret": 1,
        "case_events.reason": 0,  # this test makes no workflow steps or requests
        "info_requests.note": 0,
        "info_requests.risks": 0,
        "info_requests.services": 0,
        "info_requests.safeguarding": 0,
        "info_requests.chronology": 0,
        "meeting_items.minutes": 0,
        "actions.description": 0,
        "actions.not_accepted_reason": 0,
        "actions.evidence": 0,
        "safety_plans.risks": 0,
        "safety_plans.protective": 0,
        "case_reviews.missed_opportunities": 0,
        "case_factors.description": 0,
        "learning_points.text": 0,
        "subscribers.secret": 0,
        "subscribers.previous_secret": 0,
        "drug_reports.content": 0,
        "drug_reports.reporter_contact": 0,
        "drug_reports.held": 0,
        "outbox_messages.to_address": 0,
        "assessments.notes": 0,
        "assessments.rationale": 0,
    }

    # 2. The rotation crashes in its third batch: two batches are saved, the third is not.
    real_batch = service._rotate_batch
    calls = {"n": 0}

    def crash_on_third(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(service, "_rotate_batch", crash_on_third)
    result = runner.invoke(main, ["keys", "rotate", "--batch-size", "400"])
    outputs.append(result.output)
    assert result.exit_code == 1
    assert "Rotation stopped (RuntimeError) after 800 values" in result.output
    assert sum(service.usage("k2").values()) == 800
    assert sum(service.usage("k1").values()) == values - 800

    # 3. Mid-rotation, with values under both keys, every read still works.
    assert same(read_all(), people)
    assert totp_secret(user) == secret
    newcomer = Person(uuid=uuid.uuid4())
    identity.seal(newcomer, identity.Identity(full_name="Late Arrival", dob=date(1980, 5, 6)))
    db.session.add(newcomer)
    db.session.commit()
    assert newcomer.name_enc.startswith("v1:k2:")  # written under the new key meanwhile
    people[newcomer.uuid] = identity.unseal(newcomer)

    # 4. Run again: it carries on with what is left and ends by verifying.
    monkeypatch.setattr(service, "_rotate_batch", real_batch)
    result = runner.invoke(main, ["keys", "rotate", "--batch-size", "400"])
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    assert f"Re-encrypting {values - 800} values under k2" in result.output
    assert f"Re-encrypted {values - 800} values under k2 ({values - 800} from k1)" in result.output
    assert "Every value decrypts." in result.output
    assert sum(service.usage("k1").values()) == 0
    assert same(read_all(), people)
    assert totp_secret(user) == secret

    # 5. Verify: everything under k2.
    result = runner.invoke(main, ["keys", "verify"])
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    assert f"Checked {values + 2} encrypted values" in result.output  # + the newcomer's two
    assert f"k2 (active): {values + 2}" in result.output and "k1" not in result.output

    # 6. Retire k1: gone from the file and from the running app.
    result = runner.invoke(main, ["keys", "retire", "k1"])
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    data = key_file(app)
    assert set(data["field"]["keys"]) == {"k2"} and data["field"]["retired"] == ["k1"]
    assert set(app.extensions["dr_panel.keys"].field_keys) == {"k2"}

    # 7. A fresh app, loaded from the key file, reads everything; k1 is gone for good.
    fresh = app_factory()
    with fresh.app_context():
        ring = fresh.extensions["dr_panel.keys"]
        assert set(ring.field_keys) == {"k2"} and ring.active_field_key == "k2"
        assert same(read_all(ring), people)
        assert accounts._user_secret(db.session.get(User, user.id)) == secret
        client = fresh.test_client()
        assert login(client, user).location.endswith("/")  # password, then a TOTP code
    db.session.expire_all()

    # Each run is audited, and the chain still holds.
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert actions.count("keys.field_key_added") == 1
    assert actions.count("keys.rotated") == 2  # the crashed run and the resumed one
    assert "keys.retired" in actions and "keys.verified" in actions
    assert verify_audit().ok
    details = [
        json.loads(d)
        for d in db.session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "keys.rotated")
        )
    ]
    assert [d["rotated"] for d in details] == [800, values - 800]
    assert details[0]["stopped"] is True and details[1]["remaining"] == 0

    # 8. Key ids are never reused: the next key is k3, not k2 again or k1.
    result = runner.invoke(main, ["keys", "add-field-key"])
    outputs.append(result.output)
    assert "Added field key k3" in result.output

    # No key material, and no identifier, in anything the commands printed.
    printed = "\n".join(outputs)
    for secret_text in all_key_material(app):
        assert secret_text not in printed
    assert secret not in printed
    for who in list(people.values())[:50]:
        assert who.full_name not in printed


def test_retire_refuses_the_active_key_a_key_in_use_and_an_unknown_key(
    app: Flask, runner: Any
) -> None:
    make_persons(30)
    path = Path(app.config["KEYS_FILE"])
    before = path.read_bytes()

    result = runner.invoke(main, ["keys", "retire", "k1"])
    assert result.exit_code == 1 and "k1 is the active field key" in result.output
    assert path.read_bytes() == before

    assert runner.invoke(main, ["keys", "add-field-key"]).exit_code == 0
    after_add = path.read_bytes()
    result = runner.invoke(main, ["keys", "retire", "k1"])
    assert result.exit_code == 1
    assert "values are still encrypted with k1" in result.output
    assert "persons.name: 30" in result.output
    assert path.read_bytes() == after_add
    assert "k1" in app.extensions["dr_panel.keys"].field_keys

    result = runner.invoke(main, ["keys", "retire", "k9"])
    assert result.exit_code == 1 and "There is no field key k9" in result.output

    # Half the values rotated: still refused.
    service.rotate(batch_size=10, max_batches=2)
    result = runner.invoke(main, ["keys", "retire", "k1"])
    assert result.exit_code == 1 and "values are still encrypted with k1" in result.output
    assert path.read_bytes() == after_add
    assert db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "keys.retired")
    ) == 0


def test_rotation_never_overwrites_a_value_changed_while_it_runs(
    app: Flask, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_persons(50)
    assert runner.invoke(main, ["keys", "add-field-key"]).exit_code == 0
    # A process that has not been restarted still encrypts with k1.
    stale_ring = dataclasses.replace(app.extensions["dr_panel.keys"], active_field_key="k1")
    target = db.session.scalars(select(Person).order_by(Person.id).limit(1)).one()
    target_uuid = target.uuid
    changed = identity.Identity(full_name="Renamed Meanwhile", dob=date(1979, 2, 3))
    real_select = service._select_batch

    def select_then_someone_writes(*args: Any, **kwargs: Any) -> Any:
        rows = real_select(*args, **kwargs)
        if not getattr(select_then_someone_writes, "done", False):
            select_then_someone_writes.done = True  # type: ignore[attr-defined]
            person = db.session.scalars(select(Person).where(Person.uuid == target_uuid)).one()
            identity.seal(person, changed, stale_ring)
            db.session.commit()
        return rows

    monkeypatch.setattr(service, "_select_batch", select_then_someone_writes)
    result = service.rotate(batch_size=100)
    # The first batch (persons.name) held the old name value: that row was left alone, once.
    assert result.changed_meanwhile == 1
    # Its later columns were selected after the write, so only the name is left under k1.
    assert result.remaining == 1 and service.usage("k1")["persons.name"] == 1
    db.session.expire_all()
    person = db.session.scalars(select(Person).where(Person.uuid == target_uuid)).one()
    assert identity.unseal(person).full_name == "Renamed Meanwhile"

    monkeypatch.setattr(service, "_select_batch", real_select)
    result = runner.invoke(main, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    person = db.session.scalars(select(Person).where(Person.uuid == target_uuid)).one()
    assert person.name_enc.startswith("v1:k2:")
    assert dataclasses.asdict(identity.unseal(person)) == dataclasses.asdict(changed)


def test_verify_names_a_value_that_does_not_decrypt_and_rotate_leaves_it(
    app: Flask, runner: Any
) -> None:
    make_persons(20)
    first, second = db.session.scalars(select(Person).order_by(Person.id).limit(2)).all()
    name = identity.unseal(first).full_name
    second.name_enc = first.name_enc  # a value moved to another row: its AAD no longer fits
    bad_uuid = str(second.uuid)
    db.session.commit()

    result = runner.invoke(main, ["keys", "verify"])
    assert result.exit_code == 1
    assert "1 values do not decrypt" in result.output
    assert f"persons.name record {bad_uuid}: value does not belong to this record" in result.output
    assert name not in result.output

    assert runner.invoke(main, ["keys", "add-field-key"]).exit_code == 0
    result = runner.invoke(main, ["keys", "rotate"])
    assert result.exit_code == 1
    assert "1 values did not decrypt and were left as they were" in result.output
    assert "1 values are still not under k2" in result.output
    db.session.expire_all()
    assert db.session.get(Person, second.id).name_enc.startswith("v1:k1:")
    result = runner.invoke(main, ["keys", "retire", "k1"])
    assert result.exit_code == 1 and "persons.name: 1" in result.output


def test_key_commands_refuse_when_field_keys_come_from_the_environment(
    app: Flask, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(app.config["KEYS_FILE"])
    before = path.read_bytes()
    monkeypatch.setenv("DR_PANEL_FIELD_KEYS", "k1:whatever")
    for args in (["keys", "add-field-key"], ["keys", "retire", "k1"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1
        assert "DR_PANEL_FIELD_KEYS" in result.output and "yourself" in result.output
    assert path.read_bytes() == before


def test_rotate_with_nothing_to_do_still_verifies(app: Flask, runner: Any) -> None:
    make_persons(5)
    result = runner.invoke(main, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Nothing to re-encrypt" in result.output and "Every value decrypts." in result.output


def test_every_encrypted_column_is_registered_for_rotation(app: Flask) -> None:
    registered = {(c.table, c.column) for c in service.ENCRYPTED_COLUMNS}
    found = {
        (table.name, column.name)
        for table in db.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_enc")
    }
    assert found == registered, "add the new encrypted column to keys.ENCRYPTED_COLUMNS"


def test_a_running_worker_follows_the_key_file_without_a_restart(app_factory: Any) -> None:
    """Another process adds a field key: this worker reads values under it at its next request."""
    worker = app_factory()
    other = app_factory()  # stands for `dr-panel keys add-field-key` run elsewhere
    with other.app_context():
        from dr_panel.keys import add_field_key

        add_field_key(other)
        new_ring = other.extensions["dr_panel.keys"]
    sealed = new_ring.encrypt("a value under the new key", table="t", column="c", record="r")
    assert worker.extensions["dr_panel.keys"].active_field_key == "k1"
    worker.test_client().get("/login")
    ring = worker.extensions["dr_panel.keys"]
    assert ring.active_field_key == new_ring.active_field_key != "k1"
    assert ring.decrypt(sealed, table="t", column="c", record="r") == "a value under the new key"
