"""Reading what only the person's mailbox would hold: the set-your-password link.

Once sent, the outbox erases such a message's body (a copy of the database must hold no live
link), so the link is read where the person would read it: the message the folder transport
wrote, found by the outbox message's UUID (its Message-ID). A message not sent yet is read from
the outbox."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

from flask import current_app

from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.mail.services import ERASED_BODY

LINK = re.compile(r"/password/([a-z]{52})\b")


def link_messages(email: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            db.select(OutboxMessage)
            .where(OutboxMessage.to_address == email, OutboxMessage.kind == "account.password_link")
            .order_by(OutboxMessage.id)
        )
    )


def body_of(message: OutboxMessage) -> str:
    """The text the person received (or will receive) for this outbox message."""
    if message.body_text != ERASED_BODY:
        return message.body_text
    folder = Path(current_app.config.get("MAIL_OUTBOX_DIR") or Path(current_app.instance_path)
                  / "outbox")
    found = list(folder.glob(f"*-{message.uuid}.eml"))
    assert found, "the sent message is in neither the outbox nor the mailbox"
    parsed = message_from_bytes(found[0].read_bytes(), policy=policy.default)
    part = parsed.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def link_token_for(email: str) -> str:
    """The token of the newest link e-mailed to ``email`` (fails the test if there is none)."""
    messages = link_messages(email)
    assert messages, f"no password link was e-mailed to {email}"
    match = LINK.search(body_of(messages[-1]))
    assert match, "the e-mail carries no password link"
    return match.group(1)
